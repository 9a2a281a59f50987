// Blend one premultiplied YUVA overlay onto an I420 frame held in a storage buffer of u32
// words (plane rows padded to whole words; see scale_i420.wgsl).
//
// The overlay was converted once on the CPU to BT.601 limited-range Y'CbCr, premultiplied by
// its alpha, one u32 per pixel: byte 0 = Y*a, byte 1 = Cb*a, byte 2 = Cr*a, byte 3 = a.
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

// Each chroma sample covers a 2x2 block of luma samples. The overlay may start on an odd
// luma column or row, so its pixels do not line up with that grid: average the premultiplied
// chroma and the alpha of the overlay pixels inside the block (pixels outside the clipped
// rectangle count as fully transparent) and blend with that 2x2-averaged alpha.
@compute @workgroup_size(16, 4, 1)
fn blend_chroma(@builtin(global_invocation_id) gid: vec3<u32>) {
    let u_plane = params.dst[1];
    let v_plane = params.dst[2];
    let chroma_x0 = params.clip.x >> 1u;
    let chroma_x1 = (params.clip.z + 1u) >> 1u;
    let word_x = (chroma_x0 >> 2u) + gid.x;
    let cy = (params.clip.y >> 1u) + gid.y;
    if (word_x * 4u >= chroma_x1 || cy >= (params.clip.w + 1u) >> 1u) {
        return;
    }
    let u_index = u_plane.offset_words + cy * u_plane.stride_words + word_x;
    let v_index = v_plane.offset_words + cy * v_plane.stride_words + word_x;
    var u_word = frame[u_index];
    var v_word = frame[v_index];
    for (var i = 0u; i < 4u; i = i + 1u) {
        let cx = word_x * 4u + i;
        if (cx >= chroma_x0 && cx < chroma_x1) {
            var sum = vec4<f32>(0.0);
            for (var dy = 0u; dy < 2u; dy = dy + 1u) {
                for (var dx = 0u; dx < 2u; dx = dx + 1u) {
                    let x = cx * 2u + dx;
                    let y = cy * 2u + dy;
                    if (x >= params.clip.x && x < params.clip.z && y >= params.clip.y && y < params.clip.w) {
                        sum = sum + overlay_texel(x, y);
                    }
                }
            }
            let avg = sum * 0.25;
            u_word = replace_byte(u_word, i, over(avg.y, avg.w, (u_word >> (i * 8u)) & 0xffu));
            v_word = replace_byte(v_word, i, over(avg.z, avg.w, (v_word >> (i * 8u)) & 0xffu));
        }
    }
    frame[u_index] = u_word;
    frame[v_index] = v_word;
}
