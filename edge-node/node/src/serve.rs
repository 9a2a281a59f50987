//! `edge-node serve`: the admin endpoint first, then the node; runs until a signal, an
//! operator's drain or `--duration`, and drains or stops accordingly.

use crate::config::NodeConfig;
use crate::{admin, listening, node};
use anyhow::Result;
use std::time::Duration;

/// Serves until stopped; see the module doc.
pub async fn serve(
    config: NodeConfig,
    admin_listen: &str,
    duration: Option<Duration>,
) -> Result<()> {
    // Admin first: probes answer (not ready) while the GPU, QUIC and upstream come up.
    let telemetry = std::sync::Arc::new(edge_telemetry::Telemetry::new());
    let grace = Duration::from_millis(config.server.drain_grace_ms);
    let (admin, mut drain_requests) = admin::start(
        admin::AdminOptions {
            listen: admin_listen.to_string(),
            token: config.admin.token.clone(),
            default_drain_grace: grace,
        },
        telemetry.clone(),
    )?;
    listening::Listening::AdminListening {
        admin: admin.local_addr,
    }
    .report();
    let node = node::Node::start(config, telemetry.clone(), Duration::from_secs(15)).await?;
    admin.attach_delivery(&node.server);
    admin.attach_campaigns(node.campaigns.clone());
    admin.attach_viewers(node.viewers.clone());
    let url = node.local_url();
    let certificate_sha256 = node.server.certificate_sha256_hex();
    eprintln!(
        "edge-node serving at {url} (QUIC/WebTransport, broadcast `live`); certificate sha256 {certificate_sha256}; admin http://{}/",
        admin.local_addr
    );
    listening::Listening::Serving {
        quic: node.local_addr(),
        url: url.as_str(),
        certificate_sha256,
        admin: admin.local_addr,
    }
    .report();
    // SIGTERM/SIGINT and `POST /api/v1/drain` start the same drain; `--duration` just stops.
    let run_for = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let drain_grace = tokio::select! {
        _ = run_for => None,
        _ = shutdown_signal() => {
            tracing::info!(grace_ms = grace.as_millis() as u64, "signal: draining");
            Some(grace)
        }
        Some(request) = drain_requests.recv() => {
            tracing::info!(grace_ms = request.grace.as_millis() as u64, "operator: draining");
            Some(request.grace)
        }
    };
    let snapshot = node.telemetry.snapshot();
    match drain_grace {
        Some(grace) => node.drain(grace).await,
        None => {
            tracing::info!("duration reached: stopping");
            node.shutdown().await;
        }
    }
    tracing::info!(
        frames_in = snapshot.frames_in,
        node_latency_p99_ms = snapshot.node_latency_ms.p99,
        "stopped"
    );
    Ok(())
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the node");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
