//! The one error type of this crate. Messages are written for an operator reading a log line or
//! the single line `edge-node serve` prints before exiting.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("GStreamer could not be initialised: {0}")]
    Init(String),

    #[error("unsupported upstream URI {uri:?}: {reason}")]
    UnsupportedUri { uri: String, reason: String },

    #[error("upstream file {} does not exist", path.display())]
    FileNotFound { path: PathBuf },

    #[error("test show asset astronaut.png not found; looked at: {}. Run `make setup` to fetch it (or set EDGE_NODE_ASSET_DIR)", looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    MissingAsset { looked: Vec<PathBuf> },

    #[error("GStreamer element `{element}` is not installed: {hint}")]
    MissingElement { element: String, hint: &'static str },

    #[error("no H.264 encoder is installed (looked for nvh264enc, vah264enc, qsvh264enc, x264enc): install gstreamer1.0-plugins-ugly for x264enc")]
    NoH264Encoder,

    #[error("invalid {what}: {reason}")]
    InvalidConfig { what: &'static str, reason: String },

    #[error("could not build the {stage} pipeline: {reason}")]
    Pipeline { stage: &'static str, reason: String },

    #[error("the {stage} pipeline failed: {reason}")]
    PipelineFailed { stage: &'static str, reason: String },

    #[error("upstream {uri} delivered no frame within {waited_ms} ms ({detail})")]
    NoFirstFrame {
        uri: String,
        waited_ms: u64,
        detail: String,
    },

    #[error("upstream {uri} cannot be decoded: {reason}")]
    UnsupportedMedia { uri: String, reason: String },

    #[error("the ingest of {uri} was stopped before its first frame")]
    Stopped { uri: String },

    #[error("frame is {actual} bytes but I420 {width}x{height} needs {expected}")]
    WrongFrameSize {
        width: u32,
        height: u32,
        expected: usize,
        actual: usize,
    },

    #[error("could not write snapshot {}: {reason}", path.display())]
    Snapshot { path: PathBuf, reason: String },

    #[error("timed out after {waited_ms} ms waiting for the {stage} pipeline to drain")]
    DrainTimeout { stage: &'static str, waited_ms: u64 },
}
