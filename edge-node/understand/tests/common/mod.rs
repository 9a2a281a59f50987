//! Shared pieces of the real-model tests: the runtime, the shipped models, the test images.
#![allow(dead_code)] // each test binary uses a different subset

use edge_core::frame::{FrameMeta, I420Frame};
use edge_understand::{Model, RgbImage, Runtime, RuntimeOptions};
use std::path::PathBuf;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The ONNX Runtime setup installs. Missing means setup was not run: fail, saying so.
pub fn runtime() -> Runtime {
    Runtime::load(&RuntimeOptions::default())
        .unwrap_or_else(|e| panic!("{e}\n(run `make setup` to install ONNX Runtime)"))
}

/// A model from `models/`, with its weights fetched by setup.
pub fn model(runtime: &Runtime, name: &str) -> Model {
    Model::load(runtime, &repo_root().join("models").join(name))
        .unwrap_or_else(|e| panic!("{e}\n(run `make setup` to fetch the model weights)"))
}

/// One of scikit-image's test images that setup puts in `.cache/assets/`.
pub fn image(name: &str) -> RgbImage {
    let path = repo_root().join(".cache/assets").join(name);
    RgbImage::load_png(&path)
        .unwrap_or_else(|e| panic!("{e}\n(run `make setup` to fetch the test images)"))
}

/// `image` as a decoded frame `seq` would arrive (I420), 30 fps timestamps.
pub fn to_i420(image: &RgbImage, seq: u64) -> I420Frame {
    let meta = FrameMeta {
        seq,
        pts_ns: seq * 33_333_333,
        received_unix_us: 1_700_000_000_000_000 + seq * 33_333,
    };
    image.to_i420(meta).expect("non-empty test image")
}

/// A 1280x720 frame with `image` in its centre on grey: a 720p source with content.
pub fn frame_720p(image: &RgbImage, seq: u64) -> I420Frame {
    let (w, h) = (1280u32, 720u32);
    let mut data = vec![128u8; (w * h * 3) as usize];
    let (ox, oy) = ((w - image.width.min(w)) / 2, (h - image.height.min(h)) / 2);
    for y in 0..image.height.min(h) {
        for x in 0..image.width.min(w) {
            let s = ((y * image.width + x) * 3) as usize;
            let d = (((y + oy) * w + x + ox) * 3) as usize;
            data[d..d + 3].copy_from_slice(&image.data[s..s + 3]);
        }
    }
    to_i420(&RgbImage::new(w, h, data).expect("sized above"), seq)
}
