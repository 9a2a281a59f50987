//! The compositor's CPU path for identity jobs (a rendering at the source size) on adapters
//! that are themselves the CPU (lavapipe, llvmpipe).
//!
//! There a "GPU" identity job costs an upload of the source, a buffer copy into the job's
//! output, the overlay dispatches, a copy into the readback buffer, the map and an unpack: four
//! full-frame copies for a few small rectangles. Here it is one copy of the source and the
//! overlay rectangles blended in place, on the thread that hands the frame to its encoder.
//!
//! The pixel maths is the blend shader's (`shaders/blend_i420.wgsl`): premultiplied Y'CbCr
//! over the picture, chroma blended with the premultiplied overlay filtered at the chroma
//! samples' site (`overlay::chroma_taps`).

use edge_core::{ChromaSite, PlaneLayout};

use crate::overlay::{chroma_span, chroma_taps, YuvaImage};
use crate::plan::BlendPlan;

/// One unit of [`Prepared`] fixed point: what a texel adds is in 1/256 code values, and what
/// it keeps of the picture under it in 1/256.
const KEEP_ONE: u16 = 1 << 8;

/// An overlay made ready to blend at one opacity: per pixel, what it adds and how much of the
/// picture under it stays, so blending is one 16-bit multiply-add per byte, which the
/// compiler vectorises with the baseline x86-64 instructions (eight or sixteen bytes at a time;
/// 32-bit lanes would need a multiply SSE2 lacks, and twice the memory). Chroma is prepared
/// per 2x2 alignment of the overlay's top-left, when first used.
pub(crate) struct Prepared {
    opacity: f32,
    width: usize,
    height: usize,
    luma: Weights,
    /// Indexed by `(origin_y & 1) * 2 + (origin_x & 1)`.
    chroma: [Option<ChromaWeights>; 4],
}

struct Weights {
    add: Vec<u16>,
    keep: Vec<u16>,
}

struct ChromaWeights {
    width: usize,
    add_u: Vec<u16>,
    add_v: Vec<u16>,
    keep: Vec<u16>,
}

/// `(add, keep)` for premultiplied value and alpha summed over `samples` texels: at most
/// 255 * 256 and 256, so that `under * keep` never leaves 16 bits.
fn weights(premultiplied: u32, alpha_255: u32, samples: u32, opacity: f64) -> (u16, u16) {
    let mean = |v: u32| f64::from(v) / f64::from(samples);
    let add = (mean(premultiplied) * opacity * 256.0).round().min(65280.0) as u16;
    let keep = ((1.0 - mean(alpha_255) / 255.0 * opacity) * f64::from(KEEP_ONE))
        .round()
        .clamp(0.0, f64::from(KEEP_ONE)) as u16;
    (add, keep)
}

/// `premultiplied * opacity + under * (1 - alpha * opacity)`, rounded, from the weights. The
/// sum saturates: it can pass 16 bits only when the result is white.
#[inline]
fn mix(add: u16, keep: u16, under: u8) -> u8 {
    (add.saturating_add(u16::from(under) * keep)
        .saturating_add(KEEP_ONE / 2)
        >> 8) as u8
}

