//! The delivery server: one QUIC endpoint (WebTransport `h3` plus raw moq ALPNs), one origin
//! holding every rendering, one scoped session per viewer, and on the same port number over
//! TCP the certificate-hash endpoint, the viewer page and the WebSocket (qmux) fallback for
//! browsers without WebTransport. Viewers of every transport pass the same connection gate and
//! session limit, are routed, served and closed the same way.

use edge_core::connection_gate::{ConnectionGate, GateConfig, Verdict};
use edge_telemetry::peer_input::{allow_unattributed, connection_verdict, ConnectionTransport};
use std::future::Future;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moq_net::{origin, Pattern, Patterns};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tracing::Instrument;
use web_transport_quinn::proto::ConnectResponse;

use crate::cert_http::{Refused, UpgradeHandler};
use crate::control;
use crate::feed::{feed_scope, Feed};
use crate::pacing::{self, PacedSession};
use crate::publisher::{Renderings, ViewerGuard};
use crate::qmux_transport::QmuxSession;
use crate::router::{select_protocol, split_setup_path, validate_rendering_name};
use crate::sessions::{CloseRequest, Delivery, RegisteredSession, SessionInfo, SessionRegistry};
use crate::tls::ServerIdentity;
use crate::websocket::{self, UpgradeRequest};
use crate::{
    cert_http, net, DeliverError, Refusal, RenderingPublisher, SessionRouter, TlsSource,
    VideoTrackInfo, ViewerRequest, ViewerTransport,
};

/// `[::]:4443`: every interface, IPv4 and IPv6.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 4443, 0, 0));

/// WebTransport/QUIC application close code for a viewer the router refused; the close reason
/// carries [`Refusal::reason`].
pub const CLOSE_CODE_REFUSED: u32 = 403;

/// How the delivery server listens and how much it may hold.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// UDP for QUIC and TCP for `/certificate.sha256`, the page and the WebSocket fallback,
    /// same port number. Port 0 picks a free port for both.
    pub listen: SocketAddr,
    pub tls: TlsSource,
    /// How long a finished group (GOP) nobody reads stays cached: the bound on what each
    /// rendering holds behind its live edge. The current group is always kept; a viewer only
    /// ever needs it (a slow one skips ahead to it), so about two GOPs is plenty. Also caps how
    /// far behind live any subscriber may ask to be served.
    pub retention: Duration,
    /// Byte target for all cached groups of all renderings together: a second, global bound
    /// behind `retention` (eviction converges on it; the live edge is never evicted).
    pub cache_capacity_bytes: u64,
    /// Concurrent viewer sessions (including ones still handshaking); beyond it new
    /// connections are refused at the QUIC level.
    pub max_sessions: usize,
    /// Budget for QUIC handshake + WebTransport CONNECT + MoQ SETUP (WebSocket: upgrade
    /// answered + MoQ SETUP); a client that stalls longer is dropped.
    pub handshake_timeout: Duration,
    /// A viewer silent this long (no packets, not even ACKs of our keep-alives; over WebSocket
    /// no frame, not even a pong) is gone.
    pub idle_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            tls: TlsSource::Generate,
            retention: Duration::from_secs(4),
            cache_capacity_bytes: 256 * 1024 * 1024,
            max_sessions: 10_000,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
        }
    }
}

/// How long a closing session waits for its close (and reason) to reach the viewer.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What a session is told when the server goes away.
#[derive(Clone, Debug)]
struct Shutdown {
    code: u32,
    reason: String,
}

/// Everything a session task needs, shared.
struct Context {
    router: Arc<dyn SessionRouter>,
    origin: origin::Producer,
    renderings: Arc<Renderings>,
    registry: Arc<SessionRegistry>,
    shutdown: watch::Receiver<Option<Shutdown>>,
    handshake_timeout: Duration,
    idle_timeout: Duration,
    /// Judged before any per-connection state exists, for every transport; see
    /// `edge_core::connection_gate`.
    gate: Arc<std::sync::Mutex<ConnectionGate>>,
    started: Instant,
    /// One permit per session, handshaking or established, whatever its transport.
    sessions: Arc<Semaphore>,
    next_session_id: AtomicU64,
}

/// The running delivery server. Dropping it stops accepting and tears sessions down abruptly;
/// [`DeliveryServer::shutdown`] closes them with a code and reason first.
pub struct DeliveryServer {
    local_addr: SocketAddr,
    sha256_hex: Arc<str>,
    endpoint: quinn::Endpoint,
    origin: origin::Producer,
    renderings: Arc<Renderings>,
    registry: Arc<SessionRegistry>,
    sessions: Arc<Semaphore>,
    max_sessions: usize,
    shutdown: watch::Sender<Option<Shutdown>>,
    tasks: Vec<JoinHandle<()>>,
}

