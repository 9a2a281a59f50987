//! Per-stage latency histograms and frame counters, shared by the stages and read by `demo`,
//! `bench` and (later) `/metrics`. Every dropped frame is counted with its stage and reason.

use edge_core::stats::{LatencySamples, Percentiles};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Decode,
    Compose,
    Encode,
    Send,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Decode, Stage::Compose, Stage::Encode, Stage::Send];
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Compose => "compose",
            Stage::Encode => "encode",
            Stage::Send => "send",
        }
    }
}

#[derive(Default)]
pub struct Telemetry {
    stages: Mutex<BTreeMap<Stage, LatencySamples>>,
    node_latency: Mutex<LatencySamples>,
    frames: Mutex<BTreeMap<Stage, u64>>,
    dropped: Mutex<BTreeMap<(Stage, &'static str), u64>>,
    frames_in: AtomicU64,
    upstream_up: AtomicBool,
    /// Samples before this wall-clock time (µs) are not recorded: warm-up for benches.
    record_after_unix_us: AtomicU64,
}

/// A copy of the numbers at one moment, for reports.
#[derive(Clone, Debug, Serialize)]
pub struct TelemetrySnapshot {
    pub node_latency_ms: Percentiles,
    pub node_latency_samples: u64,
    pub stages: BTreeMap<Stage, Percentiles>,
    pub frames: BTreeMap<Stage, u64>,
    pub frames_in: u64,
    pub dropped: BTreeMap<String, u64>,
    pub upstream_up: bool,
}

impl Telemetry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Ignore samples of frames received before `unix_us` (pipeline warm-up).
    pub fn record_after(&self, unix_us: u64) {
        self.record_after_unix_us.store(unix_us, Ordering::Relaxed);
    }

    fn recording(&self, frame_received_unix_us: u64) -> bool {
        frame_received_unix_us >= self.record_after_unix_us.load(Ordering::Relaxed)
    }

    pub fn frame_in(&self) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stage(&self, stage: Stage, frame_received_unix_us: u64, latency: Duration) {
        *lock(&self.frames).entry(stage).or_default() += 1;
        if self.recording(frame_received_unix_us) {
            lock(&self.stages).entry(stage).or_default().record(latency);
        }
    }

    pub fn node_latency(&self, frame_received_unix_us: u64, latency: Duration) {
        if self.recording(frame_received_unix_us) {
            lock(&self.node_latency).record(latency);
        }
    }

    pub fn dropped(&self, stage: Stage, reason: &'static str, count: u64) {
        if count > 0 {
            *lock(&self.dropped).entry((stage, reason)).or_default() += count;
        }
    }

    pub fn set_upstream_up(&self, up: bool) {
        self.upstream_up.store(up, Ordering::Relaxed);
    }

    pub fn dropped_total(&self) -> u64 {
        lock(&self.dropped).values().sum()
    }

    pub fn snapshot(&self) -> TelemetrySnapshot {
        let node = lock(&self.node_latency);
        TelemetrySnapshot {
            node_latency_ms: node.percentiles(),
            node_latency_samples: node.count(),
            stages: lock(&self.stages)
                .iter()
                .map(|(s, l)| (*s, l.percentiles()))
                .collect(),
            frames: lock(&self.frames).clone(),
            frames_in: self.frames_in.load(Ordering::Relaxed),
            dropped: lock(&self.dropped)
                .iter()
                .map(|((stage, reason), n)| (format!("{}/{reason}", stage.as_str()), *n))
                .collect(),
            upstream_up: self.upstream_up.load(Ordering::Relaxed),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section is a single insert or read: a panic elsewhere cannot leave the
    // maps half-updated, so a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn unix_now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_samples_are_not_recorded_but_frames_are_counted() {
        let t = Telemetry::new();
        t.record_after(1_000);
        t.stage(Stage::Compose, 999, Duration::from_millis(50));
        t.stage(Stage::Compose, 1_000, Duration::from_millis(2));
        let s = t.snapshot();
        assert_eq!(s.frames[&Stage::Compose], 2);
        assert_eq!(s.stages[&Stage::Compose].p99, 2.0);
    }

    #[test]
    fn drops_are_keyed_by_stage_and_reason() {
        let t = Telemetry::new();
        t.dropped(Stage::Compose, "behind", 3);
        t.dropped(Stage::Compose, "behind", 2);
        t.dropped(Stage::Send, "before-keyframe", 0);
        assert_eq!(
            t.snapshot().dropped,
            BTreeMap::from([("compose/behind".to_string(), 5)])
        );
        assert_eq!(t.dropped_total(), 5);
    }
}
