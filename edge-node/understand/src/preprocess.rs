//! From a source (planar I420 frame or RGB image) to a model's input tensor: pick the tensor
//! size, resample (bilinear), colour-convert, normalise, lay out as NCHW.
//!
//! Why on the CPU: the machines this runs on without a GPU have only lavapipe, a software
//! Vulkan that runs on the same cores, and a GPU pass would add an upload and a readback on
//! top. The tensor is small (at most `max_side` on its longer side, ~250k pixels for
//! CenterFace on a 720p frame), and sampling the I420 planes directly costs a millisecond or
//! two, without ever building a full-size RGB frame (6.6 ms at 1080p, see DESIGN.md).

use crate::descriptor::{ChannelOrder, InputSize, InputSpec};
use crate::image::RgbImage;
use edge_core::frame::I420Frame;

/// The tensor (width, height) a source of `source` (width, height) is resampled to.
pub fn tensor_size(spec: &InputSize, source: (u32, u32)) -> (u32, u32) {
    match *spec {
        InputSize::Fixed { width, height } => (width, height),
        InputSize::Dynamic {
            min_side,
            max_side,
            multiple_of,
        } => {
            let (w, h) = (source.0.max(1) as f64, source.1.max(1) as f64);
            let up = min_side.map_or(1.0, |m| (m as f64 / w.min(h)).max(1.0));
            let ratio = up.min(max_side as f64 / w.max(h));
            // Rounded up so nothing is cropped, but never past max_side.
            let side = |v: f64| {
                let m = multiple_of as f64;
                let rounded = ((v * ratio) / m).ceil().max(1.0) * m;
                rounded.min((max_side / multiple_of * multiple_of) as f64) as u32
            };
            (side(w), side(h))
        }
    }
}

/// Per-channel affine normalisation in the model's channel order: value = pixel * a + b.
#[derive(Clone, Copy, Debug)]
struct Normaliser {
    order: ChannelOrder,
    a: [f32; 3],
    b: [f32; 3],
}

impl Normaliser {
    fn new(spec: &InputSpec) -> Self {
        let a = [0, 1, 2].map(|c| spec.scale / spec.std[c]);
        let b = [0, 1, 2].map(|c| -spec.mean[c] / spec.std[c]);
        Self {
            order: spec.channels,
            a,
            b,
        }
    }

    /// Writes one RGB pixel (0..=255) at `index` of each of the three NCHW planes.
    #[inline]
    fn write(&self, out: &mut [f32], plane: usize, index: usize, rgb: [f32; 3]) {
        let ordered = match self.order {
            ChannelOrder::Rgb => rgb,
            ChannelOrder::Bgr => [rgb[2], rgb[1], rgb[0]],
        };
        for c in 0..3 {
            out[c * plane + index] = ordered[c] * self.a[c] + self.b[c];
        }
    }
}

/// For each destination index along one axis: the two source indices and the weight of the
/// second, with pixel centres aligned (OpenCV's INTER_LINEAR convention).
fn axis_taps(src_len: u32, dst_len: u32) -> Vec<(usize, usize, f32)> {
    let scale = src_len as f32 / dst_len as f32;
    let last = src_len.saturating_sub(1) as f32;
    (0..dst_len)
        .map(|d| {
            let s = ((d as f32 + 0.5) * scale - 0.5).clamp(0.0, last);
            let i0 = s.floor();
            let i1 = (i0 + 1.0).min(last);
            (i0 as usize, i1 as usize, s - i0)
        })
        .collect()
}

#[inline]
fn bilinear(plane: &[u8], stride: usize, x: (usize, usize, f32), y: (usize, usize, f32)) -> f32 {
    let p = |xi: usize, yi: usize| plane[yi * stride + xi] as f32;
    let top = p(x.0, y.0) + (p(x.1, y.0) - p(x.0, y.0)) * x.2;
    let bottom = p(x.0, y.1) + (p(x.1, y.1) - p(x.0, y.1)) * x.2;
    top + (bottom - top) * y.2
}

