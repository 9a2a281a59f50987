//! Overlays arrive as straight-alpha RGBA (PNG files, text cards rendered elsewhere). They are
//! converted once, on the CPU, into the video's own Y'CbCr (the source's matrix and range,
//! [`VideoColour`]) and premultiplied, so that blending on the GPU is one multiply-add per sample and the video
//! itself never leaves planar YUV.

use edge_core::{ChromaSite, VideoColour};

use crate::error::ComposeError;
use crate::plan::MAX_FRAME_SIDE_PX;

/// PNG decoder allocation cap: a 16384x16384 RGBA image is 1 GiB, far past any overlay; a
/// hostile file must not make the node allocate that much.
const PNG_DECODE_LIMIT_BYTES: usize = 256 * 1024 * 1024;

/// An overlay in premultiplied Y'CbCrA, one `u32` per pixel, row-major, no padding:
/// byte 0 = Y*a, byte 1 = Cb*a, byte 2 = Cr*a, byte 3 = a (little-endian bytes of the word).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YuvaImage {
    width: u32,
    height: u32,
    texels: Vec<u32>,
}

impl YuvaImage {
    /// Converts straight-alpha RGBA8 (as PNG stores it, sRGB-encoded R'G'B', which BT.601 and
    /// BT.709 video share) to premultiplied Y'CbCrA in `colour`'s matrix and range.
    pub fn from_rgba(
        width: u32,
        height: u32,
        rgba: &[u8],
        colour: VideoColour,
    ) -> Result<Self, ComposeError> {
        if width == 0 || height == 0 {
            return Err(ComposeError::InvalidOverlay(format!(
                "empty overlay {width}x{height}"
            )));
        }
        if width > MAX_FRAME_SIDE_PX || height > MAX_FRAME_SIDE_PX {
            return Err(ComposeError::InvalidOverlay(format!(
                "overlay {width}x{height} is larger than {MAX_FRAME_SIDE_PX} on a side"
            )));
        }
        let expected = width as usize * height as usize * 4;
        if rgba.len() != expected {
            return Err(ComposeError::InvalidOverlay(format!(
                "RGBA {width}x{height} needs {expected} bytes, got {}",
                rgba.len()
            )));
        }
        let texels = rgba
            .chunks_exact(4)
            .map(|p| premultiplied_yuva(colour, p[0], p[1], p[2], p[3]))
            .collect();
        Ok(Self {
            width,
            height,
            texels,
        })
    }

    /// Decodes a PNG of any colour type and bit depth into an overlay.
    pub fn from_png(png_bytes: &[u8], colour: VideoColour) -> Result<Self, ComposeError> {
        let (width, height, rgba) = decode_png_rgba(png_bytes)?;
        Self::from_rgba(width, height, &rgba, colour)
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn texels(&self) -> &[u32] {
        &self.texels
    }

    /// Premultiplied (Y, Cb, Cr, alpha) of pixel (x, y), each 0..=255.
    pub fn texel(&self, x: u32, y: u32) -> [u8; 4] {
        self.texels[(y * self.width + x) as usize].to_le_bytes()
    }
}

/// One pixel in `colour`'s Y'CbCr, rounded to code values, then premultiplied, so that a fully
/// opaque pixel is exactly the video code value.
fn premultiplied_yuva(colour: VideoColour, r: u8, g: u8, b: u8, a: u8) -> u32 {
    let [y, cb, cr] = colour.rgb_to_ycbcr([r, g, b].map(|v| f64::from(v) / 255.0));
    let alpha = f64::from(a) / 255.0;
    let premultiply = |v: f64| (v.round() * alpha).round().clamp(0.0, 255.0) as u8;
    u32::from_le_bytes([premultiply(y), premultiply(cb), premultiply(cr), a])
}

/// How an overlay's chroma is filtered down to 4:2:0 at `site`: the weights (in quarters,
/// summing to 4) of luma columns `2c - 1, 2c, 2c + 1` in chroma column `c`, then the same for
/// rows. Each chroma sample averages the two luma pixels' width of overlay centred on where
/// it sits: left-sited columns weigh 1/4, 1/2, 1/4; centred ones 0, 1/2, 1/2.
pub(crate) fn chroma_taps(site: ChromaSite) -> [[u32; 3]; 2] {
    let (ox, oy) = site.offset_in_block();
    // Pixel 2c + d is the square [d, d + 1) from the block's corner; the sample's box is
    // [o - 1, o + 1); the overlap, times 2 to count in quarters of the box's width 2.
    let taps = |o: f64| {
        [-1.0, 0.0, 1.0]
            .map(|d: f64| ((d + 1.0).min(o + 1.0) - d.max(o - 1.0)).max(0.0) * 2.0)
            .map(|q| q.round() as u32)
    };
    [taps(ox), taps(oy)]
}

/// Chroma samples `[first, end)` along one axis that an overlay covering luma `[lo, hi)`
/// reaches, with `first_tap` the weight of the luma pixel before a sample's own, and `len`
/// chroma samples in the plane.
pub(crate) fn chroma_span(lo: u32, hi: u32, first_tap: u32, len: u32) -> (u32, u32) {
    let end = if first_tap > 0 {
        hi / 2 + 1
    } else {
        hi.div_ceil(2)
    };
    (lo / 2, end.min(len))
}

/// Decodes any PNG into straight-alpha RGBA8.
pub fn decode_png_rgba(png_bytes: &[u8]) -> Result<(u32, u32, Vec<u8>), ComposeError> {
    let mut decoder = png::Decoder::new_with_limits(
        std::io::Cursor::new(png_bytes),
        png::Limits {
            bytes: PNG_DECODE_LIMIT_BYTES,
        },
    );
    // Palette -> RGB(A), tRNS -> alpha, low bit depths -> 8, 16 bits -> 8.
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info()?;
    let mut buffer = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buffer)?;
    let (width, height) = (info.width, info.height);
    let pixels = width as usize * height as usize;
    let rows = &buffer[..info.buffer_size()];
    let rgba = match info.color_type {
        png::ColorType::Rgba => rows.to_vec(),
        png::ColorType::Rgb => rows
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        png::ColorType::GrayscaleAlpha => rows
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0], p[1]])
            .collect(),
        png::ColorType::Grayscale => rows.iter().flat_map(|&v| [v, v, v, 255]).collect(),
        png::ColorType::Indexed => {
            return Err(ComposeError::InvalidOverlay(
                "palette PNG was not expanded by the decoder".into(),
            ))
        }
    };
    if rgba.len() != pixels * 4 {
        return Err(ComposeError::InvalidOverlay(format!(
            "PNG {width}x{height} decoded to {} bytes",
            rgba.len()
        )));
    }
    Ok((width, height, rgba))
}

