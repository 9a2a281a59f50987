//! Many in-process viewers for capacity benches: real moq-lite/WebTransport subscriptions to
//! the node that count frames without decoding and measure edge-to-viewer latency from each
//! frame's SEI clock (the node's receive time of the source frame) to its arrival. They run on
//! a tokio runtime of their own with threads named [`THREAD_NAME`], so the CPU they take from
//! the node can be measured apart.

use anyhow::{Context, Result};
use edge_core::sei;
use edge_core::stats::{LatencySamples, Percentiles};
use edge_deliver::client::{self, ClientOptions};
use edge_deliver::DeliverError;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;

/// Name of the swarm's runtime threads (also the prefix `/proc` shows them by).
pub const THREAD_NAME: &str = "bench-viewers";
/// Distinct queries whose refusal reasons a tally keeps.
const REFUSAL_QUERIES_KEPT: usize = 4;
/// Joins between two progress lines.
const PROGRESS_EVERY: usize = 25;
/// Edge-to-viewer samples kept per viewer and window (a uniform sample beyond it).
const LATENCY_SAMPLES_KEPT: usize = 4_096;

/// Where one viewer stands.
#[derive(Clone, Debug, PartialEq)]
pub enum ViewerState {
    Connecting,
    /// Subscribed and at least one frame received, of a `width` x `height` rendering.
    Watching {
        width: u32,
        height: u32,
    },
    /// The node refused the session (admission, auth), with its reason.
    Refused(String),
    /// Anything else that ended it (timeout, transport error, stream ended).
    Failed(String),
}

/// How a batch of viewers fared when connecting.
#[derive(Clone, Debug, Default, Serialize)]
pub struct JoinTally {
    pub watching: usize,
    pub refused: usize,
    pub failed: usize,
    /// Still no frame when the wait ended.
    pub pending: usize,
    /// Watching, by rendition height (a lower one is admission's degraded rendition).
    pub watching_by_height: BTreeMap<u32, usize>,
    /// One refusal reason as the node worded it, for the report.
    pub refusal_example: Option<String>,
    /// The first refusal of each of the first few distinct queries: query -> reason.
    pub refusals_by_query: BTreeMap<String, String>,
    pub failure_example: Option<String>,
    pub seconds: f64,
}

impl JoinTally {
    /// Adds a later batch's tally to this one.
    pub fn absorb(&mut self, later: JoinTally) {
        self.watching += later.watching;
        self.refused += later.refused;
        self.failed += later.failed;
        self.pending += later.pending;
        for (height, n) in later.watching_by_height {
            *self.watching_by_height.entry(height).or_default() += n;
        }
        if self.refusal_example.is_none() {
            self.refusal_example = later.refusal_example;
        }
        for (query, reason) in later.refusals_by_query {
            if self.refusals_by_query.len() < REFUSAL_QUERIES_KEPT {
                self.refusals_by_query.entry(query).or_insert(reason);
            }
        }
        if self.failure_example.is_none() {
            self.failure_example = later.failure_example;
        }
        self.seconds += later.seconds;
    }

    /// Counts one viewer where it stood when the wait ended.
    fn count(&mut self, query: &str, state: ViewerState) {
        match state {
            ViewerState::Watching { height, .. } => {
                self.watching += 1;
                *self.watching_by_height.entry(height).or_default() += 1;
            }
            ViewerState::Refused(reason) => {
                self.refused += 1;
                if self.refusals_by_query.len() < REFUSAL_QUERIES_KEPT {
                    self.refusals_by_query
                        .entry(query.to_string())
                        .or_insert_with(|| reason.clone());
                }
                self.refusal_example.get_or_insert(reason);
            }
            ViewerState::Failed(reason) => {
                self.failed += 1;
                self.failure_example.get_or_insert(reason);
            }
            ViewerState::Connecting => self.pending += 1,
        }
    }
}

/// Edge-to-viewer latency of one viewer over a window.
#[derive(Clone, Debug, Default)]
pub struct ViewerLatency {
    pub samples: LatencySamples,
    /// Frames that carried no SEI clock (never expected from the node).
    pub frames_without_clock: u64,
}

