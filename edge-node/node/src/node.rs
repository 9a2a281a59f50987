//! A running node: delivery server, compositor and frame path, started in the order that
//! turns every start-up problem into one clear error.

use crate::campaign_api::CampaignApi;
use crate::config::NodeConfig;
use anyhow::{Context, Result};
use edge_campaign::{CampaignStore, Campaigns, FileWatcher};
use edge_compose::{Compositor, CompositorOptions};
use edge_control::admission_gate::AdmissionGate;
use edge_control::auth::ViewerAuth;
use edge_control::routing::{MecLookup, NodeRouter};
use edge_control::viewers::ViewerDirectory;
use edge_core::admission::{Admission, CostPriors, Rendition};
use edge_deliver::{DeliveryServer, ServerConfig, TlsSource, Uplink};
use edge_engine::pipeline::{Pipeline, Shared};
use edge_telemetry::{ModelsState, Telemetry};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How long start-up waits for the models (a TensorRT engine build takes minutes); past it the
/// node serves, and `/ready` keeps saying the models are loading until they are.
const MODELS_LOAD_WAIT: Duration = Duration::from_secs(300);

/// Application close code for sessions ended by a node shutdown.
pub const CLOSE_CODE_SHUTDOWN: u32 = 1;

pub struct Node {
    pub server: Arc<DeliveryServer>,
    pub telemetry: Arc<Telemetry>,
    /// The compositor's adapter, as logged at start (for reports).
    pub adapter: String,
    pipeline: Pipeline,
    /// Publishing to the relay tier, when `[server] publish_to` is set.
    uplink: Option<Uplink>,
    pub campaigns: Arc<CampaignApi>,
    /// Every viewer and what the node decided for it (zone, rendition), for the operator API.
    pub viewers: Arc<ViewerDirectory>,
    understanding_stats: Arc<std::sync::Mutex<Option<edge_understand::UnderstandingStats>>>,
    _campaign_watch: Option<FileWatcher>,
    /// Measures what delivery costs per viewer, for admission; ends with the node.
    _send_cost: AbortOnDrop,
}