impl DeliveryServer {
    /// Binds UDP and TCP on `config.listen` and starts serving. Must run inside a tokio runtime
    /// that outlives the server.
    pub async fn bind(
        config: ServerConfig,
        router: Arc<dyn SessionRouter>,
    ) -> Result<Self, DeliverError> {
        crate::install_crypto_provider();
        let identity = ServerIdentity::load(&config.tls)?;
        let sha256_hex: Arc<str> = identity.sha256_hex.clone().into();
        // With a CA-issued certificate the viewer page is also served over HTTPS on the TCP
        // port, so a phone on the site's network gets the secure context WebTransport needs.
        // A generated one is trusted by nobody's browser: plain HTTP on loopback then.
        let page_tls = match &config.tls {
            TlsSource::Files { .. } => Some(
                cert_http::page_tls_config(identity.chain.clone(), identity.key.clone_key())
                    .map_err(DeliverError::Tls)?,
            ),
            TlsSource::Generate => None,
        };
        let quic_config = quic_server_config(identity, &config)?;
        let (udp, tcp) = bind_same_port(config.listen)?;
        let runtime = quinn::default_runtime().ok_or_else(|| DeliverError::Bind {
            protocol: "UDP",
            addr: config.listen,
            source: std::io::Error::other("no async runtime found for quinn"),
        })?;
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(quic_config),
            udp,
            runtime,
        )
        .map_err(|source| DeliverError::Bind {
            protocol: "UDP",
            addr: config.listen,
            source,
        })?;
        let local_addr = endpoint.local_addr().map_err(|source| DeliverError::Bind {
            protocol: "UDP",
            addr: config.listen,
            source,
        })?;

        let (origin, origin_driver) = origin::Producer::new(origin_config(&config));
        let (shutdown, shutdown_rx) = watch::channel(None);
        let renderings = Arc::new(Renderings::default());
        let registry = Arc::new(SessionRegistry::default());
        let sessions = Arc::new(Semaphore::new(config.max_sessions));
        let context = Arc::new(Context {
            router,
            origin: origin.clone(),
            renderings: renderings.clone(),
            registry: registry.clone(),
            shutdown: shutdown_rx,
            handshake_timeout: config.handshake_timeout,
            idle_timeout: config.idle_timeout,
            gate: Arc::new(std::sync::Mutex::new(ConnectionGate::new(
                GateConfig::default(),
            ))),
            started: Instant::now(),
            sessions: sessions.clone(),
            next_session_id: AtomicU64::new(1),
        });
        let websocket_viewers: Arc<dyn UpgradeHandler> =
            Arc::new(WebSocketViewers(context.clone()));

