//! The viewer side: subscribe to `live` on an edge-node and read H.264 access units.
//!
//! moq-net over web-transport-quinn, speaking exactly what a browser player does: WebTransport
//! to `https://HOST:PORT/?query`, the certificate pinned by its SHA-256 (fetched from
//! `/certificate.sha256` on the same port when not given), the hang catalog, then the video
//! track, reading groups newest-first as moq-lite delivers them. `ws://HOST:PORT/?query` takes
//! the WebSocket fallback instead (moq over qmux, as an iPhone's browser does). Used by
//! `edge-node view`, the demo and the bench; decoding is the caller's business.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use edge_core::sei::unix_now_us;
use moq_net::{group, origin, track, Timestamp};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use url::Url;
use web_transport_quinn::proto::ConnectRequest;

use crate::qmux_transport::QmuxSession;
use crate::tls::{certificate_sha256_hex, from_hex};
use crate::{net, DeliverError, BROADCAST_NAME};

/// How to reach and trust the server.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Hex SHA-256 of the server certificate to pin. `None`: fetch `GET /certificate.sha256`
    /// over TCP from the URL's host and port, then pin that (trust on first use, as the
    /// browser page does; fine for dev certificates on a network you trust).
    pub cert_sha256: Option<String>,
    /// Budget for everything up to the subscribed video track (hash fetch, QUIC, WebTransport,
    /// MoQ, catalog), including waiting for the rendering to be published.
    pub connect_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            cert_sha256: None,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// One access unit as received.
#[derive(Clone, Debug)]
pub struct ReceivedFrame {
    /// The H.264 Annex B access unit exactly as published (SEI frame clock inside).
    pub data: Bytes,
    /// Whether the access unit holds an IDR (read from the data, not inferred from position).
    pub keyframe: bool,
    /// Track media time, microseconds from the rendering's first frame.
    pub timestamp_us: u64,
    /// The MoQ group (GOP) the frame arrived in; increases by one per published keyframe.
    pub group_sequence: u64,
    /// Wall-clock time at which this client handed the frame out, microseconds since the epoch.
    pub received_unix_us: u64,
}

/// Counters of one subscription.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubscriptionStats {
    pub frames: u64,
    pub groups: u64,
    /// Groups given up part-way because a newer group superseded them (the viewer fell
    /// behind): dropped by this client, or cut short by the node, which stops sending them.
    pub groups_abandoned: u64,
}

/// The connection under a subscription.
enum ClientConnection {
    WebTransport {
        session: Box<web_transport_quinn::Session>,
        endpoint: quinn::Endpoint,
    },
    WebSocket(Box<qmux::Session>),
}

impl ClientConnection {
    fn close(&self, code: u32, reason: &str) {
        match self {
            Self::WebTransport { session, .. } => session.close(code, reason.as_bytes()),
            Self::WebSocket(session) => {
                moq_net::web_transport_trait::Session::close(&**session, code, reason)
            }
        }
    }

    /// The peer's application close code and reason, once the session ended; `None` when it
    /// ended without one.
    async fn closed(&self) -> Option<(u32, String)> {
        use moq_net::web_transport_trait::{Error as _, Session as _};
        match self {
            Self::WebTransport { session, .. } => match session.closed().await {
                web_transport_quinn::SessionError::WebTransportError(
                    web_transport_quinn::WebTransportError::Closed(code, reason),
                ) => Some((code, reason)),
                _ => None,
            },
            Self::WebSocket(session) => session.closed().await.session_error(),
        }
    }

    fn rtt(&self) -> Duration {
        use moq_net::web_transport_trait::{Session as _, Stats as _};
        match self {
            Self::WebTransport { session, .. } => session.rtt(),
            Self::WebSocket(session) => session.stats().rtt().unwrap_or_default(),
        }
    }
}

/// A subscribed video track. Dropping it closes the session.
pub struct Subscription {
    connection: ClientConnection,
    session: moq_net::Session,
    track: track::Ordered,
    group: Option<group::Consumer>,
    catalog: hang::catalog::VideoConfig,
    stats: SubscriptionStats,
    tasks: Vec<JoinHandle<()>>,
    /// The viewer's control track (see [`crate::control`]).
    commands: track::Producer,
    /// The broadcast `live`, for its other tracks (metadata).
    broadcast: moq_net::broadcast::Consumer,
    // Held so the origins the session reads from and writes into stay alive.
    _origin: origin::Producer,
    _published: (origin::Producer, moq_net::broadcast::Producer),
}

