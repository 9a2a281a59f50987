//! Planar YUV frames and the timestamps that travel with them through every stage.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Identity and timing of one decoded source frame. Travels unchanged from ingest to delivery
/// so that every stage can report its latency against the same origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameMeta {
    /// Monotonic sequence number assigned at ingest (gaps mean frames dropped before compose).
    pub seq: u64,
    /// Presentation time in the upstream's running time, nanoseconds.
    pub pts_ns: u64,
    /// Wall-clock time at which the node received the decoded frame, microseconds since the
    /// Unix epoch. This is the value written into every encoded frame's SEI.
    pub received_unix_us: u64,
}

/// Byte offsets and strides of the three planes of an I420 buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlaneLayout {
    pub width: u32,
    pub height: u32,
}

impl PlaneLayout {
    /// I420 needs even dimensions so that each chroma sample covers exactly 2x2 luma samples.
    pub fn new(width: u32, height: u32) -> Result<Self, FrameError> {
        if width == 0 || height == 0 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            return Err(FrameError::OddDimensions { width, height });
        }
        Ok(Self { width, height })
    }
    pub fn luma_len(&self) -> usize {
        self.width as usize * self.height as usize
    }
    pub fn chroma_width(&self) -> u32 {
        self.width / 2
    }
    pub fn chroma_height(&self) -> u32 {
        self.height / 2
    }
    pub fn chroma_len(&self) -> usize {
        self.chroma_width() as usize * self.chroma_height() as usize
    }
    /// Total bytes: Y, then U, then V, tightly packed (stride == width).
    pub fn total_len(&self) -> usize {
        self.luma_len() + 2 * self.chroma_len()
    }
    pub fn u_offset(&self) -> usize {
        self.luma_len()
    }
    pub fn v_offset(&self) -> usize {
        self.luma_len() + self.chroma_len()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("I420 needs even, non-zero dimensions, got {width}x{height}")]
    OddDimensions { width: u32, height: u32 },
    #[error("I420 {width}x{height} needs {expected} bytes, got {actual}")]
    WrongLength {
        width: u32,
        height: u32,
        expected: usize,
        actual: usize,
    },
}

/// A decoded frame in tightly packed I420 (stride == width), cheap to clone.
#[derive(Clone, Debug)]
pub struct I420Frame {
    pub layout: PlaneLayout,
    pub data: Bytes,
    pub meta: FrameMeta,
    /// The colour description the decoder gave this picture, when known: an upstream may
    /// change it mid-stream (a new SPS at a resolution change), and overlays and the encoded
    /// stream's VUI follow it. `None`: whatever the consumer was told last.
    pub colour: Option<crate::VideoColour>,
}

impl I420Frame {
    pub fn new(layout: PlaneLayout, data: Bytes, meta: FrameMeta) -> Result<Self, FrameError> {
        if data.len() != layout.total_len() {
            return Err(FrameError::WrongLength {
                width: layout.width,
                height: layout.height,
                expected: layout.total_len(),
                actual: data.len(),
            });
        }
        Ok(Self {
            layout,
            data,
            meta,
            colour: None,
        })
    }

    /// The same picture, described as `colour`.
    pub fn with_colour(mut self, colour: crate::VideoColour) -> Self {
        self.colour = Some(colour);
        self
    }
    pub fn y(&self) -> &[u8] {
        &self.data[..self.layout.luma_len()]
    }
    pub fn u(&self) -> &[u8] {
        &self.data[self.layout.u_offset()..self.layout.v_offset()]
    }
    pub fn v(&self) -> &[u8] {
        &self.data[self.layout.v_offset()..]
    }
}

/// One encoded access unit (Annex B, frame-clock SEI in band) ready for delivery.
#[derive(Clone, Debug)]
pub struct EncodedFrame {
    /// The source frame this access unit was rendered from.
    pub meta: FrameMeta,
    /// True for an IDR (SPS/PPS in band): it opens a new MoQ group.
    pub keyframe: bool,
    pub data: Bytes,
    /// Wall-clock time at which the encoder handed this frame out, microseconds since the epoch.
    pub encoded_unix_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_offsets_for_720p() {
        let l = PlaneLayout::new(1280, 720).unwrap();
        assert_eq!(l.luma_len(), 921_600);
        assert_eq!(l.chroma_len(), 230_400);
        assert_eq!(l.total_len(), 1_382_400);
        assert_eq!(l.v_offset(), 921_600 + 230_400);
    }

    #[test]
    fn odd_dimensions_are_refused() {
        assert!(PlaneLayout::new(1279, 720).is_err());
        assert!(PlaneLayout::new(0, 720).is_err());
    }

    #[test]
    fn frame_length_is_checked() {
        let l = PlaneLayout::new(4, 2).unwrap();
        let meta = FrameMeta {
            seq: 0,
            pts_ns: 0,
            received_unix_us: 0,
        };
        assert!(I420Frame::new(l, Bytes::from(vec![0; 12]), meta).is_ok());
        assert_eq!(
            I420Frame::new(l, Bytes::from(vec![0; 11]), meta).unwrap_err(),
            FrameError::WrongLength {
                width: 4,
                height: 2,
                expected: 12,
                actual: 11
            }
        );
    }
}
