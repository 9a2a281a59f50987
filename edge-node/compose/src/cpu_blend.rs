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
        for (x, y) in [
            (0, 0),
            (1, 1),
            (3, 2),
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
                let mut frame = source.clone();
                blend(&mut frame, layout, &image, &plan);
                let want = ideal(&source, layout, &image, &plan);
                for (i, (got, want)) in frame.iter().zip(&want).enumerate() {
                    assert!(
                        got.abs_diff(*want) <= 1,
                        "byte {i} at ({x},{y}) opacity {opacity}: {got} vs ideal {want}"
                    );
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
        let mut frame = source.clone();
        blend(&mut frame, layout, &image, &plan);
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
