// Crop + scale of one I420 frame into another, plane by plane, without aliasing.
//
// Filter: each output sample is the average of the source picture (pixels as little squares)
// over a footprint centred on the output pixel's centre mapped into the ROI, `max(step, 1)`
// source pixels wide along each axis (`step` = ROI size / output size along that axis):
// - reducing (step >= 1): the footprint is exactly the output pixel's own rectangle in the
//   source, so the result is the exact area average, with fractional weights for the source
//   pixels cut by its edges. Every source pixel counts, at any ratio, integer or not: nothing
//   aliases for lack of a tap (one bilinear tap at 3:1 read 4 of the 9 pixels);
// - enlarging (step < 1, a zoom into a region smaller than the output): a one-pixel box
//   centred on the sample, which is exactly bilinear interpolation between pixel centres.
// The two agree at step 1. The axes are independent (a reduction along x can go with an
// enlargement along y). Picture just outside the ROI is real picture. A footprint is clipped
// to the plane and the average taken over what is left: the same as clamp-to-edge, because
// only an enlargement's footprint crosses the plane's edge, and then only within the edge
// pixel.
//
// One invocation computes one output word: 4 horizontally adjacent samples of one row. The
// filter is separable and the 4 samples share their rows, so the invocation walks the source
// texels under the 4 footprints once: it sums each texel's 4 columns down the footprint's
// rows (`down_rows`: interior rows weigh 1, the first and last their covered fraction), then
// adds each column to each of the 4 samples by its overlap with that sample's footprint
// (`spread`). Every source texel under the word is fetched once, and the word is written
// once. Enlargements, which read at most 2 texels of 2 rows, take the same steps unrolled.
//
// Chosen by measurement on lavapipe (the CPU Vulkan this node runs on without a GPU), CPU
// time per 4K -> 720p frame: this one about 16 ms (the single bilinear tap it replaces: 10);
// a two-pass separable version (vertical pass into an intermediate texture, then
// horizontal) 36 ms, because lavapipe's cost goes with invocations, loop iterations and
// texture stores more than with fetches; 16 samples per fetch (Rgba32Uint) 28 ms, as each
// fetch then spreads 16 columns; pairs of rows through the bilinear sampler 25 ms. R8 planes
// (one sample per fetch, or 2x2 per bilinear tap) took 3-4x the single tap's wall time.
// Storage buffers are not read at all: lavapipe loads them lane by lane, where it fetches
// texels as SIMD gathers.
//
// Source planes are Rgba8Unorm textures holding 4 consecutive samples of a row per texel, so
// a plane with rows of `stride_words` words is that many texels wide. The output is a storage
// buffer of u32 words in which each plane starts on a word boundary and each row is padded to
// whole words (`stride_words`): one invocation owns exactly one output word and no two
// invocations ever write the same word, as WGSL has no byte stores.
//
// The ideal result (exact area average in f64) is `edge_compose::cpu_reference::scale_i420`,
// written independently of this shader; the golden tests compare the two.

struct Plane {
    offset_words: u32,
    stride_words: u32,
    width: u32,
    height: u32,
}

struct ScaleParams {
    // The source frame's planes (only width and height are read: the planes are textures).
    src: array<Plane, 3>,
    // The output frame's planes in `dst`.
    dst: array<Plane, 3>,
    // Region of interest per plane in that plane's samples: x, y, w, h. Chroma is luma / 2.
    roi: array<vec4<f32>, 3>,
}

// The module is compiled twice: with `enlarging` for scales that enlarge along both axes
// (ROI no larger than the output), without for all others. An `if` on a value that is the
// same for the whole dispatch still costs lavapipe masked execution of the other branch's
// loop: 20% of a 4K reduction.
override enlarging: bool = false;

@group(0) @binding(0) var<uniform> params: ScaleParams;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
@group(1) @binding(0) var source_y: texture_2d<f32>;
@group(1) @binding(1) var source_u: texture_2d<f32>;
@group(1) @binding(2) var source_v: texture_2d<f32>;

// Texel `texel`'s 4 columns summed down rows `first_row..=last_row` of `source`: the first and
// last row weighted by the length of them under the footprint, the rows between by 1.
fn down_rows(
    source: texture_2d<f32>,
    texel: i32,
    first_row: i32,
    last_row: i32,
    first_weight: f32,
    last_weight: f32,
) -> vec4<f32> {
    var down = first_weight * textureLoad(source, vec2<i32>(texel, first_row), 0);
    for (var row = first_row + 1; row < last_row; row = row + 1) {
        down = down + textureLoad(source, vec2<i32>(texel, row), 0);
    }
    if (last_row > first_row) {
        down = down + last_weight * textureLoad(source, vec2<i32>(texel, last_row), 0);
    }
    return down;
}

