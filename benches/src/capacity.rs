//! `edge-node bench --capacity`: how many renderings this node sustains, within its latency
//! budget and in real time, against one ffmpeg process per zone on the same cores and the same
//! upstream file, and what sharing encoders buys. Every node run ingests that one file
//! ([`crate::capacity_upstream`], written once from the test show or given), looped as a live
//! upstream. A window is within budget when the node latency p99 (decoded frame in → access
//! unit handed to QUIC, every group's frames, from the node's telemetry) **and** every viewer's
//! own edge-to-viewer p99 (SEI clock → arrival, measured by the viewers) are within the budget;
//! it is in real time when every watching viewer received at least [`REAL_TIME_SHARE`] of the
//! source frames the node took in.
//!
//! 1. **Ramp**: one more render group per step (viewers with distinct coupons, so each is its
//!    own group), with admission off so the real cost is measured rather than the model's
//!    prediction, until real time is lost.
//! 2. **ffmpeg per zone** ([`crate::capacity_ffmpeg`]): 1, 2, 3, ... processes on the same file
//!    with the node's ad size, encoder, preset, bitrate and GOP, until one falls behind.
//! 3. **Shared**: N viewers over 4 groups (2 zones x with/without a shared coupon name),
//!    admission on.
//! 4. **One encoder per viewer**: the same N viewers, each with a coupon of its own (the way
//!    per-viewer WebRTC servers work), admission on.
//!
//! When admission does not let all N shared viewers in, the shared run is repeated with
//! admission off, so the real p99 of N viewers over 4 groups is known too.
//!
//! The viewers are in-process subscriptions without decoding ([`crate::viewer_swarm`]); they
//! run on the same cores as the node, and the report says how much CPU they took.

use crate::capacity_ffmpeg::{self, FfmpegComparison, FfmpegOptions, ZoneAd};
use crate::capacity_upstream::{self, UpstreamFile};
use crate::machine_stall;
use crate::viewer_swarm::{self, EdgeToViewer, JoinTally, ViewerSwarm};
use anyhow::{Context, Result};
use edge_campaign::{Campaigns, OverlayContent};
use edge_core::sei::unix_now_us;
use edge_core::stats::Percentiles;
use edge_node::config::NodeConfig;
use edge_node::node::Node;
use edge_node::report::Table;
use edge_telemetry::cpu_usage::{CpuSample, CpuUse};
use edge_telemetry::{AdmissionDecision, Stage, Telemetry};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The two zones of the embedded campaigns; `zone=` hints are allowed there.
const ZONES: [&str; 2] = ["yintai-mall", "default"];
/// A viewer receiving at least this share of the source's frames counts as served.
const RECEIVING_SHARE: f64 = 0.9;
/// A rendering keeps real time when its viewer receives at least this share of the source
/// frames the node took in during the window.
pub const REAL_TIME_SHARE: f64 = 0.99;
/// Busy cores of other programs above which the bench warns that it is not alone.
const QUIET_CORES: f64 = 0.2;
/// How long the first viewer of a crowd run watches alone before the others come.
const MODEL_WARMUP: Duration = Duration::from_secs(6);
/// Over-budget ramp steps measured on a busy machine are measured again, up to this often.
const BUSY_RETRIES: usize = 2;
/// Viewers connecting together when admission is off.
const JOINS_AT_ONCE: usize = 10;
/// How long one viewer may take from connecting to its first frame.
const JOIN_WAIT: Duration = Duration::from_secs(5);

/// Where the upstream file both sides read comes from.
pub enum UpstreamChoice {
    /// Written by the bench: this many seconds of the test show at the bench's size and rate.
    TestShow { seconds: f64 },
    /// The operator's file; its size and rate replace the bench's.
    File(PathBuf),
}

pub struct CapacityOptions {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub upstream: UpstreamChoice,
    /// Media seconds each ffmpeg process encodes per step; `None` skips the comparison.
    pub ffmpeg_seconds: Option<f64>,
    /// The ffmpeg ramp stops here even in real time.
    pub ffmpeg_max: usize,
    /// Encoder bitrate of every group in every run.
    pub bitrate_kbps: u32,
    /// Viewers in the shared and per-viewer runs.
    pub viewers: usize,
    /// Measured per ramp step.
    pub step: Duration,
    /// Measured per crowd run.
    pub crowd: Duration,
    /// Wait after joins before measuring (group start, IDRs, QUIC windows).
    pub settle: Duration,
    /// The ramp stops here even in real time.
    pub max_groups: usize,
    /// Worker threads of the viewers' runtime.
    pub viewer_threads: usize,
    /// Content understanding as the embedded config has it (on), or off for every run.
    pub understanding: bool,
    /// The frame path at real-time priority (`encode.realtime_priority`), off as in the
    /// embedded config unless asked for.
    pub realtime_priority: bool,
}

#[derive(Debug, Serialize)]
pub struct CapacityBenchReport {
    pub resolution: String,
    pub fps: u32,
    /// `[budget] node_latency_p99_ms` of the embedded config: the line every run is held to.
    pub budget_node_latency_p99_ms: f64,
    pub adapter: String,
    pub encoder: String,
    pub bitrate_kbps: u32,
    pub gop_frames: u32,
    /// The file every node run and every ffmpeg process read.
    pub upstream: UpstreamFile,
    pub bitrate_note: String,
    pub viewers_note: String,
    pub viewer_threads: usize,
    pub machine_cores: usize,
    /// Busy cores outside this process in the second before the bench began: other programs
    /// on a shared machine make every number below pessimistic.
    pub rest_of_machine_cores_before: f64,
    /// Content understanding as configured (the embedded config runs it): its models, as the
    /// ramp's node ran them, share the same cores. `null` when it was off or not installed.
    pub understanding: Option<edge_understand::UnderstandingStats>,
    /// Whether the node asked for real-time priority for its frame path and encoders
    /// (`encode.realtime_priority`), and whether this process may have it (its stall probe got
    /// it): both true means the frame path ran at real-time priority.
    pub realtime_priority_asked: bool,
    pub realtime_priority_permitted: bool,
    pub capacity: Capacity,
}

