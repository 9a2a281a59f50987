//! Shared pieces of the real-model tests: the runtime, the shipped models, the test images.
#![allow(dead_code)] // each test binary uses a different subset

use bytes::Bytes;
use edge_core::frame::{FrameMeta, I420Frame, PlaneLayout};
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

/// `image` as a decoded frame would arrive: I420, BT.601 limited range, even size.
pub fn to_i420(image: &RgbImage, seq: u64) -> I420Frame {
    let (w, h) = (image.width & !1, image.height & !1);
    let layout = PlaneLayout::new(w, h).expect("even, non-zero test image");
    let mut data = vec![0u8; layout.total_len()];
    let rgb = |x: u32, y: u32| {
        let i = (y * image.width + x) as usize * 3;
        [0, 1, 2].map(|c| image.data[i + c] as f32)
    };
    let (luma, chroma) = data.split_at_mut(layout.luma_len());
    let (u_plane, v_plane) = chroma.split_at_mut(layout.chroma_len());
    for y in 0..h {
        for x in 0..w {
            let [r, g, b] = rgb(x, y);
            luma[(y * w + x) as usize] = (16.0 + 0.257 * r + 0.504 * g + 0.098 * b).round() as u8;
        }
    }
    for cy in 0..h / 2 {
        for cx in 0..w / 2 {
            let mut sum = [0.0f32; 3];
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let p = rgb(2 * cx + dx, 2 * cy + dy);
                (0..3).for_each(|c| sum[c] += p[c] / 4.0);
            }
            let [r, g, b] = sum;
            let i = (cy * (w / 2) + cx) as usize;
            u_plane[i] = (128.0 - 0.148 * r - 0.291 * g + 0.439 * b).round() as u8;
            v_plane[i] = (128.0 + 0.439 * r - 0.368 * g - 0.071 * b).round() as u8;
        }
    }
    let meta = FrameMeta {
        seq,
        pts_ns: seq * 33_333_333,
        received_unix_us: 1_700_000_000_000_000 + seq * 33_333,
    };
    I420Frame::new(layout, Bytes::from(data), meta).expect("layout matches data")
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
