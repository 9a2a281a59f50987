//! The compositor's pictures computed on the CPU, for the golden tests; far too slow for the
//! frame path.
//!
//! Scaling is the *ideal* result, written from its definition and not from the shader: each
//! output sample is the exact area average (in f64) of the source picture, pixels taken as
//! little squares, over the output pixel's rectangle mapped into the ROI when reducing, and
//! bilinear interpolation between pixel centres when enlarging, each axis on its own, with
//! clamp-to-edge addressing on the whole source plane. The GPU sums in f32: where the ideal
//! value is within a hair of half way between two code values, it may round to the other.
//!
//! Blending is a port of `shaders/blend_i420.wgsl`, operation for operation in the same f32
//! math; it matches the GPU exactly in practice. Keep it in step with the shader.

use edge_core::{ChromaSite, I420Frame, PlaneLayout};

use crate::error::ComposeError;
use crate::job::{OverlayId, RenderJob, Roi};
use crate::overlay::YuvaImage;
use crate::plan::{self, BlendPlan, JobPath};

/// Composes one job on the CPU; `overlay` looks up uploaded overlays by id; chroma samples
/// sit at `site` (the compositor's `source_colour().chroma_site`).
pub fn compose<'a>(
    source: &I420Frame,
    job: &RenderJob,
    site: ChromaSite,
    overlay: impl Fn(OverlayId) -> Option<&'a YuvaImage>,
) -> Result<Vec<u8>, ComposeError> {
    let plan = plan::plan_job(source.layout, job, |id| {
        overlay(id).map(|o| (o.width(), o.height()))
    })?;
    let mut frame = match plan.path {
        JobPath::Passthrough | JobPath::CopyThenBlend => source.data.to_vec(),
        JobPath::ScaleThenBlend => {
            scale_i420(source.layout, &source.data, plan.roi, plan.output, site)
        }
    };
    for blend in &plan.blends {
        let image = overlay(blend.overlay).ok_or(ComposeError::UnknownOverlay(blend.overlay))?;
        blend_planned(&mut frame, plan.output, image, blend, site);
    }
    Ok(frame)
}

