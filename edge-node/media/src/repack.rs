//! Copies a mapped GStreamer I420 frame into edge-core's tight layout (stride == width).
//!
//! Decoders pad their rows (avdec_h264 aligns strides to 32 or 64 bytes) and may hand out odd
//! sizes; the rest of the node wants one contiguous buffer with even dimensions. An odd width or
//! height drops its last column or row, which keeps every frame usable without a scaler.

use bytes::Bytes;
use edge_core::PlaneLayout;
use gst_video::prelude::*;

/// Returns the tight layout and bytes, or `None` when the frame is smaller than 2x2 or its
/// planes are shorter than their strides claim (a broken buffer is dropped, never a panic).
pub(crate) fn tight_i420(
    frame: &gst_video::VideoFrameRef<&gst::BufferRef>,
) -> Option<(PlaneLayout, Bytes)> {
    let layout = PlaneLayout::new(frame.width() & !1, frame.height() & !1).ok()?;
    let mut out = Vec::with_capacity(layout.total_len());
    let strides = frame.plane_stride();
    let planes = [
        (0u32, layout.width as usize, layout.height as usize),
        (
            1,
            layout.chroma_width() as usize,
            layout.chroma_height() as usize,
        ),
        (
            2,
            layout.chroma_width() as usize,
            layout.chroma_height() as usize,
        ),
    ];
    for (plane, row_len, rows) in planes {
        let data = frame.plane_data(plane).ok()?;
        let stride = usize::try_from(*strides.get(plane as usize)?).ok()?;
        copy_plane(data, stride, row_len, rows, &mut out)?;
    }
    Some((layout, Bytes::from(out)))
}

/// Appends `rows` rows of `row_len` bytes, read `stride` bytes apart, to `out`.
pub(crate) fn copy_plane(
    data: &[u8],
    stride: usize,
    row_len: usize,
    rows: usize,
    out: &mut Vec<u8>,
) -> Option<()> {
    if stride == row_len {
        // Already tight: one copy instead of one per row.
        out.extend_from_slice(data.get(..row_len * rows)?);
        return Some(());
    }
    if stride < row_len {
        return None;
    }
    for row in 0..rows {
        let start = row * stride;
        out.extend_from_slice(data.get(start..start + row_len)?);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_rows_are_packed() {
        // 3 rows of 2 bytes, stride 4.
        let data = [1, 2, 0, 0, 3, 4, 0, 0, 5, 6, 0, 0];
        let mut out = Vec::new();
        copy_plane(&data, 4, 2, 3, &mut out).unwrap();
        assert_eq!(out, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn last_row_may_omit_its_padding() {
        let data = [1, 2, 0, 0, 3, 4];
        let mut out = Vec::new();
        copy_plane(&data, 4, 2, 2, &mut out).unwrap();
        assert_eq!(out, vec![1, 2, 3, 4]);
    }

    #[test]
    fn short_plane_is_refused() {
        let mut out = Vec::new();
        assert!(copy_plane(&[1, 2, 3], 2, 2, 2, &mut out).is_none());
        assert!(copy_plane(&[1, 2, 3, 4], 1, 2, 2, &mut out).is_none());
    }
}
