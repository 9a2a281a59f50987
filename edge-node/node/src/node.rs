//! A running node: delivery server, compositor and frame path, started in the order that
//! turns every start-up problem into one clear error.

use crate::auth::{zone_allowed, ViewerAuth};
use crate::config::NodeConfig;
use crate::pipeline::{Pipeline, DEFAULT_RENDERING};
use crate::telemetry::Telemetry;
use anyhow::{Context, Result};
use edge_compose::{Compositor, CompositorOptions};
use edge_deliver::{
    DeliveryServer, Refusal, ServerConfig, SessionRouter, TlsSource, Uplink, ViewerRequest,
};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Application close code for sessions ended by a node shutdown.
pub const CLOSE_CODE_SHUTDOWN: u32 = 1;

/// Every viewer gets the one rendering (per-zone and per-viewer routing builds on this);
/// nobody new is admitted while the node drains.
struct SingleRendering {
    telemetry: Arc<Telemetry>,
    auth: Option<ViewerAuth>,
}

impl SessionRouter for SingleRendering {
    fn route(&self, request: &ViewerRequest) -> Result<String, Refusal> {
        if self.telemetry.readiness.draining.load(Ordering::Relaxed) {
            return Err(Refusal::new(
                "node draining: reconnect to another edge node",
            ));
        }
        if let Some(auth) = &self.auth {
            let claims = auth
                .verify(request.query_value("token").as_deref())
                .map_err(Refusal::new)?;
            if let Some(zone) = request.query_value("zone") {
                if !zone_allowed(&claims, &zone) {
                    return Err(Refusal::new(format!(
                        "auth: token does not allow zone {zone:?}"
                    )));
                }
            }
            tracing::info!(session = request.session_id, viewer = %claims.sub, "viewer authenticated");
        }
        Ok(DEFAULT_RENDERING.to_string())
    }
}

pub struct Node {
    pub server: Arc<DeliveryServer>,
    pub telemetry: Arc<Telemetry>,
    /// The compositor's adapter, as logged at start (for reports).
    pub adapter: String,
    pipeline: Pipeline,
    /// Publishing to the relay tier, when `[server] publish_to` is set.
    uplink: Option<Uplink>,
}

impl Node {
    pub async fn start(
        config: NodeConfig,
        telemetry: Arc<Telemetry>,
        first_frame_timeout: Duration,
    ) -> Result<Self> {
        let listen = config.listen_addr().map_err(|p| anyhow::anyhow!("{p}"))?;
        let tls = match (&config.server.tls_cert, &config.server.tls_key) {
            (Some(cert_pem), Some(key_pem)) => TlsSource::Files {
                cert_pem: cert_pem.clone(),
                key_pem: key_pem.clone(),
            },
            _ => TlsSource::Generate,
        };

        // The compositor first: it picks the GPU (or lavapipe), logs it and warms its
        // pipelines, so no viewer's first frame pays for shader compilation.
        let compositor =
            tokio::task::spawn_blocking(|| Compositor::new(CompositorOptions::default()))
                .await
                .context("compositor start-up")??;
        let summary = compositor.adapter();
        tracing::info!(adapter = %summary.name, backend = ?summary.backend, software = summary.is_software, "compositor ready");
        let adapter = format!("{} ({:?})", summary.name, summary.backend);
        telemetry.readiness.gpu.store(true, Ordering::Relaxed);

        let server = DeliveryServer::bind(
            ServerConfig {
                listen,
                tls,
                ..ServerConfig::default()
            },
            Arc::new(SingleRendering {
                telemetry: telemetry.clone(),
                auth: ViewerAuth::from_config(&config.auth)?,
            }),
        )
        .await
        .with_context(|| format!("binding QUIC on {listen}"))?;
        let server = Arc::new(server);
        tracing::info!(
            addr = %server.local_addr(),
            certificate_sha256 = server.certificate_sha256_hex(),
            "serving moq-lite over WebTransport; broadcast `live`"
        );

        telemetry.readiness.quic.store(true, Ordering::Relaxed);
        let uplink = match config.uplink().map_err(|p| anyhow::anyhow!("{p}"))? {
            Some(relay) => Some(server.start_uplink(relay)?),
            None => None,
        };
        let (srv, tel) = (server.clone(), telemetry.clone());
        let pipeline = tokio::task::spawn_blocking(move || {
            Pipeline::start(config, compositor, srv, tel, first_frame_timeout)
        })
        .await
        .context("pipeline start-up")??;
        telemetry
            .readiness
            .first_frame
            .store(true, Ordering::Relaxed);
        Ok(Self {
            server,
            telemetry,
            adapter,
            pipeline,
            uplink,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// `https://127.0.0.1:PORT/` (or the bound address) for local viewers.
    pub fn local_url(&self) -> url::Url {
        let addr = self.local_addr();
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            addr.ip().to_string()
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        url::Url::parse(&format!("https://{host}:{}/", addr.port()))
            .expect("a host and port always form a URL")
    }

    pub fn source_fps(&self) -> u32 {
        self.pipeline.source_format.fps.round().max(1.0) as u32
    }

    /// Graceful stop: refuse new viewers (the router checks `draining`), keep serving the
    /// connected ones until they leave or `grace` ends, then close with [`CLOSE_CODE_SHUTDOWN`].
    pub async fn drain(self, grace: Duration) {
        self.telemetry
            .readiness
            .draining
            .store(true, Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + grace;
        while self.server.active_sessions() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let left = self.server.active_sessions();
        tracing::info!(viewers_left = left, "drain over; closing sessions");
        self.shutdown().await;
    }

    pub async fn shutdown(self) {
        self.telemetry
            .readiness
            .draining
            .store(true, Ordering::Relaxed);
        let Node {
            server,
            pipeline,
            uplink,
            ..
        } = self;
        // The relay ends this node's broadcasts at once instead of after an idle timeout.
        if let Some(uplink) = uplink {
            uplink.stop().await;
        }
        let _ = tokio::task::spawn_blocking(move || pipeline.shutdown()).await;
        match Arc::try_unwrap(server) {
            Ok(server) => {
                server
                    .shutdown(CLOSE_CODE_SHUTDOWN, "node shutting down")
                    .await
            }
            Err(_) => tracing::warn!("delivery server still referenced at shutdown"),
        }
    }
}
