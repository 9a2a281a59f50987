//! Still images for `edge-node understand` and tests: PNG in, packed 8-bit RGB out.

use crate::error::{Result, UnderstandError};
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
    fn bad_files_name_the_path() {
        let missing = Path::new("/nonexistent/picture.png");
        let err = RgbImage::load_png(missing).unwrap_err().to_string();
        assert!(err.starts_with("image /nonexistent/picture.png: "), "{err}");
        let not_png = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let err = RgbImage::load_png(&not_png).unwrap_err().to_string();
        assert!(err.contains("Cargo.toml: not a readable PNG"), "{err}");
    }
}