impl Prepared {
    fn new(image: &YuvaImage, opacity: f32) -> Self {
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

    /// Chroma weights when the overlay's top-left lies at luma parity (`px`, `py`): sample `j`
    /// of a row stands for overlay columns `2j - px - 1 ..= 2j - px + 1`, weighted by `taps`
    /// (in quarters); columns outside the overlay count as transparent, as in the shader.
    /// The weights belong to one site: the compositor drops them with the overlay's other
    /// copies when the source's colour description changes.
    fn chroma(
        &mut self,
        image: &YuvaImage,
        px: usize,
        py: usize,
        taps: [[u32; 3]; 2],
    ) -> &ChromaWeights {
        let (w, h) = (self.width, self.height);
        let op = f64::from(self.opacity.clamp(0.0, 1.0));
        self.chroma[py * 2 + px].get_or_insert_with(|| {
            // One more than the blocks: a sample past the last reaches back into it.
            let (cw, ch) = ((w + px) / 2 + 1, (h + py) / 2 + 1);
            let texels = image.texels();
            let mut out = ChromaWeights {
                width: cw,
                add_u: Vec::with_capacity(cw * ch),
                add_v: Vec::with_capacity(cw * ch),
                keep: Vec::with_capacity(cw * ch),
            };
            let [taps_x, taps_y] = taps;
            for j in 0..ch {
                for i in 0..cw {
                    let mut sum = [0u32; 4];
                    for (dy, &ty) in taps_y.iter().enumerate() {
                        let y = (2 * j + dy).wrapping_sub(py + 1);
                        for (dx, &tx) in taps_x.iter().enumerate() {
                            let x = (2 * i + dx).wrapping_sub(px + 1);
                            if tx * ty > 0 && x < w && y < h {
                                let t = texels[y * w + x].to_le_bytes();
                                for (s, v) in sum.iter_mut().zip(t) {
                                    *s += tx * ty * u32::from(v);
                                }
                            }
                        }
                    }
                    // The taps are quarters along each axis: 16 parts in all.
                    let (add_u, keep) = weights(sum[1], sum[3], 16, op);
                    let (add_v, _) = weights(sum[2], sum[3], 16, op);
                    out.add_u.push(add_u);
                    out.add_v.push(add_v);
                    out.keep.push(keep);
                }
            }
            out
        })
    }
}

/// Blends one planned overlay into tight I420 `frame` of size `layout`, from the weights in
/// `cache` (kept with the overlay; made on first use and whenever the opacity changes).
///
/// Only the visible part (`plan.clip`) is touched, and the chroma samples that reach it. A
/// clipped overlay needs no weights of its own: chroma samples inside the frame filter the
/// overlay's own texels, off-frame ones included, as the shader does.
pub(crate) fn blend(
    frame: &mut [u8],
    layout: PlaneLayout,
    image: &YuvaImage,
    cache: &mut Option<Prepared>,
    plan: &BlendPlan,
    site: ChromaSite,
) {
    let prepared = match cache {
        Some(p) if p.opacity == plan.opacity => p,
        _ => cache.insert(Prepared::new(image, plan.opacity)),
    };
    let [x0, y0, x1, y1] = plan.clip.map(|v| v as usize);
    let (origin_x, origin_y) = (i64::from(plan.origin_x), i64::from(plan.origin_y));
    // The clip lies inside both the frame and the overlay (the planner guarantees it), so
    // these offsets are never negative.
    let (ox, oy) = (
        (x0 as i64 - origin_x) as usize,
        (y0 as i64 - origin_y) as usize,
    );
    let (w, visible) = (prepared.width, x1 - x0);
    let stride = layout.width as usize;
    for row in 0..y1 - y0 {
        let out = &mut frame[(y0 + row) * stride + x0..][..visible];
        let at = (oy + row) * w + ox;
        let add = &prepared.luma.add[at..][..visible];
        let keep = &prepared.luma.keep[at..][..visible];
        for ((pixel, &add), &keep) in out.iter_mut().zip(add).zip(keep) {
            *pixel = mix(add, keep, *pixel);
        }
    }

    // Block (0, 0) of the prepared chroma sits at chroma (origin / 2), rounded down.
    let (px, py) = (
        origin_x.rem_euclid(2) as usize,
        origin_y.rem_euclid(2) as usize,
    );
    let (bx, by) = (origin_x.div_euclid(2), origin_y.div_euclid(2));
    let taps = chroma_taps(site);
    let chroma = prepared.chroma(image, px, py, taps);
    let [x0, y0, x1, y1] = plan.clip;
    let (cx0, cx1) = chroma_span(x0, x1, taps[0][0], layout.chroma_width());
    let (cy0, cy1) = chroma_span(y0, y1, taps[1][0], layout.chroma_height());
    let [cx0, cx1, cy0, cy1] = [cx0, cx1, cy0, cy1].map(|v| v as usize);
    let (i0, visible) = ((cx0 as i64 - bx) as usize, cx1 - cx0);
    let stride = layout.chroma_width() as usize;
    for cy in cy0..cy1 {
        let at = (cy as i64 - by) as usize * chroma.width + i0;
        let keep = &chroma.keep[at..][..visible];
        let start = cy * stride + cx0;
        for (plane, add) in [
            (layout.u_offset(), &chroma.add_u),
            (layout.v_offset(), &chroma.add_v),
        ] {
            let out = &mut frame[plane + start..][..visible];
            for ((pixel, &add), &keep) in out.iter_mut().zip(&add[at..][..visible]).zip(keep) {
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
    /// premultiplied texels; chroma from the overlay filtered over the two-pixel box centred
    /// on each chroma sample's site (written out here from the sample positions).
    fn ideal(
        frame: &[u8],
        layout: PlaneLayout,
        image: &YuvaImage,
        plan: &BlendPlan,
        site: ChromaSite,
    ) -> Vec<u8> {
        let mut out = frame.to_vec();
        let [x0, y0, x1, y1] = plan.clip;
        let op = f64::from(plan.opacity);
        // Texel at frame luma (x, y), transparent outside the overlay.
        let texel = |x: i64, y: i64| -> [f64; 4] {
            let (ox, oy) = (x - i64::from(plan.origin_x), y - i64::from(plan.origin_y));
            if ox < 0 || oy < 0 || ox >= i64::from(image.width()) || oy >= i64::from(image.height())
            {
                return [0.0; 4];
            }
            image.texel(ox as u32, oy as u32).map(f64::from)
        };
        let mix = |premul: f64, alpha: f64, under: u8| -> u8 {
            (premul * op + f64::from(under) * (1.0 - alpha / 255.0 * op))
                .round()
                .clamp(0.0, 255.0) as u8
        };
        for y in y0..y1 {
            for x in x0..x1 {
                let i = (y * layout.width + x) as usize;
                let t = texel(i64::from(x), i64::from(y));
                out[i] = mix(t[0], t[3], frame[i]);
            }
        }
        // Chroma sample (cx, cy) sits at luma (2cx + sx, 2cy + sy), pixels as unit squares;
        // its box is 2 pixels wide around that point.
        let (sx, sy) = site.offset_in_block();
        let overlap = |p: i64, centre: f64| {
            let (a, b) = (p as f64, p as f64 + 1.0);
            (b.min(centre + 1.0) - a.max(centre - 1.0)).max(0.0) / 2.0
        };
        let (cw, ch) = (layout.chroma_width(), layout.chroma_height());
        for cy in 0..ch {
            for cx in 0..cw {
                let (px, py) = (2.0 * f64::from(cx) + sx, 2.0 * f64::from(cy) + sy);
                let mut sum = [0.0; 4];
                for y in (py.floor() as i64 - 1)..=(py.ceil() as i64) {
                    for x in (px.floor() as i64 - 1)..=(px.ceil() as i64) {
                        let w = overlap(x, px) * overlap(y, py);
                        let t = texel(x, y);
                        for c in 0..4 {
                            sum[c] += w * t[c];
                        }
                    }
                }
                if sum[3] == 0.0 {
                    continue;
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
        YuvaImage::from_rgba(width, height, &rgba, edge_core::VideoColour::default()).unwrap()
    }

    #[test]
    fn matches_the_ideal_blend_at_every_alignment_and_clip() {
        let layout = PlaneLayout::new(38, 22).unwrap();
        let source: Vec<u8> = (0..layout.total_len())
            .map(|i| (i * 31 % 253) as u8)
            .collect();
        let image = overlay(9, 7);
        for site in [ChromaSite::Left, ChromaSite::Centre, ChromaSite::TopLeft] {
            let mut cache = None;
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
                    // One cache across placements and opacities, as the compositor keeps it.
                    let mut frame = source.clone();
                    blend(&mut frame, layout, &image, &mut cache, &plan, site);
                    let want = ideal(&source, layout, &image, &plan, site);
                    for (i, (got, want)) in frame.iter().zip(&want).enumerate() {
                        assert!(
                        got.abs_diff(*want) <= 1,
                        "byte {i} at ({x},{y}) opacity {opacity} {site:?}: {got} vs ideal {want}"
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
        let mut frame = source.clone();
        blend(
            &mut frame,
            layout,
            &image,
            &mut None,
            &plan,
            ChromaSite::Left,
        );
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
                // Left-sited chroma column 8 sits on luma 16, its box reaching back to 15.
                if !(5..9).contains(&cx) || !(2..5).contains(&cy) {
                    let i = (cy * cw + cx) as usize;
                    assert_eq!(frame[layout.u_offset() + i], source[layout.u_offset() + i]);
                    assert_eq!(frame[layout.v_offset() + i], source[layout.v_offset() + i]);
                }
            }
        }
    }
}
