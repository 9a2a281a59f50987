//! Still images for `edge-node understand` and tests: PNG in, packed 8-bit RGB out.

use crate::error::{Result, UnderstandError};
use bytes::Bytes;
use edge_core::frame::{FrameMeta, I420Frame, PlaneLayout};
use std::path::Path;

/// Packed 8-bit RGB, row-major, no padding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl RgbImage {
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> Result<Self, String> {
        if width == 0 || height == 0 || data.len() != width as usize * height as usize * 3 {
            return Err(format!(
                "RGB {width}x{height} needs {} bytes, got {}",
                width as usize * height as usize * 3,
                data.len()
            ));
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// Reads a PNG of any colour type and bit depth (grey, palette, 16-bit, alpha), as RGB.
    /// Alpha is dropped: models see the pixels as a camera would.
    pub fn load_png(path: &Path) -> Result<Self> {
        let fail = |reason: String| UnderstandError::Image {
            path: path.to_path_buf(),
            reason,
        };
        let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
        let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder
            .read_info()
            .map_err(|e| fail(format!("not a readable PNG: {e}")))?;
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader
            .next_frame(&mut buf)
            .map_err(|e| fail(format!("not a readable PNG: {e}")))?;
        let pixels = &buf[..info.buffer_size()];
        let rgb: Vec<u8> = match info.color_type {
            png::ColorType::Rgb => pixels.to_vec(),
            png::ColorType::Rgba => pixels
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect(),
            png::ColorType::Grayscale => pixels.iter().flat_map(|&g| [g, g, g]).collect(),
            png::ColorType::GrayscaleAlpha => {
                pixels.chunks_exact(2).flat_map(|p| [p[0]; 3]).collect()
            }
            png::ColorType::Indexed => {
                return Err(fail("palette PNG was not expanded".into()));
            }
        };
        Self::new(info.width, info.height, rgb).map_err(fail)
    }
}

impl RgbImage {
    /// This image as a decoded frame would arrive: I420, BT.601 limited range (the node's
    /// colour space), cropped to even dimensions. For stills in tests, benches and demos.
    pub fn to_i420(&self, meta: FrameMeta) -> Result<I420Frame, String> {
        let (w, h) = (self.width & !1, self.height & !1);
        let layout = PlaneLayout::new(w, h).map_err(|e| e.to_string())?;
        let mut data = vec![0u8; layout.total_len()];
        let rgb = |x: u32, y: u32| {
            let i = (y * self.width + x) as usize * 3;
            [0, 1, 2].map(|c| self.data[i + c] as f32)
        };
        let (luma, chroma) = data.split_at_mut(layout.luma_len());
        let (u_plane, v_plane) = chroma.split_at_mut(layout.chroma_len());
        for y in 0..h {
            for x in 0..w {
                let [r, g, b] = rgb(x, y);
                luma[(y * w + x) as usize] =
                    (16.0 + 0.257 * r + 0.504 * g + 0.098 * b).round() as u8;
            }
        }
        for cy in 0..h / 2 {
            for cx in 0..w / 2 {
                // Chroma of the 2x2 block it covers.
                let mut mean = [0.0f32; 3];
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let p = rgb(2 * cx + dx, 2 * cy + dy);
                    (0..3).for_each(|c| mean[c] += p[c] / 4.0);
                }
                let [r, g, b] = mean;
                let i = (cy * (w / 2) + cx) as usize;
                u_plane[i] = (128.0 - 0.148 * r - 0.291 * g + 0.439 * b).round() as u8;
                v_plane[i] = (128.0 + 0.439 * r - 0.368 * g - 0.071 * b).round() as u8;
            }
        }
        I420Frame::new(layout, Bytes::from(data), meta).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(path: &Path, w: u32, h: u32, colour: png::ColorType, data: &[u8]) {
        let file = std::fs::File::create(path).unwrap();
        let mut enc = png::Encoder::new(file, w, h);
        enc.set_color(colour);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header().unwrap().write_image_data(data).unwrap();
    }

    #[test]
    fn grey_and_rgba_become_rgb() {
        let dir = std::env::temp_dir().join(format!("edge-understand-png-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let grey = dir.join("grey.png");
        write_png(&grey, 2, 1, png::ColorType::Grayscale, &[10, 200]);
        let img = RgbImage::load_png(&grey).unwrap();
        assert_eq!((img.width, img.height), (2, 1));
        assert_eq!(img.data, [10, 10, 10, 200, 200, 200]);
        let rgba = dir.join("rgba.png");
        write_png(&rgba, 1, 1, png::ColorType::Rgba, &[1, 2, 3, 4]);
        assert_eq!(RgbImage::load_png(&rgba).unwrap().data, [1, 2, 3]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn to_i420_gives_limited_range_primaries() {
        // 2x2 red, cropped from 3x3.
        let img = RgbImage::new(3, 3, [255, 0, 0].repeat(9)).unwrap();
        let meta = FrameMeta {
            seq: 7,
            pts_ns: 0,
            received_unix_us: 0,
        };
        let f = img.to_i420(meta).unwrap();
        assert_eq!((f.layout.width, f.layout.height, f.meta.seq), (2, 2, 7));
        assert_eq!(
            (f.y(), f.u(), f.v()),
            (&[82u8; 4][..], &[90u8][..], &[240u8][..])
        );
    }

    #[test]
    fn bad_files_name_the_path() {
        let missing = Path::new("/nonexistent/picture.png");
        let err = RgbImage::load_png(missing).unwrap_err().to_string();
        assert!(err.starts_with("image /nonexistent/picture.png: "), "{err}");
        let not_png = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let err = RgbImage::load_png(&not_png).unwrap_err().to_string();
        assert!(err.contains("Cargo.toml: not a readable PNG"), "{err}");
    }
}
