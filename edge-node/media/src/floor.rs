//! The bench baseline: the node minus compose and send. The same [`Ingest`] and the same
//! [`Encoder`] settings as the node, frames pushed straight from ingest into one encoder, and
//! node latency measured with the node's definition: decoded source frame received -> encoded
//! frame out.

use crate::encode::{Encoder, EncoderConfig};
use crate::ingest::{Ingest, IngestConfig, VideoFormat};
use crate::MediaError;
use edge_core::sei::unix_now_us;
use edge_core::stats::LatencySamples;
use edge_core::{EncodedFrame, I420Frame, PlaneLayout};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How long the floor waits for the upstream's first frame.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(15);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct FloorReport {
    pub format: VideoFormat,
    pub encoder: String,
    pub frames_decoded: u64,
    pub frames_encoded: u64,
    /// Frames pushed into the encoder that never came out (encoder fell behind).
    pub frames_dropped: u64,
    /// Decoded frame received -> encoded access unit out, per frame after the warm-up.
    pub latency: LatencySamples,
    /// Buffer into the video decoder -> decoded frame out of it.
    pub decode_latency: LatencySamples,
    /// Frame pushed into the encoder -> access unit out.
    pub encode_latency: LatencySamples,
}

#[derive(Default)]
struct Collected {
    /// Frames received before this wall-clock time only warm the pipeline up.
    warmup_end_unix_us: u64,
    latency: LatencySamples,
    frames_encoded: u64,
}

struct EncodeSide {
    encoder: Option<(PlaneLayout, Encoder)>,
    fps: u32,
    frames_dropped: u64,
    encode_latency: LatencySamples,
    error: Option<MediaError>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poisoning only means a callback panicked; the counters stay meaningful.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs decode -> encode of `uri` and reports the floor: `warmup` after the first frame (encoder
/// start-up, decoder warm-up) is not measured, then `duration` is.
pub fn run_floor(
    uri: &str,
    duration: Duration,
    warmup: Duration,
) -> Result<FloorReport, MediaError> {
    run_floor_with(IngestConfig::new(uri), duration, warmup)
}

/// [`run_floor`] with full control over the ingest settings (asset directory, timeouts).
pub fn run_floor_with(
    config: IngestConfig,
    duration: Duration,
    warmup: Duration,
) -> Result<FloorReport, MediaError> {
    let collected = Arc::new(Mutex::new(Collected {
        // Nothing is measured until the first frame has set the real end of the warm-up.
        warmup_end_unix_us: u64::MAX,
        ..Collected::default()
    }));
    let side = Arc::new(Mutex::new(EncodeSide {
        encoder: None,
        fps: 0,
        frames_dropped: 0,
        encode_latency: LatencySamples::default(),
        error: None,
    }));
    let sink_side = side.clone();
    let sink_collected = collected.clone();
    let ingest = Ingest::start(
        config,
        move |frame| push_frame(&sink_side, &sink_collected, frame),
        |event| tracing::info!(?event, "floor upstream"),
    )?;
    let format = ingest.wait_first_frame(FIRST_FRAME_TIMEOUT)?;
    // Frames before this point only warmed the decoder; the encoder starts with the known rate.
    lock(&collected).warmup_end_unix_us = unix_now_us() + warmup.as_micros() as u64;
    lock(&side).fps = format.fps.round().max(1.0) as u32;
    std::thread::sleep(warmup + duration);
    let metrics = ingest.metrics();
    ingest.stop();

    let mut side = lock(&side);
    if let Some(error) = side.error.take() {
        return Err(error);
    }
    let mut encoder_name = String::new();
    if let Some((_, encoder)) = side.encoder.take() {
        encoder_name = encoder.name().to_owned();
        side.encode_latency.merge(&encoder.take_encode_latency());
        let stats = encoder.finish(DRAIN_TIMEOUT)?;
        side.frames_dropped += stats.frames_dropped;
    }
    let collected = lock(&collected);
    Ok(FloorReport {
        format,
        encoder: encoder_name,
        frames_decoded: metrics.frames_total(),
        frames_encoded: collected.frames_encoded,
        frames_dropped: side.frames_dropped,
        latency: collected.latency.clone(),
        decode_latency: metrics.take_decode_latency(),
        encode_latency: side.encode_latency.clone(),
    })
}

/// The ingest sink: (re)creates the encoder for the frame's size, then pushes.
fn push_frame(side: &Mutex<EncodeSide>, collected: &Arc<Mutex<Collected>>, frame: I420Frame) {
    let mut side = lock(side);
    if side.fps == 0 || side.error.is_some() {
        return;
    }
    if side.encoder.as_ref().map(|(l, _)| *l) != Some(frame.layout) {
        if let Some((_, old)) = side.encoder.take() {
            let stats = old.stats();
            side.frames_dropped += stats.frames_in.saturating_sub(stats.frames_out);
            side.encode_latency.merge(&old.take_encode_latency());
        }
        let config = EncoderConfig::for_format(frame.layout.width, frame.layout.height, side.fps);
        let collected = collected.clone();
        match Encoder::new(config, move |out: EncodedFrame| {
            let latency_us = out
                .encoded_unix_us
                .saturating_sub(out.meta.received_unix_us);
            let mut c = lock(&collected);
            c.frames_encoded += 1;
            if out.meta.received_unix_us >= c.warmup_end_unix_us {
                c.latency.record_ms(latency_us as f64 / 1e3);
            }
        }) {
            Ok(encoder) => side.encoder = Some((frame.layout, encoder)),
            Err(e) => {
                side.error = Some(e);
                return;
            }
        }
    }
    if let Some((_, encoder)) = &side.encoder {
        if let Err(e) = encoder.push(frame.data, frame.meta, false) {
            side.error = Some(e);
        }
    }
}
