//! Per-stage latency histograms and frame counters, shared by the stages and read by `demo`,
//! `bench` and `/metrics`. Every dropped frame is counted with its stage and reason; every
//! label set is small and fixed (stages, reasons, decisions, outcomes, configured model names).

pub mod cpu_usage;
pub mod feed_writes;
pub mod peer_input;

use edge_core::stats::{LatencySamples, Percentiles};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Duration;

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

/// Upper bounds (seconds) of the Prometheus latency buckets: sub-millisecond to a whole second,
/// dense around the 5-20 ms frame budget.
pub const LATENCY_BUCKETS_S: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.05, 0.1, 1.0,
];

/// A cumulative Prometheus histogram.
#[derive(Clone, Debug, Default)]
pub struct BucketHistogram {
    counts: [u64; LATENCY_BUCKETS_S.len()],
    count: u64,
    sum_s: f64,
}

impl BucketHistogram {
    pub fn observe(&mut self, latency: Duration) {
        let s = latency.as_secs_f64();
        for (i, bound) in LATENCY_BUCKETS_S.iter().enumerate() {
            if s <= *bound {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum_s += s;
    }

    /// Prometheus text lines for `name` with `labels` (e.g. `stage="compose"`, or empty).
    pub fn render(&self, name: &str, labels: &str, out: &mut String) {
        use std::fmt::Write;
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, n) in LATENCY_BUCKETS_S.iter().zip(self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum_s);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// Where the content-understanding models stand, for the `models` readiness check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ModelsState {
    /// Content understanding is not configured: nothing to wait for.
    Disabled = 0,
    /// Configured and still loading: not ready yet.
    Loading = 1,
    /// Every configured model is loaded.
    Loaded = 2,
}

/// What `/ready` waits for: each subsystem releases its part of the latch once.
#[derive(Debug, Default)]
pub struct Readiness {
    pub gpu: AtomicBool,
    pub quic: AtomicBool,
    pub first_frame: AtomicBool,
    /// A [`ModelsState`]; 0 (disabled) until understanding is configured.
    models: AtomicU8,
    /// Set on shutdown: readiness turns off first so the load balancer stops sending viewers.
    pub draining: AtomicBool,
}

impl Readiness {
    pub fn set_models(&self, state: ModelsState) {
        self.models.store(state as u8, Ordering::Relaxed);
    }

    pub fn models(&self) -> ModelsState {
        match self.models.load(Ordering::Relaxed) {
            1 => ModelsState::Loading,
            2 => ModelsState::Loaded,
            _ => ModelsState::Disabled,
        }
    }

    /// (ready, one line per check) for the `/ready` body.
    pub fn report(&self) -> (bool, String) {
        let models = self.models();
        let checks = [
            ("gpu device", self.gpu.load(Ordering::Relaxed)),
            ("quic bound", self.quic.load(Ordering::Relaxed)),
            ("first frame", self.first_frame.load(Ordering::Relaxed)),
            ("models", models != ModelsState::Loading),
            ("not draining", !self.draining.load(Ordering::Relaxed)),
        ];
        let body = checks
            .iter()
            .map(|(name, ok)| {
                let state = match (*name, models) {
                    ("models", ModelsState::Disabled) => {
                        "disabled (content understanding not configured)"
                    }
                    ("models", ModelsState::Loading) => "waiting (loading)",
                    (_, _) if *ok => "ok",
                    _ => "waiting",
                };
                format!("{name}: {state}\n")
            })
            .collect();
        (checks.iter().all(|(_, ok)| *ok), body)
    }
}

/// What admission control decided for a viewer (`edge_admission_total{decision}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AdmissionDecision {
    Admit,
    /// Admitted onto a cheaper rendering (shared group, lower rendition) to stay in budget.
    Degrade,
    Refuse,
}

impl AdmissionDecision {
    pub const ALL: [AdmissionDecision; 3] = [Self::Admit, Self::Degrade, Self::Refuse];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admit => "admit",
            Self::Degrade => "degrade",
            Self::Refuse => "refuse",
        }
    }
}

/// How one request to the MEC location service ended (`edge_mec_requests_total{outcome}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MecOutcome {
    Ok,
    Timeout,
    Error,
    /// The service could not answer and the viewer's own hint (or the default zone) was used.
    Fallback,
}

