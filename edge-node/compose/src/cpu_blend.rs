//! The compositor's CPU path for identity jobs (a rendering at the source size) on adapters
//! that are themselves the CPU (lavapipe, llvmpipe).
//!
//! There a "GPU" identity job costs an upload of the source, a buffer copy into the job's
//! output, the overlay dispatches, a copy into the readback buffer, the map and an unpack: four
//! full-frame copies for a few small rectangles. Here it is one copy of the source and the
//! overlay rectangles blended in place, on the thread that hands the frame to its encoder.
//!
//! The pixel maths is the blend shader's (`shaders/blend_i420.wgsl`): premultiplied BT.601
//! Y'CbCr over the picture, chroma blended with the 2x2-averaged premultiplied overlay.

use edge_core::PlaneLayout;

use crate::overlay::YuvaImage;
use crate::plan::BlendPlan;

/// Opacity in fixed point: the per-pixel maths stays in integers (no float rounding calls in
/// the inner loop) and within 0.01 of a code value of the float ideal.
const OPACITY_ONE: u64 = 1 << 15;

/// `premultiplied * opacity + under * (1 - alpha * opacity)`, rounded and clamped, where
/// `premultiplied` and `alpha_255` are sums over `SAMPLES` overlay texels (their mean is
/// what blends) and `opacity` is in units of [`OPACITY_ONE`].
#[inline]
fn over<const SAMPLES: u64>(premultiplied: u32, alpha_255: u32, under: u8, opacity: u64) -> u8 {
    let whole = SAMPLES * 255 * OPACITY_ONE;
    let covered = u64::from(alpha_255) * opacity;
    let value = u64::from(premultiplied) * opacity * 255 + u64::from(under) * (whole - covered);
    ((value + whole / 2) / whole).min(255) as u8
}

/// Blends one planned overlay into tight I420 `frame` of size `layout`.
pub(crate) fn blend(frame: &mut [u8], layout: PlaneLayout, image: &YuvaImage, plan: &BlendPlan) {
    let [x0, y0, x1, y1] = plan.clip;
    let overlay_width = image.width() as usize;
    let texels = image.texels();
    // The clip lies inside both the frame and the overlay (the planner guarantees it), so
    // these offsets are never negative.
    let ox = (i64::from(x0) - i64::from(plan.origin_x)) as usize;
    let oy = (i64::from(y0) - i64::from(plan.origin_y)) as usize;
    let width = (x1 - x0) as usize;
    let opacity = (f64::from(plan.opacity.clamp(0.0, 1.0)) * OPACITY_ONE as f64).round() as u64;
    if opacity == 0 {
        return;
    }

    let luma_stride = layout.width as usize;
    for row in 0..(y1 - y0) as usize {
        let start = (y0 as usize + row) * luma_stride + x0 as usize;
        let out = &mut frame[start..start + width];
        let src_start = (oy + row) * overlay_width + ox;
        let src = &texels[src_start..src_start + width];
        for (pixel, &t) in out.iter_mut().zip(src) {
            let [y, _, _, a] = t.to_le_bytes();
            match (a, opacity) {
                (0, _) => {}
                // Opaque: the overlay's own value, exactly.
                (255, OPACITY_ONE) => *pixel = y,
                _ => *pixel = over::<1>(u32::from(y), u32::from(a), *pixel, opacity),
            }
        }
    }

    // Chroma: each sample covers a 2x2 luma block; overlay pixels outside the clip count as
    // transparent, exactly as in the shader.
    let chroma_stride = layout.chroma_width() as usize;
    let (u_offset, v_offset) = (layout.u_offset(), layout.v_offset());
    let texel = |x: u32, y: u32| -> [u32; 4] {
        if x < x0 || x >= x1 || y < y0 || y >= y1 {
            return [0; 4];
        }
        let ix = (i64::from(x) - i64::from(plan.origin_x)) as usize;
        let iy = (i64::from(y) - i64::from(plan.origin_y)) as usize;
        texels[iy * overlay_width + ix].to_le_bytes().map(u32::from)
    };
    for cy in y0 / 2..y1.div_ceil(2) {
        let row = cy as usize * chroma_stride;
        for cx in x0 / 2..x1.div_ceil(2) {
            let (lx, ly) = (cx * 2, cy * 2);
            let mut sum = [0u32; 4];
            for t in [
                texel(lx, ly),
                texel(lx + 1, ly),
                texel(lx, ly + 1),
                texel(lx + 1, ly + 1),
            ] {
                for (s, v) in sum.iter_mut().zip(t) {
                    *s += v;
                }
            }
            if sum[3] == 0 {
                continue;
            }
            let i = row + cx as usize;
            frame[u_offset + i] = over::<4>(sum[1], sum[3], frame[u_offset + i], opacity);
            frame[v_offset + i] = over::<4>(sum[2], sum[3], frame[v_offset + i], opacity);
        }
    }
}

