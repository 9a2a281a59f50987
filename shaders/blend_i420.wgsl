// Blend one premultiplied YUVA overlay onto an I420 frame held in a storage buffer of u32
// words (plane rows padded to whole words; see scale_i420.wgsl).
//
// The overlay was converted once on the CPU to the video's own Y'CbCr (its matrix and range),
// premultiplied by its alpha, one u32 per pixel: byte 0 = Y*a, byte 1 = Cb*a, byte 2 = Cr*a, byte 3 = a.
// Blending Y'CbCr with weights that sum to one is the same as blending R'G'B', because the
// conversion is affine.
//
// Only the overlay's rectangle, clipped to the frame, is dispatched. One invocation owns one
// word and rewrites only the bytes inside the rectangle, so words shared with the untouched
// picture around it keep their other bytes.
//
// The CPU port of this math is `edge_compose::cpu_reference::blend_overlay`; keep them equal.

struct Plane {
    offset_words: u32,
    stride_words: u32,
    width: u32,
    height: u32,
}

struct BlendParams {
    dst: array<Plane, 3>,
    overlay_size: vec2<u32>,
    // Top-left of the overlay in output luma samples; may be negative (partly off-frame).
    overlay_origin: vec2<i32>,
    // The overlay rectangle clipped to the frame, luma samples: x0, y0, x1, y1 (exclusive).
    clip: vec4<u32>,
    opacity: f32,
    // Chroma filter: weights of luma columns 2c-1, 2c, 2c+1 in chroma column c (w unused),
    // set by where the video's chroma samples sit; `taps_y` the same for rows.
    taps_x: vec4<f32>,
    taps_y: vec4<f32>,
}

@group(0) @binding(0) var<uniform> params: BlendParams;
@group(0) @binding(2) var<storage, read_write> frame: array<u32>;
@group(1) @binding(0) var<storage, read> overlay: array<u32>;

// Premultiplied texel at output luma position (x, y), which the caller keeps inside `clip`.
fn overlay_texel(x: u32, y: u32) -> vec4<f32> {
    let ox = u32(i32(x) - params.overlay_origin.x);
    let oy = u32(i32(y) - params.overlay_origin.y);
    let t = overlay[oy * params.overlay_size.x + ox];
    return vec4<f32>(
        f32(t & 0xffu),
        f32((t >> 8u) & 0xffu),
        f32((t >> 16u) & 0xffu),
        f32(t >> 24u),
    );
}

fn over(premultiplied: f32, alpha_255: f32, under: u32) -> u32 {
    let a = alpha_255 / 255.0 * params.opacity;
    let value = premultiplied * params.opacity + f32(under) * (1.0 - a);
    return u32(clamp(floor(value + 0.5), 0.0, 255.0));
}

fn replace_byte(word: u32, i: u32, value: u32) -> u32 {
    let shift = i * 8u;
    return (word & ~(0xffu << shift)) | (value << shift);
}

// global_invocation_id: x = word index counted from the word holding clip.x, y = row from clip.y.
@compute @workgroup_size(16, 4, 1)
fn blend_luma(@builtin(global_invocation_id) gid: vec3<u32>) {
    let d = params.dst[0];
    let word_x = (params.clip.x >> 2u) + gid.x;
    let y = params.clip.y + gid.y;
    if (word_x * 4u >= params.clip.z || y >= params.clip.w) {
        return;
    }
    let index = d.offset_words + y * d.stride_words + word_x;
    var word = frame[index];
    for (var i = 0u; i < 4u; i = i + 1u) {
        let x = word_x * 4u + i;
        if (x >= params.clip.x && x < params.clip.z) {
            let t = overlay_texel(x, y);
            let under = (word >> (i * 8u)) & 0xffu;
            word = replace_byte(word, i, over(t.x, t.w, under));
        }
    }
    frame[index] = word;
}

// Each chroma sample stands for a point of the picture: left-sited (H.264's default) on the
// left luma column of its 2x2 block, between the two rows; centre-sited in the block's middle.
// The overlay's chroma there is the average over a two-pixel box centred on that point:
// luma columns 2c-1, 2c, 2c+1 weighted by `taps_x` (1/4, 1/2, 1/4 when left-sited; 0, 1/2,
// 1/2 when centred), rows likewise. Overlay pixels outside the overlay count as fully
// transparent; premultiplied chroma and alpha are filtered alike and blended with that
// filtered alpha. The overlay may start on an odd luma column or row.
@compute @workgroup_size(16, 4, 1)
fn blend_chroma(@builtin(global_invocation_id) gid: vec3<u32>) {
    let u_plane = params.dst[1];
    let v_plane = params.dst[2];
    // Samples that can reach the clip: a sample reaching back one column reaches one more.
    let chroma_x0 = params.clip.x >> 1u;
    let chroma_y0 = params.clip.y >> 1u;
    let chroma_x1 = min(
        select((params.clip.z + 1u) >> 1u, (params.clip.z >> 1u) + 1u, params.taps_x.x > 0.0),
        u_plane.width,
    );
    let chroma_y1 = min(
        select((params.clip.w + 1u) >> 1u, (params.clip.w >> 1u) + 1u, params.taps_y.x > 0.0),
        u_plane.height,
    );
    let word_x = (chroma_x0 >> 2u) + gid.x;
    let cy = chroma_y0 + gid.y;
    if (word_x * 4u >= chroma_x1 || cy >= chroma_y1) {
        return;
    }
    let u_index = u_plane.offset_words + cy * u_plane.stride_words + word_x;
    let v_index = v_plane.offset_words + cy * v_plane.stride_words + word_x;
    var u_word = frame[u_index];
    var v_word = frame[v_index];
    let size = vec2<i32>(params.overlay_size);
    for (var i = 0u; i < 4u; i = i + 1u) {
        let cx = word_x * 4u + i;
        if (cx >= chroma_x0 && cx < chroma_x1) {
            var filtered = vec4<f32>(0.0);
            for (var dy = 0; dy < 3; dy = dy + 1) {
                let oy = i32(cy * 2u) + dy - 1 - params.overlay_origin.y;
                if (params.taps_y[dy] == 0.0 || oy < 0 || oy >= size.y) {
                    continue;
                }
                for (var dx = 0; dx < 3; dx = dx + 1) {
                    let ox = i32(cx * 2u) + dx - 1 - params.overlay_origin.x;
                    if (params.taps_x[dx] > 0.0 && ox >= 0 && ox < size.x) {
                        let t = overlay[u32(oy) * params.overlay_size.x + u32(ox)];
                        let texel = vec4<f32>(
                            f32(t & 0xffu),
                            f32((t >> 8u) & 0xffu),
                            f32((t >> 16u) & 0xffu),
                            f32(t >> 24u),
                        );
                        filtered = filtered + params.taps_x[dx] * params.taps_y[dy] * texel;
                    }
                }
            }
            u_word = replace_byte(u_word, i, over(filtered.y, filtered.w, (u_word >> (i * 8u)) & 0xffu));
            v_word = replace_byte(v_word, i, over(filtered.z, filtered.w, (v_word >> (i * 8u)) & 0xffu));
        }
    }
    frame[u_index] = u_word;
    frame[v_index] = v_word;
}