/// BT.601 limited range to RGB (0..=255), the colour space of the node's frames (see
/// edge-compose's overlay conversion).
#[inline]
fn yuv_to_rgb(y: f32, u: f32, v: f32) -> [f32; 3] {
    let c = 1.164_383 * (y - 16.0);
    let (d, e) = (u - 128.0, v - 128.0);
    [
        (c + 1.596_027 * e).clamp(0.0, 255.0),
        (c - 0.391_762 * d - 0.812_968 * e).clamp(0.0, 255.0),
        (c + 2.017_232 * d).clamp(0.0, 255.0),
    ]
}

/// Fills `out` (resized to 3 * w * h) with `frame` resampled to `size`, as `spec` wants it.
pub fn i420_to_tensor(frame: &I420Frame, size: (u32, u32), spec: &InputSpec, out: &mut Vec<f32>) {
    let l = frame.layout;
    let (w, h) = size;
    let plane = w as usize * h as usize;
    out.resize(3 * plane, 0.0);
    let norm = Normaliser::new(spec);
    let (luma_x, luma_y) = (axis_taps(l.width, w), axis_taps(l.height, h));
    let (chroma_x, chroma_y) = (
        axis_taps(l.chroma_width(), w),
        axis_taps(l.chroma_height(), h),
    );
    let (y_plane, u_plane, v_plane) = (frame.y(), frame.u(), frame.v());
    let (luma_stride, chroma_stride) = (l.width as usize, l.chroma_width() as usize);
    for ty in 0..h as usize {
        for tx in 0..w as usize {
            let luma = bilinear(y_plane, luma_stride, luma_x[tx], luma_y[ty]);
            let u = bilinear(u_plane, chroma_stride, chroma_x[tx], chroma_y[ty]);
            let v = bilinear(v_plane, chroma_stride, chroma_x[tx], chroma_y[ty]);
            norm.write(out, plane, ty * w as usize + tx, yuv_to_rgb(luma, u, v));
        }
    }
}

