//! Every way understanding can fail to start or to run, each naming the file or model at fault.

use std::fmt;
use std::path::PathBuf;

/// A place the ONNX Runtime library was looked for, and why it was looked for there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookedAt {
    pub path: PathBuf,
    /// Where this candidate came from: `config`, `ORT_DYLIB_PATH`, `EDGE_NODE_ORT_DIR`,
    /// `next to the executable`, `repository`.
    pub origin: &'static str,
}

impl fmt::Display for LookedAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.path.display(), self.origin)
    }
}

fn list(looked: &[LookedAt]) -> String {
    looked
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, thiserror::Error)]
pub enum UnderstandError {
    #[error("ONNX Runtime library not found; looked at: {}. Run `make setup`, or point `ORT_DYLIB_PATH` at libonnxruntime.so", list(.looked))]
    LibraryNotFound { looked: Vec<LookedAt> },

    #[error("ONNX Runtime library {path} ({origin}) could not be loaded: {reason}")]
    LibraryLoad {
        path: PathBuf,
        origin: &'static str,
        reason: String,
    },

    #[error(
        "ONNX Runtime was already loaded from {loaded} in this process; cannot switch to {wanted}"
    )]
    LibraryConflict { loaded: PathBuf, wanted: PathBuf },

    #[error("ONNX Runtime environment: {0}")]
    Environment(String),

    #[error("model descriptor {path} not found (a model directory needs a model.toml)")]
    DescriptorMissing { path: PathBuf },

    #[error("model descriptor {path}: {reason}")]
    DescriptorInvalid { path: PathBuf, reason: String },

    #[error("model {model}: weights {path} not found. Run `make setup` to fetch them")]
    WeightsMissing { model: String, path: PathBuf },

    #[error("model {model}: weights {path} could not be loaded: {reason}")]
    WeightsLoad {
        model: String,
        path: PathBuf,
        reason: String,
    },

    #[error("model {model}: {path} does not match its descriptor: {reason}")]
    WeightsMismatch {
        model: String,
        path: PathBuf,
        reason: String,
    },

    #[error("model {model}: inference failed: {reason}")]
    Inference { model: String, reason: String },

    #[error("image {path}: {reason}")]
    Image { path: PathBuf, reason: String },
}

pub type Result<T, E = UnderstandError> = std::result::Result<T, E>;