        let tasks = vec![
            tokio::spawn(async move {
                // The origin's lifecycle work (serving tracks to sessions, cache expiry) runs
                // here; it only ends when the origin is torn down.
                let end = moq_net::time::run(origin_driver).await;
                tracing::debug!(reason = %end, "origin driver ended");
            }),
            tokio::spawn(cert_http::serve(
                tcp,
                sha256_hex.clone(),
                page_tls,
                Some(websocket_viewers),
            )),
            tokio::spawn(accept_loop(endpoint.clone(), context)),
        ];
        tracing::info!(%local_addr, certificate_sha256 = %sha256_hex, "delivery server listening");
        Ok(Self {
            local_addr,
            sha256_hex,
            endpoint,
            origin,
            renderings,
            registry,
            sessions,
            max_sessions: config.max_sessions,
            shutdown,
            tasks,
        })
    }

    /// The bound address (UDP for QUIC; TCP listens on the same port number).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Lower-case hex SHA-256 of the leaf certificate, as served at `/certificate.sha256`.
    pub fn certificate_sha256_hex(&self) -> &str {
        &self.sha256_hex
    }

    /// Publishes a rendering: one encoded stream shared by every viewer routed to it, visible
    /// to them as the broadcast `live` (on the origin it is `<rendering>/live`).
    pub fn publish_rendering(
        &self,
        rendering: &str,
        video: VideoTrackInfo,
    ) -> Result<RenderingPublisher, DeliverError> {
        RenderingPublisher::new(&self.origin, self.renderings.clone(), rendering, video)
    }

    /// Starts publishing every rendering of this server to a MoQ relay, the fan-out tier
    /// beyond one node (see [`crate::Uplink`]); per-viewer feeds stay on the node.
    pub fn start_uplink(&self, config: crate::UplinkConfig) -> Result<crate::Uplink, DeliverError> {
        crate::Uplink::start(config, self.origin.consume())
    }

    /// Asks a published rendering's encoder for an IDR (e.g. a viewer reported a decode error).
    /// Returns false when no such rendering is published.
    pub fn request_keyframe(&self, rendering: &str) -> bool {
        self.renderings.request_keyframe(rendering)
    }

    /// Moves a viewer to `rendering` at that rendering's next keyframe, which is requested now:
    /// the viewer's stream continues without a gap and its decoder never sees a frame it cannot
    /// decode. The rendering need not be published yet. Returns false for an unknown session or
    /// when the viewer is already there.
    pub fn move_viewer(&self, session_id: u64, rendering: &str) -> Result<bool, DeliverError> {
        validate_rendering_name(rendering).map_err(|reason| DeliverError::InvalidRendering {
            name: rendering.to_string(),
            reason,
        })?;
        Ok(self.renderings.move_viewer(session_id, rendering))
    }

    /// Sends one metadata message (UTF-8 JSON) to every viewer on its
    /// [`crate::METADATA_TRACK_NAME`] track, stamped with the media time of the frame it
    /// describes. Synchronous and non-blocking, like [`RenderingPublisher::write`].
    pub fn publish_metadata(&self, message: bytes::Bytes, timestamp_us: u64) -> usize {
        self.renderings.publish_metadata(&message, timestamp_us)
    }

    /// The rendering a session currently receives, and the one it is moving to, if any.
    pub fn viewer_rendering(&self, session_id: u64) -> Option<(Option<String>, Option<String>)> {
        self.renderings.viewer_rendering(session_id)
    }

    /// Viewers currently routed to `rendering`, whether or not it is published yet.
    pub fn viewers(&self, rendering: &str) -> usize {
        self.renderings.viewers(rendering)
    }

    /// Established viewer sessions (routed and set up), oldest first; queries are redacted.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let mut sessions = self.registry.list();
        // A viewer may have moved since it was routed: report where it is now.
        for session in &mut sessions {
            if let Some((Some(current), _)) = self.renderings.viewer_rendering(session.id) {
                session.rendering = current;
            }
        }
        sessions
    }

    /// How a session's transport has been delivering: groups it superseded because the viewer
    /// could not keep up, and its send window. `None` when no such session is established.
    pub fn delivery_stats(&self, session_id: u64) -> Option<crate::DeliveryStats> {
        self.registry.delivery(session_id)
    }

    /// Disconnects one established session with an application `code` and `reason` (the viewer
    /// sees both). False when no such session is established.
    pub fn close_session(&self, id: u64, code: u32, reason: &str) -> bool {
        self.registry.close(id, code, reason)
    }

    /// Sessions accepted or handshaking right now.
    pub fn active_sessions(&self) -> usize {
        self.max_sessions - self.sessions.available_permits()
    }

    /// Closes every session with `close_code` and `reason` (viewers see both), stops accepting,
    /// and waits briefly for the closes to reach the viewers. Publishers left alive afterwards
    /// get [`DeliverError::ServerClosed`] from `write`.
    pub async fn shutdown(mut self, close_code: u32, reason: &str) {
        tracing::info!(
            close_code,
            reason,
            sessions = self.active_sessions(),
            "delivery server shutting down"
        );
        self.renderings.close();
        self.shutdown.send_replace(Some(Shutdown {
            code: close_code,
            reason: reason.to_string(),
        }));
        // Every session holds one permit until its close has been delivered (or timed out).
        let all = u32::try_from(self.max_sessions).unwrap_or(u32::MAX);
        let drained = tokio::time::timeout(
            CLOSE_GRACE + Duration::from_secs(1),
            self.sessions.acquire_many(all),
        )
        .await;
        if drained.is_err() {
            tracing::warn!("some sessions did not close in time; closing the endpoint under them");
        }
        self.endpoint.close(close_code.into(), reason.as_bytes());
        if tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle())
            .await
            .is_err()
        {
            tracing::debug!("endpoint did not go idle in time");
        }
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

impl Drop for DeliveryServer {
    fn drop(&mut self) {
        self.renderings.close();
        for task in &self.tasks {
            task.abort();
        }
        self.endpoint.close(0u32.into(), b"server dropped");
    }
}

/// The cache policy behind "slow viewers never make the node buffer without bound".
///
/// moq-net 0.3 keeps every group of a track until the cache pool reclaims it; a track's
/// `max_age` (hang advertises 30 s so an HLS egress can seek) is a media-time promise about
/// what subscribers may wait for, not an eviction rule. So the bound is set on the pool: a
/// group idle for `retention` (wall clock) is reclaimed, and all renderings together converge
/// on `cache_capacity_bytes`. The origin's `cache_duration` additionally clamps every track's
/// `max_age` to `retention`, so no subscriber can ask to be served further behind live.
fn origin_config(config: &ServerConfig) -> origin::Config {
    let pool = moq_net::cache::Pool::new(
        moq_net::cache::Config::default()
            .with_capacity(config.cache_capacity_bytes)
            .with_expiry(config.retention),
    );
    let mut origin = origin::Config::default();
    origin.pool = pool;
    origin.cache_duration = config.retention;
    origin
}

