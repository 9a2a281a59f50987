//! The node's plain HTTP/1.1 side, on the QUIC port number over TCP: `GET /certificate.sha256`
//! for browsers that must pin the short-lived self-signed certificate before they can open
//! WebTransport, and the viewer page (`/`, its script and style) that does exactly that.
//!
//! Hand-written on purpose: a hash and a handful of static files do not justify an HTTP stack,
//! and every limit a hostile client could push on is explicit here (header bytes, time,
//! concurrent connections, file size, which paths exist). A WebSocket upgrade (the moq client's
//! fallback where WebTransport is missing) is handed, with its connection, to an
//! [`UpgradeHandler`] (the delivery server's viewer sessions), which no longer counts against
//! this endpoint's connections. Anything else (scanners, garbage) gets a short 404 or 400 and
//! the connection is closed; none of it is an error of ours.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::web_root::{self, WebRoot, MAX_FILE_BYTES, WEB_DIR_ENV};
use crate::websocket::{self, Io, UpgradeRequest};

pub const CERTIFICATE_PATH: &str = "/certificate.sha256";

/// A request head larger than this is refused: ours is one short line plus a few headers.
const MAX_REQUEST_HEAD_BYTES: usize = 8 * 1024;
/// Budget for a client to send its request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Budget for writing an answer: the page's script is a few hundred KB, which a phone on a weak
/// link may take a while to receive; a stalled reader is cut off here.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; further ones are closed on accept.
const MAX_CONNECTIONS: usize = 256;

/// The page may talk only to its own node (WebTransport is governed by `connect-src`; `'self'`
/// covers the `https://` URL on the same host and port as an `http://` page).
const PAGE_SECURITY_HEADERS: &str = "Content-Security-Policy: default-src 'self'; \
     script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'none'\r\n\
     Referrer-Policy: no-referrer\r\n";

/// Takes WebSocket upgrades off this endpoint.
pub(crate) trait UpgradeHandler: Send + Sync + 'static {
    /// Takes the upgrade (a task of the handler's now owns the connection), or gives it back
    /// with why not (its sessions are full, the address connects too fast).
    fn upgrade(&self, request: UpgradeRequest, remote: SocketAddr) -> Result<(), Box<Refused>>;
}

/// An upgrade the handler would not take, and the HTTP answer to give instead.
pub(crate) struct Refused {
    pub request: UpgradeRequest,
    /// Status line, e.g. `503 Service Unavailable`.
    pub status: &'static str,
    pub reason: &'static str,
}

/// Serves the hash and the page until the task is aborted: over plain HTTP, and with `tls` (see
/// [`page_tls_config`]) a connection that opens with a TLS handshake is served over HTTPS, so a phone on the site's network that opens
/// `https://node:port/` gets a secure context (WebCodecs and WebTransport need one; plain
/// `http://` is one only on localhost). Plain HTTP keeps working beside it.
pub async fn serve(
    listener: TcpListener,
    sha256_hex: Arc<str>,
    tls: Option<Arc<rustls::ServerConfig>>,
    upgrades: Option<Arc<dyn UpgradeHandler>>,
) {
    let web = Arc::new(WebRoot::locate());
    match web.as_ref() {
        WebRoot::Found(dir) => {
            tracing::info!(dir = %dir.display(), https = tls.is_some(), "viewer page served at /")
        }
        WebRoot::Missing { tried } => tracing::info!(
            tried = ?tried,
            "no viewer page found (GET / answers 404): build it with scripts/setup-web.sh, \
             or name its directory in {WEB_DIR_ENV}"
        ),
    }
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Per-connection failures (reset before accept, fd exhaustion) must not end the
                // listener; back off briefly so fd exhaustion does not spin.
                tracing::debug!(error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%remote, "HTTP endpoint busy, closing connection");
            continue;
        };
        let hash = sha256_hex.clone();
        let web = web.clone();
        let acceptor = acceptor.clone();
        let upgrades = upgrades.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let upgrades = upgrades.as_deref().map(|handler| (handler, remote));
            let result = match acceptor {
                Some(acceptor) if opens_with_tls(&stream).await => {
                    match tokio::time::timeout(REQUEST_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => answer(tls, &hash, &web, upgrades).await,
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err(timed_out("TLS handshake")),
                    }
                }
                _ => answer(stream, &hash, &web, upgrades).await,
            };
            match result {
                Ok(outcome) => tracing::debug!(%remote, ?outcome, "HTTP request"),
                Err(e) => tracing::debug!(%remote, error = %e, "HTTP connection ended"),
            }
        });
    }
}

