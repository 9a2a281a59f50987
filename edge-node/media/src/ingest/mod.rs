//! Ingest: one upstream URI in, decoded tightly packed I420 frames out, forever.
//!
//! The pipeline runs on GStreamer's threads; one supervisor thread owns the bus, reports
//! [`UpstreamEvent`]s and rebuilds the pipeline with backoff when the upstream errors, ends or
//! stalls. The caller is never blocked: frames arrive on the `sink` callback from GStreamer's
//! streaming thread, newest wins (the appsink keeps one frame and drops older ones).
//!
//! Every source, the built-in test show included, goes through the same decode path
//! (`decodebin`/`uridecodebin` -> `videoconvert` (passthrough for I420) -> `appsink`), so the
//! `decode` stage latency is measured the same way for all of them.

mod continuity;
mod decoder;
mod pipeline;
mod resume;
mod source;
mod supervisor;
mod testshow;

use crate::MediaError;
use edge_core::stats::LatencySamples;
use edge_core::{FrameMeta, I420Frame};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Environment variable naming the directory the test show's asset is looked for first.
pub const ASSET_DIR_ENV: &str = "EDGE_NODE_ASSET_DIR";
/// Where setup puts the asset, relative to a source tree.
pub const DEFAULT_ASSET_DIR: &str = ".cache/assets";

/// Where the test show looks for its asset, in order: `EDGE_NODE_ASSET_DIR`, then beside the
/// executable (`assets/`, or `../share/edge-node/assets` for an install under a prefix), then
/// `.cache/assets` in the executable's ancestors (a binary in a source tree's `target/`), then
/// in the current directory. A binary started from any directory finds its own.
pub fn default_asset_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os(ASSET_DIR_ENV).filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(dir));
    }
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        dirs.push(exe_dir.join("assets"));
        dirs.push(exe_dir.join("../share/edge-node/assets"));
        dirs.extend(
            exe_dir
                .ancestors()
                .skip(1)
                .map(|d| d.join(DEFAULT_ASSET_DIR)),
        );
    }
    dirs.push(PathBuf::from(DEFAULT_ASSET_DIR));
    dirs
}

#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// `rtmp://`, `rtsp://`, `srt://`, `http(s)://` (HLS), `file://` or `testshow://`.
    pub uri: String,
    /// Where the test show looks for `astronaut.png`, first match wins
    /// ([`default_asset_dirs`]).
    pub asset_dirs: Vec<PathBuf>,
    /// No frame for this long after the first one means the upstream is lost.
    pub stall_timeout: Duration,
    /// No first frame this long after (re)connecting means the attempt failed.
    pub connect_timeout: Duration,
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
    /// Restart `file://` upstreams at their end instead of treating the end as a loss
    /// (also enabled per URI with `?loop=1`).
    pub loop_files: bool,
}

impl IngestConfig {
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            asset_dirs: default_asset_dirs(),
            stall_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(10),
            reconnect_initial: Duration::from_millis(250),
            reconnect_max: Duration::from_secs(4),
            loop_files: false,
        }
    }
}

/// Size, rate and colour description of the decoded video. `fps` is 0.0 when the upstream
/// declares no rate; `colour` is what the decoder's caps say, with players' assumptions where
/// they say nothing ([`crate::colour::colour_from_caps`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VideoFormat {
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub colour: edge_core::VideoColour,
}

impl std::fmt::Display for VideoFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}@{:.2}", self.width, self.height, self.fps)
    }
}

/// What happened to the upstream, in the order it happened.
#[derive(Clone, Debug, PartialEq)]
pub enum UpstreamEvent {
    /// The first frame of a (re)connection arrived.
    Connected { format: VideoFormat },
    /// The decoded size or rate changed; frames continue at the new format.
    FormatChanged { from: VideoFormat, to: VideoFormat },
    /// The upstream errored, ended or stalled; a reconnect follows.
    Lost { reason: String },
    /// The next attempt starts after `delay`; `attempt` counts since the last good frame.
    Reconnecting { attempt: u32, delay: Duration },
}

/// Counters and the decode latency of one ingest; cheap to clone and read from any thread.
#[derive(Clone, Default)]
pub struct IngestMetrics {
    inner: Arc<MetricsInner>,
}

#[derive(Default)]
struct MetricsInner {
    frames_total: AtomicU64,
    frames_unusable_total: AtomicU64,
    reconnects_total: AtomicU64,
    decode: Mutex<LatencySamples>,
    decoder: Mutex<Option<String>>,
}

