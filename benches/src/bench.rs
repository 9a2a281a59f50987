//! `edge-node bench`: the pipeline on the test show with a local subscriber, against the bare
//! GStreamer decode→encode of the same input measured in the same run (the floor).

use anyhow::{Context, Result};
use edge_core::sei::unix_now_us;
use edge_core::stats::Percentiles;
use edge_node::config::NodeConfig;
use edge_node::node::Node;
use edge_node::report::Table;
use edge_node::view::{self, ViewOptions};
use edge_telemetry::{Stage, Telemetry};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub struct BenchOptions {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub duration: Duration,
    pub warmup: Duration,
    pub json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub resolution: String,
    pub fps: u32,
    pub duration_s: f64,
    pub adapter: String,
    pub encoder: String,
    pub node_latency_ms: Percentiles,
    pub edge_to_viewer_ms: Percentiles,
    pub stages: BTreeMap<Stage, Percentiles>,
    pub floor: Floor,
    pub ratio_p50_to_floor: f64,
    pub frames: Frames,
    pub dropped_by_reason: BTreeMap<String, u64>,
    /// The same run with content understanding off, and each model's inference time.
    pub understanding: UnderstandingComparison,
}

#[derive(Debug, Serialize)]
pub struct UnderstandingComparison {
    pub on_node_latency_ms: Percentiles,
    pub off_node_latency_ms: Percentiles,
    /// Mean node latency p99 of the two runs with understanding on over the mean of the two
    /// with it off, run on, off, off, on (target: at most 1.10).
    pub ratio_p99_on_to_off: f64,
    pub on_node_p99_ms_mean: f64,
    pub off_node_p99_ms_mean: f64,
    pub node_p99_ms_runs_on_off_off_on: [f64; 4],
    pub models: BTreeMap<String, ModelInference>,
}

#[derive(Debug, Serialize)]
pub struct ModelInference {
    pub p50: f64,
    pub p99: f64,
    pub runs: u64,
    /// Frames passed over because a run would not have ended before the next frame.
    pub deferred: u64,
    /// Runs started beside the frame path after the longest deferral.
    pub late: u64,
}

/// One measured run of the node with a local subscriber.
struct Measured {
    snapshot: edge_telemetry::TelemetrySnapshot,
    viewer: view::ViewReport,
    adapter: String,
    understanding: Option<edge_understand::UnderstandingStats>,
}

async fn measure(config: NodeConfig, options: &BenchOptions) -> Result<Measured> {
    let node = Node::start(config, Arc::new(Telemetry::new()), Duration::from_secs(20)).await?;
    node.telemetry
        .record_after(unix_now_us() + options.warmup.as_micros() as u64);
    let viewer = view::run(
        ViewOptions {
            url: node.local_url(),
            duration: options.warmup + options.duration,
            decode: false,
            snapshot: None,
            cert_sha256: Some(node.server.certificate_sha256_hex().to_string()),
            warmup: options.warmup,
            commands: Vec::new(),
        },
        Duration::from_secs_f64(1.0 / options.fps as f64),
    )
    .await
    .context("bench subscriber")?;
    let measured = Measured {
        snapshot: node.telemetry.snapshot(),
        viewer,
        adapter: node.adapter.clone(),
        understanding: node.understanding_stats(),
    };
    node.shutdown().await;
    Ok(measured)
}

#[derive(Debug, Serialize)]
pub struct Floor {
    pub node_latency_ms: Percentiles,
    pub frames: u64,
}

#[derive(Debug, Serialize)]
pub struct Frames {
    #[serde(rename = "in")]
    pub frames_in: u64,
    pub out: u64,
    pub dropped: u64,
    pub viewer_received: u64,
    pub viewer_skipped: u64,
}