/// The TLS configuration for [`serve`] from the node's certificate chain and key (the
/// same identity QUIC uses), ring only, HTTP/1.1.
pub(crate) fn page_tls_config(
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TLS record starts with the handshake content type, 0x16; an HTTP request with a letter.
async fn opens_with_tls(stream: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(
        tokio::time::timeout(REQUEST_TIMEOUT, stream.peek(&mut first)).await,
        Ok(Ok(1)) if first[0] == 0x16
    )
}

fn timed_out(what: &'static str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, what)
}

/// What a request turned into, for the debug log and the tests.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Hash,
    Preflight,
    /// A file of the viewer page; `body` is false for `HEAD`.
    File {
        path: PathBuf,
        body: bool,
    },
    NotFound,
    BadRequest,
    /// A WebSocket upgrade, handed to the [`UpgradeHandler`].
    Upgraded,
    /// A WebSocket upgrade refused: malformed, or the handler would not take it.
    UpgradeRefused(&'static str),
}

/// The parts of a request head this endpoint looks at.
#[derive(Debug, PartialEq, Eq)]
struct Request<'a> {
    method: &'a str,
    /// The request target as sent (path and query).
    target: &'a str,
    path: &'a str,
    upgrade: bool,
    if_none_match: Option<&'a str>,
}

async fn answer<S: Io>(
    mut stream: S,
    sha256_hex: &str,
    web: &WebRoot,
    upgrades: Option<(&dyn UpgradeHandler, SocketAddr)>,
) -> std::io::Result<Outcome> {
    let head = match tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Err(timed_out("request head")),
    };
    let Some((head, leftover)) = head else {
        // Closed before a full request head: nothing to answer.
        return Ok(Outcome::BadRequest);
    };
    let (outcome, if_none_match) = match parse(&head) {
        Some(request) if request.upgrade && upgrades.is_some() => {
            let (handler, remote) = upgrades.expect("checked just above");
            let upgrade = websocket::parse_upgrade(request.method, request.target, headers(&head));
            match upgrade {
                Ok(head) => {
                    let upgrade = UpgradeRequest {
                        stream: Box::new(stream),
                        leftover,
                        head,
                    };
                    return match handler.upgrade(upgrade, remote) {
                        Ok(()) => Ok(Outcome::Upgraded),
                        Err(refused) => {
                            let Refused {
                                mut request,
                                status,
                                reason,
                            } = *refused;
                            let response = websocket::refusal_response(status, reason);
                            let respond = async {
                                request.stream.write_all(response.as_bytes()).await?;
                                request.stream.shutdown().await
                            };
                            match tokio::time::timeout(REQUEST_TIMEOUT, respond).await {
                                Ok(result) => result.map(|()| Outcome::UpgradeRefused(reason)),
                                Err(_) => Err(timed_out("response")),
                            }
                        }
                    };
                }
                Err(reason) => (Outcome::UpgradeRefused(reason), None),
            }
        }
        Some(request) => (
            route(&request, web),
            request.if_none_match.map(str::to_owned),
        ),
        None => (Outcome::BadRequest, None),
    };
    let respond = async {
        match &outcome {
            Outcome::File { path, body } => {
                send_file(&mut stream, path, *body, if_none_match.as_deref()).await?
            }
            other => {
                let missing_page = matches!(web, WebRoot::Missing { .. });
                stream
                    .write_all(render(other, sha256_hex, missing_page).as_bytes())
                    .await?
            }
        }
        stream.shutdown().await
    };
    match tokio::time::timeout(RESPONSE_TIMEOUT, respond).await {
        Ok(result) => result.map(|()| outcome),
        Err(_) => Err(timed_out("response")),
    }
}