impl ViewerLatency {
    fn new() -> Self {
        Self {
            samples: LatencySamples::with_capacity(LATENCY_SAMPLES_KEPT),
            frames_without_clock: 0,
        }
    }

    fn record(&mut self, access_unit: &[u8], received_unix_us: u64) {
        match sei::read_frame_clock(access_unit) {
            Some(clock_us) => self.samples.record(Duration::from_micros(
                received_unix_us.saturating_sub(clock_us),
            )),
            None => self.frames_without_clock += 1,
        }
    }
}

/// Every viewer's edge-to-viewer latency over one window, summarised.
#[derive(Clone, Debug, Default, Serialize)]
pub struct EdgeToViewer {
    /// Every viewer's samples together.
    pub all_ms: Percentiles,
    /// The highest p99 of any one viewer with samples.
    pub worst_viewer_p99_ms: f64,
    /// Viewers with samples whose own p99 exceeded the budget.
    pub viewers_over_budget: usize,
    pub viewers_measured: usize,
    pub frames_without_clock: u64,
}

impl EdgeToViewer {
    /// Summarises per-viewer latencies against `budget_ms`; also returns each viewer's p99
    /// (`None` for a viewer without samples).
    pub fn summarise(viewers: &[ViewerLatency], budget_ms: f64) -> (Self, Vec<Option<f64>>) {
        let mut all = LatencySamples::default();
        let mut summary = EdgeToViewer::default();
        let mut p99s = Vec::with_capacity(viewers.len());
        for viewer in viewers {
            summary.frames_without_clock += viewer.frames_without_clock;
            if viewer.samples.is_empty() {
                p99s.push(None);
                continue;
            }
            let p99 = viewer.samples.percentiles().p99;
            summary.viewers_measured += 1;
            summary.worst_viewer_p99_ms = summary.worst_viewer_p99_ms.max(p99);
            summary.viewers_over_budget += usize::from(p99 > budget_ms);
            all.merge(&viewer.samples);
            p99s.push(Some(p99));
        }
        summary.all_ms = all.percentiles();
        (summary, p99s)
    }
}

struct SwarmViewer {
    frames: Arc<AtomicU64>,
    latency: Arc<Mutex<ViewerLatency>>,
    /// Height of the rendering received (0 before the first frame).
    height: Arc<AtomicU32>,
    state: watch::Receiver<ViewerState>,
    task: JoinHandle<()>,
}

pub struct ViewerSwarm {
    runtime: Option<tokio::runtime::Runtime>,
    viewers: Vec<SwarmViewer>,
    base: Url,
    cert_sha256: String,
}