impl MecOutcome {
    pub const ALL: [MecOutcome; 4] = [Self::Ok, Self::Timeout, Self::Error, Self::Fallback];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Timeout => "timeout",
            Self::Error => "error",
            Self::Fallback => "fallback",
        }
    }
}

/// How the understanding worker fitted one model's runs into the frame path's idle time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InferencePacing {
    pub deferred_frames: u64,
    pub late_runs: u64,
}

/// Reads one count of an [`InferencePacing`].
type PacingCount = fn(&InferencePacing) -> u64;

/// At most this many distinct `model` labels; later names share `other`, so a misconfigured
/// caller cannot blow up the series count.
const MAX_MODEL_LABELS: usize = 16;

#[derive(Default)]
pub struct Telemetry {
    pub readiness: Readiness,
    stage_histograms: Mutex<BTreeMap<Stage, BucketHistogram>>,
    node_histogram: Mutex<BucketHistogram>,
    viewers: AtomicU64,
    render_groups: AtomicU64,
    stages: Mutex<BTreeMap<Stage, LatencySamples>>,
    node_latency: Mutex<LatencySamples>,
    frames: Mutex<BTreeMap<Stage, u64>>,
    dropped: Mutex<BTreeMap<(Stage, &'static str), u64>>,
    frames_in: AtomicU64,
    upstream_up: AtomicBool,
    admissions: [AtomicU64; 3],
    /// `f64` bits of the latest frame-budget utilization.
    budget_utilization_bits: AtomicU64,
    mec_requests: [AtomicU64; 4],
    inference: Mutex<BTreeMap<String, BucketHistogram>>,
    /// Per model: frames passed over for want of an idle window, and runs started late.
    inference_pacing: Mutex<BTreeMap<String, InferencePacing>>,
    models_loaded: AtomicU64,
    campaign_generation: AtomicU64,
    slate_frames: AtomicU64,
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

    /// Forgets the latency samples recorded so far and records again from `unix_us` on: one
    /// measurement window per step of a bench ramp. Counters and histograms keep counting.
    pub fn restart_recording(&self, unix_us: u64) {
        self.record_after(unix_us);
        lock(&self.stages).clear();
        *lock(&self.node_latency) = LatencySamples::default();
    }

    /// Render groups live at the last frame.
    pub fn render_groups(&self) -> u64 {
        self.render_groups.load(Ordering::Relaxed)
    }

    /// Admission decisions of `decision` so far.
    pub fn admissions(&self, decision: AdmissionDecision) -> u64 {
        self.admissions[decision as usize].load(Ordering::Relaxed)
    }

    fn recording(&self, frame_received_unix_us: u64) -> bool {
        frame_received_unix_us >= self.record_after_unix_us.load(Ordering::Relaxed)
    }

    pub fn frame_in(&self) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stage(&self, stage: Stage, frame_received_unix_us: u64, latency: Duration) {
        *lock(&self.frames).entry(stage).or_default() += 1;
        lock(&self.stage_histograms)
            .entry(stage)
            .or_default()
            .observe(latency);
        if self.recording(frame_received_unix_us) {
            lock(&self.stages).entry(stage).or_default().record(latency);
        }
    }

    pub fn node_latency(&self, frame_received_unix_us: u64, latency: Duration) {
        lock(&self.node_histogram).observe(latency);
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

    pub fn set_delivery(&self, viewers: usize, render_groups: usize) {
        self.viewers.store(viewers as u64, Ordering::Relaxed);
        self.render_groups
            .store(render_groups as u64, Ordering::Relaxed);
    }

    /// One admission-control decision for a connecting viewer.
    pub fn admission(&self, decision: AdmissionDecision) {
        self.admissions[decision as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Share of the frame budget the render groups use (0 = idle, 1 = exactly the budget;
    /// above 1 is over budget). Non-finite or negative values are stored as 0.
    pub fn set_budget_utilization(&self, ratio: f64) {
        let ratio = if ratio.is_finite() && ratio > 0.0 {
            ratio
        } else {
            0.0
        };
        self.budget_utilization_bits
            .store(ratio.to_bits(), Ordering::Relaxed);
    }

    /// One request to the MEC location service and how it ended.
    pub fn mec_request(&self, outcome: MecOutcome) {
        self.mec_requests[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// One content-understanding inference of `model` (a configured model name).
    pub fn inference(&self, model: &str, latency: Duration) {
        let mut by_model = lock(&self.inference);
        let label = if by_model.contains_key(model) || by_model.len() < MAX_MODEL_LABELS - 1 {
            model
        } else {
            "other"
        };
        by_model
            .entry(label.to_string())
            .or_default()
            .observe(latency);
    }

    /// The totals so far of `model`'s frames passed over (its run would not have ended before
    /// the next frame) and runs started beside the frame path after the longest deferral.
    pub fn set_inference_pacing(&self, model: &str, pacing: InferencePacing) {
        let mut by_model = lock(&self.inference_pacing);
        if by_model.contains_key(model) || by_model.len() < MAX_MODEL_LABELS {
            by_model.insert(model.to_string(), pacing);
        }
    }

    /// How many content-understanding models are loaded now (0 when disabled).
    pub fn set_models_loaded(&self, count: usize) {
        self.models_loaded.store(count as u64, Ordering::Relaxed);
    }

    /// A frame was made by the node itself because the upstream is away (the slate).
    pub fn slate_frame(&self) {
        self.slate_frames.fetch_add(1, Ordering::Relaxed);
    }

    /// A campaign set was put in force (at start, a file reload or `PUT /api/v1/campaigns`)
    /// as `generation`. The reload counters are the campaign store's own.
    pub fn campaign_applied(&self, generation: u64) {
        self.campaign_generation
            .store(generation, Ordering::Relaxed);
    }

    /// The campaign generation last reported as applied.
    pub fn campaign_generation(&self) -> u64 {
        self.campaign_generation.load(Ordering::Relaxed)
    }

    /// Every metric in Prometheus text exposition format 0.0.4.
    pub fn render_prometheus(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        out.push_str("# HELP edge_stage_latency_seconds Per-frame latency of each pipeline stage.\n# TYPE edge_stage_latency_seconds histogram\n");
        for (stage, h) in lock(&self.stage_histograms).iter() {
            h.render(
                "edge_stage_latency_seconds",
                &format!("stage=\"{}\"", stage.as_str()),
                &mut out,
            );
        }
        out.push_str("# HELP edge_node_latency_seconds Decoded source frame received to encoded frame handed to QUIC.\n# TYPE edge_node_latency_seconds histogram\n");
        lock(&self.node_histogram).render("edge_node_latency_seconds", "", &mut out);
        out.push_str("# HELP edge_frames_total Frames through each stage.\n# TYPE edge_frames_total counter\n");
        let _ = writeln!(
            out,
            "edge_frames_total{{stage=\"ingest\"}} {}",
            self.frames_in.load(Ordering::Relaxed)
        );
        for (stage, n) in lock(&self.frames).iter() {
            let _ = writeln!(out, "edge_frames_total{{stage=\"{}\"}} {n}", stage.as_str());
        }
        out.push_str("# HELP edge_frames_dropped_total Frames dropped, by stage and reason.\n# TYPE edge_frames_dropped_total counter\n");
        for ((stage, reason), n) in lock(&self.dropped).iter() {
            let _ = writeln!(
                out,
                "edge_frames_dropped_total{{stage=\"{}\",reason=\"{reason}\"}} {n}",
                stage.as_str()
            );
        }
        counter_family(
            &mut out,
            "edge_admission_total",
            "Admission-control decisions for connecting viewers.",
            "decision",
            AdmissionDecision::ALL.map(|d| {
                (
                    d.as_str(),
                    self.admissions[d as usize].load(Ordering::Relaxed),
                )
            }),
        );
        counter_family(
            &mut out,
            "edge_mec_requests_total",
            "Requests to the MEC location service, by outcome.",
            "outcome",
            MecOutcome::ALL.map(|o| {
                (
                    o.as_str(),
                    self.mec_requests[o as usize].load(Ordering::Relaxed),
                )
            }),
        );
        out.push_str("# HELP edge_understanding_inference_seconds Latency of one content-understanding inference, by model.\n# TYPE edge_understanding_inference_seconds histogram\n");
        for (model, h) in lock(&self.inference).iter() {
            h.render(
                "edge_understanding_inference_seconds",
                &format!("model=\"{}\"", escape_label(model)),
                &mut out,
            );
        }
        {
            let pacing = lock(&self.inference_pacing);
            let series: [(&str, &str, PacingCount); 2] = [
                (
                    "edge_understanding_deferred_frames_total",
                    "Frames a due model passed over because its run would not have ended before the next frame arrived, by model.",
                    |p| p.deferred_frames,
                ),
                (
                    "edge_understanding_late_runs_total",
                    "Runs started beside the frame path after a model had waited the longest deferral for an idle window, by model.",
                    |p| p.late_runs,
                ),
            ];
            for (name, help, value) in series {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                for (model, p) in pacing.iter() {
                    let label = escape_label(model);
                    let _ = writeln!(out, "{name}{{model=\"{label}\"}} {}", value(p));
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP edge_slate_frames_total Frames the node made while the upstream was away (the last picture dimmed, a back-soon card).\n# TYPE edge_slate_frames_total counter\nedge_slate_frames_total {}",
            self.slate_frames.load(Ordering::Relaxed)
        );
        out.push_str("# HELP edge_connections_total Incoming viewer connections, by transport (quic; websocket: upgrades on the TCP port) and what the node did (accept; retry: asked to prove its address; refuse_rate: its address opens them too fast; drop_half_open: too many handshakes in flight).\n# TYPE edge_connections_total counter\n");
        for transport in peer_input::ConnectionTransport::ALL {
            for verdict in edge_core::connection_gate::Verdict::ALL {
                let _ = writeln!(
                    out,
                    "edge_connections_total{{transport=\"{}\",outcome=\"{}\"}} {}",
                    transport.as_str(),
                    verdict.as_str(),
                    peer_input::connection_verdicts_on(transport, verdict)
                );
            }
        }
        counter_family(
            &mut out,
            "edge_control_messages_dropped_total",
            "Viewers' control messages dropped, by reason.",
            "reason",
            peer_input::ControlDrop::ALL.map(|r| (r.as_str(), peer_input::control_drops(r))),
        );
        counter_family(
            &mut out,
            "edge_feed_write_failures_total",
            "Frames and messages that could not be written into a viewer's feed, by reason.",
            "reason",
            feed_writes::FeedWriteFailure::ALL
                .map(|r| (r.as_str(), feed_writes::feed_write_failures(r))),
        );
        let _ = writeln!(
            out,
            "# HELP edge_log_lines_suppressed_total Log lines remote peers caused that their log budget or the node's turned away.\n# TYPE edge_log_lines_suppressed_total counter\nedge_log_lines_suppressed_total {}",
            peer_input::suppressed_log_lines()
        );
        let _ = writeln!(
            out,
            "# HELP edge_budget_utilization_ratio Share of the frame budget used by the render groups (1 = full).\n# TYPE edge_budget_utilization_ratio gauge\nedge_budget_utilization_ratio {}",
            f64::from_bits(self.budget_utilization_bits.load(Ordering::Relaxed))
        );
        let gauges = [
            (
                "edge_viewers",
                "Connected viewer sessions.",
                self.viewers.load(Ordering::Relaxed),
            ),
            (
                "edge_render_groups",
                "Distinct renderings being encoded.",
                self.render_groups.load(Ordering::Relaxed),
            ),
            (
                "edge_upstream_up",
                "1 while the upstream delivers frames.",
                self.upstream_up.load(Ordering::Relaxed) as u64,
            ),
            (
                "edge_models_loaded",
                "Content-understanding models loaded.",
                self.models_loaded.load(Ordering::Relaxed),
            ),
            (
                "edge_campaign_generation",
                "Generation of the campaign set in force (0 before the first).",
                self.campaign_generation.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
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

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section is a single insert or read: a panic elsewhere cannot leave the
    // maps half-updated, so a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One counter family in the exposition format: its help and type lines, then one sample per
/// value of its single label.
fn counter_family<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    samples: impl IntoIterator<Item = (&'a str, u64)>,
) {
    use std::fmt::Write;
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (value, count) in samples {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {count}");
    }
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
    fn a_restarted_window_holds_only_its_own_samples() {
        let t = Telemetry::new();
        t.stage(Stage::Encode, 10, Duration::from_millis(30));
        t.node_latency(10, Duration::from_millis(30));
        t.restart_recording(2_000);
        t.node_latency(1_999, Duration::from_millis(40));
        t.node_latency(2_000, Duration::from_millis(3));
        let s = t.snapshot();
        assert_eq!(s.node_latency_samples, 1);
        assert_eq!(s.node_latency_ms.p99, 3.0);
        assert!(
            !s.stages.contains_key(&Stage::Encode),
            "stage samples forgotten"
        );
        assert_eq!(s.frames[&Stage::Encode], 1, "counters keep counting");
    }

    #[test]
    fn prometheus_histograms_are_cumulative() {
        let t = Telemetry::new();
        t.stage(Stage::Encode, 0, Duration::from_micros(2500));
        t.stage(Stage::Encode, 0, Duration::from_millis(40));
        t.dropped(Stage::Compose, "behind", 1);
        let text = t.render_prometheus();
        assert!(
            text.contains("edge_stage_latency_seconds_bucket{stage=\"encode\",le=\"0.002\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("edge_stage_latency_seconds_bucket{stage=\"encode\",le=\"0.003\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("edge_stage_latency_seconds_bucket{stage=\"encode\",le=\"+Inf\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("edge_stage_latency_seconds_count{stage=\"encode\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("edge_frames_dropped_total{stage=\"compose\",reason=\"behind\"} 1"),
            "{text}"
        );
        assert!(text.contains("edge_upstream_up 0"), "{text}");
    }

    #[test]
    fn readiness_needs_every_part_and_no_drain() {
        let r = Readiness::default();
        assert!(!r.report().0);
        for flag in [&r.gpu, &r.quic, &r.first_frame] {
            flag.store(true, Ordering::Relaxed);
        }
        let (ready, body) = r.report();
        assert!(ready, "{body}");
        assert!(body.contains("models: disabled"), "{body}");
        r.draining.store(true, Ordering::Relaxed);
        let (ready, body) = r.report();
        assert!(!ready && body.contains("not draining: waiting"), "{body}");
    }

    #[test]
    fn models_hold_readiness_only_while_loading() {
        let r = Readiness::default();
        for flag in [&r.gpu, &r.quic, &r.first_frame] {
            flag.store(true, Ordering::Relaxed);
        }
        r.set_models(ModelsState::Loading);
        let (ready, body) = r.report();
        assert!(
            !ready && body.contains("models: waiting (loading)"),
            "{body}"
        );
        r.set_models(ModelsState::Loaded);
        let (ready, body) = r.report();
        assert!(ready && body.contains("models: ok"), "{body}");
    }

    #[test]
    fn operational_metrics_render_with_fixed_labels() {
        let t = Telemetry::new();
        t.admission(AdmissionDecision::Admit);
        t.admission(AdmissionDecision::Admit);
        t.admission(AdmissionDecision::Refuse);
        t.mec_request(MecOutcome::Timeout);
        t.set_budget_utilization(0.625);
        t.inference("ppocr-det", Duration::from_millis(12));
        t.set_inference_pacing(
            "centerface",
            InferencePacing {
                deferred_frames: 31,
                late_runs: 2,
            },
        );
        t.set_models_loaded(2);
        t.campaign_applied(7);
        let text = t.render_prometheus();
        for line in [
            "edge_admission_total{decision=\"admit\"} 2",
            "edge_admission_total{decision=\"degrade\"} 0",
            "edge_admission_total{decision=\"refuse\"} 1",
            "edge_mec_requests_total{outcome=\"timeout\"} 1",
            "edge_mec_requests_total{outcome=\"fallback\"} 0",
            "edge_budget_utilization_ratio 0.625",
            "edge_understanding_inference_seconds_bucket{model=\"ppocr-det\",le=\"0.015\"} 1",
            "edge_understanding_inference_seconds_count{model=\"ppocr-det\"} 1",
            "edge_understanding_deferred_frames_total{model=\"centerface\"} 31",
            "edge_understanding_late_runs_total{model=\"centerface\"} 2",
            "edge_models_loaded 2",
            "edge_campaign_generation 7",
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
        t.set_budget_utilization(f64::NAN);
        assert!(t
            .render_prometheus()
            .contains("edge_budget_utilization_ratio 0\n"));
    }

    #[test]
    fn model_labels_are_bounded_and_escaped() {
        let t = Telemetry::new();
        for i in 0..40 {
            t.inference(&format!("model-{i}"), Duration::from_millis(1));
        }
        let text = t.render_prometheus();
        let series = text
            .lines()
            .filter(|l| l.starts_with("edge_understanding_inference_seconds_count"))
            .count();
        assert_eq!(series, MAX_MODEL_LABELS, "{text}");
        assert!(text.contains("edge_understanding_inference_seconds_count{model=\"other\"} 25"));

        let t = Telemetry::new();
        t.inference("a\"b\\", Duration::from_millis(1));
        assert!(
            t.render_prometheus()
                .contains("edge_understanding_inference_seconds_count{model=\"a\\\"b\\\\\"} 1"),
            "quotes and backslashes in labels are escaped"
        );
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