#[derive(Debug, Serialize)]
pub struct Capacity {
    /// Present when run at 1280x720@30: the headline number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_groups_720p30: Option<u64>,
    /// The most groups such that every ramp step up to it stayed within budget (node p99 and
    /// every viewer's edge-to-viewer p99).
    pub max_groups: u64,
    /// The most groups such that every ramp step up to it kept real time.
    pub max_groups_real_time: u64,
    pub ramp_admission: bool,
    pub ramp: Vec<RampStep>,
    /// The same file through one ffmpeg process per zone; `null` when skipped.
    pub ffmpeg_per_zone: Option<FfmpegComparison>,
    pub side_by_side: SideBySide,
    pub shared_groups: CrowdRun,
    /// The shared run again with admission off, when admission kept viewers out of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_groups_all_admitted: Option<CrowdRun>,
    pub per_viewer_encoders: CrowdRun,
    pub viewers_within_budget: WithinBudget,
}

/// The node's ramp against ffmpeg per zone, same machine, same file, same run.
#[derive(Debug, Serialize)]
pub struct SideBySide {
    pub node_renderings_within_budget: u64,
    pub node_renderings_real_time: u64,
    /// `null` when the comparison was skipped.
    pub ffmpeg_renderings_real_time: Option<usize>,
    /// node within budget / ffmpeg in real time.
    pub ratio_within_budget: Option<f64>,
    /// node in real time / ffmpeg in real time.
    pub ratio_real_time: Option<f64>,
    /// The node's cores (viewers not included) at its largest real-time step.
    pub node_cores_at_real_time_max: Option<f64>,
    /// Node CPU per rendering per source frame at that step.
    pub node_cpu_ms_per_rendering_frame: Option<f64>,
    /// All ffmpeg processes' cores at their largest real-time step.
    pub ffmpeg_cores_at_real_time_max: Option<f64>,
    /// One process's CPU per frame at that step.
    pub ffmpeg_cpu_ms_per_frame: Option<f64>,
    pub definition: String,
}

#[derive(Debug, Serialize)]
pub struct WithinBudget {
    pub shared_groups: usize,
    pub per_viewer_encoders: usize,
    /// shared / per-viewer; `null` when the per-viewer run served none.
    pub ratio: Option<f64>,
    pub definition: String,
}

/// One measurement window of the node.
#[derive(Clone, Debug, Serialize)]
pub struct Window {
    pub seconds: f64,
    pub node_latency_ms: Percentiles,
    pub samples: u64,
    /// Source frames the node took in (the reference for real time).
    pub frames_in: u64,
    /// frames_in over the source's rate times the window (below 1 when ingest fell behind or
    /// the file looped in the window).
    pub source_share: f64,
    /// Encoded frames handed to QUIC, every group together.
    pub frames_out: u64,
    pub dropped: u64,
    pub render_groups: u64,
    /// Viewers that received at least 90% of the source's frames in the window.
    pub viewers_receiving: usize,
    /// Watching viewers that received at least 99% of the source frames in the window.
    pub viewers_real_time: usize,
    pub viewers_watching: usize,
    /// Fewest frames any watching viewer received.
    pub viewer_frames_min: u64,
    /// Every watching viewer received at least 99% of the source frames.
    pub real_time: bool,
    /// Measured by the viewers from each frame's SEI clock.
    pub edge_to_viewer: EdgeToViewer,
    pub node_within_budget: bool,
    /// Node p99 and every viewer's edge-to-viewer p99 within the budget.
    pub within_budget: bool,
    pub cpu: CpuUse,
    /// The CPU this process (node and viewers) spent per source frame, spread over every core
    /// of the machine: the earliest a frame's last delivery can land however the work is
    /// scheduled, so no viewer's p99 can be much below it.
    pub cpu_floor_ms: f64,
    /// The longest the machine left a real-time probe thread unrun in the window (see
    /// `machine_stall.rs`).
    pub machine_stall_ms: f64,
    /// The machine stopped longer than the stall limit (judged only with a real-time probe).
    pub machine_stalled: bool,
}

impl Window {
    /// Over budget or behind real time.
    fn failed(&self) -> bool {
        !self.within_budget || !self.real_time
    }

    /// What outside the node disturbed the window: the machine itself stopping, other
    /// programs on the cores. Ordered: a stop disturbs more than busy neighbours.
    fn disturbances(&self) -> (bool, bool) {
        (
            self.machine_stalled,
            self.cpu.rest_of_machine_cores > QUIET_CORES,
        )
    }

    fn disturbed(&self) -> bool {
        self.disturbances() != (false, false)
    }

    /// What disturbed the window, in words.
    fn disturbance(&self) -> String {
        if self.machine_stalled {
            format!(
                "the machine stopped running the bench for {:.1} ms (a real-time probe thread went unrun)",
                self.machine_stall_ms
            )
        } else {
            format!(
                "other programs took {:.2} cores",
                self.cpu.rest_of_machine_cores
            )
        }
    }

    /// Whether this window, measured again after `first`, says more about the node: it
    /// passed, or it was less disturbed.
    fn replaces(&self, first: &Window) -> bool {
        !self.failed() || self.disturbances() < first.disturbances()
    }
}

#[derive(Debug, Serialize)]
pub struct RampStep {
    pub groups: u64,
    pub viewers: usize,
    /// Windows measured for this step (more than one when the machine was busy).
    pub attempts: usize,
    #[serde(flatten)]
    pub window: Window,
}

#[derive(Debug, Serialize)]
pub struct CrowdRun {
    pub description: String,
    pub admission: bool,
    pub viewers: usize,
    pub join: JoinTally,
    /// Admission decisions counted by the node (admit = as asked).
    pub admission_decisions: BTreeMap<&'static str, u64>,
    /// Viewers receiving frames at the asked rendition, capped at those admitted as asked;
    /// 0 when the node p99 was over budget.
    pub viewers_within_budget: usize,
    /// Windows measured (more than one when the machine was busy or stalled).
    pub attempts: usize,
    #[serde(flatten)]
    pub window: Window,
}