impl ViewerSwarm {
    /// A swarm of viewers of the node at `base` (its certificate pinned by `cert_sha256`),
    /// running on `threads` worker threads.
    pub fn new(base: Url, cert_sha256: String, threads: usize) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name(THREAD_NAME)
            .enable_all()
            .build()
            .context("starting the bench viewers' runtime")?;
        Ok(Self {
            runtime: Some(runtime),
            viewers: Vec::new(),
            base,
            cert_sha256,
        })
    }

    /// Connects one viewer per query (`zone=...&name=...`), `at_once` at a time, each batch
    /// waiting until every member watches, was refused or failed, or `wait` ran out. One at a
    /// time lets each admission decision see the viewers admitted before it. With a `label`,
    /// progress goes to stderr every [`PROGRESS_EVERY`] viewers.
    pub async fn join(
        &mut self,
        queries: &[String],
        at_once: usize,
        wait: Duration,
        label: &str,
    ) -> JoinTally {
        let started = Instant::now();
        let mut tally = JoinTally::default();
        for batch in queries.chunks(at_once.max(1)) {
            let first = self.viewers.len();
            for query in batch {
                self.spawn(query);
            }
            let deadline = tokio::time::Instant::now() + wait;
            for (viewer, query) in self.viewers[first..].iter_mut().zip(batch) {
                let settled = tokio::time::timeout_at(
                    deadline,
                    viewer
                        .state
                        .wait_for(|s| !matches!(s, ViewerState::Connecting)),
                )
                .await;
                let state = match settled {
                    Ok(Ok(state)) => state.clone(),
                    Ok(Err(_)) => ViewerState::Failed("viewer task ended".into()),
                    Err(_) => ViewerState::Connecting,
                };
                tally.count(query, state);
            }
            let done = tally.watching + tally.refused + tally.failed + tally.pending;
            if !label.is_empty() && (done % PROGRESS_EVERY == 0 || done == queries.len()) {
                eprintln!(
                    "capacity: {label}: {done}/{} joined ({} watching, {} refused, {} failed) in {:.1} s",
                    queries.len(),
                    tally.watching,
                    tally.refused,
                    tally.failed,
                    started.elapsed().as_secs_f64()
                );
            }
        }
        tally.seconds = started.elapsed().as_secs_f64();
        tally
    }

    fn spawn(&mut self, query: &str) {
        let mut url = self.base.clone();
        url.set_query(Some(query));
        let (state_tx, state) = watch::channel(ViewerState::Connecting);
        let frames = Arc::new(AtomicU64::new(0));
        let options = ClientOptions {
            cert_sha256: Some(self.cert_sha256.clone()),
            ..ClientOptions::default()
        };
        let height = Arc::new(AtomicU32::new(0));
        let latency = Arc::new(Mutex::new(ViewerLatency::new()));
        let (counter, seen_height, seen_latency) =
            (frames.clone(), height.clone(), latency.clone());
        let runtime = self
            .runtime
            .as_ref()
            .expect("the runtime lives until shutdown");
        let task = runtime.spawn(async move {
            let seen = Seen {
                frames: &counter,
                height: &seen_height,
                latency: &seen_latency,
            };
            let ended = watch_frames(&url, options, seen, &state_tx).await;
            state_tx.send_replace(ended);
        });
        self.viewers.push(SwarmViewer {
            frames,
            latency,
            height,
            state,
            task,
        });
    }

    /// Frames each viewer received so far, in join order.
    pub fn frames(&self) -> Vec<u64> {
        self.viewers
            .iter()
            .map(|v| v.frames.load(Ordering::Relaxed))
            .collect()
    }

    /// Starts a new edge-to-viewer window for every viewer: the samples so far are dropped.
    pub fn restart_latency(&self) {
        for viewer in &self.viewers {
            *lock(&viewer.latency) = ViewerLatency::new();
        }
    }

    /// Each viewer's edge-to-viewer latency since [`ViewerSwarm::restart_latency`], in join
    /// order.
    pub fn latencies(&self) -> Vec<ViewerLatency> {
        self.viewers
            .iter()
            .map(|v| lock(&v.latency).clone())
            .collect()
    }

    /// Height of the rendering each viewer receives (0: none yet), in join order.
    pub fn heights(&self) -> Vec<u32> {
        self.viewers
            .iter()
            .map(|v| v.height.load(Ordering::Relaxed))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.viewers.len()
    }

    /// Closes every session and stops the runtime (off the async context, where a runtime
    /// may not block).
    pub async fn shutdown(mut self) {
        for viewer in &self.viewers {
            viewer.task.abort();
        }
        if let Some(runtime) = self.runtime.take() {
            let _ = tokio::task::spawn_blocking(move || {
                runtime.shutdown_timeout(Duration::from_secs(2))
            })
            .await;
        }
    }
}

impl Drop for ViewerSwarm {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Poisoning only means a viewer task panicked mid-record; the samples stay usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where one viewer writes what it sees.
struct Seen<'a> {
    frames: &'a AtomicU64,
    height: &'a AtomicU32,
    latency: &'a Mutex<ViewerLatency>,
}

