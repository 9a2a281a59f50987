//! A viewer: subscribes to `live`, decodes with GStreamer, and measures edge-to-viewer latency
//! from the frame-clock SEI of every frame. Used by `edge-node view`, `demo` and `bench`.

use anyhow::{Context, Result};
use edge_control::viewer_control::{self, ControlMessage};
use edge_core::sei;
use edge_core::stats::{LatencySamples, Percentiles};
use edge_deliver::client::{self, ClientOptions};
use edge_media::{DecodedFrame, ViewDecoder};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use url::Url;

#[derive(Clone, Debug)]
pub struct ViewOptions {
    pub url: Url,
    pub duration: Duration,
    /// Decode every frame (needed for snapshots; a bench subscriber may skip it to spare CPU).
    pub decode: bool,
    pub snapshot: Option<PathBuf>,
    pub cert_sha256: Option<String>,
    /// Ignore latency samples of frames received in the first moments (connection warm-up).
    pub warmup: Duration,
    /// Control messages sent once the first frame arrived, in order (zoom, taps).
    pub commands: Vec<ControlMessage>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ViewReport {
    pub url: String,
    pub frames_received: u64,
    pub keyframes: u64,
    pub frames_decoded: u64,
    /// Frames missing between received ones, judged from the source frame clock.
    pub frames_skipped: u64,
    /// MoQ groups (GOPs) never received: the viewer was moved to a newer group.
    pub groups_skipped: u64,
    pub frames_without_timestamp: u64,
    /// Frame-clock (SEI) times of the first and last frames received, µs since the epoch.
    pub first_frame_clock_us: Option<u64>,
    pub last_frame_clock_us: Option<u64>,
    /// The longest wait between two received frames: an upstream outage shows here.
    pub longest_gap_ms: f64,
    pub edge_to_viewer_ms: Percentiles,
    pub bytes_received: u64,
    pub snapshot: Option<String>,
    pub snapshot_size: Option<(u32, u32)>,
}

/// Runs one viewer for `options.duration` (or until the stream ends) and reports.
pub async fn run(options: ViewOptions, frame_interval: Duration) -> Result<ViewReport> {
    let mut subscription = client::subscribe(
        &options.url,
        ClientOptions {
            cert_sha256: options.cert_sha256.clone(),
            ..ClientOptions::default()
        },
    )
    .await
    .with_context(|| format!("subscribing to {}", options.url))?;

    let latest_decoded: Arc<Mutex<Option<DecodedFrame>>> = Arc::default();
    let decoded_count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let decoder = if options.decode || options.snapshot.is_some() {
        let (latest, count) = (latest_decoded.clone(), decoded_count.clone());
        Some(ViewDecoder::new(move |frame: DecodedFrame| {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            *latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(frame);
        })?)
    } else {
        None
    };

    let mut report = ViewReport {
        url: options.url.to_string(),
        ..ViewReport::default()
    };
    let mut latency = LatencySamples::default();
    let mut last_clock_us: Option<u64> = None;
    let mut last_group: Option<u64> = None;
    let mut last_arrival: Option<Instant> = None;
    let started = Instant::now();
    let warmup_until = started + options.warmup;
    let deadline = tokio::time::Instant::now() + options.duration;

    loop {
        let next = tokio::time::timeout_at(deadline, subscription.next_frame()).await;
        let frame = match next {
            Err(_) => break,   // duration reached
            Ok(None) => break, // the node ended the stream
            Ok(Some(frame)) => frame,
        };
        report.frames_received += 1;
        if report.frames_received == 1 {
            for command in &options.commands {
                subscription
                    .send_control(viewer_control::encode(command).as_bytes())
                    .context("sending a control message")?;
            }
        }
        let arrival = Instant::now();
        if let Some(prev) = last_arrival {
            report.longest_gap_ms = report
                .longest_gap_ms
                .max((arrival - prev).as_secs_f64() * 1e3);
        }
        last_arrival = Some(arrival);
        report.bytes_received += frame.data.len() as u64;
        if frame.keyframe {
            report.keyframes += 1;
        }
        if let Some(prev) = last_group {
            report.groups_skipped += frame.group_sequence.saturating_sub(prev + 1);
        }
        last_group = Some(frame.group_sequence);

        match sei::read_frame_clock(&frame.data) {
            Some(clock_us) => {
                if Instant::now() >= warmup_until {
                    latency.record(Duration::from_micros(
                        frame.received_unix_us.saturating_sub(clock_us),
                    ));
                }
                if let Some(prev) = last_clock_us {
                    report.frames_skipped += missing_frames(prev, clock_us, frame_interval);
                }
                last_clock_us = Some(clock_us);
                report.first_frame_clock_us.get_or_insert(clock_us);
                report.last_frame_clock_us = Some(clock_us);
            }
            None => report.frames_without_timestamp += 1,
        }
        if let Some(decoder) = &decoder {
            decoder.push(&frame.data, frame.timestamp_us)?;
        }
    }
    // The node hears the viewer leave now, not at its idle timeout.
    subscription
        .finish("viewer left", Duration::from_secs(1))
        .await;
    if let Some(decoder) = decoder {
        decoder.finish(Duration::from_secs(2))?;
    }
    report.frames_decoded = decoded_count.load(std::sync::atomic::Ordering::Relaxed);
    report.edge_to_viewer_ms = latency.percentiles();

    if let Some(path) = &options.snapshot {
        let latest = latest_decoded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let frame = latest.context("no frame was decoded, so there is no snapshot")?;
        edge_media::write_png_snapshot(&frame, path)
            .with_context(|| format!("writing {}", path.display()))?;
        report.snapshot = Some(path.display().to_string());
        report.snapshot_size = Some((frame.width, frame.height));
    }
    Ok(report)
}

/// Frames missing between two source frame-clock times `frame_interval` apart.
fn missing_frames(prev_us: u64, now_us: u64, frame_interval: Duration) -> u64 {
    let interval_us = frame_interval.as_micros().max(1) as u64;
    let gap_us = now_us.saturating_sub(prev_us);
    // Half an interval of tolerance absorbs upstream jitter.
    let intervals = (gap_us + interval_us / 2) / interval_us;
    intervals.saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_frames_from_clock_gaps() {
        let i = Duration::from_micros(33_333);
        assert_eq!(missing_frames(0, 33_333, i), 0);
        assert_eq!(missing_frames(0, 40_000, i), 0);
        assert_eq!(missing_frames(0, 66_666, i), 1);
        assert_eq!(missing_frames(0, 333_330, i), 9);
        assert_eq!(missing_frames(100, 100, i), 0);
    }
}