/// Crop/scale of tight I420 `source` (the ROI in luma pixels) into `output`: along each axis,
/// the exact area average of the output pixel's footprint in the source when reducing,
/// bilinear interpolation when enlarging (see the module docs). Chroma sample (i, j) of
/// either frame stands for the point `site` places in luma block (2i, 2j); each output
/// chroma sample takes the source's chroma around the source point its own point maps to.
pub fn scale_i420(
    source: PlaneLayout,
    data: &[u8],
    roi: Roi,
    output: PlaneLayout,
    site: ChromaSite,
) -> Vec<u8> {
    let mut out = vec![0; output.total_len()];
    let (site_x, site_y) = site.offset_in_block();
    for plane in 0..3 {
        let (src_w, src_h, src_off) = plane_geometry(source, plane);
        let (dst_w, dst_h, dst_off) = plane_geometry(output, plane);
        let roi = [roi.x, roi.y, roi.width, roi.height].map(f64::from);
        let [x, y, w, h] = if plane == 0 {
            roi
        } else {
            // Output chroma sample 0 is at output luma `site`, which is source luma
            // `roi.x + site * step`; a source chroma sample p is at source luma `2p + site`,
            // its pixel square being [p, p + 1) around p + 0.5. The footprint of output sample
            // 0 is centred on that point, and axis_weights puts it at `start + step / 2`.
            let axis = |origin: f64, len: f64, out_len: u32, site: f64| {
                let step = len / f64::from(out_len);
                let luma = origin + site * step;
                let chroma_centre = (luma - site) / 2.0 + 0.5;
                chroma_centre - step / 2.0
            };
            [
                axis(roi[0], roi[2], output.width, site_x),
                axis(roi[1], roi[3], output.height, site_y),
                roi[2] / 2.0,
                roi[3] / 2.0,
            ]
        };
        let columns: Vec<Vec<(usize, f64)>> = (0..dst_w)
            .map(|i| axis_weights(x, w, src_w, dst_w, i))
            .collect();
        let src = &data[src_off..src_off + (src_w * src_h) as usize];
        for oy in 0..dst_h {
            let rows = axis_weights(y, h, src_h, dst_h, oy);
            for (ox, columns) in columns.iter().enumerate() {
                let value: f64 = rows
                    .iter()
                    .map(|&(sy, wy)| {
                        let row = &src[sy * src_w as usize..];
                        wy * columns
                            .iter()
                            .map(|&(sx, wx)| wx * f64::from(row[sx]))
                            .sum::<f64>()
                    })
                    .sum();
                out[dst_off + oy as usize * dst_w as usize + ox] =
                    (value + 0.5).floor().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

/// Source samples and their weights (summing to 1) for output sample `index` of `count` along
/// one axis, where the ROI spans `[start, start + len)` of `size` source samples.
fn axis_weights(start: f64, len: f64, size: u32, count: u32, index: u32) -> Vec<(usize, f64)> {
    let last = f64::from(size - 1);
    let clamp = |i: f64| i.clamp(0.0, last) as usize;
    let step = len / f64::from(count);
    if step >= 1.0 {
        // Reduction: the output pixel covers [a, b) of the source; source pixel p, which is
        // the square [p, p + 1), weighs the length it shares with it.
        let a = start + f64::from(index) * step;
        let b = a + step;
        // Only picture that exists counts: a footprint that reaches past the plane's edge
        // (sited chroma near the edge) is the average of the part inside.
        let (a_in, b_in) = (a.max(0.0), b.min(f64::from(size)));
        let mut weights = Vec::new();
        let mut p = a_in.floor();
        while p < b_in {
            let overlap = b_in.min(p + 1.0) - a_in.max(p);
            if overlap > 0.0 {
                weights.push((clamp(p), overlap / (b_in - a_in)));
            }
            p += 1.0;
        }
        weights
    } else {
        // Enlargement: linear interpolation between the two pixel centres (at p + 0.5) around
        // the output pixel's centre.
        let centre = start + (f64::from(index) + 0.5) * step - 0.5;
        let p = centre.floor();
        let t = centre - p;
        vec![(clamp(p), 1.0 - t), (clamp(p + 1.0), t)]
    }
}

/// Width, height and byte offset of plane 0 (Y), 1 (U) or 2 (V).
fn plane_geometry(layout: PlaneLayout, plane: usize) -> (u32, u32, usize) {
    match plane {
        0 => (layout.width, layout.height, 0),
        1 => (
            layout.chroma_width(),
            layout.chroma_height(),
            layout.u_offset(),
        ),
        _ => (
            layout.chroma_width(),
            layout.chroma_height(),
            layout.v_offset(),
        ),
    }
}

fn over(premultiplied: f32, alpha_255: f32, under: u8, opacity: f32) -> u8 {
    let a = alpha_255 / 255.0 * opacity;
    let value = premultiplied * opacity + f32::from(under) * (1.0 - a);
    (value + 0.5).floor().clamp(0.0, 255.0) as u8
}

/// Blends `image` with its top-left at (x, y) in output luma pixels, clipped to the frame,
/// onto tight I420 `frame` of size `layout`, chroma sited at `site`. `opacity` is clamped to
/// 0..=1; NaN draws nothing.
#[allow(clippy::too_many_arguments)]
pub fn blend_overlay(
    frame: &mut [u8],
    layout: PlaneLayout,
    image: &YuvaImage,
    x: i32,
    y: i32,
    opacity: f32,
    site: ChromaSite,
) {
    let opacity = if opacity.is_nan() {
        0.0
    } else {
        opacity.clamp(0.0, 1.0)
    };
    let Some(clip) = plan::clip_rect(layout, x, y, image.width(), image.height()) else {
        return;
    };
    let blend = BlendPlan {
        overlay: OverlayId(0),
        overlay_width: image.width(),
        overlay_height: image.height(),
        origin_x: x,
        origin_y: y,
        clip,
        opacity,
    };
    blend_planned(frame, layout, image, &blend, site);
}

fn blend_planned(
    frame: &mut [u8],
    layout: PlaneLayout,
    image: &YuvaImage,
    blend: &BlendPlan,
    site: ChromaSite,
) {
    let [x0, y0, x1, y1] = blend.clip;
    let texel = |x: u32, y: u32| {
        let t = image.texel(
            (x as i64 - i64::from(blend.origin_x)) as u32,
            (y as i64 - i64::from(blend.origin_y)) as u32,
        );
        t.map(f32::from)
    };
    for y in y0..y1 {
        for x in x0..x1 {
            let i = (y * layout.width + x) as usize;
            let t = texel(x, y);
            frame[i] = over(t[0], t[3], frame[i], blend.opacity);
        }
    }
    let [taps_x, taps_y] = crate::overlay::chroma_taps(site).map(|t| t.map(|q| q as f32 / 4.0));
    let cw = layout.chroma_width();
    let (cx0, cx1) = crate::overlay::chroma_span(x0, x1, (taps_x[0] * 4.0) as u32, cw);
    let (cy0, cy1) =
        crate::overlay::chroma_span(y0, y1, (taps_y[0] * 4.0) as u32, layout.chroma_height());
    let (w, h) = (i64::from(image.width()), i64::from(image.height()));
    for cy in cy0..cy1 {
        for cx in cx0..cx1 {
            let mut sum = [0.0f32; 4];
            for (dy, ty) in taps_y.iter().enumerate() {
                let oy = i64::from(cy * 2) + dy as i64 - 1 - i64::from(blend.origin_y);
                if *ty == 0.0 || oy < 0 || oy >= h {
                    continue;
                }
                for (dx, tx) in taps_x.iter().enumerate() {
                    let ox = i64::from(cx * 2) + dx as i64 - 1 - i64::from(blend.origin_x);
                    if *tx > 0.0 && ox >= 0 && ox < w {
                        let t = image.texel(ox as u32, oy as u32).map(f32::from);
                        for c in 0..4 {
                            sum[c] += tx * ty * t[c];
                        }
                    }
                }
            }
            let ui = layout.u_offset() + (cy * cw + cx) as usize;
            let vi = layout.v_offset() + (cy * cw + cx) as usize;
            frame[ui] = over(sum[1], sum[3], frame[ui], blend.opacity);
            frame[vi] = over(sum[2], sum[3], frame[vi], blend.opacity);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use edge_core::FrameMeta;

    fn frame(layout: PlaneLayout, fill: impl Fn(usize) -> u8) -> I420Frame {
        let data: Vec<u8> = (0..layout.total_len()).map(fill).collect();
        let meta = FrameMeta {
            seq: 1,
            pts_ns: 0,
            received_unix_us: 0,
        };
        I420Frame::new(layout, Bytes::from(data), meta).unwrap()
    }

    #[test]
    fn identity_scale_returns_the_source() {
        let layout = PlaneLayout::new(10, 6).unwrap();
        let f = frame(layout, |i| (i * 7 % 251) as u8);
        let out = scale_i420(
            layout,
            &f.data,
            Roi::full(layout),
            layout,
            ChromaSite::Centre,
        );
        assert_eq!(out, f.data.to_vec());
    }

    #[test]
    fn two_x_downscale_averages_pairs() {
        let src = PlaneLayout::new(4, 2).unwrap();
        let dst = PlaneLayout::new(2, 2).unwrap();
        // Luma rows 0 10 20 30; chroma planes 2x1.
        let data = [0, 10, 20, 30, 0, 10, 20, 30, 100, 120, 200, 220];
        let out = scale_i420(src, &data, Roi::full(src), dst, ChromaSite::Centre);
        // Each output pixel covers two source pixels: (0+10)/2 = 5, (20+30)/2 = 25.
        assert_eq!(&out[..4], &[5, 25, 5, 25]);
        assert_eq!(&out[4..], &[110, 210]);
    }

    #[test]
    fn three_to_one_averages_all_nine_pixels() {
        // One 1-pixel bright line on a dark 6x6 field: a single bilinear tap between pixel
        // centres would miss it; the area average keeps a third of it in every pixel it
        // crosses.
        let src = PlaneLayout::new(6, 6).unwrap();
        let dst = PlaneLayout::new(2, 2).unwrap();
        let mut data = vec![0u8; src.total_len()];
        for y in 0..6 {
            data[y * 6 + 2] = 240;
        }
        let out = scale_i420(src, &data, Roi::full(src), dst, ChromaSite::Centre);
        assert_eq!(&out[..4], &[80, 0, 80, 0]);
    }

    #[test]
    fn fractional_ratio_weighs_cut_pixels_by_their_covered_length() {
        // A 5-pixel-wide ROI into 2 pixels: output pixel 0 covers [0, 2.5), pixels 0 and 1
        // whole and half of pixel 2; output pixel 1 covers [2.5, 5).
        let src = PlaneLayout::new(10, 2).unwrap();
        let dst = PlaneLayout::new(2, 2).unwrap();
        let roi = Roi {
            x: 0.0,
            y: 0.0,
            width: 5.0,
            height: 2.0,
        };
        let row = [0, 50, 100, 150, 200, 0, 0, 0, 0, 0];
        let mut data = vec![0u8; src.total_len()];
        data[..10].copy_from_slice(&row);
        data[10..20].copy_from_slice(&row);
        let out = scale_i420(src, &data, roi, dst, ChromaSite::Centre);
        // (0 + 50 + 100 / 2) / 2.5 = 40; (100 / 2 + 150 + 200) / 2.5 = 160.
        assert_eq!(&out[..4], &[40, 160, 40, 160]);
    }

    #[test]
    fn enlargement_interpolates_between_pixel_centres() {
        // 2 -> 4 along each axis: samples at 0.25 and 0.75 of the way between centres, and
        // clamped to the edge pixel outside them.
        let src = PlaneLayout::new(2, 2).unwrap();
        let dst = PlaneLayout::new(4, 4).unwrap();
        let data = [0, 100, 0, 100, 50, 50];
        let out = scale_i420(src, &data, Roi::full(src), dst, ChromaSite::Centre);
        assert_eq!(&out[..4], &[0, 25, 75, 100]);
        assert_eq!(&out[16..], &[50; 8]);
    }

    #[test]
    fn opaque_overlay_replaces_and_transparent_keeps() {
        let layout = PlaneLayout::new(4, 4).unwrap();
        let mut data = vec![50u8; layout.total_len()];
        // Left column opaque red, right column fully transparent.
        let rgba: Vec<u8> = (0..4)
            .flat_map(|i| {
                if i % 2 == 0 {
                    [255, 0, 0, 255]
                } else {
                    [0, 0, 0, 0]
                }
            })
            .collect();
        let bt601 = edge_core::VideoColour {
            matrix: edge_core::ColourMatrix::Bt601,
            ..edge_core::VideoColour::default()
        };
        let image = YuvaImage::from_rgba(2, 2, &rgba, bt601).unwrap();
        blend_overlay(&mut data, layout, &image, 1, 1, 1.0, ChromaSite::Centre);
        assert_eq!(&data[4..8], &[50, 81, 50, 50]);
        assert_eq!(&data[8..12], &[50, 81, 50, 50]);
        // Chroma sample (0,0) covers luma (1,1) only: a quarter of an opaque red pixel.
        // alpha 0.25: 90 * 0.25 + 50 * 0.75 = 60.0.
        assert_eq!(data[layout.u_offset()], 60);
        // Chroma sample (1,0) covers luma (2,1), transparent: unchanged.
        assert_eq!(data[layout.u_offset() + 1], 50);
    }
}
