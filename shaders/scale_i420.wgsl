// Crop + bilinear scale of one I420 frame into another, plane by plane.
//
// Both frames live in storage buffers of u32 words. Each plane starts on a word boundary and
// its rows are padded to a whole number of words (`stride_words`), so one invocation owns
// exactly one output word (4 horizontally adjacent samples of one row) and no two
// invocations ever write the same word: WGSL has no byte stores.
//
// The CPU port of this math is `edge_compose::cpu_reference::scale_plane`; keep them equal.

struct Plane {
    offset_words: u32,
    stride_words: u32,
    width: u32,
    height: u32,
}

struct ScaleParams {
    src: array<Plane, 3>,
    dst: array<Plane, 3>,
    // Region of interest per plane in that plane's samples: x, y, w, h. Chroma is luma / 2.
    roi: array<vec4<f32>, 3>,
}

@group(0) @binding(0) var<uniform> params: ScaleParams;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

fn load_sample(p: Plane, x: u32, y: u32) -> f32 {
    let word = src[p.offset_words + y * p.stride_words + (x >> 2u)];
    return f32((word >> ((x & 3u) * 8u)) & 0xffu);
}

// Bilinear sample at the centre of output sample (ox, oy), clamp-to-edge addressing on the
// whole source plane (neighbours just outside the ROI are real picture, not padding).
fn sample_bilinear(p: Plane, roi: vec4<f32>, dst_size: vec2<f32>, ox: u32, oy: u32) -> u32 {
    let step = roi.zw / dst_size;
    let pos = roi.xy + (vec2<f32>(f32(ox), f32(oy)) + vec2<f32>(0.5)) * step - vec2<f32>(0.5);
    let max_pos = vec2<f32>(f32(p.width - 1u), f32(p.height - 1u));
    let clamped = clamp(pos, vec2<f32>(0.0), max_pos);
    let base = floor(clamped);
    let frac = clamped - base;
    let x0 = u32(base.x);
    let y0 = u32(base.y);
    let x1 = min(x0 + 1u, p.width - 1u);
    let y1 = min(y0 + 1u, p.height - 1u);
    let s00 = load_sample(p, x0, y0);
    let s10 = load_sample(p, x1, y0);
    let s01 = load_sample(p, x0, y1);
    let s11 = load_sample(p, x1, y1);
    let top = s00 + (s10 - s00) * frac.x;
    let bottom = s01 + (s11 - s01) * frac.x;
    let value = top + (bottom - top) * frac.y;
    return u32(clamp(floor(value + 0.5), 0.0, 255.0));
}

// global_invocation_id: x = output word in the row, y = row, z = plane (0 Y, 1 U, 2 V).
@compute @workgroup_size(16, 4, 1)
fn scale_planes(@builtin(global_invocation_id) gid: vec3<u32>) {
    let plane = gid.z;
    let d = params.dst[plane];
    if (gid.x >= d.stride_words || gid.y >= d.height) {
        return;
    }
    let s = params.src[plane];
    let roi = params.roi[plane];
    let dst_size = vec2<f32>(f32(d.width), f32(d.height));
    var packed = 0u;
    for (var i = 0u; i < 4u; i = i + 1u) {
        let x = gid.x * 4u + i;
        if (x < d.width) {
            packed = packed | (sample_bilinear(s, roi, dst_size, x, gid.y) << (i * 8u));
        }
    }
    dst[d.offset_words + gid.y * d.stride_words + gid.x] = packed;
}
