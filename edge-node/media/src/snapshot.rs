//! PNG snapshots of I420 frames, for `edge-node view --snapshot` and for tests. Off the frame
//! path, so a plain CPU conversion is fine.

use crate::decode::DecodedFrame;
use crate::MediaError;
use edge_core::{I420Frame, PlaneLayout};
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

/// Anything holding a tight I420 picture.
pub trait I420Image {
    fn layout(&self) -> PlaneLayout;
    /// Y, then U, then V, stride == width.
    fn i420(&self) -> &[u8];
}

impl I420Image for I420Frame {
    fn layout(&self) -> PlaneLayout {
        self.layout
    }
    fn i420(&self) -> &[u8] {
        &self.data
    }
}

impl I420Image for DecodedFrame {
    fn layout(&self) -> PlaneLayout {
        DecodedFrame::layout(self)
    }
    fn i420(&self) -> &[u8] {
        &self.data
    }
}

/// Converts tight I420 to packed RGB (BT.601, limited range, the H.264 default when a stream
/// signals nothing). `None` when `data` is not the size `layout` needs.
pub fn i420_to_rgb(layout: PlaneLayout, data: &[u8]) -> Option<Vec<u8>> {
    if data.len() != layout.total_len()
        || !layout.width.is_multiple_of(2)
        || !layout.height.is_multiple_of(2)
    {
        return None;
    }
    let (w, h) = (layout.width as usize, layout.height as usize);
    let cw = layout.chroma_width() as usize;
    let y_plane = &data[..layout.luma_len()];
    let u_plane = &data[layout.u_offset()..layout.v_offset()];
    let v_plane = &data[layout.v_offset()..];
    let mut rgb = Vec::with_capacity(w * h * 3);
    for row in 0..h {
        for col in 0..w {
            let c = 298 * (y_plane[row * w + col] as i32 - 16);
            let chroma = (row / 2) * cw + col / 2;
            let d = u_plane[chroma] as i32 - 128;
            let e = v_plane[chroma] as i32 - 128;
            let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
            rgb.push(clamp(c + 409 * e));
            rgb.push(clamp(c - 100 * d - 208 * e));
            rgb.push(clamp(c + 516 * d));
        }
    }
    Some(rgb)
}

/// Writes `frame` as an 8-bit RGB PNG. The file appears complete or not at all (written to a
/// temporary name, then renamed), so a watcher never reads half a snapshot.
pub fn write_png_snapshot(frame: &impl I420Image, path: &Path) -> Result<(), MediaError> {
    let fail = |reason: String| MediaError::Snapshot {
        path: path.to_owned(),
        reason,
    };
    let layout = frame.layout();
    let rgb = i420_to_rgb(layout, frame.i420()).ok_or_else(|| {
        fail(format!(
            "frame data is {} bytes, I420 {}x{} needs {}",
            frame.i420().len(),
            layout.width,
            layout.height,
            layout.total_len()
        ))
    })?;
    let tmp = path.with_extension("png.partial");
    let file = File::create(&tmp).map_err(|e| fail(e.to_string()))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), layout.width, layout.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let written = encoder
        .write_header()
        .and_then(|mut w| w.write_image_data(&rgb).and_then(|()| w.finish()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e.to_string()));
    }
    std::fs::rename(&tmp, path).map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_and_primaries_convert() {
        let layout = PlaneLayout::new(2, 2).unwrap();
        // Mid grey: Y=126 (limited), U=V=128.
        let rgb = i420_to_rgb(layout, &[126, 126, 126, 126, 128, 128]).unwrap();
        assert!(rgb.iter().all(|&c| (126..=130).contains(&c)), "{rgb:?}");
        // BT.601 limited-range red: Y=81, U=90, V=240.
        let rgb = i420_to_rgb(layout, &[81, 81, 81, 81, 90, 240]).unwrap();
        assert!(rgb[0] > 250 && rgb[1] < 5 && rgb[2] < 5, "{rgb:?}");
    }

    #[test]
    fn wrong_length_is_refused() {
        let layout = PlaneLayout::new(2, 2).unwrap();
        assert!(i420_to_rgb(layout, &[0; 5]).is_none());
    }
}
