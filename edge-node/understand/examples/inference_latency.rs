//! Per-model latency on a 720p I420 frame (the astronaut portrait on a grey 1280x720 canvas):
//! preprocessing from the planar frame, ONNX Runtime's run, decoding, as p50/p99 ms.
//!
//!   cargo run --release -p edge-understand --example inference_latency -- [RUNS] [cpu|cuda|tensorrt] [THREADS]

use edge_core::frame::FrameMeta;
use edge_core::stats::LatencySamples;
use edge_understand::{ExecutionProvider, Model, RgbImage, Runtime, RuntimeOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(50);
    let execution_provider = match args.next().as_deref() {
        None | Some("cpu") => ExecutionProvider::Cpu,
        Some("cuda") => ExecutionProvider::Cuda { device_id: 0 },
        Some("tensorrt") => ExecutionProvider::Tensorrt { device_id: 0 },
        Some(other) => return Err(format!("unknown execution provider {other:?}").into()),
    };
    let intra_threads: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let portrait = RgbImage::load_png(&root.join(".cache/assets/astronaut.png"))?;
    let frame = on_canvas(&portrait, 1280, 720).to_i420(FrameMeta {
        seq: 0,
        pts_ns: 0,
        received_unix_us: 0,
    })?;
    let runtime = Runtime::load(&RuntimeOptions {
        execution_provider,
        intra_threads,
        ..RuntimeOptions::default()
    })?;
    println!(
        "720p I420, {runs} runs after 3 warm-up, intra-op threads {}, {} cores",
        runtime.options().intra_threads,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "model        provider  tensor    found  prep p50 | infer p50   p99  | total p50   p99"
    );
    for name in ["centerface", "ppocr-det"] {
        let mut model = Model::load(&runtime, &edge_understand::models_dir().join(name))?;
        for _ in 0..3 {
            model.detect_i420(&frame)?;
        }
        let mut prep = LatencySamples::default();
        let (mut inference, mut total) = (LatencySamples::default(), LatencySamples::default());
        let mut found = 0;
        for _ in 0..runs {
            let d = model.detect_i420(&frame)?;
            prep.record_ms(d.timings.preprocess_ms);
            inference.record_ms(d.timings.inference_ms);
            total.record_ms(d.timings.total_ms());
            found = d.detections.len();
        }
        let size = edge_understand::preprocess::tensor_size(
            &model.descriptor().input.size,
            (frame.layout.width, frame.layout.height),
        );
        let (i, t) = (inference.percentiles(), total.percentiles());
        println!(
            "{name:<12} {:<9} {:<9} {found:>5}  {:>8.1} | {:>9.1} {:>5.1}  | {:>9.1} {:>5.1}",
            format!("{:?}", model.execution_provider())
                .split_whitespace()
                .next()
                .unwrap_or_default(),
            format!("{}x{}", size.0, size.1),
            prep.percentiles().p50,
            i.p50,
            i.p99,
            t.p50,
            t.p99
        );
    }
    Ok(())
}

/// `image` centred on a mid-grey `width` x `height` canvas.
fn on_canvas(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let mut data = vec![128u8; (width * height * 3) as usize];
    let (w, h) = (image.width.min(width), image.height.min(height));
    let (ox, oy) = ((width - w) / 2, (height - h) / 2);
    for y in 0..h {
        let src = (y * image.width * 3) as usize;
        let dst = (((y + oy) * width + ox) * 3) as usize;
        data[dst..dst + (w * 3) as usize].copy_from_slice(&image.data[src..src + (w * 3) as usize]);
    }
    RgbImage::new(width, height, data).expect("canvas sized from its dimensions")
}