pub async fn run(mut options: CapacityOptions) -> Result<CapacityBenchReport> {
    let budget_ms = NodeConfig::embedded().budget.node_latency_p99_ms;
    let idle_check = CpuSample::now(viewer_swarm::THREAD_NAME)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let busy_before = idle_check
        .until(&CpuSample::now(viewer_swarm::THREAD_NAME)?)
        .rest_of_machine_cores;
    if busy_before > QUIET_CORES {
        eprintln!(
            "capacity: warning: other programs keep {busy_before:.2} cores busy; every number will be pessimistic"
        );
    }
    let encoder = edge_media::best_h264_encoder()
        .map(str::to_string)
        .context("finding the H.264 encoder the node will use")?;
    let work = WorkDir::new()?;
    let upstream = prepare_upstream(&mut options, &work.path).await?;
    let gop_frames = node_config(&options, &upstream, false)?.gop_frames();
    eprintln!(
        "capacity: {}x{}@{}, {} kbit/s and GOP {gop_frames} per rendering, budget node p99 and every viewer's edge-to-viewer p99 <= {budget_ms} ms",
        options.width, options.height, options.fps, options.bitrate_kbps
    );

    let (ramp, adapter, understanding) = ramp(&options, &upstream, budget_ms).await?;
    let max_groups = last_of_leading(&ramp, |s| s.window.within_budget);
    let max_groups_real_time = last_of_leading(&ramp, |s| s.window.real_time);
    eprintln!(
        "capacity: node: {max_groups} renderings within budget, {max_groups_real_time} in real time"
    );
    let ffmpeg = match options.ffmpeg_seconds {
        Some(seconds) => Some(
            capacity_ffmpeg::ramp(FfmpegOptions {
                input: upstream.path.clone(),
                ads: zone_ads(&work.path)?,
                fps: options.fps,
                bitrate_kbps: options.bitrate_kbps,
                gop_frames,
                seconds,
                max_processes: options.ffmpeg_max,
            })
            .await?,
        ),
        None => None,
    };
    let side_by_side = side_by_side(&ramp, ffmpeg.as_ref(), options.fps);
    if let Some(f) = &ffmpeg {
        eprintln!(
            "capacity: ffmpeg per zone: {} in real time; node/ffmpeg: within budget {}, real time {}",
            f.max_real_time,
            ratio_text(side_by_side.ratio_within_budget),
            ratio_text(side_by_side.ratio_real_time)
        );
    }

    let n = options.viewers;
    let shared_queries: Vec<String> = (0..n)
        .map(|i| {
            let zone = ZONES[i % 2];
            match (i / 2) % 2 {
                0 => format!("zone={zone}"),
                _ => format!("zone={zone}&name=Ada"),
            }
        })
        .collect();
    let crowd = |description: &'static str, queries: Vec<String>, admission: bool| {
        let (options, upstream) = (&options, &upstream);
        async move {
            crowd_run(
                options,
                upstream,
                budget_ms,
                description,
                &queries,
                admission,
            )
            .await
        }
    };
    let shared = crowd(
        "4 groups: 2 zones x (no coupon | a coupon for the shared name Ada)",
        shared_queries.clone(),
        true,
    )
    .await?;
    let shared_all = if shared.join.watching < n {
        Some(
            crowd(
                "4 groups, admission off: every viewer admitted as asked",
                shared_queries,
                false,
            )
            .await?,
        )
    } else {
        None
    };
    let per_viewer_queries: Vec<String> = (0..n)
        .map(|i| format!("zone={}&name=viewer-{i}", ZONES[i % 2]))
        .collect();
    let per_viewer = crowd(
        "one encoder per viewer: every viewer a coupon of its own",
        per_viewer_queries,
        true,
    )
    .await?;

    let within = WithinBudget {
        shared_groups: shared.viewers_within_budget,
        per_viewer_encoders: per_viewer.viewers_within_budget,
        ratio: (per_viewer.viewers_within_budget > 0)
            .then(|| shared.viewers_within_budget as f64 / per_viewer.viewers_within_budget as f64),
        definition: format!(
            "viewers admitted as asked, receiving >= {:.0}% of the source frames at the asked \
             rendition in the measured window with their own edge-to-viewer p99 within the \
             budget, with admission on; 0 if the node p99 exceeded the budget",
            RECEIVING_SHARE * 100.0
        ),
    };
    let is_720p30 = (options.width, options.height, options.fps) == (1280, 720, 30);
    let report = CapacityBenchReport {
        resolution: format!("{}x{}", options.width, options.height),
        fps: options.fps,
        budget_node_latency_p99_ms: budget_ms,
        adapter,
        encoder,
        bitrate_kbps: options.bitrate_kbps,
        gop_frames,
        upstream,
        bitrate_note: format!(
            "every group encodes at {} kbit/s in all capacity runs (the latency bench uses the \
             config's {} kbit/s): the viewers share the node's cores, and each byte sent is \
             also received and decrypted by them on the same machine",
            options.bitrate_kbps,
            NodeConfig::embedded().encode.bitrate_kbps
        ),
        viewers_note: format!(
            "in-process moq-lite/WebTransport subscriptions over loopback QUIC, no decoding, on \
             {} runtime thread(s) named {:?}; their CPU is reported as cpu.named_cores, the \
             node's as cpu.other_cores, the rest of the machine (other programs, loopback \
             packets in softirq) as cpu.rest_of_machine_cores",
            options.viewer_threads,
            viewer_swarm::THREAD_NAME
        ),
        viewer_threads: options.viewer_threads,
        machine_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        rest_of_machine_cores_before: busy_before,
        understanding,
        realtime_priority_asked: options.realtime_priority,
        realtime_priority_permitted: machine_stall::probe().realtime(),
        capacity: Capacity {
            max_groups_720p30: is_720p30.then_some(max_groups),
            max_groups,
            max_groups_real_time,
            ramp_admission: false,
            ramp,
            ffmpeg_per_zone: ffmpeg,
            side_by_side,
            shared_groups: shared,
            shared_groups_all_admitted: shared_all,
            per_viewer_encoders: per_viewer,
            viewers_within_budget: within,
        },
    };
    Ok(report)
}

