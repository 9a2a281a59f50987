//! Understanding off the frame path: one thread runs every model, each at its own cadence, on
//! the newest frame offered. `offer` never blocks the caller (newest wins); results go to a
//! callback on the worker thread, tagged with the timestamps of the frame they came from.

use crate::cadence::CadenceGate;
use crate::detection::Detections;
use crate::error::{Result, UnderstandError};
use crate::model::Model;
use crate::pacing::{Decision, Pacer};
use crate::runtime::ExecutionProvider;
use edge_core::frame::I420Frame;
use edge_core::frame_window::{FrameWindow, Settled};
use edge_core::latest::{LatestSlot, Taken};
use edge_core::sei::unix_now_us;
use edge_core::stats::{LatencySamples, Percentiles};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Per-model numbers for `/metrics` and `bench`.
#[derive(Clone, Debug, Serialize)]
pub struct ModelStats {
    pub model: String,
    pub execution_provider: ExecutionProvider,
    /// Frames this model ran on.
    pub runs: u64,
    /// Runs that failed (the error is logged once per change of message).
    pub failures: u64,
    /// Frames the model was due on but passed over: its run would not have ended before the
    /// next frame arrived.
    pub deferred: u64,
    /// Runs started beside the frame path after the longest deferral (a loaded node).
    pub late: u64,
    /// ONNX Runtime's `run` alone.
    pub inference_ms: Percentiles,
    /// Preprocessing + inference + decoding: how stale a result is when it is published.
    pub total_ms: Percentiles,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct UnderstandingStats {
    /// Frames handed to `offer`.
    pub frames_offered: u64,
    /// Frames replaced by a newer one before the worker looked at them.
    pub frames_replaced: u64,
    pub models: Vec<ModelStats>,
}

struct ModelCounters {
    runs: u64,
    failures: u64,
    deferred: u64,
    late: u64,
    inference: LatencySamples,
    total: LatencySamples,
    last_error: Option<String>,
}

struct Shared {
    slot: LatestSlot<Arc<I420Frame>>,
    offered: Mutex<u64>,
    counters: Mutex<Vec<ModelCounters>>,
}

impl Shared {
    fn counters(&self) -> std::sync::MutexGuard<'_, Vec<ModelCounters>> {
        // Counters are plain numbers: a panic elsewhere cannot leave them inconsistent.
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running worker. Dropping it stops the thread.
pub struct Understanding {
    shared: Arc<Shared>,
    names: Vec<(String, ExecutionProvider)>,
    thread: Option<JoinHandle<()>>,
}

/// Samples kept per model for percentiles: minutes of history at any sensible cadence.
const SAMPLES_PER_MODEL: usize = 10_000;

impl Understanding {
    /// Starts the worker thread. Each model runs at `model.cadence()`; `on_result` is called
    /// on the worker thread with every model's detections for every frame it ran on.
    pub fn start(
        models: Vec<Model>,
        on_result: impl FnMut(Arc<Detections>) + Send + 'static,
    ) -> Result<Self> {
        Self::start_paced(models, None, on_result)
    }

    /// As [`Understanding::start`], with inference kept to `window`'s idle time: a due model
    /// waits until the offered frame's encodes are out, and runs only if it should end before
    /// the next frame arrives (see [`crate::pacing`]).
    pub fn start_paced(
        models: Vec<Model>,
        window: Option<Arc<FrameWindow>>,
        on_result: impl FnMut(Arc<Detections>) + Send + 'static,
    ) -> Result<Self> {
        let names = models
            .iter()
            .map(|m| (m.name().to_string(), m.execution_provider()))
            .collect();
        let shared = Arc::new(Shared {
            slot: LatestSlot::new(),
            offered: Mutex::new(0),
            counters: Mutex::new(
                models
                    .iter()
                    .map(|_| ModelCounters {
                        runs: 0,
                        failures: 0,
                        deferred: 0,
                        late: 0,
                        inference: LatencySamples::with_capacity(SAMPLES_PER_MODEL),
                        total: LatencySamples::with_capacity(SAMPLES_PER_MODEL),
                        last_error: None,
                    })
                    .collect(),
            ),
        });
        let worker_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("edge-understand".into())
            .spawn(move || run(models, window.as_deref(), &worker_shared, on_result))
            .map_err(|e| {
                UnderstandError::Environment(format!("cannot start the worker thread: {e}"))
            })?;
        Ok(Self {
            shared,
            names,
            thread: Some(thread),
        })
    }

    /// Hands the worker the newest frame. Never waits for inference: an unread older frame is
    /// replaced (and counted).
    pub fn offer(&self, frame: Arc<I420Frame>) {
        *self
            .shared
            .offered
            .lock()
            .unwrap_or_else(|p| p.into_inner()) += 1;
        self.shared.slot.put(frame);
    }

    pub fn stats(&self) -> UnderstandingStats {
        let counters = self.shared.counters();
        UnderstandingStats {
            frames_offered: *self
                .shared
                .offered
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
            frames_replaced: self.shared.slot.replaced(),
            models: self
                .names
                .iter()
                .zip(counters.iter())
                .map(|((model, ep), c)| ModelStats {
                    model: model.clone(),
                    execution_provider: *ep,
                    runs: c.runs,
                    failures: c.failures,
                    deferred: c.deferred,
                    late: c.late,
                    inference_ms: c.inference.percentiles(),
                    total_ms: c.total.percentiles(),
                    last_error: c.last_error.clone(),
                })
                .collect(),
        }
    }