/// The request head (without the blank line) and any bytes read after it, or None when the
/// peer closed first. A head over the limit comes back as a lone byte that parses as nothing.
async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = find_head_end(&head) {
            let leftover = head.split_off(end + 4);
            head.truncate(end);
            return Ok(Some((head, leftover)));
        }
        if head.len() > MAX_REQUEST_HEAD_BYTES {
            return Ok(Some((vec![0], Vec::new())));
        }
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

fn parse(head: &[u8]) -> Option<Request<'_>> {
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or_default().split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    // The query is ignored (cache busters like `?t=123` are common; the page reads its own).
    let path = target.split('?').next().unwrap_or_default();
    let mut request = Request {
        method,
        target,
        path,
        upgrade: false,
        if_none_match: None,
    };
    for (name, value) in lines.filter_map(|line| line.split_once(':')) {
        let value = value.trim();
        if name.eq_ignore_ascii_case("upgrade") {
            request.upgrade = true;
        } else if name.eq_ignore_ascii_case("if-none-match") {
            request.if_none_match = Some(value);
        }
    }
    Some(request)
}

/// The `(name, value)` header pairs of a head that [`parse`] accepted.
fn headers(head: &[u8]) -> impl Iterator<Item = (&str, &str)> {
    std::str::from_utf8(head)
        .unwrap_or_default()
        .split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim(), value.trim()))
}

/// Decides from the request line and two headers: a protocol upgrade (the moq client's
/// WebSocket fallback) is not a page request.
fn route(request: &Request<'_>, web: &WebRoot) -> Outcome {
    match (request.method, request.path) {
        ("GET", CERTIFICATE_PATH) => Outcome::Hash,
        ("OPTIONS", CERTIFICATE_PATH) => Outcome::Preflight,
        ("GET" | "HEAD", path) if !request.upgrade => match web.resolve(path) {
            Some(path) => Outcome::File {
                path,
                body: request.method == "GET",
            },
            None => Outcome::NotFound,
        },
        _ => Outcome::NotFound,
    }
}

/// A request head as the server reads it, for the fuzz target: parsed, routed, and, when it asks
/// for an upgrade, checked as a WebSocket handshake with the subprotocol chosen.
pub(crate) fn fuzz_request_head(head: &[u8]) {
    let Some(request) = parse(head) else {
        return;
    };
    let _ = route(&request, &WebRoot::Missing { tried: Vec::new() });
    if !request.upgrade {
        return;
    }
    if let Ok(upgrade) = websocket::parse_upgrade(request.method, request.target, headers(head)) {
        assert!(
            upgrade.protocols.len() <= head.len(),
            "offers come from the head"
        );
        if let Some(chosen) = websocket::choose_protocol(&upgrade.protocols) {
            assert!(upgrade.protocols.contains(&chosen), "only an offered one");
        }
    }
}

/// Classifies a request head the way the server would.
#[cfg(test)]
fn classify(head: &[u8], web: &WebRoot) -> Outcome {
    match parse(head) {
        Some(request) => route(&request, web),
        None => Outcome::BadRequest,
    }
}

/// Streams one file with a validator, so a reload costs a 304 instead of the script again.
async fn send_file<S: AsyncWrite + Unpin>(
    stream: &mut S,
    path: &std::path::Path,
    body: bool,
    if_none_match: Option<&str>,
) -> std::io::Result<()> {
    let opened = match tokio::fs::File::open(path).await {
        Ok(file) => file.metadata().await.map(|metadata| (file, metadata)),
        Err(e) => Err(e),
    };
    let (file, metadata) = match opened {
        Ok(opened) if opened.1.is_file() && opened.1.len() <= MAX_FILE_BYTES => opened,
        // Removed or replaced since the path was resolved, or too large to serve.
        _ => {
            return stream
                .write_all(render(&Outcome::NotFound, "", false).as_bytes())
                .await
        }
    };
    let length = metadata.len();
    let modified = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    let etag = format!("\"{length:x}-{:x}\"", modified.as_nanos());
    let is_page = path.extension().is_some_and(|e| e == "html");
    let security = if is_page { PAGE_SECURITY_HEADERS } else { "" };
    let common = format!(
        "ETag: {etag}\r\nCache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n{security}\
         Connection: close\r\n"
    );
    if if_none_match.is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag)) {
        let head = format!("HTTP/1.1 304 Not Modified\r\n{common}\r\n");
        return stream.write_all(head.as_bytes()).await;
    }
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {length}\r\n{common}\r\n",
        web_root::content_type(path)
    );
    stream.write_all(head.as_bytes()).await?;
    if body {
        let copied = tokio::io::copy(&mut file.take(length), stream).await?;
        if copied != length {
            // Truncated under us: the client sees a short body against Content-Length.
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "file shrank while being served",
            ));
        }
    }
    Ok(())
}

