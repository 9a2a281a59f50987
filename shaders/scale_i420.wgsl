// Crop + bilinear scale of one I420 frame into another, plane by plane.
//
// The source planes are R8 textures: the sampler does the bilinear filtering (on lavapipe its
// JIT-compiled SIMD sampler measured 2-3x faster than four gathers from a storage buffer per
// sample). GPUs filter with fixed-point weights (8 fractional bits on most), so results may
// differ from the f32 CPU reference by one code value. The output is a storage buffer of u32 words in which each plane starts on a word
// boundary and each row is padded to whole words (`stride_words`), so one invocation owns
// exactly one output word (4 horizontally adjacent samples of one row) and no two invocations
// ever write the same word: WGSL has no byte stores.
//
// The CPU port of this math is `edge_compose::cpu_reference::scale_i420`; keep them equal.

struct Plane {
    offset_words: u32,
    stride_words: u32,
    width: u32,
    height: u32,
}

struct ScaleParams {
    dst: array<Plane, 3>,
    // Region of interest per plane in that plane's samples: x, y, w, h. Chroma is luma / 2.
    roi: array<vec4<f32>, 3>,
}

@group(0) @binding(0) var<uniform> params: ScaleParams;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
@group(1) @binding(0) var source_y: texture_2d<f32>;
@group(1) @binding(1) var source_u: texture_2d<f32>;
@group(1) @binding(2) var source_v: texture_2d<f32>;
// Linear filtering, clamp-to-edge: neighbours just outside the ROI are real picture.
@group(1) @binding(3) var bilinear: sampler;

// Output word (word_x, y) of `plane`: 4 horizontally adjacent samples, each sampled at the
// centre of its output pixel mapped into the ROI.
fn scale_word(source: texture_2d<f32>, plane: u32, word_x: u32, y: u32) -> u32 {
    let d = params.dst[plane];
    let roi = params.roi[plane];
    let source_size = vec2<f32>(textureDimensions(source));
    let step = roi.zw / vec2<f32>(f32(d.width), f32(d.height));
    let v = (roi.y + (f32(y) + 0.5) * step.y) / source_size.y;
    var packed = 0u;
    for (var i = 0u; i < 4u; i = i + 1u) {
        let x = word_x * 4u + i;
        if (x < d.width) {
            let u = (roi.x + (f32(x) + 0.5) * step.x) / source_size.x;
            let value = textureSampleLevel(source, bilinear, vec2<f32>(u, v), 0.0).r * 255.0;
            packed = packed | (u32(clamp(floor(value + 0.5), 0.0, 255.0)) << (i * 8u));
        }
    }
    return packed;
}

// global_invocation_id: x = output word in the row, y = row.
@compute @workgroup_size(16, 4, 1)
fn scale_luma(@builtin(global_invocation_id) gid: vec3<u32>) {
    let d = params.dst[0];
    if (gid.x >= d.stride_words || gid.y >= d.height) {
        return;
    }
    dst[d.offset_words + gid.y * d.stride_words + gid.x] = scale_word(source_y, 0u, gid.x, gid.y);
}

// As scale_luma over the chroma planes: one word of U and the same word of V.
@compute @workgroup_size(16, 4, 1)
fn scale_chroma(@builtin(global_invocation_id) gid: vec3<u32>) {
    let u_plane = params.dst[1];
    let v_plane = params.dst[2];
    if (gid.x >= u_plane.stride_words || gid.y >= u_plane.height) {
        return;
    }
    dst[u_plane.offset_words + gid.y * u_plane.stride_words + gid.x] =
        scale_word(source_u, 1u, gid.x, gid.y);
    dst[v_plane.offset_words + gid.y * v_plane.stride_words + gid.x] =
        scale_word(source_v, 2u, gid.x, gid.y);
}