fn quic_server_config(
    identity: ServerIdentity,
    config: &ServerConfig,
) -> Result<quinn::ServerConfig, DeliverError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(identity.chain, identity.key)?;
    tls.alpn_protocols = std::iter::once(web_transport_quinn::ALPN)
        .chain(moq_net::ALPNS.iter().copied())
        .map(|alpn| alpn.as_bytes().to_vec())
        .collect();
    let tls = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| DeliverError::Certificate(format!("not usable for QUIC: {e}")))?;
    let mut quic = quinn::ServerConfig::with_crypto(Arc::new(tls));

    let mut transport = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(config.idle_timeout)
        .map_err(|_| DeliverError::Certificate("idle timeout out of range".into()))?;
    transport.max_idle_timeout(Some(idle));
    // Pings keep a viewer that is waiting for its rendering alive without keeping a dead one:
    // an unanswered ping does not reset the idle timer.
    transport.keep_alive_interval(Some(config.idle_timeout / 3));
    // Outgoing bytes quinn may hold per connection (unacknowledged or queued): from the first
    // group on, each session's window follows its congestion window (see `pacing`), so what
    // the link cannot carry yet waits in moq, where a newer group can still supersede it.
    transport.send_window(pacing::MIN_SEND_WINDOW);
    quic.transport_config(Arc::new(transport));
    Ok(quic)
}

/// Binds UDP and TCP on the same port number. With port 0 the kernel picks the UDP port, which
/// may be taken on TCP; then try again with a fresh pick.
fn bind_same_port(
    listen: SocketAddr,
) -> Result<(std::net::UdpSocket, tokio::net::TcpListener), DeliverError> {
    const ATTEMPTS_WITH_EPHEMERAL_PORT: usize = 8;
    let attempts = if listen.port() == 0 {
        ATTEMPTS_WITH_EPHEMERAL_PORT
    } else {
        1
    };
    let mut last_error = None;
    for _ in 0..attempts {
        let udp = net::bind_udp(listen)?;
        let port = udp
            .local_addr()
            .map_err(|source| DeliverError::Bind {
                protocol: "UDP",
                addr: listen,
                source,
            })?
            .port();
        match net::bind_tcp(SocketAddr::new(listen.ip(), port)) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.expect("at least one attempt is made"))
}

async fn accept_loop(endpoint: quinn::Endpoint, context: Arc<Context>) {
    let mut shutdown = context.shutdown.clone();
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            _ = shutdown.wait_for(Option::is_some) => None,
        };
        let Some(incoming) = incoming else {
            break;
        };
        let remote = incoming.remote_address();
        let verdict = lock_gate(&context.gate).on_incoming(
            remote.ip().to_canonical(),
            incoming.remote_address_validated(),
            context.started.elapsed(),
        );
        connection_verdict(ConnectionTransport::Quic, verdict);
        match verdict {
            Verdict::Accept => {}
            Verdict::Retry => {
                if let Err(e) = incoming.retry() {
                    // Only an address already validated cannot be retried; the gate asks
                    // only unvalidated ones, so this is a client breaking the protocol.
                    e.into_incoming().refuse();
                }
                continue;
            }
            Verdict::Refuse => {
                if allow_unattributed() {
                    tracing::info!(%remote, "connections from this address too fast, refusing");
                }
                incoming.refuse();
                continue;
            }
            Verdict::Drop => {
                incoming.ignore();
                continue;
            }
        }
        let handshake = HandshakeInFlight(context.gate.clone());
        let Ok(permit) = context.sessions.clone().try_acquire_owned() else {
            if allow_unattributed() {
                tracing::warn!(%remote, "session limit reached, refusing connection");
            }
            incoming.refuse();
            continue;
        };
        let id = context.next_session_id.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!(
            "session",
            id,
            remote = %remote,
            rendering = tracing::field::Empty
        );
        let establish = establish_quic(context.clone(), incoming, id);
        tokio::spawn(run_session(context.clone(), establish, permit, handshake).instrument(span));
    }
    tracing::debug!("accept loop stopped");
}

fn refused(request: UpgradeRequest, status: &'static str, reason: &'static str) -> Box<Refused> {
    Box::new(Refused {
        request,
        status,
        reason,
    })
}