impl Subscription {
    /// The next access unit in group order, or `None` once the session or broadcast ended.
    ///
    /// A group left behind by a newer one is abandoned mid-way (moq-lite's newest-group-wins);
    /// the next frame returned is then that newer group's keyframe.
    pub async fn next_frame(&mut self) -> Option<ReceivedFrame> {
        let Self {
            session,
            track,
            group,
            stats,
            ..
        } = self;
        loop {
            if let Some(current) = group.as_mut() {
                let read = tokio::select! {
                    read = current.read_frame() => read,
                    _ = session.closed() => return None,
                };
                match read {
                    Ok(Some(frame)) => {
                        let received_unix_us = unix_now_us();
                        let sequence = current.sequence;
                        let frame = match hang::container::Frame::decode(frame.payload) {
                            Ok(frame) => frame,
                            Err(e) => {
                                tracing::debug!(error = %e, "undecodable hang frame skipped");
                                continue;
                            }
                        };
                        stats.frames += 1;
                        let timestamp_us =
                            u64::try_from(frame.timestamp.as_micros()).unwrap_or(u64::MAX);
                        return Some(ReceivedFrame {
                            keyframe: edge_core::annexb::is_idr(&frame.payload),
                            data: frame.payload,
                            timestamp_us,
                            group_sequence: sequence,
                            received_unix_us,
                        });
                    }
                    Ok(None) => *group = None,
                    Err(e) => {
                        // Given up here, or reset by the node for the same reason (it sends a
                        // group that a newer one superseded no further).
                        if matches!(
                            e,
                            moq_net::Error::Old | moq_net::Error::Stream(moq_net::StreamError::Old)
                        ) {
                            stats.groups_abandoned += 1;
                        } else {
                            tracing::debug!(error = %e, "group ended early");
                        }
                        *group = None;
                    }
                }
            } else {
                let next = tokio::select! {
                    next = track.next_group() => next,
                    _ = session.closed() => return None,
                };
                match next {
                    Ok(Some(next)) => {
                        stats.groups += 1;
                        *group = Some(next);
                    }
                    Ok(None) => return None,
                    Err(e) => {
                        tracing::debug!(error = %e, "video track ended");
                        return None;
                    }
                }
            }
        }
    }

    /// The catalog entry of the video track (codec string, size, frame rate).
    pub fn video_config(&self) -> &hang::catalog::VideoConfig {
        &self.catalog
    }

    pub fn stats(&self) -> SubscriptionStats {
        self.stats
    }

    /// Round-trip time of the connection as quinn (or qmux's pings) estimate it.
    pub fn rtt(&self) -> Duration {
        self.connection.rtt()
    }

    /// Waits for the session to end and says why: the peer's application close code and
    /// reason, or `None` when it ended without one (a transport error or timeout).
    pub async fn closed(&self) -> Option<(u32, String)> {
        self.connection.closed().await
    }

    /// Subscribes to the broadcast's metadata track ([`crate::METADATA_TRACK_NAME`]): what
    /// the node understood in the picture, one JSON message per group, each stamped with the
    /// media time of the video frame it describes.
    pub async fn subscribe_metadata(&self) -> Result<MetadataStream, DeliverError> {
        self.subscribe_messages(crate::METADATA_TRACK_NAME).await
    }

    /// Subscribes to the broadcast's overlays track ([`crate::OVERLAYS_TRACK_NAME`]): which
    /// overlays the rendering drew where, one JSON message per change and per keyframe, each
    /// stamped with the media time of the first video frame drawn that way.
    pub async fn subscribe_overlays(&self) -> Result<MetadataStream, DeliverError> {
        self.subscribe_messages(crate::OVERLAYS_TRACK_NAME).await
    }

    async fn subscribe_messages(&self, name: &str) -> Result<MetadataStream, DeliverError> {
        let track = self
            .broadcast
            .track(name)?
            .subscribe(track::Subscription::default())
            .await?;
        Ok(MetadataStream {
            track: track.ordered(),
        })
    }

    /// Sends one command on the control track (one group per command, so a newer command is
    /// never queued behind an older one). The node answers in the next rendered frame.
    pub fn send_control(&mut self, message: &[u8]) -> Result<(), DeliverError> {
        if message.len() > crate::control::MAX_CONTROL_MESSAGE_BYTES {
            return Err(DeliverError::Connect {
                url: String::new(),
                reason: format!(
                    "control message of {} bytes exceeds {}",
                    message.len(),
                    crate::control::MAX_CONTROL_MESSAGE_BYTES
                ),
            });
        }
        let mut group = self.commands.append_group()?;
        group.write_frame(Timestamp::now(), bytes::Bytes::copy_from_slice(message))?;
        group.finish()?;
        Ok(())
    }

