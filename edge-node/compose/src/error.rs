//! Errors of the compositor. Every input from outside (frames, jobs, PNG bytes) is checked and
//! answered with one of these, never a panic.

use crate::job::{OverlayId, Roi};

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("no usable GPU adapter among backends {backends}: {detail}")]
    NoAdapter { backends: String, detail: String },
    #[error("adapter {adapter} refused to create a device: {source}")]
    RequestDevice {
        adapter: String,
        #[source]
        source: wgpu::RequestDeviceError,
    },
    #[error("overlay PNG could not be decoded: {0}")]
    Png(#[from] png::DecodingError),
    #[error("invalid overlay image: {0}")]
    InvalidOverlay(String),
    #[error("unknown overlay {0:?}")]
    UnknownOverlay(OverlayId),
    #[error("invalid source frame: {0}")]
    InvalidSource(String),
    #[error("invalid output size {width}x{height}: {reason}")]
    InvalidOutput {
        width: u32,
        height: u32,
        reason: &'static str,
    },
    #[error("ROI {roi:?} must be finite, non-empty and inside the {source_width}x{source_height} source")]
    InvalidRoi {
        roi: Roi,
        source_width: u32,
        source_height: u32,
    },
    #[error("overlay opacity must be finite, got {0}")]
    InvalidOpacity(f32),
    #[error("GPU error: {0}")]
    Gpu(String),
    /// The device is gone (driver reset, GPU removed): build a new `Compositor`.
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
    #[error("reading back a composed frame failed: {0}")]
    Readback(String),
}
