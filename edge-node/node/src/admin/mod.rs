//! Admin HTTP for Kubernetes, Prometheus and operators: `/live`, `/ready`, `/metrics`, and the
//! operator API under `/api/v1/` (sessions, drain, campaigns, its OpenAPI document).
//!
//! It runs on its own OS thread with its own single-threaded runtime, so probes answer even
//! when the frame path and the delivery runtime are saturated. A hostile client cannot hold
//! it: headers must arrive within [`READ_TIMEOUT`], bodies are capped at [`MAX_BODY_BYTES`],
//! a connection lives at most [`CONNECTION_LIFETIME`] and at most [`MAX_CONNECTIONS`] are open.
//! The operator API needs the bearer token when one is configured; probes and metrics never do
//! (the Kubernetes convention: kubelet and Prometheus scrape without credentials).

mod api;
mod bearer;
mod problem;

use anyhow::{Context, Result};
use axum::extract::DefaultBodyLimit;
use axum::routing::MethodRouter;
use axum::Router;
use edge_deliver::DeliveryServer;
use edge_telemetry::Telemetry;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};

/// Largest request body (a campaign set is far smaller).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// A client must send its request headers within this time.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection (keep-alive included) is closed gracefully after this long.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
/// Open admin connections at most; more are closed at once.
pub const MAX_CONNECTIONS: usize = 64;
/// hyper's smallest allowed read buffer: the bound on one request's header block.
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Every operator route lives under this prefix and needs the bearer token.
pub const API_PREFIX: &str = "/api/v1/";

/// The campaign store as the operator API sees it; the node wires the real store in with
/// [`AdminServer::attach_campaigns`]. Both calls are made off the admin runtime's event loop
/// (`replace` on a blocking thread), so they may read files or take locks.
pub trait CampaignAdmin: Send + Sync {
    /// The campaign set in force: (text, its media type, its generation).
    fn current(&self) -> (String, String, u64);
    /// Validates `body` and, when valid, applies it like a hot reload, returning the new
    /// generation; otherwise every problem found. `content_type` is one of
    /// `application/toml`, `application/yaml` or `application/json`.
    fn replace(&self, body: &str, content_type: &str) -> Result<u64, Vec<String>>;
    /// Campaign sets applied and refused so far, by files and by this API alike.
    fn reload_counts(&self) -> (u64, u64);
}

/// What the node decided for one viewer: the zone it serves the viewer (and what decided
/// it), the rendition and whether personal items were admitted. Reported beside each session
/// by `GET /api/v1/sessions`, so operators and end-to-end tests read decisions, not logs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ViewerDecision {
    pub zone: String,
    /// `mec`, `geofence`, `hint` or `default`.
    pub zone_source: &'static str,
    pub rendition_height: u32,
    /// False when admission dropped the viewer's coupon, zoom or expanded card.
    pub personal_items: bool,
}

/// The node's viewer directory as the operator API sees it; wired in with
/// [`AdminServer::attach_viewers`].
pub trait ViewerDecisions: Send + Sync {
    /// `None` when no such viewer is known (it left, or was never routed).
    fn decision(&self, session_id: u64) -> Option<ViewerDecision>;
}

impl ViewerDecisions for edge_control::viewers::ViewerDirectory {
    fn decision(&self, session_id: u64) -> Option<ViewerDecision> {
        self.get(session_id).map(|viewer| ViewerDecision {
            zone: viewer.zone,
            zone_source: viewer.zone_source.as_str(),
            rendition_height: viewer.rendition_height,
            personal_items: viewer.personal_allowed,
        })
    }
}

/// An operator asked the node to drain (`POST /api/v1/drain`): the same drain as SIGTERM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainRequest {
    pub grace: Duration,
}

pub struct AdminOptions {
    /// `ADDR:PORT` to listen on.
    pub listen: String,
    /// The operator API's bearer token; `None` leaves it open.
    pub token: Option<String>,
    /// Drain grace when `POST /api/v1/drain` does not name one.
    pub default_drain_grace: Duration,
}

/// What the handlers share. Parts of the node that start after the admin server are attached
/// later; until then their endpoints answer 503.
pub(crate) struct Shared {
    telemetry: Arc<Telemetry>,
    /// Weak: the node's shutdown needs to be the delivery server's only owner.
    delivery: OnceLock<Weak<DeliveryServer>>,
    campaigns: OnceLock<Arc<dyn CampaignAdmin>>,
    viewers: OnceLock<Arc<dyn ViewerDecisions>>,
    drains: mpsc::Sender<DrainRequest>,
    default_drain_grace: Duration,
}

pub struct AdminServer {
    pub local_addr: SocketAddr,
    shared: Arc<Shared>,
}