pub async fn run(options: BenchOptions) -> Result<BenchReport> {
    let uri = format!(
        "testshow://?width={}&height={}&fps={}",
        options.width, options.height, options.fps
    );
    let mut config = NodeConfig::embedded();
    // EDGE_NODE_* overrides as `serve` applies them, so a variant (another execution
    // provider, encoder or bitrate) is benched without editing code.
    config.apply_env(std::env::vars())?;
    config.upstream.uri = uri.clone();
    config.server.listen = "127.0.0.1:0".into();
    config.output.fps = options.fps;
    config.validate()?;

    eprintln!(
        "bench: pipeline at {}x{}@{} for {:?} (+{:?} warm-up), content understanding on",
        options.width, options.height, options.fps, options.duration, options.warmup
    );
    let on = measure(config.clone(), &options).await?;
    eprintln!("bench: the same pipeline with content understanding off, for comparison");
    let mut without = config.clone();
    without.understanding.enabled = false;
    let off = measure(without.clone(), &options).await?;
    // Run to run, this machine's p99 drifts by more than the effect measured; a second pair
    // in the opposite order (off, then on) cancels the drift and the order's own bias.
    eprintln!("bench: understanding off, then on again (reverse order, against drift)");
    let off_again = measure(without, &options).await?;
    let on_again = measure(config, &options).await?;
    let mean_p99 = |a: &Measured, b: &Measured| {
        (a.snapshot.node_latency_ms.p99 + b.snapshot.node_latency_ms.p99) / 2.0
    };
    let (on_p99, off_p99) = (mean_p99(&on, &on_again), mean_p99(&off, &off_again));
    let p99_runs = [
        on.snapshot.node_latency_ms.p99,
        off.snapshot.node_latency_ms.p99,
        off_again.snapshot.node_latency_ms.p99,
        on_again.snapshot.node_latency_ms.p99,
    ];
    let (snapshot, viewer, adapter) = (on.snapshot, on.viewer, on.adapter);
    let understanding = UnderstandingComparison {
        models: on
            .understanding
            .map(|stats| {
                stats
                    .models
                    .into_iter()
                    .map(|m| {
                        let inference = m.inference_ms;
                        (
                            m.model,
                            ModelInference {
                                p50: inference.p50,
                                p99: inference.p99,
                                runs: m.runs,
                                deferred: m.deferred,
                                late: m.late,
                            },
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        on_node_latency_ms: snapshot.node_latency_ms,
        off_node_latency_ms: off.snapshot.node_latency_ms,
        ratio_p99_on_to_off: if off_p99 > 0.0 { on_p99 / off_p99 } else { 0.0 },
        on_node_p99_ms_mean: on_p99,
        off_node_p99_ms_mean: off_p99,
        node_p99_ms_runs_on_off_off_on: p99_runs,
    };

    eprintln!(
        "bench: floor (bare GStreamer decode→encode of the same input) for {:?}",
        options.duration
    );
    let floor_uri = uri.clone();
    let floor_duration = options.warmup + options.duration;
    let warmup = options.warmup;
    let floor = tokio::task::spawn_blocking(move || {
        edge_media::run_floor(&floor_uri, floor_duration, warmup)
    })
    .await
    .context("floor run")??;
    let floor_p = floor.latency.percentiles();

    let out = snapshot.frames.get(&Stage::Send).copied().unwrap_or(0);
    let report = BenchReport {
        resolution: format!("{}x{}", options.width, options.height),
        fps: options.fps,
        duration_s: options.duration.as_secs_f64(),
        adapter,
        encoder: floor.encoder.clone(),
        node_latency_ms: snapshot.node_latency_ms,
        edge_to_viewer_ms: viewer.edge_to_viewer_ms,
        stages: Stage::ALL
            .iter()
            .map(|s| (*s, snapshot.stages.get(s).copied().unwrap_or_default()))
            .collect(),
        ratio_p50_to_floor: if floor_p.p50 > 0.0 {
            snapshot.node_latency_ms.p50 / floor_p.p50
        } else {
            0.0
        },
        floor: Floor {
            node_latency_ms: floor_p,
            frames: floor.latency.count(),
        },
        frames: Frames {
            frames_in: snapshot.frames_in,
            out,
            dropped: snapshot.dropped.values().sum(),
            viewer_received: viewer.frames_received,
            viewer_skipped: viewer.frames_skipped,
        },
        dropped_by_reason: snapshot.dropped,
        understanding,
    };
    if let Some(path) = &options.json {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        let svg_path = path.with_extension("svg");
        std::fs::write(&svg_path, plot_report(&report))
            .with_context(|| format!("writing {}", svg_path.display()))?;
    }
    Ok(report)
}

/// The report's latencies as an SVG bar chart, with the 720p30 node p99 target drawn in.
fn plot_report(report: &BenchReport) -> String {
    let mut rows: Vec<(String, Percentiles)> = report
        .stages
        .iter()
        .map(|(s, p)| (s.as_str().to_string(), *p))
        .collect();
    rows.push(("node latency".into(), report.node_latency_ms));
    rows.push(("floor: decode→encode".into(), report.floor.node_latency_ms));
    rows.push(("edge-to-viewer".into(), report.edge_to_viewer_ms));
    let title = format!(
        "edge-node bench {} @ {} fps: node p50 = {:.2}x floor",
        report.resolution, report.fps, report.ratio_p50_to_floor
    );
    crate::plot::latency_bars_svg(
        &title,
        &rows,
        Some(if report.resolution == "1280x720" {
            10.0
        } else {
            20.0
        }),
    )
}

pub fn render(report: &BenchReport) -> String {
    let mut t = Table::new(&["", "p50", "p95", "p99"]);
    for (stage, p) in &report.stages {
        t.percentile_row(stage.as_str(), p, &[]);
    }
    t.percentile_row("node latency", &report.node_latency_ms, &[]);
    t.percentile_row("floor (decode→encode)", &report.floor.node_latency_ms, &[]);
    t.percentile_row("edge-to-viewer", &report.edge_to_viewer_ms, &[]);
    let models: Vec<String> = report
        .understanding
        .models
        .iter()
        .map(|(name, m)| {
            format!(
                "{name} p50 {:.1} ms p99 {:.1} ms ({} runs, {} frames deferred, {} late)",
                m.p50, m.p99, m.runs, m.deferred, m.late
            )
        })
        .collect();
    format!(
        "{} @ {} fps, encoder {}\n{}\nunderstanding: node p99 on {:.2} ms / off {:.2} ms = {:.2}x (mean of runs on, off, off, on); {}\nnode p50 / floor p50 = {:.2}x; frames in {} out {} dropped {}; viewer received {} skipped {}",
        report.resolution,
        report.fps,
        report.encoder,
        t.render(),
        report.understanding.on_node_p99_ms_mean,
        report.understanding.off_node_p99_ms_mean,
        report.understanding.ratio_p99_on_to_off,
        models.join("; "),
        report.ratio_p50_to_floor,
        report.frames.frames_in,
        report.frames.out,
        report.frames.dropped,
        report.frames.viewer_received,
        report.frames.viewer_skipped
    )
}