/// Fills `out` (resized to 3 * w * h) with `image` resampled to `size`, as `spec` wants it.
pub fn rgb_to_tensor(image: &RgbImage, size: (u32, u32), spec: &InputSpec, out: &mut Vec<f32>) {
    let (w, h) = size;
    let plane = w as usize * h as usize;
    out.resize(3 * plane, 0.0);
    let norm = Normaliser::new(spec);
    let (xs, ys) = (axis_taps(image.width, w), axis_taps(image.height, h));
    let stride = image.width as usize * 3;
    for (ty, &(y0, y1, fy)) in ys.iter().enumerate() {
        for (tx, &(x0, x1, fx)) in xs.iter().enumerate() {
            let rgb = [0, 1, 2].map(|c| {
                let p = |xi: usize, yi: usize| image.data[yi * stride + xi * 3 + c] as f32;
                let top = p(x0, y0) + (p(x1, y0) - p(x0, y0)) * fx;
                let bottom = p(x0, y1) + (p(x1, y1) - p(x0, y1)) * fx;
                top + (bottom - top) * fy
            });
            norm.write(out, plane, ty * w as usize + tx, rgb);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptor::Layout;
    use bytes::Bytes;
    use edge_core::frame::{FrameMeta, PlaneLayout};

    fn dynamic(min_side: Option<u32>, max_side: u32) -> InputSize {
        InputSize::Dynamic {
            min_side,
            max_side,
            multiple_of: 32,
        }
    }

    #[test]
    fn tensor_sizes() {
        // 720p into CenterFace's 640 cap: 640x360 rounded up to 640x384.
        assert_eq!(tensor_size(&dynamic(None, 640), (1280, 720)), (640, 384));
        // Small images are not scaled up without a min_side, only rounded.
        assert_eq!(tensor_size(&dynamic(None, 640), (451, 300)), (480, 320));
        // PP-OCR on a small page: scaled up towards 736 on the short side, capped at 960.
        assert_eq!(
            tensor_size(&dynamic(Some(736), 960), (384, 191)),
            (960, 480)
        );
        assert_eq!(
            tensor_size(&dynamic(Some(736), 960), (1280, 720)),
            (960, 544)
        );
        assert_eq!(
            tensor_size(
                &InputSize::Fixed {
                    width: 320,
                    height: 320
                },
                (1280, 720)
            ),
            (320, 320)
        );
        // Degenerate sources still give a usable tensor.
        assert_eq!(tensor_size(&dynamic(None, 640), (1, 1)), (32, 32));
        assert_eq!(tensor_size(&dynamic(None, 640), (10_000, 2)), (640, 32));
    }

    fn spec(channels: ChannelOrder, scale: f32, mean: f32, std: f32) -> InputSpec {
        InputSpec {
            name: "x".into(),
            layout: Layout::Nchw,
            channels,
            scale,
            mean: [mean; 3],
            std: [std; 3],
            size: dynamic(None, 640),
        }
    }

    /// A frame of one colour, given in BT.601 limited-range YUV.
    fn flat_frame(w: u32, h: u32, yuv: [u8; 3]) -> I420Frame {
        let l = PlaneLayout::new(w, h).unwrap();
        let mut data = vec![yuv[0]; l.luma_len()];
        data.extend(std::iter::repeat_n(yuv[1], l.chroma_len()));
        data.extend(std::iter::repeat_n(yuv[2], l.chroma_len()));
        let meta = FrameMeta {
            seq: 0,
            pts_ns: 0,
            received_unix_us: 0,
        };
        I420Frame::new(l, Bytes::from(data), meta).unwrap()
    }

    #[test]
    fn i420_red_becomes_red_in_rgb_and_bgr_order() {
        // BT.601 limited-range pure red: Y=81, U=90, V=240.
        let frame = flat_frame(64, 36, [81, 90, 240]);
        let mut out = Vec::new();
        i420_to_tensor(
            &frame,
            (32, 32),
            &spec(ChannelOrder::Rgb, 1.0, 0.0, 1.0),
            &mut out,
        );
        assert_eq!(out.len(), 3 * 32 * 32);
        let px = |out: &[f32], c: usize| out[c * 1024 + 5 * 32 + 7];
        assert!((px(&out, 0) - 255.0).abs() < 2.0, "{}", px(&out, 0));
        assert!(px(&out, 1) < 2.0 && px(&out, 2) < 2.0);
        // PP-OCR style: BGR, (p / 255 - 0.5) / 0.5.
        i420_to_tensor(
            &frame,
            (32, 32),
            &spec(ChannelOrder::Bgr, 1.0 / 255.0, 0.5, 0.5),
            &mut out,
        );
        assert!((px(&out, 2) - 1.0).abs() < 0.02 && (px(&out, 0) + 1.0).abs() < 0.02);
    }

    #[test]
    fn rgb_resample_keeps_a_left_right_split() {
        // Left half black, right half white, 8x2 -> 4x1.
        let mut data = Vec::new();
        for _ in 0..2 {
            for x in 0..8 {
                data.extend([if x < 4 { 0 } else { 255 }; 3]);
            }
        }
        let img = RgbImage::new(8, 2, data).unwrap();
        let mut out = Vec::new();
        rgb_to_tensor(
            &img,
            (4, 1),
            &spec(ChannelOrder::Rgb, 1.0, 0.0, 1.0),
            &mut out,
        );
        assert_eq!(&out[..4], &[0.0, 0.0, 255.0, 255.0]);
    }

    #[test]
    fn i420_and_rgb_paths_agree_on_grey() {
        // Limited-range Y=126 with neutral chroma is RGB 128.
        let frame = flat_frame(16, 16, [126, 128, 128]);
        let img = RgbImage::new(16, 16, vec![128; 16 * 16 * 3]).unwrap();
        let s = spec(ChannelOrder::Rgb, 1.0, 0.0, 1.0);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        i420_to_tensor(&frame, (8, 8), &s, &mut a);
        rgb_to_tensor(&img, (8, 8), &s, &mut b);
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1.0));
    }
}