/// One viewer's life: subscribe, count frames and time them until the stream ends. Returns
/// how it ended.
async fn watch_frames(
    url: &Url,
    options: ClientOptions,
    seen: Seen<'_>,
    state: &watch::Sender<ViewerState>,
) -> ViewerState {
    let mut subscription = match client::subscribe(url, options).await {
        Ok(s) => s,
        Err(DeliverError::Refused { reason, .. }) => return ViewerState::Refused(reason),
        Err(e) => return ViewerState::Failed(e.to_string()),
    };
    let config = subscription.video_config();
    let (width, height) = (
        config.coded_width.unwrap_or(0),
        config.coded_height.unwrap_or(0),
    );
    while let Some(frame) = subscription.next_frame().await {
        lock(seen.latency).record(&frame.data, frame.received_unix_us);
        if seen.frames.fetch_add(1, Ordering::Relaxed) == 0 {
            seen.height.store(height, Ordering::Relaxed);
            state.send_replace(ViewerState::Watching { width, height });
        }
    }
    ViewerState::Failed("the node ended the stream".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_to_viewer_is_read_from_the_sei_clock() {
        let mut fast = ViewerLatency::new();
        let mut slow = ViewerLatency::new();
        let slice = [0u8, 0, 0, 1, 0x65, 0x88, 0x84];
        for i in 0..100u64 {
            let sent_us = 1_000_000 + i * 33_333;
            let au = sei::stamp_access_unit(&slice, sent_us);
            fast.record(&au, sent_us + 4_000);
            slow.record(&au, sent_us + if i == 99 { 40_000 } else { 9_000 });
        }
        fast.record(&slice, 5_000_000);
        let idle = ViewerLatency::new();
        let (summary, p99s) = EdgeToViewer::summarise(&[fast, slow, idle], 20.0);
        assert_eq!(p99s, vec![Some(4.0), Some(9.0), None]);
        assert_eq!(summary.viewers_measured, 2);
        assert_eq!(
            summary.viewers_over_budget, 0,
            "one late frame in 100 is past p99"
        );
        assert_eq!(summary.worst_viewer_p99_ms, 9.0);
        assert_eq!(summary.frames_without_clock, 1);
        assert_eq!(summary.all_ms.p50, 4.0);

        let (over, _) = EdgeToViewer::summarise(&[ViewerLatency::new()], 20.0);
        assert_eq!((over.viewers_measured, over.worst_viewer_p99_ms), (0, 0.0));
    }

    #[test]
    fn a_tally_counts_every_outcome_and_keeps_the_first_reasons() {
        let mut tally = JoinTally::default();
        tally.count(
            "q",
            ViewerState::Watching {
                width: 1280,
                height: 720,
            },
        );
        tally.count(
            "q",
            ViewerState::Watching {
                width: 640,
                height: 360,
            },
        );
        tally.count(
            "zone=a",
            ViewerState::Refused("over the frame budget".into()),
        );
        tally.count("zone=a", ViewerState::Refused("second reason".into()));
        tally.count("q", ViewerState::Failed("timed out".into()));
        tally.count("q", ViewerState::Connecting);
        assert_eq!(tally.refusals_by_query.len(), 1, "first reason per query");
        assert_eq!(tally.refusals_by_query["zone=a"], "over the frame budget");
        assert_eq!(
            (tally.watching, tally.refused, tally.failed, tally.pending),
            (2, 2, 1, 1)
        );
        assert_eq!(tally.watching_by_height[&720], 1);
        assert_eq!(tally.watching_by_height[&360], 1);
        assert_eq!(
            tally.refusal_example.as_deref(),
            Some("over the frame budget")
        );
        assert_eq!(tally.failure_example.as_deref(), Some("timed out"));

        let mut first = JoinTally::default();
        first.count(
            "q",
            ViewerState::Watching {
                width: 1280,
                height: 720,
            },
        );
        first.absorb(tally);
        assert_eq!((first.watching, first.refused), (3, 2));
        assert_eq!(first.watching_by_height[&720], 2);
        assert_eq!(
            first.refusal_example.as_deref(),
            Some("over the frame budget")
        );
    }
}