// The 4 column sums `down` of texel `texel` (columns 4 * texel + j) spread over the 4 samples,
// each column by the length [c, c + 1) shares with the sample's footprint [left, right).
// Columns past the plane's end (row padding) share nothing: the footprints are clipped.
fn spread(down: vec4<f32>, texel: i32, left: vec4<f32>, right: vec4<f32>) -> vec4<f32> {
    var sum = vec4<f32>(0.0);
    for (var j = 0; j < 4; j = j + 1) {
        let c = vec4<f32>(f32(texel * 4 + j));
        sum = sum + max(min(c + 1.0, right) - max(c, left), vec4<f32>(0.0)) * down[j];
    }
    return sum;
}

// Output word `gid.x` (4 samples) of row `gid.y` of `plane`.
fn scale_word(source: texture_2d<f32>, plane: u32, gid: vec3<u32>) -> u32 {
    let s = params.src[plane];
    let d = params.dst[plane];
    let roi = params.roi[plane];
    let size = vec2<f32>(f32(s.width), f32(s.height));
    let step = roi.zw / vec2<f32>(f32(d.width), f32(d.height));
    let half = 0.5 * max(step, vec2<f32>(1.0));

    // The row's footprint [top, bottom), shared by the 4 samples, clipped to the plane.
    let centre_y = roi.y + (f32(gid.y) + 0.5) * step.y;
    let top = max(centre_y - half.y, 0.0);
    let bottom = min(centre_y + half.y, size.y);
    let first_row = i32(floor(top));
    let last_row = i32(ceil(bottom)) - 1;
    let first_weight = min(f32(first_row + 1), bottom) - top;
    let last_weight = bottom - max(f32(last_row), top);

    // The 4 samples' footprints along the row, [left, right) each, clipped to the plane.
    // Samples past the row's end (in the last word of a row whose width is not a multiple of
    // 4) are computed on the way but not written.
    let first_x = gid.x * 4u;
    let count = min(d.width - first_x, 4u);
    let xs = vec4<f32>(f32(first_x)) + vec4<f32>(0.0, 1.0, 2.0, 3.0);
    let centre_x = roi.x + (xs + 0.5) * step.x;
    let left = clamp(centre_x - half.x, vec4<f32>(0.0), vec4<f32>(size.x));
    let right = clamp(centre_x + half.x, vec4<f32>(0.0), vec4<f32>(size.x));
    let first_texel = i32(floor(left.x)) / 4;
    let end_column = i32(ceil(right[count - 1u]));

    var sum = vec4<f32>(0.0);
    if (enlarging) {
        // step <= 1 along both axes: the 4 footprints span at most 3 * step + 1 <= 4
        // columns, so 5 whole columns, 2 texels (and 2 rows). Unrolled: lavapipe's loops cost
        // more than the fetches here. (Where f32 rounding of step = 1 stretches the span a
        // hair past 4 columns, a sixth column could be cut by it: its weight would be 1e-7.)
        sum = spread(
            down_rows(source, first_texel, first_row, last_row, first_weight, last_weight),
            first_texel,
            left,
            right,
        );
        let second_texel = (end_column - 1) / 4;
        if (second_texel > first_texel) {
            sum = sum + spread(
                down_rows(source, second_texel, first_row, last_row, first_weight, last_weight),
                second_texel,
                left,
                right,
            );
        }
    } else {
        for (var texel = first_texel; texel * 4 < end_column; texel = texel + 1) {
            sum = sum + spread(
                down_rows(source, texel, first_row, last_row, first_weight, last_weight),
                texel,
                left,
                right,
            );
        }
    }
    // The bytes of the samples past the row's end stay 0.
    let mask = 0xffffffffu >> ((4u - count) * 8u);
    return pack4x8unorm(sum / ((right - left) * (bottom - top))) & mask;
}

// global_invocation_id: x = output word in the row, y = row.
@compute @workgroup_size(16, 4, 1)
fn scale_luma(@builtin(global_invocation_id) gid: vec3<u32>) {
    let d = params.dst[0];
    if (gid.x >= d.stride_words || gid.y >= d.height) {
        return;
    }
    dst[d.offset_words + gid.y * d.stride_words + gid.x] = scale_word(source_y, 0u, gid);
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
        scale_word(source_u, 1u, gid);
    dst[v_plane.offset_words + gid.y * v_plane.stride_words + gid.x] =
        scale_word(source_v, 2u, gid);
}
