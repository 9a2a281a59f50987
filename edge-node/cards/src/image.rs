//! The rendered card: straight-alpha RGBA8, the format `Compositor::load_overlay_rgba` and
//! `replace_overlay_rgba` take, and a PNG writer for tests and inspection.

use std::path::Path;

use crate::error::CardError;

/// Straight (not premultiplied) alpha RGBA8, row-major, no padding. Width and height are even,
/// so the overlay lines up with I420's 2x2 chroma blocks wherever it is placed on an even grid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbaImage {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

impl RgbaImage {
    /// The RGBA of the pixel at (x, y); `None` outside the image.
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 4]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let offset = (y as usize * self.width as usize + x as usize) * 4;
        let p = &self.pixels[offset..offset + 4];
        Some([p[0], p[1], p[2], p[3]])
    }

    /// Encodes the image as an RGBA8 PNG.
    pub fn to_png(&self) -> Result<Vec<u8>, CardError> {
        let mut bytes = Vec::new();
        let mut encoder = png::Encoder::new(&mut bytes, self.width, self.height);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&self.pixels)?;
        writer.finish()?;
        Ok(bytes)
    }

    /// Writes the image as a PNG file, creating missing parent folders.
    pub fn write_png(&self, path: &Path) -> Result<(), CardError> {
        let bytes = self.to_png()?;
        let io_error = |source| CardError::PngWrite {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io_error)?;
        }
        std::fs::write(path, bytes).map_err(io_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_round_trips_pixels() {
        let image = RgbaImage {
            width: 2,
            height: 2,
            pixels: vec![255, 0, 0, 255, 0, 255, 0, 128, 0, 0, 255, 0, 10, 20, 30, 40],
        };
        let png_bytes = image.to_png().unwrap();
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        decoder.set_transformations(png::Transformations::IDENTITY);
        let mut reader = decoder.read_info().unwrap();
        let mut decoded = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut decoded).unwrap();
        assert_eq!((info.width, info.height), (2, 2));
        assert_eq!(info.color_type, png::ColorType::Rgba);
        assert_eq!(&decoded[..info.buffer_size()], &image.pixels[..]);
        assert_eq!(image.pixel(1, 1), Some([10, 20, 30, 40]));
        assert_eq!(image.pixel(2, 0), None);
    }

    #[test]
    fn unwritable_path_is_an_error_naming_it() {
        let image = RgbaImage {
            width: 2,
            height: 2,
            pixels: vec![0; 16],
        };
        let path = Path::new("/proc/edge-cards-cannot-write-here/card.png");
        let error = image.write_png(path).unwrap_err();
        assert!(error
            .to_string()
            .contains("/proc/edge-cards-cannot-write-here"));
    }
}
