//! Measures the encode and viewer-decode latency of this crate's wrappers on real content.
//!
//! Captures two seconds of the built-in test show at each size, stops it (so the origin's own
//! encoder does not compete for the CPU), then feeds the frames to [`Encoder`] at 30 fps and the
//! resulting access units to [`ViewDecoder`] at 30 fps, and prints p50/p95/p99 in ms.
//!
//! `cargo run -p edge-media --example media_latency [seconds]` from the workspace root (the
//! test show asset is looked up in `.cache/assets` or `EDGE_NODE_ASSET_DIR`).

use bytes::Bytes;
use edge_core::{EncodedFrame, FrameMeta, I420Frame};
use edge_media::{Encoder, EncoderConfig, Ingest, IngestConfig, ViewDecoder};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FPS: u32 = 30;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    for (width, height) in [(1280, 720), (1920, 1080)] {
        let frames = capture(width, height, 2 * FPS as usize)?;
        let count = seconds as usize * FPS as usize;

        let encoded: Arc<Mutex<Vec<EncodedFrame>>> = Arc::default();
        let sink = encoded.clone();
        let encoder = Encoder::new(EncoderConfig::for_format(width, height, FPS), move |f| {
            sink.lock().expect("collector lock").push(f)
        })?;
        paced(count, |i| {
            let f = &frames[i % frames.len()];
            let meta = FrameMeta {
                seq: i as u64,
                pts_ns: i as u64 * 1_000_000_000 / FPS as u64,
                received_unix_us: f.meta.received_unix_us,
            };
            encoder.push(f.data.clone(), meta, false)
        })?;
        let encode = encoder.take_encode_latency().percentiles();
        let stats = encoder.finish(Duration::from_secs(10))?;

        let decoder = ViewDecoder::new(|_| {})?;
        let aus: Vec<Bytes> = encoded
            .lock()
            .expect("collector lock")
            .iter()
            .map(|f| f.data.clone())
            .collect();
        paced(aus.len(), |i| decoder.push(&aus[i], i as u64 * 33_333))?;
        std::thread::sleep(Duration::from_millis(100));
        let decode = decoder.take_decode_latency().percentiles();
        decoder.finish(Duration::from_secs(10))?;
        let mean_kb = aus.iter().map(|a| a.len()).sum::<usize>() as f64 / aus.len() as f64 / 1e3;
        println!(
            "{width}x{height}@{FPS} {} ({} frames, {} dropped, {mean_kb:.1} KB/AU): \
             encode p50 {:.2} p95 {:.2} p99 {:.2} ms | avdec_h264 decode p50 {:.2} p95 {:.2} p99 {:.2} ms",
            encoder_name(),
            stats.frames_out,
            stats.frames_dropped,
            encode.p50,
            encode.p95,
            encode.p99,
            decode.p50,
            decode.p95,
            decode.p99
        );
    }
    Ok(())
}

fn encoder_name() -> &'static str {
    edge_media::best_h264_encoder().unwrap_or("none")
}

/// Calls `push(i)` for `i` in `0..count` at `FPS`.
fn paced<E>(count: usize, mut push: impl FnMut(usize) -> Result<(), E>) -> Result<(), E> {
    let start = Instant::now();
    for i in 0..count {
        let due = start + Duration::from_secs_f64(i as f64 / FPS as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        push(i)?;
    }
    Ok(())
}

fn capture(width: u32, height: u32, n: usize) -> Result<Vec<I420Frame>, edge_media::MediaError> {
    let frames: Arc<Mutex<Vec<I420Frame>>> = Arc::default();
    let sink = frames.clone();
    let ingest = Ingest::start(
        IngestConfig::new(format!(
            "testshow://?width={width}&height={height}&fps={FPS}"
        )),
        move |f| {
            let mut v = sink.lock().expect("capture lock");
            if v.len() < n {
                v.push(f);
            }
        },
        |_| {},
    )?;
    ingest.wait_first_frame(Duration::from_secs(10))?;
    while frames.lock().expect("capture lock").len() < n {
        std::thread::sleep(Duration::from_millis(50));
    }
    ingest.stop();
    let v = std::mem::take(&mut *frames.lock().expect("capture lock"));
    Ok(v)
}