impl IngestMetrics {
    /// Frames handed to the sink.
    pub fn frames_total(&self) -> u64 {
        self.inner.frames_total.load(Ordering::Relaxed)
    }
    /// Decoded frames that could not be used (unmappable buffer, missing caps).
    pub fn frames_unusable_total(&self) -> u64 {
        self.inner.frames_unusable_total.load(Ordering::Relaxed)
    }
    pub fn reconnects_total(&self) -> u64 {
        self.inner.reconnects_total.load(Ordering::Relaxed)
    }
    /// Takes the decode latencies (buffer into the video decoder -> out of it) recorded since
    /// the last call.
    pub fn take_decode_latency(&self) -> LatencySamples {
        std::mem::take(&mut *lock(&self.inner.decode))
    }

    /// The element factory of the video decoder `decodebin` picked (`avdec_h264`,
    /// `nvh264dec`, ...), once the first one is plugged.
    pub fn decoder(&self) -> Option<String> {
        lock(&self.inner.decoder).clone()
    }

    pub(crate) fn set_decoder(&self, factory: &str) {
        *lock(&self.inner.decoder) = Some(factory.to_owned());
    }
    pub(crate) fn record_decode(&self, latency: Duration) {
        lock(&self.inner.decode).record(latency);
    }
    fn count_frame(&self) {
        self.inner.frames_total.fetch_add(1, Ordering::Relaxed);
    }
    fn count_unusable(&self) {
        self.inner
            .frames_unusable_total
            .fetch_add(1, Ordering::Relaxed);
    }
    fn count_reconnect(&self) {
        self.inner.reconnects_total.fetch_add(1, Ordering::Relaxed);
    }
}

/// Decode latencies of recently delivered frames, for a per-frame lookup by the frame path.
/// Process-wide because `I420Frame` (edge-core) has no field for it; bounded to a few seconds
/// of frames so a caller that never looks costs nothing but this ring.
static DECODE_BY_FRAME: Mutex<VecDeque<(u64, u64, Duration)>> = Mutex::new(VecDeque::new());
const DECODE_BY_FRAME_MAX: usize = 256;

/// The decode latency (into the video decoder -> out of it) of a frame delivered by an
/// [`Ingest`], when it was measured. Each frame answers once: the entry is removed.
pub fn decode_latency(meta: &FrameMeta) -> Option<Duration> {
    let mut ring = lock(&DECODE_BY_FRAME);
    let i = ring
        .iter()
        .position(|(seq, at, _)| *seq == meta.seq && *at == meta.received_unix_us)?;
    ring.remove(i).map(|(_, _, latency)| latency)
}

pub(crate) fn remember_decode_latency(meta: &FrameMeta, latency: Duration) {
    let mut ring = lock(&DECODE_BY_FRAME);
    if ring.len() >= DECODE_BY_FRAME_MAX {
        ring.pop_front();
    }
    ring.push_back((meta.seq, meta.received_unix_us, latency));
}

/// A poisoned lock only means a user callback panicked; the data behind it stays consistent
/// because every critical section here is a plain field update.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Messages to the supervisor thread from the streaming threads and from `stop`.
pub(crate) enum Note {
    Connected {
        attempt: u64,
        format: VideoFormat,
        previous: Option<VideoFormat>,
    },
    FormatChanged {
        attempt: u64,
        from: VideoFormat,
        to: VideoFormat,
    },
    Stop,
}

enum FirstFrame {
    Waiting {
        last_error: Option<String>,
    },
    Ready(VideoFormat),
    /// The upstream cannot work as configured (unsupported codec, missing plugin).
    Failed(String),
    Stopped,
}

/// State shared between the caller, the supervisor and the streaming threads.
pub(crate) struct Shared {
    uri: String,
    epoch: Instant,
    /// Milliseconds since `epoch` at the last delivered frame.
    last_frame_ms: AtomicU64,
    first: Mutex<FirstFrame>,
    first_changed: Condvar,
    pub(crate) metrics: IngestMetrics,
    /// PTS and decode latency of the last picture out of the video decoder; the appsink
    /// callback runs right after on the same streaming thread and claims it.
    pub(crate) last_decode: Mutex<Option<(gst::ClockTime, Duration)>>,
    pub(crate) frames: Mutex<pipeline::FrameSide>,
    /// The upstream position of the last frame delivered in the current attempt.
    position: Mutex<Option<Duration>>,
}

