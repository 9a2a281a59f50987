//! `edge-node demo`: the node on the embedded default with two local viewers for a bounded
//! time; prints per-stage and per-viewer latency and writes one snapshot per viewer.

use crate::config::NodeConfig;
use crate::node::Node;
use crate::report::Table;
use crate::view::{self, ViewOptions, ViewReport};
use anyhow::{Context, Result};
use edge_telemetry::{Stage, Telemetry};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub struct DemoOptions {
    pub config: NodeConfig,
    pub duration: Duration,
    pub out_dir: PathBuf,
}

pub async fn run(options: DemoOptions) -> Result<String> {
    std::fs::create_dir_all(&options.out_dir)
        .with_context(|| format!("creating {}", options.out_dir.display()))?;
    let node = Node::start(
        options.config,
        Arc::new(Telemetry::new()),
        Duration::from_secs(20),
    )
    .await?;
    let url = node.local_url();
    let cert = node.server.certificate_sha256_hex().to_string();
    eprintln!(
        "demo: node serving at {url} (certificate sha256 {cert}); two viewers for {:?}",
        options.duration
    );

    let frame_interval = Duration::from_secs_f64(1.0 / node.source_fps() as f64);
    // One viewer inside Hangzhou's Wulin Yintai mall (its geofence picks the mall ad), one
    // elsewhere with a personal coupon: two render groups, two encodes.
    let queries = ["lat=30.2745&lon=120.1633", "name=%E6%9D%8E%E9%9B%B7"];
    let viewers = (1..=2).map(|i| {
        let mut url = url.clone();
        url.set_query(Some(queries[i - 1]));
        let options = ViewOptions {
            url,
            commands: Vec::new(),
            duration: options.duration,
            decode: true,
            snapshot: Some(options.out_dir.join(format!("viewer-{i}.png"))),
            cert_sha256: Some(cert.clone()),
            warmup: Duration::from_secs(1),
        };
        tokio::spawn(view::run(options, frame_interval))
    });
    let mut reports: Vec<ViewReport> = Vec::new();
    for (i, handle) in viewers.collect::<Vec<_>>().into_iter().enumerate() {
        reports.push(
            handle
                .await
                .context("viewer task")?
                .with_context(|| format!("viewer {}", i + 1))?,
        );
    }
    let snapshot = node.telemetry.snapshot();
    let dropped_total = node.telemetry.dropped_total();
    let adapter = node.adapter.clone();
    node.shutdown().await;

    let mut stages = Table::new(&["stage", "p50", "p95", "p99", "frames"]);
    for stage in Stage::ALL {
        let p = snapshot.stages.get(&stage).copied().unwrap_or_default();
        let n = snapshot.frames.get(&stage).copied().unwrap_or(0);
        stages.percentile_row(stage.as_str(), &p, &[n.to_string()]);
    }
    stages.percentile_row(
        "node latency",
        &snapshot.node_latency_ms,
        &[snapshot.node_latency_samples.to_string()],
    );

    let mut viewers = Table::new(&[
        "viewer", "p50", "p95", "p99", "received", "decoded", "skipped", "snapshot",
    ]);
    for (i, r) in reports.iter().enumerate() {
        viewers.percentile_row(
            &format!("viewer-{} edge-to-viewer", i + 1),
            &r.edge_to_viewer_ms,
            &[
                r.frames_received.to_string(),
                r.frames_decoded.to_string(),
                r.frames_skipped.to_string(),
                r.snapshot.clone().unwrap_or_default(),
            ],
        );
    }
    Ok(format!(
        "compositor: {adapter}\nframes in {}, dropped {} {:?}\n\n{}\n\n{}",
        snapshot.frames_in,
        dropped_total,
        snapshot.dropped,
        stages.render(),
        viewers.render()
    ))
}