    /// Stops the worker after the inference in progress, if any, and returns the final stats.
    pub fn stop(mut self) -> UnderstandingStats {
        self.join();
        self.stats()
    }

    fn join(&mut self) {
        self.shared.slot.close();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("understanding worker panicked");
            }
        }
    }
}

impl Drop for Understanding {
    fn drop(&mut self) {
        self.join();
    }
}

/// The worker's nice value. Inference is CPU-heavy and never urgent: on a machine whose
/// cores also decode, compose and encode, the frame path must win every contended slice
/// (nice 10 weighs about a tenth of nice 0 in Linux's scheduler).
pub const WORKER_NICE: i32 = 10;

/// Lowers the calling thread's priority to [`WORKER_NICE`] (never raises it: a node already
/// started nicer stays so). With one intra-op thread ONNX Runtime runs inference on the
/// calling thread, so this covers it.
fn lower_own_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain syscalls on the calling thread's own id; no memory is shared.
        let result = unsafe {
            let tid = libc::gettid() as libc::id_t;
            if libc::getpriority(libc::PRIO_PROCESS, tid) >= WORKER_NICE {
                return;
            }
            libc::setpriority(libc::PRIO_PROCESS, tid, WORKER_NICE)
        };
        if result != 0 {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "cannot lower the understanding worker's priority; inference competes with the frame path"
            );
        }
        // SCHED_IDLE goes further than any nice value: the worker only runs on a core nothing
        // else wants, so a 45 ms inference never delays a frame (measured: with nice 10 alone
        // the 720p node p99 rose 1.6x on 2 cores).
        // SAFETY: a plain syscall on the calling thread (pid 0) with a valid parameter block.
        let idle = unsafe {
            let param = libc::sched_param { sched_priority: 0 };
            libc::sched_setscheduler(0, libc::SCHED_IDLE, &param)
        };
        if idle != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "SCHED_IDLE unavailable for the understanding worker; nice only"
            );
        }
    }
}

/// The longest the worker waits for an offered frame's encodes before passing over it.
const SETTLE_LIMIT: Duration = Duration::from_millis(50);

fn run(
    mut models: Vec<Model>,
    window: Option<&FrameWindow>,
    shared: &Shared,
    mut on_result: impl FnMut(Arc<Detections>),
) {
    lower_own_priority();
    let clock = Instant::now();
    let mut gates: Vec<CadenceGate> = models
        .iter()
        .map(|m| CadenceGate::new(m.cadence()))
        .collect();
    let mut pacers: Vec<Pacer> = models.iter().map(|_| Pacer::new()).collect();
    loop {
        let frame = match shared.slot.take(Duration::from_secs(1)) {
            Taken::Value(frame) => frame,
            Taken::TimedOut => continue,
            Taken::Closed => return,
        };
        let seq = frame.meta.seq;
        if !gates.iter().any(|g| g.is_due(seq, clock.elapsed())) {
            continue;
        }
        // Beside a frame path, wait for it to go idle.
        let settled = window.map(|w| w.wait_settled(seq, SETTLE_LIMIT));
        for (i, model) in models.iter_mut().enumerate() {
            let now = clock.elapsed();
            if !gates[i].is_due(seq, now) {
                continue;
            }
            if let Some(settled) = settled {
                // Read now: models that ran before this one used part of the window. A newer
                // frame, or this one's encodes not out in time, leaves none.
                let left = match settled {
                    Settled::Idle(idle) => idle.left(unix_now_us()),
                    Settled::Superseded | Settled::TimedOut => Some(Duration::ZERO),
                };
                match pacers[i].decide(left, now) {
                    Decision::Run => {}
                    Decision::RunLate => shared.counters()[i].late += 1,
                    Decision::Defer => {
                        shared.counters()[i].deferred += 1;
                        continue;
                    }
                }
            }
            gates[i].ran(seq, now);
            let started = Instant::now();
            let result = model.detect_i420(&frame);
            pacers[i].ran(started.elapsed());
            let mut counters = shared.counters();
            let c = &mut counters[i];
            match result {
                Ok(detections) => {
                    c.runs += 1;
                    c.inference.record_ms(detections.timings.inference_ms);
                    c.total.record_ms(detections.timings.total_ms());
                    drop(counters);
                    on_result(Arc::new(detections));
                }
                Err(e) => {
                    c.failures += 1;
                    let message = e.to_string();
                    // One log line per distinct failure, not one per frame.
                    if c.last_error.as_deref() != Some(message.as_str()) {
                        tracing::warn!(model = model.name(), error = %message, "inference failed");
                        c.last_error = Some(message);
                    }
                }
            }
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn own_nice() -> i32 {
        // SAFETY: reads the calling thread's own priority.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[test]
    fn worker_threads_run_at_background_priority() {
        let before = own_nice();
        let worker = std::thread::spawn(|| {
            lower_own_priority();
            own_nice()
        });
        assert_eq!(worker.join().unwrap(), before.max(WORKER_NICE));
        // Only that thread: the caller keeps its priority.
        assert_eq!(own_nice(), before);
    }
}