    /// Closes the session with an application code and reason.
    pub fn close(&self, code: u32, reason: &str) {
        self.connection.close(code, reason);
    }

    /// Closes the session and waits (at most `timeout`) until the node has been told: a
    /// program about to exit calls this, or its runtime stops before the close is sent and
    /// the node only learns at its idle timeout.
    pub async fn finish(self, reason: &str, timeout: std::time::Duration) {
        let _ = self.commands.finish();
        self.connection.close(0, reason);
        match &self.connection {
            ClientConnection::WebTransport { endpoint, .. } => {
                let _ = tokio::time::timeout(timeout, endpoint.wait_idle()).await;
            }
            // qmux's writer task sends the close; it needs the runtime for a moment, and
            // acknowledges nothing to wait on.
            ClientConnection::WebSocket(_) => {
                tokio::time::sleep(timeout.min(Duration::from_millis(50))).await
            }
        }
    }
}

/// The messages of a metadata or overlays subscription, newest group first when the viewer
/// falls behind.
pub struct MetadataStream {
    track: track::Ordered,
}

impl MetadataStream {
    /// The next message and its media timestamp (µs), or `None` once the track ends.
    pub async fn next(&mut self) -> Option<(u64, Bytes)> {
        loop {
            let mut group = self.track.next_group().await.ok()??;
            if let Ok(Some(frame)) = group.read_frame().await {
                let timestamp_us = u64::try_from(frame.timestamp.as_micros()).unwrap_or(u64::MAX);
                return Some((timestamp_us, frame.payload));
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let _ = self.commands.finish();
        self.connection.close(0, "viewer left");
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Connects to `url` (`https://host:port/?query`, or `ws://host:port/?query` for the WebSocket
/// fallback), subscribes to the broadcast `live`, reads its catalog and subscribes to the first
/// (best) video rendition. Must run inside a tokio runtime.
pub async fn subscribe(url: &Url, options: ClientOptions) -> Result<Subscription, DeliverError> {
    crate::install_crypto_provider();
    let timeout_ms = options.connect_timeout.as_millis() as u64;
    tokio::time::timeout(options.connect_timeout, connect(url, &options))
        .await
        .map_err(|_| DeliverError::Timeout {
            during: "subscribing",
            after_ms: timeout_ms,
        })?
}

async fn connect(url: &Url, options: &ClientOptions) -> Result<Subscription, DeliverError> {
    let connection = match url.scheme() {
        "https" => connect_webtransport(url, options).await?,
        "ws" => connect_websocket(url).await?,
        _ => {
            return Err(DeliverError::InvalidUrl {
                url: url.to_string(),
                reason: "the scheme must be https (WebTransport) or ws (WebSocket, qmux)".into(),
            })
        }
    };
    let (origin, origin_driver) = origin::Producer::new(origin::Config::default());
    let mut tasks = vec![tokio::spawn(async move {
        moq_net::time::run(origin_driver).await;
    })];
    // What this viewer publishes: its control broadcast, announced at once so the node can
    // subscribe to it; commands are written when the viewer zooms or taps.
    let (published, published_driver) = origin::Producer::new(origin::Config::default());
    tasks.push(tokio::spawn(async move {
        moq_net::time::run(published_driver).await;
    }));
    let control = (|| {
        let broadcast = published.create_broadcast(crate::control::CONTROL_BROADCAST)?;
        let commands =
            broadcast.create_track(crate::control::CONTROL_TRACK, track::Info::default())?;
        broadcast.announce(origin::Route::default())?;
        Ok::<_, moq_net::Error>((broadcast, commands))
    })();
    let (control_broadcast, commands) = match control {
        Ok(control) => control,
        Err(e) => {
            tasks.iter().for_each(JoinHandle::abort);
            return Err(e.into());
        }
    };
    let client = moq_net::Client::new()
        .with_subscriber(origin.clone())
        .with_publisher(published.consume());
    let now = tokio::time::Instant::now().into_std();
    let (session, driver) = match &connection {
        ClientConnection::WebTransport { session, .. } => {
            let (session, driver) = client.connect(now, (**session).clone()).await?;
            (session, tokio::spawn(moq_net::time::run(driver)))
        }
        ClientConnection::WebSocket(session) => {
            let (session, driver) = client
                .connect(now, QmuxSession::new((**session).clone()))
                .await?;
            (session, tokio::spawn(moq_net::time::run(driver)))
        }
    };
    tasks.push(tokio::spawn(async move {
        if let Ok(end) = driver.await {
            tracing::debug!(reason = %end, "client session driver ended");
        }
    }));
    // From here on, a failure must not leave the spawned drivers running.
    let abort_all = |tasks: &[JoinHandle<()>]| tasks.iter().for_each(JoinHandle::abort);

    let consumer = origin.consume();
    let broadcast = tokio::select! {
        broadcast = consumer.routed_broadcast(BROADCAST_NAME) => broadcast.map_err(DeliverError::from),
        _ = session.closed() => Err(closed_reason(&connection).await),
    };
    let prepared = match broadcast {
        Ok(broadcast) => read_catalog_and_subscribe(&broadcast)
            .await
            .map(|(catalog, track)| (catalog, track, broadcast)),
        Err(e) => Err(e),
    };
    let (catalog, track, broadcast) = match prepared {
        Ok(prepared) => prepared,
        Err(e) => {
            abort_all(&tasks);
            connection.close(0, "subscribe failed");
            return Err(e);
        }
    };
    tracing::info!(%url, codec = %catalog.codec, version = %session.version(), "subscribed");
    Ok(Subscription {
        connection,
        session,
        track,
        group: None,
        catalog,
        stats: SubscriptionStats::default(),
        tasks,
        commands,
        broadcast,
        _origin: origin,
        _published: (published, control_broadcast),
    })
}

/// QUIC with the certificate pinned, then WebTransport CONNECT offering every moq version.
async fn connect_webtransport(
    url: &Url,
    options: &ClientOptions,
) -> Result<ClientConnection, DeliverError> {
    let invalid = |reason: &str| DeliverError::InvalidUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let (host, remote) = resolve(url).await?;
    let connect_error = |reason: String| DeliverError::Connect {
        url: url.to_string(),
        reason,
    };
    let pinned_hex = match &options.cert_sha256 {
        Some(hex) => hex.clone(),
        None => fetch_certificate_hash(remote, &host).await?,
    };
    let pinned = from_hex(&pinned_hex)
        .filter(|bytes| bytes.len() == 32)
        .ok_or_else(|| DeliverError::Certificate(format!("not a hex SHA-256: {pinned_hex:?}")))?;

    let endpoint = client_endpoint(remote)?;
    let server_name =
        ServerName::try_from(host.clone()).map_err(|e| invalid(&format!("host name: {e}")))?;
    let connection = endpoint
        .connect_with(client_config(pinned)?, remote, &server_name.to_str())
        .map_err(|e| connect_error(format!("QUIC: {e}")))?
        .await
        .map_err(|e| connect_error(format!("QUIC handshake: {e}")))?;
    let request = ConnectRequest::new(url.clone())
        .with_protocols(moq_net::ALPNS.iter().map(|p| p.to_string()));
    let session = web_transport_quinn::Session::connect(connection, request)
        .await
        .map_err(|e| connect_error(format!("WebTransport: {e}")))?;
    Ok(ClientConnection::WebTransport {
        session: Box::new(session),
        endpoint,
    })
}

/// The WebSocket upgrade offering every moq version under every qmux draft, as the browser's
/// fallback does.
async fn connect_websocket(url: &Url) -> Result<ClientConnection, DeliverError> {
    let session = qmux::ws::Client::new()
        .with_protocols(moq_net::ALPNS.iter().map(|alpn| (*alpn, &[][..])))
        .require_protocol()
        .with_keep_alive(crate::websocket::keep_alive(Duration::from_secs(10)))
        .connect(url.as_str())
        .await
        .map_err(|e| DeliverError::Connect {
            url: url.to_string(),
            reason: format!("WebSocket (qmux): {e}"),
        })?;
    Ok(ClientConnection::WebSocket(Box::new(session)))
}

/// The URL's host (bare, as sockets and SNI want it) and its first address.
async fn resolve(url: &Url) -> Result<(String, SocketAddr), DeliverError> {
    let invalid = |reason: &str| DeliverError::InvalidUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let host = url.host_str().ok_or_else(|| invalid("no host"))?;
    // IPv6 literals come bracketed from Url; sockets and SNI want them bare.
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| invalid("no port"))?;
    let connect_error = |reason: String| DeliverError::Connect {
        url: url.to_string(),
        reason,
    };
    let remote = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| connect_error(format!("resolving {host}: {e}")))?
        .next()
        .ok_or_else(|| connect_error(format!("{host} resolves to no address")))?;
    Ok((host, remote))
}

async fn read_catalog_and_subscribe(
    broadcast: &moq_net::broadcast::Consumer,
) -> Result<(hang::catalog::VideoConfig, track::Ordered), DeliverError> {
    let mut catalogs = hang::Catalog::<()>::subscribe(broadcast).await?;
    let catalog = catalogs.next().await?.ok_or(DeliverError::NoVideoTrack)?;
    let (name, config) = catalog
        .video
        .ranked()
        .next()
        .ok_or(DeliverError::NoVideoTrack)?;
    let subscription = track::Subscription::default().with_priority(hang::catalog::PRIORITY.video);
    let track = broadcast.track(name)?.subscribe(subscription).await?;
    Ok((config.clone(), track.ordered()))
}

/// Why the server ended the session: a refusal carries its code and reason in the close.
async fn closed_reason(connection: &ClientConnection) -> DeliverError {
    let closed = tokio::time::timeout(Duration::from_secs(2), connection.closed()).await;
    match closed {
        Ok(Some((code, reason))) => DeliverError::Refused { code, reason },
        Ok(None) => DeliverError::Connect {
            url: String::new(),
            reason: "session closed without an application close".into(),
        },
        Err(_) => DeliverError::Connect {
            url: String::new(),
            reason: "session closed without a reason".into(),
        },
    }
}

/// `GET /certificate.sha256` over plain HTTP on the QUIC port number.
pub async fn fetch_certificate_hash(
    remote: SocketAddr,
    host: &str,
) -> Result<String, DeliverError> {
    const MAX_RESPONSE_BYTES: u64 = 16 * 1024;
    let fail = |reason: String| DeliverError::CertificateHash {
        addr: remote.to_string(),
        reason,
    };
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(remote)
            .await
            .map_err(|e| fail(format!("connect: {e}")))?;
        let authority = if host.contains(':') {
            format!("[{host}]:{}", remote.port())
        } else {
            format!("{host}:{}", remote.port())
        };
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n",
            crate::cert_http::CERTIFICATE_PATH
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| fail(format!("write: {e}")))?;
        let mut response = Vec::new();
        stream
            .take(MAX_RESPONSE_BYTES)
            .read_to_end(&mut response)
            .await
            .map_err(|e| fail(format!("read: {e}")))?;
        Ok::<_, DeliverError>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| fail("timed out".into()))??;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| fail("malformed HTTP response".into()))?;
    let status = head.split("\r\n").next().unwrap_or_default();
    if status.split(' ').nth(1) != Some("200") {
        return Err(fail(format!("unexpected status line {status:?}")));
    }
    Ok(body.trim().to_string())
}

