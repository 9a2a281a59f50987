//! CPU port of the compositor's shaders, operation for operation and in the same f32 math, on
//! tight I420. The golden tests compare the GPU against it; it is far too slow for the frame
//! path. Blending matches the GPU exactly in practice; bilinear scaling may differ by one code
//! value because the GPU's texture sampler interpolates with fixed-point weights.
//!
//! Keep in step with `shaders/scale_i420.wgsl` and `shaders/blend_i420.wgsl`.

use edge_core::{I420Frame, PlaneLayout};

use crate::error::ComposeError;
use crate::job::{OverlayId, RenderJob, Roi};
use crate::overlay::YuvaImage;
use crate::plan::{self, BlendPlan, JobPath};

/// Composes one job on the CPU; `overlay` looks up uploaded overlays by id.
pub fn compose<'a>(
    source: &I420Frame,
    job: &RenderJob,
    overlay: impl Fn(OverlayId) -> Option<&'a YuvaImage>,
) -> Result<Vec<u8>, ComposeError> {
    let plan = plan::plan_job(source.layout, job, |id| {
        overlay(id).map(|o| (o.width(), o.height()))
    })?;
    let mut frame = match plan.path {
        JobPath::Passthrough | JobPath::CopyThenBlend => source.data.to_vec(),
        JobPath::ScaleThenBlend => scale_i420(source.layout, &source.data, plan.roi, plan.output),
    };
    for blend in &plan.blends {
        let image = overlay(blend.overlay).ok_or(ComposeError::UnknownOverlay(blend.overlay))?;
        blend_planned(&mut frame, plan.output, image, blend);
    }
    Ok(frame)
}

/// Bilinear crop/scale of tight I420 `source` (the ROI in luma pixels) into `output`.
/// Each output sample is taken at the centre of its pixel mapped into the ROI, with
/// clamp-to-edge addressing on the whole source plane, as the shader's sampler does.
pub fn scale_i420(source: PlaneLayout, data: &[u8], roi: Roi, output: PlaneLayout) -> Vec<u8> {
    let mut out = vec![0; output.total_len()];
    for plane in 0..3 {
        let (src_w, src_h, src_off) = plane_geometry(source, plane);
        let (dst_w, dst_h, dst_off) = plane_geometry(output, plane);
        let divisor = if plane == 0 { 1.0 } else { 2.0 };
        let plane_roi = [
            roi.x / divisor,
            roi.y / divisor,
            roi.width / divisor,
            roi.height / divisor,
        ];
        let src = &data[src_off..src_off + (src_w * src_h) as usize];
        for y in 0..dst_h {
            for x in 0..dst_w {
                out[dst_off + (y * dst_w + x) as usize] =
                    sample_bilinear(src, src_w, src_h, plane_roi, [dst_w, dst_h], x, y);
            }
        }
    }
    out
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

fn sample_bilinear(
    src: &[u8],
    width: u32,
    height: u32,
    roi: [f32; 4],
    dst_size: [u32; 2],
    ox: u32,
    oy: u32,
) -> u8 {
    let step_x = roi[2] / dst_size[0] as f32;
    let step_y = roi[3] / dst_size[1] as f32;
    let pos_x = roi[0] + (ox as f32 + 0.5) * step_x - 0.5;
    let pos_y = roi[1] + (oy as f32 + 0.5) * step_y - 0.5;
    let cx = pos_x.clamp(0.0, (width - 1) as f32);
    let cy = pos_y.clamp(0.0, (height - 1) as f32);
    let (bx, by) = (cx.floor(), cy.floor());
    let (fx, fy) = (cx - bx, cy - by);
    let (x0, y0) = (bx as u32, by as u32);
    let x1 = (x0 + 1).min(width - 1);
    let y1 = (y0 + 1).min(height - 1);
    let load = |x: u32, y: u32| f32::from(src[(y * width + x) as usize]);
    let (s00, s10, s01, s11) = (load(x0, y0), load(x1, y0), load(x0, y1), load(x1, y1));
    let top = s00 + (s10 - s00) * fx;
    let bottom = s01 + (s11 - s01) * fx;
    let value = top + (bottom - top) * fy;
    (value + 0.5).floor().clamp(0.0, 255.0) as u8
}

fn over(premultiplied: f32, alpha_255: f32, under: u8, opacity: f32) -> u8 {
    let a = alpha_255 / 255.0 * opacity;
    let value = premultiplied * opacity + f32::from(under) * (1.0 - a);
    (value + 0.5).floor().clamp(0.0, 255.0) as u8
}

/// Blends `image` with its top-left at (x, y) in output luma pixels, clipped to the frame,
/// onto tight I420 `frame` of size `layout`. `opacity` is clamped to 0..=1; NaN draws nothing.
pub fn blend_overlay(
    frame: &mut [u8],
    layout: PlaneLayout,
    image: &YuvaImage,
    x: i32,
    y: i32,
    opacity: f32,
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
    blend_planned(frame, layout, image, &blend);
}

fn blend_planned(frame: &mut [u8], layout: PlaneLayout, image: &YuvaImage, blend: &BlendPlan) {
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
    let cw = layout.chroma_width();
    for cy in y0 / 2..y1.div_ceil(2) {
        for cx in x0 / 2..x1.div_ceil(2) {
            let mut sum = [0.0f32; 4];
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let (x, y) = (cx * 2 + dx, cy * 2 + dy);
                if x >= x0 && x < x1 && y >= y0 && y < y1 {
                    let t = texel(x, y);
                    for c in 0..4 {
                        sum[c] += t[c];
                    }
                }
            }
            let avg = sum.map(|s| s * 0.25);
            let ui = layout.u_offset() + (cy * cw + cx) as usize;
            let vi = layout.v_offset() + (cy * cw + cx) as usize;
            frame[ui] = over(avg[1], avg[3], frame[ui], blend.opacity);
            frame[vi] = over(avg[2], avg[3], frame[vi], blend.opacity);
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
        let out = scale_i420(layout, &f.data, Roi::full(layout), layout);
        assert_eq!(out, f.data.to_vec());
    }

    #[test]
    fn two_x_downscale_averages_pairs() {
        let src = PlaneLayout::new(4, 2).unwrap();
        let dst = PlaneLayout::new(2, 2).unwrap();
        // Luma rows 0 10 20 30; chroma planes 2x1.
        let data = [0, 10, 20, 30, 0, 10, 20, 30, 100, 120, 200, 220];
        let out = scale_i420(src, &data, Roi::full(src), dst);
        // Sample centres fall half way between source pairs: (0+10)/2 = 5, (20+30)/2 = 25.
        assert_eq!(&out[..4], &[5, 25, 5, 25]);
        assert_eq!(&out[4..], &[110, 210]);
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
        let image = YuvaImage::from_rgba(2, 2, &rgba).unwrap();
        blend_overlay(&mut data, layout, &image, 1, 1, 1.0);
        assert_eq!(&data[4..8], &[50, 81, 50, 50]);
        assert_eq!(&data[8..12], &[50, 81, 50, 50]);
        // Chroma sample (0,0) covers luma (1,1) only: a quarter of an opaque red pixel.
        // alpha 0.25: 90 * 0.25 + 50 * 0.75 = 60.0.
        assert_eq!(data[layout.u_offset()], 60);
        // Chroma sample (1,0) covers luma (2,1), transparent: unchanged.
        assert_eq!(data[layout.u_offset() + 1], 50);
    }
}
