//! Content understanding for edge-node: ONNX models through `ort`, off the frame path.
//!
//! Where it sits: decoded frames are *offered* to [`Understanding`] beside the render path;
//! its own thread runs each [`Model`] at its [`Cadence`] on the newest frame and publishes
//! [`Detections`] (in source pixels, tagged with the frame's timestamps) to a callback. The
//! frame path never waits for a result. Placement, zoom and the metadata track consume them.
//!
//! Models are data: `models/<name>/model.toml` ([`ModelDescriptor`]) names the weights, the
//! input layout and normalisation, and the output decoder (a pure function in [`decode`]).
//!
//! ```no_run
//! use edge_understand::{Model, Runtime, RuntimeOptions, Understanding};
//! let runtime = Runtime::load(&RuntimeOptions::default())?;
//! let faces = Model::load(&runtime, &edge_understand::models_dir().join("centerface"))?;
//! let worker = Understanding::start(vec![faces], |d| println!("{} faces", d.detections.len()))?;
//! // per decoded frame: worker.offer(frame.clone());
//! let stats = worker.stop();
//! # Ok::<(), edge_understand::UnderstandError>(())
//! ```

pub mod cadence;
pub mod decode;
pub mod descriptor;
pub mod detection;
pub mod error;
pub mod image;
pub mod model;
pub mod pacing;
pub mod preprocess;
pub mod runtime;
pub mod worker;

pub use cadence::Cadence;
pub use descriptor::ModelDescriptor;
pub use detection::{Detection, Detections};
pub use error::{Result, UnderstandError};
pub use image::RgbImage;
pub use model::Model;
pub use runtime::{ExecutionProvider, Runtime, RuntimeOptions};
pub use worker::{ModelStats, Understanding, UnderstandingStats};

use std::path::{Path, PathBuf};

/// This source tree's root, where setup puts `.cache/` and `models/`.
pub(crate) fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::canonicalize(&root).unwrap_or(root)
}

/// The `models/` directory: `EDGE_NODE_MODELS_DIR`, else the first `models/` beside the
/// executable or in one of its ancestors, else this source tree's.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("EDGE_NODE_MODELS_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let beside_exe = std::env::current_exe().ok().and_then(|exe| {
        exe.parent()?
            .ancestors()
            .map(|d| d.join("models"))
            .find(|d| holds_models(d))
    });
    beside_exe.unwrap_or_else(|| repo_root().join("models"))
}

/// Whether `dir` has at least one `<name>/model.toml`.
fn holds_models(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.path().join(descriptor::DESCRIPTOR_FILE).is_file())
    })
}