fn client_endpoint(remote: SocketAddr) -> Result<quinn::Endpoint, DeliverError> {
    let local: SocketAddr = if remote.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = net::bind_udp(local)?;
    let runtime = quinn::default_runtime().ok_or_else(|| DeliverError::Bind {
        protocol: "UDP",
        addr: local,
        source: std::io::Error::other("no async runtime found for quinn"),
    })?;
    quinn::Endpoint::new(quinn::EndpointConfig::default(), None, socket, runtime).map_err(
        |source| DeliverError::Bind {
            protocol: "UDP",
            addr: local,
            source,
        },
    )
}

fn client_config(pinned_sha256: Vec<u8>) -> Result<quinn::ClientConfig, DeliverError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedCertificate {
        sha256: pinned_sha256,
        provider: provider.clone(),
    });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![web_transport_quinn::ALPN.as_bytes().to_vec()];
    let tls = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| DeliverError::Certificate(format!("client TLS not usable for QUIC: {e}")))?;
    let mut config = quinn::ClientConfig::new(Arc::new(tls));
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(Duration::from_secs(3)));
    transport.max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(
        10_000,
    ))));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// Trusts exactly one certificate, identified by the SHA-256 of its DER, as WebTransport's
/// `serverCertificateHashes` does; names and chains are irrelevant. Handshake signatures are
/// still verified, so the peer must hold the certificate's key.
#[derive(Debug)]
pub(crate) struct PinnedCertificate {
    sha256: Vec<u8>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl PinnedCertificate {
    /// Also used by the relay uplink, which pins a self-signed relay the same way.
    pub(crate) fn new(sha256: Vec<u8>, provider: Arc<rustls::crypto::CryptoProvider>) -> Arc<Self> {
        Arc::new(Self { sha256, provider })
    }
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = from_hex(&certificate_sha256_hex(end_entity)).unwrap_or_default();
        if presented == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