/// Ends a background task when its owner goes.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Node {
    pub async fn start(
        config: NodeConfig,
        telemetry: Arc<Telemetry>,
        first_frame_timeout: Duration,
    ) -> Result<Self> {
        let listen = config.listen_addr().map_err(|p| anyhow::anyhow!("{p}"))?;
        // Before any encoder starts, admission's calibration included: it must measure the
        // encodes as they will run.
        edge_media::priority::set_realtime_frame_path(config.encode.realtime_priority);
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

        let (campaigns, campaign_watch) = load_campaigns(&config)?;
        telemetry.campaign_applied(campaigns.generation());
        let admission = Arc::new(
            AdmissionGate::new(admission_model(&config, &campaigns.current())?)
                .enforcing(config.budget.admission),
        );
        let send_cost = AbortOnDrop(
            tokio::spawn(edge_control::delivery_cost::learn(admission.clone())).abort_handle(),
        );
        let compositor = edge_engine::calibration::on_start(
            compositor,
            edge_control::admission_gate::admission_rendition(
                campaigns.current().settings.default_rendition.height,
            ),
            edge_engine::calibration::EncodeCost {
                fps: config.output.fps,
                bitrate_kbps: config.encode.bitrate_kbps,
                gop_frames: config.gop_frames(),
                encoder: (config.encode.encoder != "auto").then(|| config.encode.encoder.clone()),
            },
            &admission,
        )
        .await?;
        if !config.budget.admission {
            tracing::warn!("admission off ([budget] admission = false): every viewer is admitted as asked, whatever the budget");
        }
        let directory = Arc::new(ViewerDirectory::default());
        let mec = match edge_control::mec::client(&config.mec)? {
            Some(client) => {
                let client = Arc::new(client);
                tokio::spawn({
                    let (mec_config, client, campaigns, directory, telemetry) = (
                        config.mec.clone(),
                        client.clone(),
                        campaigns.clone(),
                        directory.clone(),
                        telemetry.clone(),
                    );
                    async move {
                        if let Err(e) = edge_control::mec::follow_zone_presence(
                            mec_config, client, campaigns, directory, telemetry,
                        )
                        .await
                        {
                            tracing::error!(error = %format!("{e:#}"), "MEC zone presence unavailable");
                        }
                    }
                });
                Some(Arc::new(MecLookup {
                    client,
                    runtime: tokio::runtime::Handle::current(),
                }))
            }
            None => None,
        };
        let router = NodeRouter {
            telemetry: telemetry.clone(),
            auth: ViewerAuth::from_config(&config.auth)?,
            campaigns: campaigns.clone(),
            directory: directory.clone(),
            admission: admission.clone(),
            mec,
        };
        let server = DeliveryServer::bind(
            ServerConfig {
                listen,
                tls,
                ..ServerConfig::default()
            },
            Arc::new(router),
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
        let understanding_stats: Arc<
            std::sync::Mutex<Option<edge_understand::UnderstandingStats>>,
        > = Arc::default();
        let shared = Shared {
            campaigns: campaigns.clone(),
            directory: directory.clone(),
            admission,
            server: server.clone(),
            telemetry: telemetry.clone(),
            understanding_stats: understanding_stats.clone(),
        };
        let engine_config = config.engine()?;
        let pipeline = tokio::task::spawn_blocking(move || {
            Pipeline::start(engine_config, compositor, shared, first_frame_timeout)
        })
        .await
        .context("pipeline start-up")??;
        telemetry
            .readiness
            .first_frame
            .store(true, Ordering::Relaxed);
        // Models load beside the frame path (frames flow meanwhile); the node counts as started
        // once they are loaded or known to be unavailable, so `serving` still means ready.
        let models_deadline = tokio::time::Instant::now() + MODELS_LOAD_WAIT;
        while telemetry.readiness.models() == ModelsState::Loading
            && tokio::time::Instant::now() < models_deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let campaign_api = Arc::new(CampaignApi::new(campaigns));
        Ok(Self {
            server,
            telemetry,
            adapter,
            pipeline,
            uplink,
            campaigns: campaign_api,
            viewers: directory,
            understanding_stats,
            _campaign_watch: campaign_watch,
            _send_cost: send_cost,
        })
    }

    /// Per-model inference statistics, when content understanding runs.
    pub fn understanding_stats(&self) -> Option<edge_understand::UnderstandingStats> {
        self.understanding_stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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

/// The campaigns in force (file or embedded default) and, for a file, its hot-reload watcher.
fn load_campaigns(config: &NodeConfig) -> Result<(Arc<CampaignStore>, Option<FileWatcher>)> {
    let Some(path) = &config.campaigns.file else {
        return Ok((Arc::new(CampaignStore::new(Campaigns::embedded())), None));
    };
    let store = CampaignStore::load(path).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        anyhow::anyhow!(
            "campaigns {}: {} problem(s):\n  {}",
            path.display(),
            list.len(),
            list.join("\n  ")
        )
    })?;
    let store = Arc::new(store);
    let watch = match config.campaigns.watch_interval_ms {
        0 => None,
        ms => Some(
            edge_campaign::watch_file(path, store.clone(), Duration::from_millis(ms))
                .context("starting the campaign file watcher")?,
        ),
    };
    tracing::info!(file = %path.display(), "campaigns loaded");
    Ok((store, watch))
}

/// The budget model: the configured p99 budget, this machine's cores, the campaign's ladder.
fn admission_model(config: &NodeConfig, campaigns: &Campaigns) -> Result<Admission> {
    let cores = match config.budget.cores {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        n => n,
    };
    let ladder: Vec<Rendition> = campaigns
        .settings
        .renditions
        .iter()
        .map(|r| edge_control::admission_gate::admission_rendition(r.height))
        .collect();
    Admission::new(
        Duration::from_secs_f64(config.budget.node_latency_p99_ms / 1000.0),
        cores,
        &ladder,
        CostPriors::default(),
    )
    .and_then(|model| model.with_headroom(config.budget.admission_headroom))
    .and_then(|model| {
        model.with_frame_interval(Duration::from_secs_f64(
            1.0 / f64::from(config.output.fps.max(1)),
        ))
    })
    .map_err(|e| anyhow::anyhow!("budget: {e}"))
}