impl Shared {
    fn touch_frame(&self) {
        self.last_frame_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn reached(&self, position: Duration) {
        *lock(&self.position) = Some(position);
    }

    fn position(&self) -> Option<Duration> {
        *lock(&self.position)
    }

    /// The position the current attempt reached, forgotten for the next attempt.
    fn take_position(&self) -> Option<Duration> {
        lock(&self.position).take()
    }

    fn since_last_frame(&self) -> Duration {
        let last = Duration::from_millis(self.last_frame_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }

    fn first_frame(&self, format: VideoFormat) {
        let mut first = lock(&self.first);
        if matches!(*first, FirstFrame::Waiting { .. } | FirstFrame::Failed(_)) {
            *first = FirstFrame::Ready(format);
            self.first_changed.notify_all();
        }
    }

    fn failure(&self, reason: &str, fatal: bool) {
        let mut first = lock(&self.first);
        if let FirstFrame::Waiting { last_error } = &mut *first {
            if fatal {
                *first = FirstFrame::Failed(reason.to_owned());
            } else {
                *last_error = Some(reason.to_owned());
            }
            self.first_changed.notify_all();
        }
    }

    fn stopped(&self) {
        let mut first = lock(&self.first);
        if !matches!(*first, FirstFrame::Ready(_)) {
            *first = FirstFrame::Stopped;
        }
        self.first_changed.notify_all();
    }
}

/// A running ingest. Dropping it (or [`Ingest::stop`]) tears the pipeline down.
pub struct Ingest {
    shared: Arc<Shared>,
    notes: mpsc::Sender<Note>,
    supervisor: Option<JoinHandle<()>>,
}

impl Ingest {
    /// Validates the URI (unknown scheme, missing file or asset, missing plugin fail here) and
    /// starts ingesting in the background. `sink` receives every decoded frame on a GStreamer
    /// streaming thread and must return quickly; `events` runs on the supervisor thread.
    pub fn start(
        config: IngestConfig,
        sink: impl FnMut(I420Frame) + Send + 'static,
        events: impl FnMut(UpstreamEvent) + Send + 'static,
    ) -> Result<Ingest, MediaError> {
        crate::gst_util::init()?;
        let source = source::parse(&config.uri, &config.asset_dirs, config.loop_files)?;
        for factory in source
            .required_elements()
            .iter()
            .chain(pipeline::TAIL_ELEMENTS)
        {
            crate::gst_util::require(factory)?;
        }
        let shared = Arc::new(Shared {
            uri: config.uri.clone(),
            epoch: Instant::now(),
            last_frame_ms: AtomicU64::new(0),
            first: Mutex::new(FirstFrame::Waiting { last_error: None }),
            first_changed: Condvar::new(),
            metrics: IngestMetrics::default(),
            last_decode: Mutex::new(None),
            frames: Mutex::new(pipeline::FrameSide::new(Box::new(sink))),
            position: Mutex::new(None),
        });
        let (notes_tx, notes_rx) = mpsc::channel();
        let supervisor = supervisor::Supervisor {
            shared: shared.clone(),
            source,
            config,
            events: Box::new(events),
            notes_tx: notes_tx.clone(),
            notes: notes_rx,
            resume: resume::Resume::default(),
        };
        let handle = std::thread::Builder::new()
            .name("ingest-supervisor".into())
            .spawn(move || supervisor.run())
            .map_err(|e| crate::gst_util::pipeline_error("ingest", e))?;
        Ok(Ingest {
            shared,
            notes: notes_tx,
            supervisor: Some(handle),
        })
    }

    /// Blocks until the first decoded frame (returning its format), a failure that retrying
    /// cannot fix (unsupported codec), or `timeout` (the error carries the last failure seen,
    /// e.g. "connection refused"). Reconnect attempts continue in the background regardless.
    pub fn wait_first_frame(&self, timeout: Duration) -> Result<VideoFormat, MediaError> {
        let deadline = Instant::now() + timeout;
        let mut first = lock(&self.shared.first);
        loop {
            match &*first {
                FirstFrame::Ready(format) => return Ok(*format),
                FirstFrame::Failed(reason) => {
                    return Err(MediaError::UnsupportedMedia {
                        uri: self.shared.uri.clone(),
                        reason: reason.clone(),
                    })
                }
                FirstFrame::Stopped => {
                    return Err(MediaError::Stopped {
                        uri: self.shared.uri.clone(),
                    })
                }
                FirstFrame::Waiting { last_error } => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(MediaError::NoFirstFrame {
                            uri: self.shared.uri.clone(),
                            waited_ms: timeout.as_millis() as u64,
                            detail: last_error.clone().unwrap_or_else(|| {
                                "no error reported: is the upstream publishing?".into()
                            }),
                        });
                    }
                    first = self
                        .shared
                        .first_changed
                        .wait_timeout(first, deadline - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
    }

    pub fn metrics(&self) -> IngestMetrics {
        self.shared.metrics.clone()
    }

    pub fn uri(&self) -> &str {
        &self.shared.uri
    }

    /// Stops the pipeline and waits for the supervisor thread to finish.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(handle) = self.supervisor.take() {
            // The supervisor may already have exited; a closed channel is fine then.
            let _ = self.notes.send(Note::Stop);
            if handle.join().is_err() {
                tracing::error!(uri = %self.shared.uri, "ingest supervisor panicked");
            }
        }
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        self.shutdown();
    }
}