impl AdminServer {
    /// Serves `GET/DELETE /api/v1/sessions` from this delivery server from now on.
    pub fn attach_delivery(&self, server: &Arc<DeliveryServer>) {
        if self.shared.delivery.set(Arc::downgrade(server)).is_err() {
            tracing::warn!("admin: a delivery server was already attached");
        }
    }

    /// Reports each listed session's [`ViewerDecision`] from these viewers from now on.
    pub fn attach_viewers(&self, viewers: Arc<dyn ViewerDecisions>) {
        if self.shared.viewers.set(viewers).is_err() {
            tracing::warn!("admin: a viewer directory was already attached");
        }
    }

    /// Serves `GET/PUT /api/v1/campaigns` from this store from now on.
    pub fn attach_campaigns(&self, campaigns: Arc<dyn CampaignAdmin>) {
        if self.shared.campaigns.set(campaigns).is_err() {
            tracing::warn!("admin: a campaign store was already attached");
        }
    }
}

/// Binds now (so a busy port is a start-up error) and serves on a thread of its own. Drain
/// requests from operators arrive on the returned receiver.
pub fn start(
    options: AdminOptions,
    telemetry: Arc<Telemetry>,
) -> Result<(AdminServer, mpsc::Receiver<DrainRequest>)> {
    let addr: SocketAddr = options.listen.parse().with_context(|| {
        format!(
            "--admin {:?} is not an address like 127.0.0.1:9090",
            options.listen
        )
    })?;
    let std_listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("binding admin HTTP on {addr}"))?;
    std_listener.set_nonblocking(true)?;
    let local_addr = std_listener.local_addr()?;
    if options.token.is_none() && !local_addr.ip().is_loopback() {
        tracing::warn!(
            addr = %local_addr,
            "the operator API (/api/v1/) is reachable beyond this host without a token: set [admin] token or EDGE_NODE_ADMIN_TOKEN"
        );
    }
    // One pending request is enough: a second is refused while the first is being served.
    let (drains, drain_requests) = mpsc::channel(1);
    let shared = Arc::new(Shared {
        telemetry,
        delivery: OnceLock::new(),
        campaigns: OnceLock::new(),
        viewers: OnceLock::new(),
        drains,
        default_drain_grace: options.default_drain_grace,
    });
    let token = options
        .token
        .as_deref()
        .map(|t| Arc::new(bearer::OperatorToken::new(t)));
    let app = router(shared.clone(), token);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("admin runtime")?;
    std::thread::Builder::new()
        .name("admin-http".into())
        .spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(listener) => serve(listener, app).await,
                    Err(e) => tracing::error!(error = %e, "admin listener"),
                }
            })
        })
        .context("spawning the admin thread")?;
    tracing::info!(addr = %local_addr, "admin HTTP: /live /ready /metrics /api/v1/");
    Ok((AdminServer { local_addr, shared }, drain_requests))
}

async fn serve(listener: tokio::net::TcpListener, app: Router) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "admin accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!("admin HTTP: too many connections, closing a new one");
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(READ_TIMEOUT)
                .max_buf_size(MAX_HEADER_BYTES)
                .serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = tokio::time::sleep(CONNECTION_LIFETIME) => {
                    // Let a request in flight finish, then close.
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(READ_TIMEOUT, connection).await;
                }
            }
        });
    }
}

/// Every route the admin server answers: (method, path, handler). The OpenAPI document lists
/// exactly these (a test holds the two together).
pub(crate) fn routes() -> Vec<(&'static str, &'static str, MethodRouter<Arc<Shared>>)> {
    use axum::routing::{delete, get, post, put};
    vec![
        ("get", "/live", get(api::live)),
        ("get", "/ready", get(api::ready)),
        ("get", "/metrics", get(api::metrics)),
        ("get", "/api/v1/sessions", get(api::list_sessions)),
        (
            "delete",
            "/api/v1/sessions/{id}",
            delete(api::close_session),
        ),
        ("post", "/api/v1/drain", post(api::drain)),
        ("get", "/api/v1/campaigns", get(api::get_campaigns)),
        ("put", "/api/v1/campaigns", put(api::put_campaigns)),
        ("get", "/api/v1/openapi.json", get(api::openapi)),
    ]
}

fn router(shared: Arc<Shared>, token: Option<Arc<bearer::OperatorToken>>) -> Router {
    let (mut open, mut operator) = (Router::new(), Router::new());
    for (_, path, handler) in routes() {
        if path.starts_with(API_PREFIX) {
            operator = operator.route(path, handler);
        } else {
            open = open.route(path, handler);
        }
    }
    let operator =
        operator.route_layer(axum::middleware::from_fn_with_state(token, bearer::require));
    open.merge(operator)
        .fallback(api::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared)
}

#[cfg(test)]
mod tests;