fn render(outcome: &Outcome, sha256_hex: &str, missing_page: bool) -> String {
    const CORS: &str = "Access-Control-Allow-Origin: *\r\n";
    match outcome {
        Outcome::Hash => format!(
            "HTTP/1.1 200 OK\r\n{CORS}Content-Type: text/plain\r\nCache-Control: no-store\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{sha256_hex}",
            sha256_hex.len()
        ),
        Outcome::Preflight => format!(
            "HTTP/1.1 204 No Content\r\n{CORS}Access-Control-Allow-Methods: GET, OPTIONS\r\n\
             Access-Control-Max-Age: 86400\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        // Says why to a person opening the node in a browser; where it looked is in the log.
        Outcome::NotFound if missing_page => {
            let body = "The viewer page is not installed on this node.\n";
            format!(
                "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        }
        Outcome::NotFound | Outcome::File { .. } => {
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
        }
        Outcome::BadRequest => {
            "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
        }
        Outcome::UpgradeRefused(reason) => websocket::refusal_response("400 Bad Request", reason),
        Outcome::Upgraded => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_page() -> WebRoot {
        WebRoot::Missing { tried: Vec::new() }
    }

    #[test]
    fn request_lines_are_classified() {
        let web = no_page();
        let classify = |head: &[u8]| classify(head, &web);
        assert_eq!(
            classify(b"GET /certificate.sha256 HTTP/1.1\r\nHost: x"),
            Outcome::Hash
        );
        assert_eq!(
            classify(b"GET /certificate.sha256?t=1 HTTP/1.0"),
            Outcome::Hash
        );
        assert_eq!(
            classify(b"OPTIONS /certificate.sha256 HTTP/1.1"),
            Outcome::Preflight
        );
        // The moq client's WebSocket fallback.
        assert_eq!(
            classify(b"GET /?zone=a HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade"),
            Outcome::NotFound
        );
        assert_eq!(
            classify(b"POST /certificate.sha256 HTTP/1.1"),
            Outcome::NotFound
        );
        assert_eq!(
            classify(b"GET / HTTP/1.1"),
            Outcome::NotFound,
            "no page here"
        );
        assert_eq!(classify(b"\x16\x03\x01garbage"), Outcome::BadRequest);
        assert_eq!(classify(b"GET /certificate.sha256"), Outcome::BadRequest);
        assert_eq!(classify(b"GET / SPDY/3"), Outcome::BadRequest);
        assert_eq!(classify(b""), Outcome::BadRequest);
    }

    #[test]
    fn page_requests_resolve_inside_the_web_root_only() {
        let dir = std::env::temp_dir().join(format!("edge-cert-http-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.html"), "<!doctype html>").unwrap();
        std::fs::write(dir.join("viewer.js"), "1").unwrap();
        let web = WebRoot::first_of([dir.clone()]);
        let index = dir.join("index.html").canonicalize().unwrap();
        assert_eq!(
            classify(b"GET /?zone=yintai-mall HTTP/1.1\r\nHost: x", &web),
            Outcome::File {
                path: index.clone(),
                body: true
            }
        );
        assert_eq!(
            classify(b"HEAD / HTTP/1.1", &web),
            Outcome::File {
                path: index,
                body: false
            }
        );
        assert!(matches!(
            classify(b"GET /viewer.js HTTP/1.1", &web),
            Outcome::File { body: true, .. }
        ));
        for head in [
            &b"GET /../Cargo.toml HTTP/1.1"[..],
            b"GET /missing.js HTTP/1.1",
            b"POST / HTTP/1.1",
            b"GET / HTTP/1.1\r\nupgrade: websocket",
        ] {
            assert_eq!(
                classify(head, &web),
                Outcome::NotFound,
                "{}",
                String::from_utf8_lossy(head)
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A listener and the page's TLS configuration with a generated identity, and its leaf.
    async fn tls_listener() -> (
        TcpListener,
        Arc<rustls::ServerConfig>,
        rustls::pki_types::CertificateDer<'static>,
    ) {
        crate::install_crypto_provider();
        let identity =
            crate::tls::ServerIdentity::load(&crate::TlsSource::Generate).expect("generate");
        let leaf = identity.chain[0].clone();
        let config = page_tls_config(identity.chain, identity.key).expect("TLS config");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        (listener, config, leaf)
    }

    /// A TLS connection to `addr` trusting only `leaf`.
    async fn tls_client(
        addr: SocketAddr,
        leaf: rustls::pki_types::CertificateDer<'static>,
    ) -> tokio_rustls::client::TlsStream<TcpStream> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(leaf).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        connector.connect(name, tcp).await.expect("TLS handshake")
    }

    /// One listener, both ways in: TLS with the node's certificate, and plain HTTP.
    #[tokio::test]
    async fn https_and_plain_http_share_the_port() {
        let (listener, config, leaf) = tls_listener().await;
        let addr = listener.local_addr().unwrap();
        let hash: Arc<str> = "ab".repeat(32).into();
        let server = tokio::spawn(serve(listener, hash.clone(), Some(config), None));

        let mut tls = tls_client(addr, leaf).await;
        tls.write_all(b"GET /certificate.sha256 HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        tls.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.ends_with(&*hash), "{response}");

        let mut plain = TcpStream::connect(addr).await.unwrap();
        plain
            .write_all(b"GET /certificate.sha256 HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        plain.read_to_string(&mut response).await.unwrap();
        assert!(response.ends_with(&*hash), "{response}");
        server.abort();
    }

    /// Keeps every upgrade it is handed, answering on the connection itself.
    #[derive(Default)]
    struct Recorder(std::sync::Mutex<Vec<(websocket::UpgradeHead, SocketAddr)>>);

    impl UpgradeHandler for Recorder {
        fn upgrade(&self, request: UpgradeRequest, remote: SocketAddr) -> Result<(), Box<Refused>> {
            let UpgradeRequest {
                mut stream, head, ..
            } = request;
            self.0.lock().unwrap().push((head, remote));
            tokio::spawn(async move {
                let _ = stream.write_all(b"handed over").await;
                let _ = stream.shutdown().await;
            });
            Ok(())
        }
    }

    /// `wss://` from an HTTPS page: the upgrade arrives inside TLS and is handed over with the
    /// TLS stream, outside this endpoint's connection count.
    #[tokio::test]
    async fn upgrades_inside_tls_are_handed_over_with_their_connection() {
        let (listener, config, leaf) = tls_listener().await;
        let addr = listener.local_addr().unwrap();
        let recorder = Arc::new(Recorder::default());
        let handler: Arc<dyn UpgradeHandler> = recorder.clone();
        let server = tokio::spawn(serve(listener, "ab".into(), Some(config), Some(handler)));

        let mut tls = tls_client(addr, leaf).await;
        tls.write_all(
            b"GET /live?zone=yintai-mall HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
              Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: qmux-01.moq-lite-05\r\n\r\n",
        )
        .await
        .unwrap();
        let mut response = String::new();
        tls.read_to_string(&mut response).await.unwrap();
        assert_eq!(response, "handed over", "the handler owns the TLS stream");
        let handed = recorder.0.lock().unwrap();
        assert_eq!(handed.len(), 1);
        let (head, remote) = &handed[0];
        assert_eq!(
            (head.path.as_str(), head.query.as_str()),
            ("/live", "zone=yintai-mall")
        );
        assert_eq!(head.protocols, ["qmux-01.moq-lite-05"]);
        assert_eq!(remote.ip(), addr.ip());
        server.abort();
    }

    #[test]
    fn hash_response_carries_cors_and_exact_body() {
        let body = "ab".repeat(32);
        let response = render(&Outcome::Hash, &body, false);
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(response.contains("Access-Control-Allow-Origin: *\r\n"));
        assert!(response.contains("Content-Length: 64\r\n"));
        assert!(response.ends_with(&format!("\r\n\r\n{body}")));
    }
}
