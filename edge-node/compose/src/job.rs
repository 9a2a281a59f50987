//! What one render group asks of the compositor for one source frame: plain data, no GPU.

use bytes::Bytes;
use edge_core::{FrameMeta, PlaneLayout};

/// Handle of an overlay uploaded once and reused by any number of jobs and frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OverlayId(pub(crate) u64);

/// Region of the source frame to show, in source luma pixels. Fractional values are allowed
/// (a smooth zoom); the region must lie inside the source.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Roi {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

impl Roi {
    /// The whole source frame: with an output of the source size this is the copy fast path.
    pub fn full(source: PlaneLayout) -> Self {
        Self {
            x: 0.0,
            y: 0.0,
            width: source.width as f32,
            height: source.height as f32,
        }
    }
}

/// One overlay drawn into one job's output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OverlayPlacement {
    pub overlay: OverlayId,
    /// Top-left corner in output luma pixels. May be negative or past the frame: the overlay
    /// is clipped to the frame.
    pub x: i32,
    pub y: i32,
    /// Multiplies the overlay's own alpha; clamped to 0..=1.
    pub opacity: f32,
}

/// One rendering of the source frame: what a render group's encoder receives.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderJob {
    /// Output size (even, non-zero).
    pub output: PlaneLayout,
    /// Source region scaled into the whole output.
    pub roi: Roi,
    /// Drawn in order, later ones on top.
    pub overlays: Vec<OverlayPlacement>,
}

impl RenderJob {
    /// The source as it is, plus overlays.
    pub fn identity(source: PlaneLayout, overlays: Vec<OverlayPlacement>) -> Self {
        Self {
            output: source,
            roi: Roi::full(source),
            overlays,
        }
    }
}

/// One composed frame in tight I420 (stride == width), ready for the encoder.
#[derive(Clone, Debug)]
pub struct ComposedFrame {
    pub layout: PlaneLayout,
    pub data: Bytes,
    /// The source frame's identity and timestamps, unchanged.
    pub meta: FrameMeta,
}