#[cfg(test)]
mod tests {
    use super::*;

    use edge_core::{ColourMatrix, ColourRange};

    const BT601: VideoColour = VideoColour {
        matrix: ColourMatrix::Bt601,
        range: ColourRange::Limited,
        chroma_site: edge_core::ChromaSite::Left,
    };

    #[test]
    fn primaries_match_bt601_limited_range() {
        let texel = |r, g, b, a| premultiplied_yuva(BT601, r, g, b, a).to_le_bytes();
        assert_eq!(texel(0, 0, 0, 255), [16, 128, 128, 255]);
        assert_eq!(texel(255, 255, 255, 255), [235, 128, 128, 255]);
        assert_eq!(texel(255, 0, 0, 255), [81, 90, 240, 255]);
        assert_eq!(texel(0, 0, 255, 255), [41, 240, 110, 255]);
        // Half transparent white: premultiplied.
        assert_eq!(texel(255, 255, 255, 128), [118, 64, 64, 128]);
        assert_eq!(texel(255, 255, 255, 0), [0, 0, 0, 0]);
    }

    #[test]
    fn primaries_match_bt709_and_full_range() {
        // BT.709 limited: red (63, 102, 240), blue (32, 240, 118), as ffmpeg's and zimg's
        // tables give them; full range: white 255, black 0.
        let bt709 = VideoColour::default();
        let texel = |colour, r, g, b| premultiplied_yuva(colour, r, g, b, 255).to_le_bytes();
        assert_eq!(texel(bt709, 255, 0, 0), [63, 102, 240, 255]);
        assert_eq!(texel(bt709, 0, 0, 255), [32, 240, 118, 255]);
        let full = VideoColour {
            range: ColourRange::Full,
            ..bt709
        };
        assert_eq!(texel(full, 255, 255, 255), [255, 128, 128, 255]);
        assert_eq!(texel(full, 0, 0, 0), [0, 128, 128, 255]);
    }

    #[test]
    fn chroma_taps_follow_the_site() {
        assert_eq!(chroma_taps(ChromaSite::Left), [[1, 2, 1], [0, 2, 2]]);
        assert_eq!(chroma_taps(ChromaSite::Centre), [[0, 2, 2], [0, 2, 2]]);
        assert_eq!(chroma_taps(ChromaSite::TopLeft), [[1, 2, 1], [1, 2, 1]]);
    }

    #[test]
    fn rgba_length_is_checked() {
        assert!(YuvaImage::from_rgba(2, 2, &[0; 15], BT601).is_err());
        assert!(YuvaImage::from_rgba(0, 2, &[], BT601).is_err());
        assert!(YuvaImage::from_rgba(2, 2, &[0; 16], BT601).is_ok());
    }

    fn encode_png(width: u32, height: u32, color: png::ColorType, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(color);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(data).unwrap();
        writer.finish().unwrap();
        out
    }

    #[test]
    fn png_colour_types_become_rgba() {
        let gray = encode_png(2, 1, png::ColorType::Grayscale, &[0, 255]);
        assert_eq!(
            decode_png_rgba(&gray).unwrap(),
            (2, 1, vec![0, 0, 0, 255, 255, 255, 255, 255])
        );
        let rgb = encode_png(1, 1, png::ColorType::Rgb, &[1, 2, 3]);
        assert_eq!(decode_png_rgba(&rgb).unwrap(), (1, 1, vec![1, 2, 3, 255]));
        let rgba = encode_png(1, 1, png::ColorType::Rgba, &[1, 2, 3, 4]);
        assert_eq!(YuvaImage::from_png(&rgba, BT601).unwrap().width(), 1);
    }

    #[test]
    fn broken_png_is_an_error() {
        let good = encode_png(4, 4, png::ColorType::Rgba, &[7; 64]);
        assert!(YuvaImage::from_png(&[], BT601).is_err());
        assert!(YuvaImage::from_png(b"not a png at all", BT601).is_err());
        assert!(YuvaImage::from_png(&good[..good.len() / 2], BT601).is_err());
        let mut corrupt = good.clone();
        let last = corrupt.len() - 20;
        corrupt[last] ^= 0xff;
        assert!(YuvaImage::from_png(&corrupt, BT601).is_err());
    }
}