/// Takes WebSocket upgrades from the TCP side: the same gate, session limit and session life
/// as a QUIC viewer. A refusal here is an HTTP status (no session exists yet to carry a reason).
struct WebSocketViewers(Arc<Context>);

impl UpgradeHandler for WebSocketViewers {
    fn upgrade(
        &self,
        request: UpgradeRequest,
        remote: std::net::SocketAddr,
    ) -> Result<(), Box<Refused>> {
        let context = &self.0;
        if context.shutdown.borrow().is_some() {
            return Err(refused(
                request,
                "503 Service Unavailable",
                "the node is shutting down",
            ));
        }
        let Some(protocol) = websocket::choose_protocol(&request.head.protocols) else {
            return Err(refused(
                request,
                "400 Bad Request",
                "no qmux subprotocol with a moq version this node speaks",
            ));
        };
        // A TCP connection has proved its address: no Retry exists or is needed.
        let verdict = lock_gate(&context.gate).on_incoming(
            remote.ip().to_canonical(),
            true,
            context.started.elapsed(),
        );
        connection_verdict(ConnectionTransport::WebSocket, verdict);
        match verdict {
            Verdict::Accept => {}
            Verdict::Retry | Verdict::Drop => {
                return Err(refused(
                    request,
                    "503 Service Unavailable",
                    "too many connections at once",
                ))
            }
            Verdict::Refuse => {
                if allow_unattributed() {
                    tracing::info!(%remote, "connections from this address too fast, refusing");
                }
                return Err(refused(
                    request,
                    "429 Too Many Requests",
                    "connections from this address too fast",
                ));
            }
        }
        let handshake = HandshakeInFlight(context.gate.clone());
        let Ok(permit) = context.sessions.clone().try_acquire_owned() else {
            if allow_unattributed() {
                tracing::warn!(%remote, "session limit reached, refusing connection");
            }
            return Err(refused(
                request,
                "503 Service Unavailable",
                "session limit reached",
            ));
        };
        let id = context.next_session_id.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!(
            "session",
            id,
            remote = %remote,
            transport = "websocket",
            rendering = tracing::field::Empty
        );
        let establish = establish_websocket(context.clone(), request, protocol, remote, id);
        tokio::spawn(run_session(context.clone(), establish, permit, handshake).instrument(span));
        Ok(())
    }
}

fn lock_gate(gate: &std::sync::Mutex<ConnectionGate>) -> std::sync::MutexGuard<'_, ConnectionGate> {
    // Each critical section is one small decision; a panic elsewhere leaves it consistent.
    gate.lock().unwrap_or_else(|p| p.into_inner())
}

/// An accepted connection's handshake, counted in flight until this is dropped (the session
/// established, refused, failed or timed out).
struct HandshakeInFlight(Arc<std::sync::Mutex<ConnectionGate>>);

impl Drop for HandshakeInFlight {
    fn drop(&mut self) {
        lock_gate(&self.0).handshake_over();
    }
}

/// The connection under a viewer's moq session, for closing it with a code and reason.
enum Connection {
    Quic(Box<web_transport_quinn::Session>),
    WebSocket(Box<qmux::Session>),
}

impl Connection {
    /// Closes with a code and reason and waits (bounded) for them to reach the viewer.
    async fn close(&self, code: u32, reason: &str) {
        use moq_net::web_transport_trait::Session as _;
        match self {
            Self::Quic(transport) => {
                transport.close(code, reason.as_bytes());
                let _ = tokio::time::timeout(CLOSE_GRACE, transport.closed()).await;
            }
            // qmux's writer task sends the close ahead of anything queued and outlives the
            // session's handles.
            Self::WebSocket(session) => session.close(code, reason),
        }
    }
}

/// A routed, MoQ-established viewer session.
struct Established {
    connection: Connection,
    delivery: Delivery,
    session: moq_net::Session,
    driver: JoinHandle<()>,
    close_requested: tokio::sync::oneshot::Receiver<CloseRequest>,
    _viewer: ViewerGuard,
    _routed: RoutedGuard,
    _registered: RegisteredSession,
    _control: AbortOnDrop,
}

/// Stops a session's helper task when the session ends, however it ends.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Tells the router a routed session ended, however it ended (including a failed handshake
/// after routing).
struct RoutedGuard {
    router: Arc<dyn SessionRouter>,
    id: u64,
}

impl Drop for RoutedGuard {
    fn drop(&mut self) {
        self.router.closed(self.id);
    }
}