/// The bench's scratch directory (upstream file, ad PNGs), removed when the bench ends.
struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    fn new() -> Result<Self> {
        let path = std::env::temp_dir().join(format!("edge-node-capacity-{}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Writes the test show into `dir` or probes the given file; a given file's size and rate
/// become the bench's.
async fn prepare_upstream(options: &mut CapacityOptions, dir: &Path) -> Result<UpstreamFile> {
    let upstream = match &options.upstream {
        UpstreamChoice::File(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || capacity_upstream::probe(&path)).await??
        }
        UpstreamChoice::TestShow { seconds } => {
            let (path, seconds) = (dir.join("upstream.mp4"), *seconds);
            let (w, h, fps) = (options.width, options.height, options.fps);
            // The file's IDR spacing is the origin's business; the node's GOP is its own.
            let gop = fps * 2;
            tokio::task::spawn_blocking(move || {
                capacity_upstream::write_test_show(&path, w, h, fps, seconds, gop)
            })
            .await??
        }
    };
    options.width = upstream.width;
    options.height = upstream.height;
    options.fps = upstream.fps;
    eprintln!("capacity: upstream: {}", upstream.origin);
    Ok(upstream)
}

/// Each zone's ad as the node draws it, written into `dir` for ffmpeg.
fn zone_ads(dir: &Path) -> Result<Vec<ZoneAd>> {
    let campaigns = Campaigns::embedded();
    ZONES
        .iter()
        .map(|zone| -> Result<ZoneAd> {
            let id = format!("{zone}-ad");
            let spec = campaigns
                .overlay(&id)
                .with_context(|| format!("the embedded campaigns have no overlay {id:?}"))?;
            let OverlayContent::Image { image } = &spec.content else {
                anyhow::bail!("the overlay {id:?} is not an image");
            };
            let png = dir.join(format!("{id}.png"));
            std::fs::write(
                &png,
                edge_engine::assets::overlay_png(&image.as_config_str())?,
            )
            .with_context(|| format!("writing {}", png.display()))?;
            Ok(ZoneAd {
                png,
                anchor: spec.placement.anchor,
                margin_px: spec.placement.margin,
            })
        })
        .collect()
}

/// The largest `groups` of the steps before the first that fails `kept`.
fn last_of_leading(steps: &[RampStep], kept: impl Fn(&RampStep) -> bool) -> u64 {
    steps
        .iter()
        .take_while(|s| kept(s))
        .map(|s| s.groups)
        .max()
        .unwrap_or(0)
}

fn side_by_side(ramp: &[RampStep], ffmpeg: Option<&FfmpegComparison>, fps: u32) -> SideBySide {
    let node_within = last_of_leading(ramp, |s| s.window.within_budget);
    let node_real_time = last_of_leading(ramp, |s| s.window.real_time);
    let node_step = ramp
        .iter()
        .take_while(|s| s.window.real_time)
        .find(|s| s.groups == node_real_time && node_real_time > 0);
    let ffmpeg_real_time = ffmpeg.map(|f| f.max_real_time);
    let ffmpeg_step = ffmpeg.and_then(|f| f.steps.iter().find(|s| s.processes == f.max_real_time));
    let ratio = |node: u64| {
        ffmpeg_real_time
            .filter(|f| *f > 0)
            .map(|f| node as f64 / f as f64)
    };
    SideBySide {
        node_renderings_within_budget: node_within,
        node_renderings_real_time: node_real_time,
        ffmpeg_renderings_real_time: ffmpeg_real_time,
        ratio_within_budget: ratio(node_within),
        ratio_real_time: ratio(node_real_time),
        node_cores_at_real_time_max: node_step.map(|s| s.window.cpu.other_cores),
        node_cpu_ms_per_rendering_frame: node_step.map(|s| {
            s.window.cpu.other_cores * 1e3 / (s.groups.max(1) as f64 * f64::from(fps.max(1)))
        }),
        ffmpeg_cores_at_real_time_max: ffmpeg_step.map(|s| s.ffmpeg_cores),
        ffmpeg_cpu_ms_per_frame: ffmpeg_step.map(|s| s.cpu_ms_per_frame),
        definition: format!(
            "renderings: node render groups (one viewer each, admission off) or ffmpeg \
             processes, on the same upstream file and cores; real time: every rendering \
             >= {:.0}% of the source frames (node) or wall time <= {:.0}% over media time \
             (ffmpeg); within budget: node p99 and every viewer's edge-to-viewer p99 <= the \
             budget; ratios are node / ffmpeg in real time",
            REAL_TIME_SHARE * 100.0,
            capacity_ffmpeg::REAL_TIME_TOLERANCE * 100.0
        ),
    }
}

fn ratio_text(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "n/a".into(), |r| format!("{r:.2}x"))
}

/// The node's config for the bench: the upstream file looped, the bench's rate and bitrate.
fn node_config(
    options: &CapacityOptions,
    upstream: &UpstreamFile,
    admission: bool,
) -> Result<NodeConfig> {
    let mut config = NodeConfig::embedded();
    config.upstream.uri = upstream.node_uri()?;
    config.server.listen = "127.0.0.1:0".into();
    config.output.fps = options.fps;
    config.encode.bitrate_kbps = options.bitrate_kbps;
    config.budget.admission = admission;
    config.understanding.enabled &= options.understanding;
    config.encode.realtime_priority |= options.realtime_priority;
    config.validate()?;
    Ok(config)
}

async fn start_node(
    options: &CapacityOptions,
    upstream: &UpstreamFile,
    admission: bool,
) -> Result<Node> {
    let config = node_config(options, upstream, admission)?;
    Node::start(config, Arc::new(Telemetry::new()), Duration::from_secs(20)).await
}

fn swarm_for(node: &Node, options: &CapacityOptions) -> Result<ViewerSwarm> {
    ViewerSwarm::new(
        node.local_url(),
        node.server.certificate_sha256_hex().to_string(),
        options.viewer_threads,
    )
}

/// One more group per step, admission off, until real time is lost.
async fn ramp(
    options: &CapacityOptions,
    upstream: &UpstreamFile,
    budget_ms: f64,
) -> Result<(
    Vec<RampStep>,
    String,
    Option<edge_understand::UnderstandingStats>,
)> {
    eprintln!("capacity: node ramp, one more render group per step (admission off) until real time is lost");
    let node = start_node(options, upstream, false).await?;
    let adapter = node.adapter.clone();
    let mut swarm = swarm_for(&node, options)?;
    let mut steps = Vec::new();
    let mut failure = None;
    for k in 1..=options.max_groups {
        let query = format!("zone={}&name=group-{k}", ZONES[k % 2]);
        let joined = swarm.join(&[query], 1, JOIN_WAIT, "").await;
        if joined.watching == 0 {
            failure = Some(format!(
                "the viewer of group {k} never received a frame: {}",
                joined
                    .failure_example
                    .or(joined.refusal_example)
                    .unwrap_or_else(|| "no first frame in time".into())
            ));
            break;
        }
        tokio::time::sleep(options.settle).await;
        let label = format!("ramp {k}");
        let (window, _, attempts) =
            measure_undisturbed(&node, &swarm, options, options.step, budget_ms, &label).await?;
        eprintln!(
            "capacity: ramp {:>2} groups: node p50 {:.2} ms, p99 {:.2} ms, worst viewer edge-to-viewer p99 {:.2} ms ({}), {} of {} renderings in real time (fewest frames {} of {}), node {:.2} cores, viewers {:.2} cores, rest of machine {:.2} cores, longest machine stall {:.1} ms",
            window.render_groups,
            window.node_latency_ms.p50,
            window.node_latency_ms.p99,
            window.edge_to_viewer.worst_viewer_p99_ms,
            if window.within_budget { "within budget" } else { "OVER budget" },
            window.viewers_real_time,
            swarm.len(),
            window.viewer_frames_min,
            window.frames_in,
            window.cpu.other_cores,
            window.cpu.named_cores,
            window.cpu.rest_of_machine_cores,
            window.machine_stall_ms
        );
        let behind = !window.real_time;
        steps.push(RampStep {
            groups: window.render_groups,
            viewers: swarm.len(),
            attempts,
            window,
        });
        if behind {
            break;
        }
    }
    let understanding = node.understanding_stats();
    swarm.shutdown().await;
    node.shutdown().await;
    match failure {
        Some(why) if steps.is_empty() => anyhow::bail!("capacity ramp: {why}"),
        Some(why) => eprintln!("capacity: ramp ended early: {why}"),
        None => {}
    }
    Ok((steps, adapter, understanding))
}

/// `queries.len()` viewers join, then the node is measured. With admission on they join one
/// at a time, so each decision sees the viewers admitted before it; with it off there is no
/// decision to race, and they join [`JOINS_AT_ONCE`] at a time to keep the run short.
async fn crowd_run(
    options: &CapacityOptions,
    upstream: &UpstreamFile,
    budget_ms: f64,
    description: &str,
    queries: &[String],
    admission: bool,
) -> Result<CrowdRun> {
    eprintln!(
        "capacity: {} viewers, {description} (admission {})",
        queries.len(),
        if admission { "on" } else { "off" }
    );
    let node = start_node(options, upstream, admission).await?;
    let mut swarm = swarm_for(&node, options)?;
    let at_once = if admission { 1 } else { JOINS_AT_ONCE };
    // The first viewer alone, then a pause: admission learns its costs from the running
    // groups, and just after start-up it has only its first, slowest frames to go by.
    let mut join = swarm.join(&queries[..1], 1, JOIN_WAIT, "").await;
    tokio::time::sleep(MODEL_WARMUP).await;
    join.absorb(
        swarm
            .join(&queries[1..], at_once, JOIN_WAIT, description)
            .await,
    );
    tokio::time::sleep(options.settle).await;
    let measured = measure_undisturbed(
        &node,
        &swarm,
        options,
        options.crowd,
        budget_ms,
        description,
    )
    .await;
    let heights = swarm.heights();
    let decisions: BTreeMap<&'static str, u64> = AdmissionDecision::ALL
        .iter()
        .map(|d| (d.as_str(), node.telemetry.admissions(*d)))
        .collect();
    swarm.shutdown().await;
    node.shutdown().await;
    let (window, per_viewer, attempts) = measured?;
    let expected = f64::from(options.fps) * window.seconds;
    let within_as_asked = per_viewer
        .iter()
        .zip(&heights)
        .filter(|(v, h)| {
            v.frames as f64 >= expected * RECEIVING_SHARE
                && **h == options.height
                && v.edge_p99_ms.is_some_and(|p99| p99 <= budget_ms)
        })
        .count();
    let viewers_within_budget = if window.node_within_budget {
        within_as_asked.min(decisions["admit"] as usize)
    } else {
        0
    };
    eprintln!(
        "capacity: {description}: {} watching, {} refused, {} failed; {} groups; node p50 {:.2} ms, p99 {:.2} ms; worst viewer edge-to-viewer p99 {:.2} ms ({}); {} viewers within budget; node {:.2} cores, viewers {:.2} cores, rest of machine {:.2} cores",
        join.watching,
        join.refused,
        join.failed,
        window.render_groups,
        window.node_latency_ms.p50,
        window.node_latency_ms.p99,
        window.edge_to_viewer.worst_viewer_p99_ms,
        if window.within_budget { "within budget" } else { "OVER budget" },
        viewers_within_budget,
        window.cpu.other_cores,
        window.cpu.named_cores,
        window.cpu.rest_of_machine_cores
    );
    Ok(CrowdRun {
        description: description.to_string(),
        admission,
        viewers: queries.len(),
        join,
        admission_decisions: decisions,
        viewers_within_budget,
        attempts,
        window,
    })
}

/// What one viewer saw in a window.
struct ViewerWindow {
    frames: u64,
    /// Its own edge-to-viewer p99; `None` without samples.
    edge_p99_ms: Option<f64>,
}

/// Real time over a window: each watching viewer's frames against the source frames the node
/// took in. Returns (viewers in real time, fewest frames, all in real time).
pub fn real_time_verdict(frames_in: u64, watching_viewer_frames: &[u64]) -> (usize, u64, bool) {
    let needed = frames_in as f64 * REAL_TIME_SHARE;
    let kept = watching_viewer_frames
        .iter()
        .filter(|n| frames_in > 0 && **n as f64 >= needed)
        .count();
    let fewest = watching_viewer_frames.iter().copied().min().unwrap_or(0);
    let all = !watching_viewer_frames.is_empty() && kept == watching_viewer_frames.len();
    (kept, fewest, all)
}

/// [`measure`], again while a window failed for a reason outside the node (other programs
/// busy, the machine stopped), up to [`BUSY_RETRIES`] more times; keeps the window that says
/// most about the node, and counts the windows measured. `label` names the run in the log.
async fn measure_undisturbed(
    node: &Node,
    swarm: &ViewerSwarm,
    options: &CapacityOptions,
    length: Duration,
    budget_ms: f64,
    label: &str,
) -> Result<(Window, Vec<ViewerWindow>, usize)> {
    let mut attempts = 1;
    let (mut window, mut per_viewer) = measure(node, swarm, options, length, budget_ms).await?;
    while window.failed() && window.disturbed() && attempts <= BUSY_RETRIES {
        eprintln!(
            "capacity: {label}: {} while {}; measuring again",
            if window.real_time {
                "over budget"
            } else {
                "behind real time"
            },
            window.disturbance()
        );
        attempts += 1;
        let (again, again_per_viewer) = measure(node, swarm, options, length, budget_ms).await?;
        if again.replaces(&window) {
            (window, per_viewer) = (again, again_per_viewer);
        }
    }
    Ok((window, per_viewer, attempts))
}

/// One window of `length`: latency samples from now on only (the node's and the viewers'),
/// counters as differences; also what each viewer saw in it.
async fn measure(
    node: &Node,
    swarm: &ViewerSwarm,
    options: &CapacityOptions,
    length: Duration,
    budget_ms: f64,
) -> Result<(Window, Vec<ViewerWindow>)> {
    let telemetry = &node.telemetry;
    let before = telemetry.snapshot();
    let frames_before = swarm.frames();
    let cpu_before = CpuSample::now(viewer_swarm::THREAD_NAME)?;
    telemetry.restart_recording(unix_now_us());
    swarm.restart_latency();
    let stall_probe = machine_stall::probe();
    stall_probe.restart();
    let started = Instant::now();
    tokio::time::sleep(length).await;
    let machine_stall = stall_probe.worst();
    let after = telemetry.snapshot();
    let latencies = swarm.latencies();
    let frames_after = swarm.frames();
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_before.until(&CpuSample::now(viewer_swarm::THREAD_NAME)?);
    let sent = |s: &edge_telemetry::TelemetrySnapshot| s.frames.get(&Stage::Send).copied();
    let dropped = |s: &edge_telemetry::TelemetrySnapshot| s.dropped.values().sum::<u64>();
    let expected = f64::from(options.fps) * seconds;
    let frames_in = after.frames_in - before.frames_in;
    let received: Vec<u64> = frames_before
        .iter()
        .zip(&frames_after)
        .map(|(b, a)| a.saturating_sub(*b))
        .collect();
    // Viewers that had their first frame before the window; refused ones never count.
    let watching: Vec<u64> = frames_before
        .iter()
        .zip(&received)
        .filter(|(b, _)| **b > 0)
        .map(|(_, n)| *n)
        .collect();
    let (viewers_real_time, viewer_frames_min, real_time) = real_time_verdict(frames_in, &watching);
    let (edge_to_viewer, p99s) = EdgeToViewer::summarise(&latencies, budget_ms);
    let node_within_budget =
        after.node_latency_samples > 0 && after.node_latency_ms.p99 <= budget_ms;
    let window = Window {
        seconds,
        node_latency_ms: after.node_latency_ms,
        samples: after.node_latency_samples,
        frames_in,
        source_share: frames_in as f64 / expected.max(1.0),
        frames_out: sent(&after).unwrap_or(0) - sent(&before).unwrap_or(0),
        dropped: dropped(&after) - dropped(&before),
        render_groups: telemetry.render_groups(),
        viewers_receiving: received
            .iter()
            .filter(|n| **n as f64 >= expected * RECEIVING_SHARE)
            .count(),
        viewers_real_time,
        viewers_watching: watching.len(),
        viewer_frames_min,
        real_time,
        node_within_budget,
        within_budget: node_within_budget
            && edge_to_viewer.viewers_measured > 0
            && edge_to_viewer.viewers_over_budget == 0,
        edge_to_viewer,
        cpu_floor_ms: cpu_floor_ms(&cpu, seconds, frames_in),
        cpu,
        machine_stall_ms: machine_stall.as_secs_f64() * 1e3,
        machine_stalled: stall_probe.stalled(),
    };
    let per_viewer = received
        .into_iter()
        .zip(p99s)
        .map(|(frames, edge_p99_ms)| ViewerWindow {
            frames,
            edge_p99_ms,
        })
        .collect();
    Ok((window, per_viewer))
}

/// `cpu`'s cores over `seconds`, per source frame and machine core, in milliseconds.
fn cpu_floor_ms(cpu: &CpuUse, seconds: f64, frames_in: u64) -> f64 {
    if frames_in == 0 {
        return 0.0;
    }
    cpu.process_cores * seconds * 1e3 / frames_in as f64 / cpu.machine_cores.max(1) as f64
}

/// The longest machine stall in the window kept, and how many windows were measured.
fn stall_cell(window: &Window, attempts: usize) -> String {
    format!(
        "{}{} ({attempts})",
        edge_node::report::ms(window.machine_stall_ms),
        if window.machine_stalled {
            " STALLED"
        } else {
            ""
        }
    )
}

/// The report as a terminal table.
pub fn render(report: &CapacityBenchReport) -> String {
    let c = &report.capacity;
    let mut ramp = Table::new(&[
        "groups",
        "p50",
        "p95",
        "p99",
        "viewer e2v p99 (worst)",
        "budget",
        "real time (viewers)",
        "frames out/s",
        "dropped",
        "node cores",
        "viewer cores",
        "CPU floor",
        "rest of machine",
        "machine stall (windows)",
    ]);
    for step in &c.ramp {
        let w = &step.window;
        ramp.percentile_row(
            &step.groups.to_string(),
            &w.node_latency_ms,
            &[
                edge_node::report::ms(w.edge_to_viewer.worst_viewer_p99_ms),
                if w.within_budget { "ok" } else { "OVER" }.to_string(),
                format!(
                    "{} ({}/{})",
                    if w.real_time { "yes" } else { "NO" },
                    w.viewers_real_time,
                    w.viewers_watching
                ),
                format!("{:.0}", w.frames_out as f64 / w.seconds),
                w.dropped.to_string(),
                format!("{:.2}", w.cpu.other_cores),
                format!("{:.2}", w.cpu.named_cores),
                edge_node::report::ms(w.cpu_floor_ms),
                format!("{:.2}", w.cpu.rest_of_machine_cores),
                stall_cell(w, step.attempts),
            ],
        );
    }
    let mut crowds = Table::new(&[
        "run",
        "p50",
        "p95",
        "p99",
        "viewer e2v p50 / p99 (all) / worst p99",
        "groups",
        "watching",
        "refused",
        "admit/degrade/refuse",
        "within budget",
        "node cores",
        "viewer cores",
        "CPU floor",
        "rest of machine",
        "machine stall (windows)",
    ]);
    let runs = [
        Some(("shared, admission on", &c.shared_groups)),
        c.shared_groups_all_admitted
            .as_ref()
            .map(|r| ("shared, admission off", r)),
        Some(("per-viewer, admission on", &c.per_viewer_encoders)),
    ];
    for (name, run) in runs.into_iter().flatten() {
        let w = &run.window;
        crowds.percentile_row(
            name,
            &w.node_latency_ms,
            &[
                // The median beside the tails: whether every frame's fan-out is slow or a
                // few frames are.
                format!(
                    "{} / {} / {}",
                    edge_node::report::ms(w.edge_to_viewer.all_ms.p50),
                    edge_node::report::ms(w.edge_to_viewer.all_ms.p99),
                    edge_node::report::ms(w.edge_to_viewer.worst_viewer_p99_ms)
                ),
                w.render_groups.to_string(),
                format!("{}/{}", run.join.watching, run.viewers),
                run.join.refused.to_string(),
                format!(
                    "{}/{}/{}",
                    run.admission_decisions["admit"],
                    run.admission_decisions["degrade"],
                    run.admission_decisions["refuse"]
                ),
                // Viewers whose own edge-to-viewer p99 is within budget; none count while the
                // node's own p99 is over.
                if w.node_within_budget {
                    run.viewers_within_budget.to_string()
                } else {
                    "0 (node p99 OVER)".into()
                },
                format!("{:.2}", w.cpu.other_cores),
                format!("{:.2}", w.cpu.named_cores),
                edge_node::report::ms(w.cpu_floor_ms),
                format!("{:.2}", w.cpu.rest_of_machine_cores),
                stall_cell(w, run.attempts),
            ],
        );
    }
    let within = &c.viewers_within_budget;
    let ffmpeg = match &c.ffmpeg_per_zone {
        Some(f) => {
            let mut table = Table::new(&[
                "processes",
                "real time",
                "slowest wall/media",
                "ffmpeg cores",
                "CPU ms/frame each",
                "rest of machine",
            ]);
            for step in &f.steps {
                table.row(vec![
                    step.processes.to_string(),
                    if step.real_time { "yes" } else { "NO" }.into(),
                    format!("{:.3}", step.worst_wall_over_media),
                    format!("{:.2}", step.ffmpeg_cores),
                    format!("{:.2}", step.cpu_ms_per_frame),
                    format!("{:.2}", step.rest_of_machine_cores),
                ]);
            }
            format!(
                "\nffmpeg per zone on the same file ({}):\n{}\n",
                f.ffmpeg_version,
                table.render()
            )
        }
        None => "\nffmpeg per zone: skipped\n".into(),
    };
    let sbs = &c.side_by_side;
    let optional =
        |v: Option<f64>, unit: &str| v.map_or_else(|| "n/a".into(), |v| format!("{v:.2}{unit}"));
    let side_by_side = format!(
        "renderings, node vs ffmpeg per zone: within budget {} (ratio {}), in real time {} vs {} (ratio {}); \
         CPU at the real-time maximum: node {} cores ({} ms per rendering frame), ffmpeg {} cores ({} ms per frame)",
        sbs.node_renderings_within_budget,
        ratio_text(sbs.ratio_within_budget),
        sbs.node_renderings_real_time,
        sbs.ffmpeg_renderings_real_time
            .map_or_else(|| "n/a".into(), |n| n.to_string()),
        ratio_text(sbs.ratio_real_time),
        optional(sbs.node_cores_at_real_time_max, ""),
        optional(sbs.node_cpu_ms_per_rendering_frame, ""),
        optional(sbs.ffmpeg_cores_at_real_time_max, ""),
        optional(sbs.ffmpeg_cpu_ms_per_frame, ""),
    );
    let understanding = match &report.understanding {
        Some(stats) if !stats.models.is_empty() => stats
            .models
            .iter()
            .map(|m| {
                format!(
                    "{} ({} runs in the ramp, inference p50 {:.1} ms)",
                    m.model, m.runs, m.inference_ms.p50
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => "off".into(),
    };
    format!(
        "{} @ {} fps, encoder {} at {} kbit/s, budget node p99 <= {} ms, adapter {}\n\
         content understanding on the same cores: {understanding}; other programs busy before \
         the run: {:.2} cores\n\
         upstream: {}\n\
         \nramp (admission off), node latency and the viewers' edge-to-viewer latency:\n{}\n\
         capacity.max_groups{} = {} within budget, {} in real time\n{ffmpeg}{side_by_side}\n\
         \n{} viewers:\n{}\n\
         viewers within budget: shared {} vs one encoder per viewer {} = {}",
        report.resolution,
        report.fps,
        report.encoder,
        report.bitrate_kbps,
        report.budget_node_latency_p99_ms,
        report.adapter,
        report.rest_of_machine_cores_before,
        report.upstream.origin,
        ramp.render(),
        if c.max_groups_720p30.is_some() {
            "_720p30"
        } else {
            ""
        },
        c.max_groups,
        c.max_groups_real_time,
        c.shared_groups.viewers,
        crowds.render(),
        within.shared_groups,
        within.per_viewer_encoders,
        match within.ratio {
            Some(r) => format!("{r:.1}x"),
            None => "no per-viewer viewer served, so no finite ratio".into(),
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity_ffmpeg::FfmpegStep;

    #[test]
    fn real_time_needs_every_watching_viewer_at_99_percent_of_the_source() {
        assert_eq!(real_time_verdict(150, &[150, 149, 149]), (3, 149, true));
        assert_eq!(
            real_time_verdict(150, &[150, 148]),
            (1, 148, false),
            "148 < 148.5"
        );
        assert_eq!(
            real_time_verdict(0, &[0]),
            (0, 0, false),
            "no source, no real time"
        );
        assert_eq!(
            real_time_verdict(150, &[]),
            (0, 0, false),
            "nobody watching"
        );
    }

    fn step(groups: u64, within: bool, real_time: bool, node_cores: f64) -> RampStep {
        RampStep {
            groups,
            viewers: groups as usize,
            attempts: 1,
            window: Window {
                seconds: 5.0,
                node_latency_ms: Percentiles::default(),
                samples: 150,
                frames_in: 150,
                source_share: 1.0,
                frames_out: 150 * groups,
                dropped: 0,
                render_groups: groups,
                viewers_receiving: groups as usize,
                viewers_real_time: groups as usize,
                viewers_watching: groups as usize,
                viewer_frames_min: 150,
                real_time,
                edge_to_viewer: EdgeToViewer::default(),
                node_within_budget: within,
                within_budget: within,
                cpu: CpuUse {
                    other_cores: node_cores,
                    ..CpuUse::default()
                },
                cpu_floor_ms: 0.0,
                machine_stall_ms: 1.0,
                machine_stalled: false,
            },
        }
    }

    #[test]
    fn cpu_floor_spreads_a_frames_work_over_the_cores() {
        let cpu = CpuUse {
            process_cores: 1.2,
            machine_cores: 2,
            ..CpuUse::default()
        };
        // 1.2 cores for 5 s is 6 s of CPU; over 150 frames 40 ms each, 20 ms on each of 2 cores.
        assert!((cpu_floor_ms(&cpu, 5.0, 150) - 20.0).abs() < 1e-9);
        assert_eq!(cpu_floor_ms(&cpu, 5.0, 0), 0.0);
    }

    #[test]
    fn side_by_side_counts_leading_steps_and_divides_by_ffmpeg() {
        // Over budget at 3 but back within at 4 (a burst): the count stops at the first miss.
        let ramp = vec![
            step(1, true, true, 0.3),
            step(2, true, true, 0.6),
            step(3, false, true, 0.9),
            step(4, true, true, 1.2),
            step(5, false, false, 1.5),
        ];
        let ffmpeg_step = |processes, real_time| FfmpegStep {
            processes,
            attempts: 1,
            real_time,
            worst_wall_over_media: 1.0,
            ffmpeg_cores: 0.2 * processes as f64,
            cpu_ms_per_frame: 6.0,
            rest_of_machine_cores: 0.0,
            runs: Vec::new(),
        };
        let ffmpeg = FfmpegComparison {
            command: String::new(),
            ffmpeg_version: String::new(),
            definition: String::new(),
            max_real_time: 8,
            steps: (1..=9).map(|n| ffmpeg_step(n, n <= 8)).collect(),
        };
        let sbs = side_by_side(&ramp, Some(&ffmpeg), 30);
        assert_eq!(sbs.node_renderings_within_budget, 2);
        assert_eq!(sbs.node_renderings_real_time, 4);
        assert_eq!(sbs.ffmpeg_renderings_real_time, Some(8));
        assert_eq!(sbs.ratio_within_budget, Some(0.25));
        assert_eq!(sbs.ratio_real_time, Some(0.5));
        assert_eq!(sbs.node_cores_at_real_time_max, Some(1.2));
        assert!((sbs.node_cpu_ms_per_rendering_frame.unwrap() - 10.0).abs() < 1e-9);
        assert!((sbs.ffmpeg_cores_at_real_time_max.unwrap() - 1.6).abs() < 1e-9);
        assert_eq!(sbs.ffmpeg_cpu_ms_per_frame, Some(6.0));

        let alone = side_by_side(&ramp, None, 30);
        assert_eq!(
            (alone.ratio_real_time, alone.ffmpeg_renderings_real_time),
            (None, None)
        );
        let none_kept = side_by_side(&[step(1, false, false, 0.3)], Some(&ffmpeg), 30);
        assert_eq!(none_kept.node_renderings_real_time, 0);
        assert_eq!(none_kept.node_cores_at_real_time_max, None);
        assert_eq!(none_kept.ratio_real_time, Some(0.0));
    }
}