/// One unit of [`Prepared`] fixed point: what a texel adds is in 1/256 code values, what it
/// keeps of the picture under it in 1/65536.
const KEEP_ONE: u32 = 1 << 16;

/// An overlay made ready to blend at one opacity: per pixel, what it adds and how much of the
/// picture under it stays, so blending is one multiply-add per byte (vectorised by the
/// compiler). Chroma is prepared per 2x2 alignment of the overlay's top-left, when first used.
pub(crate) struct Prepared {
    opacity: f32,
    width: usize,
    height: usize,
    luma: Weights,
    /// Indexed by `(origin_y & 1) * 2 + (origin_x & 1)`.
    chroma: [Option<ChromaWeights>; 4],
}

struct Weights {
    add: Vec<u32>,
    keep: Vec<u32>,
}

struct ChromaWeights {
    width: usize,
    add_u: Vec<u32>,
    add_v: Vec<u32>,
    keep: Vec<u32>,
}

/// `(add, keep)` for premultiplied value and alpha summed over `samples` texels.
fn weights(premultiplied: u32, alpha_255: u32, samples: u32, opacity: f64) -> (u32, u32) {
    let mean = |v: u32| f64::from(v) / f64::from(samples);
    let add = (mean(premultiplied) * opacity * 256.0).round() as u32;
    let keep = ((1.0 - mean(alpha_255) / 255.0 * opacity) * f64::from(KEEP_ONE)).round() as u32;
    (add, keep)
}

#[inline]
fn mix(add: u32, keep: u32, under: u8) -> u8 {
    ((add * 256 + u32::from(under) * keep + KEEP_ONE / 2) >> 16).min(255) as u8
}

impl Prepared {
    pub(crate) fn new(image: &YuvaImage, opacity: f32) -> Self {
        let op = f64::from(opacity.clamp(0.0, 1.0));
        let (add, keep) = image
            .texels()
            .iter()
            .map(|t| {
                let [y, _, _, a] = t.to_le_bytes();
                weights(u32::from(y), u32::from(a), 1, op)
            })
            .unzip();
        Self {
            opacity,
            width: image.width() as usize,
            height: image.height() as usize,
            luma: Weights { add, keep },
            chroma: [None, None, None, None],
        }
    }

    pub(crate) fn opacity(&self) -> f32 {
        self.opacity
    }

    /// Chroma weights when the overlay's top-left lies at luma parity (`px`, `py`): block `j`
    /// of a row covers overlay columns `2j - px` and `2j - px + 1`; columns outside count as
    /// transparent, as in the shader.
    fn chroma(&mut self, image: &YuvaImage, px: usize, py: usize) -> &ChromaWeights {
        let (w, h) = (self.width, self.height);
        let op = f64::from(self.opacity.clamp(0.0, 1.0));
        self.chroma[py * 2 + px].get_or_insert_with(|| {
            let (cw, ch) = ((w + px).div_ceil(2), (h + py).div_ceil(2));
            let texels = image.texels();
            let mut out = ChromaWeights {
                width: cw,
                add_u: Vec::with_capacity(cw * ch),
                add_v: Vec::with_capacity(cw * ch),
                keep: Vec::with_capacity(cw * ch),
            };
            for j in 0..ch {
                for i in 0..cw {
                    let mut sum = [0u32; 4];
                    for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                        let (x, y) = ((2 * i + dx).wrapping_sub(px), (2 * j + dy).wrapping_sub(py));
                        if x < w && y < h {
                            let t = texels[y * w + x].to_le_bytes();
                            for (s, v) in sum.iter_mut().zip(t) {
                                *s += u32::from(v);
                            }
                        }
                    }
                    let (add_u, keep) = weights(sum[1], sum[3], 4, op);
                    let (add_v, _) = weights(sum[2], sum[3], 4, op);
                    out.add_u.push(add_u);
                    out.add_v.push(add_v);
                    out.keep.push(keep);
                }
            }
            out
        })
    }
}