async fn run_session(
    context: Arc<Context>,
    establish: impl Future<Output = Result<Option<Established>, String>>,
    _permit: OwnedSemaphorePermit,
    handshake: HandshakeInFlight,
) {
    let mut shutdown = context.shutdown.clone();
    let established = tokio::select! {
        result = tokio::time::timeout(context.handshake_timeout, establish) => match result {
            Ok(Ok(Some(established))) => established,
            // Refused: already logged and closed with the reason.
            Ok(Ok(None)) => return,
            // Bad handshakes are the client's problem, not the node's: debug, not error.
            Ok(Err(reason)) => {
                tracing::debug!(%reason, "handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(timeout_ms = context.handshake_timeout.as_millis() as u64, "handshake timed out");
                return;
            }
        },
        _ = shutdown.wait_for(Option::is_some) => return,
    };
    drop(handshake);
    let Established {
        connection,
        delivery,
        session,
        driver,
        close_requested,
        _viewer,
        _routed,
        _registered,
        _control,
    } = established;

    // Who ends the session: the viewer, a server shutdown, or an operator closing this one.
    enum End {
        Viewer(String),
        Shutdown(u32, String),
        Operator(CloseRequest),
    }
    let end = tokio::select! {
        reason = session.closed() => End::Viewer(reason.to_string()),
        // Copy out at once: the watch guard must not be held across an await.
        closing = shutdown.wait_for(Option::is_some) => match closing {
            Ok(guard) => {
                let (code, reason) = guard.as_ref().map(|s| (s.code, s.reason.clone())).unwrap_or_default();
                End::Shutdown(code, reason)
            }
            Err(_) => End::Shutdown(0, "server dropped".to_string()),
        },
        Ok(request) = close_requested => End::Operator(request),
    };
    let ended = match end {
        End::Viewer(reason) => format!("closed: {reason}"),
        End::Shutdown(code, reason) => {
            connection.close(code, &reason).await;
            format!("server shutdown (code {code})")
        }
        End::Operator(CloseRequest { code, reason }) => {
            connection.close(code, &reason).await;
            format!("closed by operator (code {code}): {reason}")
        }
    };
    drop(session);
    // The driver finishes once the transport is closed; a stuck one must not outlive us.
    let mut driver = driver;
    if tokio::time::timeout(CLOSE_GRACE, &mut driver)
        .await
        .is_err()
    {
        driver.abort();
    }
    let delivery = delivery.stats();
    tracing::info!(%ended, groups_superseded = delivery.groups_superseded, "viewer left");
}

/// QUIC handshake, WebTransport CONNECT (or raw-QUIC MoQ SETUP), routing, MoQ handshake.
/// `Ok(None)` means the router refused the viewer and it was told why.
async fn establish_quic(
    context: Arc<Context>,
    incoming: quinn::Incoming,
    id: u64,
) -> Result<Option<Established>, String> {
    let context = context.as_ref();
    let connection = incoming
        .accept()
        .map_err(|e| format!("QUIC accept: {e}"))?
        .await
        .map_err(|e| format!("QUIC handshake: {e}"))?;
    let remote = connection.remote_address();
    let alpn = negotiated_alpn(&connection);
    let now = tokio::time::Instant::now().into_std();
    let server = moq_net::Server::new();

    if alpn.as_deref() == Some(web_transport_quinn::ALPN) {
        let request = web_transport_quinn::Request::accept(connection)
            .await
            .map_err(|e| format!("WebTransport CONNECT: {e}"))?;
        let viewer = ViewerRequest {
            session_id: id,
            remote,
            path: request.url.path().to_string(),
            query: request.url.query().unwrap_or_default().to_string(),
            transport: ViewerTransport::WebTransport,
        };
        let response = match select_protocol(&request.protocols) {
            Some(protocol) => ConnectResponse::OK.with_protocol(protocol),
            None => ConnectResponse::OK,
        };
        let routed = route(context, &viewer);
        // Even a refused viewer gets a 200 first: only an established WebTransport session can
        // carry a close reason back to it (a bare HTTP status cannot).
        let transport = request
            .respond(response)
            .await
            .map_err(|e| format!("WebTransport response: {e}"))?;
        let rendering = match routed {
            Ok(rendering) => rendering,
            Err(refusal) => {
                Connection::Quic(Box::new(transport))
                    .close(CLOSE_CODE_REFUSED, &refusal.reason)
                    .await;
                return Ok(None);
            }
        };
        let paced = PacedSession::new(transport.clone());
        let handshake = server
            .accept_request(now, paced.clone())
            .await
            .map_err(|e| format!("MoQ SETUP: {e}"))?;
        let transport = Transport {
            connection: Connection::Quic(Box::new(transport)),
            delivery: Delivery::Quic(Box::new(paced)),
        };
        start(context, &viewer, rendering, transport, handshake)
            .await
            .map(Some)
    } else {
        // Raw QUIC: there is no URL; moq-lite-05+ clients carry `/path?query` in their SETUP.
        let transport = web_transport_quinn::Session::raw(connection);
        let paced = PacedSession::new(transport.clone());
        let handshake = server
            .accept_request(now, paced.clone())
            .await
            .map_err(|e| format!("MoQ SETUP ({}): {e}", alpn.as_deref().unwrap_or("no ALPN")))?;
        let (path, query) = split_setup_path(handshake.path());
        let viewer = ViewerRequest {
            session_id: id,
            remote,
            path,
            query,
            transport: ViewerTransport::Quic,
        };
        let transport = Transport {
            connection: Connection::Quic(Box::new(transport)),
            delivery: Delivery::Quic(Box::new(paced)),
        };
        match route(context, &viewer) {
            Ok(rendering) => start(context, &viewer, rendering, transport, handshake)
                .await
                .map(Some),
            Err(refusal) => {
                drop(handshake);
                transport
                    .connection
                    .close(CLOSE_CODE_REFUSED, &refusal.reason)
                    .await;
                Ok(None)
            }
        }
    }
}

/// WebSocket upgrade answered, routing, MoQ handshake over qmux. As over WebTransport, the
/// viewer is routed from its URL before the MoQ handshake, and a refused one gets its session
/// first: only a session can carry the close reason back (a bare HTTP status cannot).
async fn establish_websocket(
    context: Arc<Context>,
    request: UpgradeRequest,
    protocol: String,
    remote: std::net::SocketAddr,
    id: u64,
) -> Result<Option<Established>, String> {
    let context = context.as_ref();
    let viewer = ViewerRequest {
        session_id: id,
        remote,
        path: request.head.path.clone(),
        query: request.head.query.clone(),
        transport: ViewerTransport::WebSocket,
    };
    let routed = route(context, &viewer);
    let session = websocket::accept(request, &protocol, context.idle_timeout)
        .await
        .map_err(|e| format!("WebSocket upgrade: {e}"))?;
    let rendering = match routed {
        Ok(rendering) => rendering,
        Err(refusal) => {
            Connection::WebSocket(Box::new(session))
                .close(CLOSE_CODE_REFUSED, &refusal.reason)
                .await;
            return Ok(None);
        }
    };
    let polled = QmuxSession::new(session.clone());
    let delivery = Delivery::WebSocket(polled.group_limit());
    let now = tokio::time::Instant::now().into_std();
    let handshake = moq_net::Server::new()
        .accept_request(now, polled)
        .await
        .map_err(|e| format!("MoQ SETUP ({protocol}): {e}"))?;
    let transport = Transport {
        connection: Connection::WebSocket(Box::new(session)),
        delivery,
    };
    start(context, &viewer, rendering, transport, handshake)
        .await
        .map(Some)
}

/// A viewer's connection and what delivers its groups, whatever the transport.
struct Transport {
    connection: Connection,
    delivery: Delivery,
}

/// Asks the router, and keeps its answer inside the rendering namespace.
fn route(context: &Context, viewer: &ViewerRequest) -> Result<String, Refusal> {
    let refused = |refusal: Refusal| {
        tracing::info!(path = %viewer.path, query = %viewer.loggable_query(), reason = %refusal.reason, "viewer refused");
        refusal
    };
    let rendering = context.router.route(viewer).map_err(refused)?;
    if let Err(reason) = validate_rendering_name(&rendering) {
        tracing::error!(%rendering, reason, "router returned an invalid rendering name");
        return Err(refused(Refusal::new("internal routing error")));
    }
    tracing::Span::current().record("rendering", rendering.as_str());
    Ok(rendering)
}

/// Finishes the MoQ handshake with the origin scoped to the rendering and starts the driver.
async fn start<S: moq_net::transport::poll::Boxable>(
    context: &Context,
    request: &ViewerRequest,
    rendering: String,
    transport: Transport,
    handshake: moq_net::server::Handshake<S>,
) -> Result<Established, String> {
    let routed = RoutedGuard {
        router: context.router.clone(),
        id: request.session_id,
    };
    // The viewer's own feed: it sees `~viewer/<id>/...` as the root, so its feed is its `live`,
    // and nothing of any other viewer or rendering is visible or requestable through this
    // session. The rendering it is routed to writes into the feed from its next keyframe.
    let feed = Feed::create(&context.origin, request.session_id)
        .map_err(|e| format!("creating the viewer's feed: {e}"))?;
    let scope = feed_scope(request.session_id);
    let scoped = context
        .origin
        .consume()
        .scope(scope.as_str(), &Patterns::from(Pattern::all()))
        .map_err(|e| format!("scoping origin to {scope}: {e}"))?;
    // What the viewer publishes (its control broadcast) lands under its own prefix only.
    let control_scope = control::control_scope(request.session_id);
    let published = context
        .origin
        .scope(control_scope.as_str(), &Patterns::from(Pattern::all()))
        .map_err(|e| format!("scoping the control origin to {control_scope}: {e}"))?;
    let (session, driver) = handshake
        .with_publisher(scoped)
        .with_subscriber(published)
        .ok()
        .await
        .map_err(|e| format!("MoQ handshake: {e}"))?;
    // Before the driver runs, so the first group stream is already recognised.
    if let Delivery::Quic(paced) = &transport.delivery {
        paced.set_version(session.version());
    }
    let driver = tokio::spawn(
        async move {
            let end = moq_net::time::run(driver).await;
            tracing::debug!(reason = %end, "session driver ended");
        }
        .in_current_span(),
    );
    let control = AbortOnDrop(tokio::spawn(
        control::serve(
            context.origin.consume(),
            request.session_id,
            context.router.clone(),
        )
        .in_current_span(),
    ));
    let viewer = context.renderings.viewer_joined(feed, &rendering);
    let (registered, close_requested) = context.registry.register(
        request,
        &rendering,
        std::time::SystemTime::now(),
        transport.delivery.clone(),
    );
    tracing::info!(
        version = %session.version(),
        viewers = context.renderings.viewers(&rendering),
        "viewer joined"
    );
    Ok(Established {
        connection: transport.connection,
        delivery: transport.delivery,
        session,
        driver,
        close_requested,
        _viewer: viewer,
        _routed: routed,
        _control: control,
        _registered: registered,
    })
}

fn negotiated_alpn(connection: &quinn::Connection) -> Option<String> {
    let data = connection.handshake_data()?;
    let data = data
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?;
    data.protocol
        .map(|p| String::from_utf8_lossy(&p).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use edge_core::{EncodedFrame, FrameMeta};

    fn frame(seq: u64, keyframe: bool) -> EncodedFrame {
        // Not decodable H.264, but the publisher only looks for an SPS (falls back without).
        let nal = if keyframe { 0x65 } else { 0x41 };
        EncodedFrame {
            meta: FrameMeta {
                seq,
                pts_ns: seq * 33_333_333,
                received_unix_us: 0,
            },
            keyframe,
            data: Bytes::from(vec![0, 0, 0, 1, nal, 0x88, 0x84, 0x21, 0xa0]),
            encoded_unix_us: 0,
        }
    }

    /// Slow viewers cost bounded memory: a rendering keeps only groups touched within
    /// `retention`, plus the live one, whatever the track advertises (hang asks for 30 s).
    #[tokio::test]
    async fn retention_bounds_the_groups_a_rendering_keeps() {
        let config = ServerConfig {
            retention: Duration::from_secs(1),
            ..ServerConfig::default()
        };
        let (origin, driver) = origin::Producer::new(origin_config(&config));
        let driver = tokio::spawn(moq_net::time::run(driver));
        let renderings = Arc::new(Renderings::default());
        let video = VideoTrackInfo {
            width: 320,
            height: 240,
            fps: 30.0,
        };
        let mut publisher = RenderingPublisher::new(&origin, renderings, "r", video).unwrap();
        // Five 1-second GOPs, a pause longer than the retention, five more: a viewer that read
        // nothing would need all ten if the node buffered for it.
        for seq in 0..150 {
            publisher.write(&frame(seq, seq % 30 == 0)).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(2500)).await;
        for seq in 150..300 {
            publisher.write(&frame(seq, seq % 30 == 0)).unwrap();
        }
        assert_eq!(publisher.stats().groups_started, 10);

        let broadcast = origin.consume().request_broadcast("r/live").await.unwrap();
        let track = broadcast.track(crate::VIDEO_TRACK_NAME).unwrap();
        let fetch = |sequence: u64| {
            let track = track.clone();
            async move {
                tokio::time::timeout(
                    Duration::from_millis(200),
                    track.fetch_group(sequence, None),
                )
                .await
                .ok()
                .and_then(Result::ok)
            }
        };
        let kept: Vec<u64> = {
            let mut kept = Vec::new();
            for sequence in 0..10 {
                if fetch(sequence).await.is_some() {
                    kept.push(sequence);
                }
            }
            kept
        };
        assert!(kept.contains(&9), "the live group is always kept: {kept:?}");
        assert!(
            !kept.contains(&0),
            "groups beyond the retention are evicted: {kept:?}"
        );
        // Group 4 was the live edge (never evicted) until group 5 began a moment ago, so its
        // idle clock has only just started; 0-3 have been idle for longer than the retention.
        assert!(
            kept.iter().all(|&s| s >= 4),
            "only recent groups remain: {kept:?}"
        );
        drop(publisher);
        driver.abort();
    }
}