/// Blends like [`blend`], from weights prepared once per overlay and opacity. Overlays cut by
/// the frame's edge take the general path (their edge blocks differ).
pub(crate) fn blend_prepared(
    frame: &mut [u8],
    layout: PlaneLayout,
    image: &YuvaImage,
    prepared: &mut Prepared,
    plan: &BlendPlan,
) {
    let (w, h) = (prepared.width, prepared.height);
    let whole = [
        i64::from(plan.origin_x),
        i64::from(plan.origin_y),
        i64::from(plan.origin_x) + w as i64,
        i64::from(plan.origin_y) + h as i64,
    ];
    if plan.clip.map(i64::from) != whole || plan.opacity != prepared.opacity {
        blend(frame, layout, image, plan);
        return;
    }
    let (x0, y0) = (plan.origin_x as usize, plan.origin_y as usize);
    let stride = layout.width as usize;
    for row in 0..h {
        let out = &mut frame[(y0 + row) * stride + x0..][..w];
        let add = &prepared.luma.add[row * w..][..w];
        let keep = &prepared.luma.keep[row * w..][..w];
        for ((pixel, &add), &keep) in out.iter_mut().zip(add).zip(keep) {
            *pixel = mix(add, keep, *pixel);
        }
    }

    let chroma = prepared.chroma(image, x0 & 1, y0 & 1);
    let cw = chroma.width;
    let stride = layout.chroma_width() as usize;
    let (cx0, cy0) = (x0 / 2, y0 / 2);
    for (row, ((add_u, add_v), keep)) in chroma
        .add_u
        .chunks_exact(cw)
        .zip(chroma.add_v.chunks_exact(cw))
        .zip(chroma.keep.chunks_exact(cw))
        .enumerate()
    {
        let start = (cy0 + row) * stride + cx0;
        for (plane, add) in [(layout.u_offset(), add_u), (layout.v_offset(), add_v)] {
            let out = &mut frame[plane + start..][..cw];
            for ((pixel, &add), &keep) in out.iter_mut().zip(add).zip(keep) {
                *pixel = mix(add, keep, *pixel);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::clip_rect;
    use crate::OverlayId;

    /// The ideal: straight-alpha "over" in exact arithmetic on each plane, from the overlay's
    /// premultiplied texels, chroma from the mean of the (clipped) 2x2 block.
    fn ideal(frame: &[u8], layout: PlaneLayout, image: &YuvaImage, plan: &BlendPlan) -> Vec<u8> {
        let mut out = frame.to_vec();
        let [x0, y0, x1, y1] = plan.clip;
        let op = f64::from(plan.opacity);
        let texel = |x: u32, y: u32| -> [f64; 4] {
            if x < x0 || x >= x1 || y < y0 || y >= y1 {
                return [0.0; 4];
            }
            let t = image.texel(
                (i64::from(x) - i64::from(plan.origin_x)) as u32,
                (i64::from(y) - i64::from(plan.origin_y)) as u32,
            );
            t.map(f64::from)
        };
        let mix = |premul: f64, alpha: f64, under: u8| -> u8 {
            (premul * op + f64::from(under) * (1.0 - alpha / 255.0 * op))
                .round()
                .clamp(0.0, 255.0) as u8
        };
        for y in y0..y1 {
            for x in x0..x1 {
                let i = (y * layout.width + x) as usize;
                let t = texel(x, y);
                out[i] = mix(t[0], t[3], frame[i]);
            }
        }
        let cw = layout.chroma_width();
        for cy in y0 / 2..y1.div_ceil(2) {
            for cx in x0 / 2..x1.div_ceil(2) {
                let mut sum = [0.0; 4];
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let t = texel(cx * 2 + dx, cy * 2 + dy);
                    for c in 0..4 {
                        sum[c] += t[c] / 4.0;
                    }
                }
                let i = (cy * cw + cx) as usize;
                let (u, v) = (layout.u_offset() + i, layout.v_offset() + i);
                out[u] = mix(sum[1], sum[3], frame[u]);
                out[v] = mix(sum[2], sum[3], frame[v]);
            }
        }
        out
    }

    fn overlay(width: u32, height: u32) -> YuvaImage {
        let rgba: Vec<u8> = (0..width * height)
            .flat_map(|i| {
                let i = i as u8;
                [
                    i.wrapping_mul(37),
                    200u8.wrapping_sub(i),
                    i ^ 0x5a,
                    i.wrapping_mul(11),
                ]
            })
            .collect();
        YuvaImage::from_rgba(width, height, &rgba).unwrap()
    }

    #[test]
    fn matches_the_ideal_blend_at_every_alignment_and_clip() {
        let layout = PlaneLayout::new(38, 22).unwrap();
        let source: Vec<u8> = (0..layout.total_len())
            .map(|i| (i * 31 % 253) as u8)
            .collect();
        let image = overlay(9, 7);
        let mut prepared: Option<Prepared> = None;
        for (x, y) in [
            (0, 0),
            (1, 1),
            (3, 2),
            (2, 3),
            (29, 15),
            (-4, -3),
            (33, 18),
            (30, -5),
            (-8, 17),
        ] {
            for opacity in [1.0f32, 0.6, 0.05] {
                let clip = clip_rect(layout, x, y, image.width(), image.height()).unwrap();
                let plan = BlendPlan {
                    overlay: OverlayId(0),
                    overlay_width: image.width(),
                    overlay_height: image.height(),
                    origin_x: x,
                    origin_y: y,
                    clip,
                    opacity,
                };
                let want = ideal(&source, layout, &image, &plan);
                let mut general = source.clone();
                blend(&mut general, layout, &image, &plan);
                // The prepared path, reused across placements as the compositor reuses it.
                let prepared = prepared.get_or_insert_with(|| Prepared::new(&image, opacity));
                if prepared.opacity() != opacity {
                    *prepared = Prepared::new(&image, opacity);
                }
                let mut fast = source.clone();
                blend_prepared(&mut fast, layout, &image, prepared, &plan);
                for (path, frame) in [("general", &general), ("prepared", &fast)] {
                    for (i, (got, want)) in frame.iter().zip(&want).enumerate() {
                        assert!(
                            got.abs_diff(*want) <= 1,
                            "{path}: byte {i} at ({x},{y}) opacity {opacity}: {got} vs ideal {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn leaves_every_byte_outside_the_overlay_untouched() {
        let layout = PlaneLayout::new(40, 20).unwrap();
        let source: Vec<u8> = (0..layout.total_len()).map(|i| (i % 199) as u8).collect();
        let image = overlay(6, 6);
        let clip = clip_rect(layout, 10, 4, 6, 6).unwrap();
        let plan = BlendPlan {
            overlay: OverlayId(0),
            overlay_width: 6,
            overlay_height: 6,
            origin_x: 10,
            origin_y: 4,
            clip,
            opacity: 1.0,
        };
        let mut general = source.clone();
        blend(&mut general, layout, &image, &plan);
        let mut fast = source.clone();
        blend_prepared(
            &mut fast,
            layout,
            &image,
            &mut Prepared::new(&image, 1.0),
            &plan,
        );
        for frame in [general, fast] {
            for y in 0..layout.height {
                for x in 0..layout.width {
                    if !(10..16).contains(&x) || !(4..10).contains(&y) {
                        let i = (y * layout.width + x) as usize;
                        assert_eq!(frame[i], source[i], "luma ({x},{y})");
                    }
                }
            }
            let cw = layout.chroma_width();
            for cy in 0..layout.chroma_height() {
                for cx in 0..cw {
                    if !(5..8).contains(&cx) || !(2..5).contains(&cy) {
                        let i = (cy * cw + cx) as usize;
                        assert_eq!(frame[layout.u_offset() + i], source[layout.u_offset() + i]);
                        assert_eq!(frame[layout.v_offset() + i], source[layout.v_offset() + i]);
                    }
                }
            }
        }
    }
}
