//! The WebSocket fallback's handshake: what browsers without WebTransport (every iOS browser)
//! open on the page's TCP port to speak moq over qmux.
//!
//! [`cert_http`](crate::cert_http) reads the request head and hands the connection over here;
//! the upgrade is answered by hand (a head is already parsed, and every bound stays explicit)
//! and the socket is then wrapped as a qmux session.
//!
//! The subprotocol names the qmux draft and the moq version together (`qmux-01.moq-lite-05`),
//! and the first one of ours the client offers wins. Our preference goes newest moq version
//! first, then newest qmux draft; a client offering none of them is refused with 400 (the qmux
//! WebSocket draft makes a missing selection a failure anyway). A bare qmux draft without a
//! moq version, or the legacy `webtransport` format (no flow control), is never accepted.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use qmux::ws::tokio_tungstenite::{tungstenite, WebSocketStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tungstenite::protocol::{Role, WebSocketConfig};

/// Any byte stream a WebSocket can run over here: TCP, or TLS over TCP.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// qmux drafts a moq version may ride on, newest first (the page's @moq/qmux speaks all three).
const QMUX_VERSIONS: [qmux::Version; 3] = [
    qmux::Version::QMux02,
    qmux::Version::QMux01,
    qmux::Version::QMux00,
];

/// Largest WebSocket message accepted: one qmux record (16 KiB by default) with room to spare.
/// tungstenite's default is 64 MiB.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Bytes tungstenite may hold for a socket that does not take them; past this a write fails
/// and the session ends (qmux itself waits on a full socket long before).
const MAX_WRITE_BUFFER_BYTES: usize = 1024 * 1024;

/// A silent viewer is gone after this (WebSocket has no idle timeout of its own, and a phone
/// that lost its network sends no FIN): pings at a third of it.
pub(crate) fn keep_alive(idle_timeout: Duration) -> qmux::ws::KeepAlive {
    qmux::ws::KeepAlive::new(idle_timeout / 3, idle_timeout)
}

/// A WebSocket upgrade, handed over by the HTTP side with the connection it arrived on.
pub(crate) struct UpgradeRequest {
    pub stream: Box<dyn Io>,
    /// Bytes read past the head (a client may send its first frames right behind it).
    pub leftover: Vec<u8>,
    pub head: UpgradeHead,
}

/// What the head of a WebSocket upgrade request says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct UpgradeHead {
    pub path: String,
    pub query: String,
    key: String,
    pub protocols: Vec<String>,
}

/// Checks the headers of an upgrade request. `headers` are the head's `(name, value)` pairs;
/// `target` is the request target (`/path?query`). The error says what is wrong, for a 400.
pub(crate) fn parse_upgrade<'a>(
    method: &str,
    target: &str,
    headers: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<UpgradeHead, &'static str> {
    let mut key = None;
    let mut version_13 = false;
    let mut upgrade_websocket = false;
    let mut protocols = Vec::new();
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("sec-websocket-key") {
            key = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            version_13 = value == "13";
        } else if name.eq_ignore_ascii_case("upgrade") {
            upgrade_websocket = value.eq_ignore_ascii_case("websocket");
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
            protocols.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    // Each offer is a short token; a head is at most 8 KiB anyway.
                    .take(64)
                    .map(str::to_string),
            );
        }
    }
    if method != "GET" {
        return Err("a WebSocket upgrade is a GET");
    }
    if !upgrade_websocket {
        return Err("not a WebSocket upgrade");
    }
    if !version_13 {
        return Err("Sec-WebSocket-Version must be 13");
    }
    // The key is 16 random bytes in base64: 24 characters.
    let Some(key) = key.filter(|k| k.len() == 24) else {
        return Err("missing or malformed Sec-WebSocket-Key");
    };
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path.to_string(), query.to_string()),
        None => (target.to_string(), String::new()),
    };
    Ok(UpgradeHead {
        path,
        query,
        key,
        protocols,
    })
}

/// The subprotocol to answer with: our preference order, among those offered.
pub(crate) fn choose_protocol(offered: &[String]) -> Option<String> {
    moq_net::ALPNS.iter().find_map(|moq| {
        QMUX_VERSIONS.iter().find_map(|qmux| {
            let wire = format!("{}{moq}", qmux.prefix());
            offered.contains(&wire).then_some(wire)
        })
    })
}

/// The response refusing an upgrade, with a short reason in the body.
pub(crate) fn refusal_response(status: &str, reason: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{reason}",
        reason.len()
    )
}

/// Answers the upgrade with 101 and wraps the connection as a server-side qmux session. The
/// chosen subprotocol must come from [`choose_protocol`].
pub(crate) async fn accept(
    mut request: UpgradeRequest,
    protocol: &str,
    idle_timeout: Duration,
) -> std::io::Result<qmux::Session> {
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n",
        tungstenite::handshake::derive_accept_key(request.head.key.as_bytes())
    );
    request.stream.write_all(response.as_bytes()).await?;
    request.stream.flush().await?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES);
    let socket = WebSocketStream::from_partially_read(
        LingeringClose(Some(request.stream)),
        request.leftover,
        Role::Server,
        Some(config),
    )
    .await;
    Ok(qmux::ws::Upgraded::new(socket)
        .with_alpn(protocol)
        .with_keep_alive(keep_alive(idle_timeout))
        .accept())
}

/// How long a closed connection keeps reading what the viewer still sends, and how much.
const LINGER: Duration = Duration::from_secs(2);
const MAX_LINGER_BYTES: u64 = 256 * 1024;

/// The connection under a WebSocket session, closed the way HTTP servers close: our side is
/// shut down first and what the viewer still sends is read and dropped for a moment. Closing
/// with its bytes unread would make the kernel answer with a reset, which discards what the
/// viewer has not read yet, the session's close code and reason included (a refused viewer
/// has just sent its MoQ SETUP).
struct LingeringClose(Option<Box<dyn Io>>);

impl LingeringClose {
    fn stream(&mut self) -> Pin<&mut Box<dyn Io>> {
        Pin::new(self.0.as_mut().expect("present until dropped"))
    }
}

impl Drop for LingeringClose {
    fn drop(&mut self) {
        let (Some(mut stream), Ok(runtime)) =
            (self.0.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        runtime.spawn(async move {
            let _ = tokio::time::timeout(LINGER, async {
                stream.shutdown().await?;
                tokio::io::copy(
                    &mut (&mut stream).take(MAX_LINGER_BYTES),
                    &mut tokio::io::sink(),
                )
                .await
            })
            .await;
        });
    }
}

impl AsyncRead for LingeringClose {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.stream().poll_read(cx, buf)
    }
}

impl AsyncWrite for LingeringClose {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.stream().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.stream().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.stream().poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offers(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_newest_moq_version_wins_then_the_newest_qmux_draft() {
        // What the page's @moq/qmux offers for its moq-lite versions, in its order.
        let page = offers(&[
            "qmux-02.moq-lite-05",
            "qmux-01.moq-lite-05",
            "qmux-00.moq-lite-05",
            "qmux-02.moq-lite-04",
            "qmux-02",
            "webtransport",
        ]);
        assert_eq!(
            choose_protocol(&page).as_deref(),
            Some("qmux-02.moq-lite-05")
        );
        let older = offers(&["qmux-00.moq-lite-03", "qmux-01.moq-lite-04"]);
        assert_eq!(
            choose_protocol(&older).as_deref(),
            Some("qmux-01.moq-lite-04")
        );
    }

    #[test]
    fn bare_drafts_legacy_and_unknown_offers_are_refused() {
        for offered in [
            offers(&[]),
            offers(&["qmux-01", "qmux-00", "webtransport"]),
            offers(&["chat", "soap"]),
            offers(&["qmux-01.moq-lite-05-next", "qmux-09.moq-lite-05"]),
        ] {
            assert_eq!(choose_protocol(&offered), None, "{offered:?}");
        }
    }

    fn parse(
        head: &[(&'static str, &'static str)],
        method: &str,
    ) -> Result<UpgradeHead, &'static str> {
        parse_upgrade(method, "/watch?zone=a&token=t", head.iter().copied())
    }

    #[test]
    fn upgrade_heads_are_checked() {
        let good = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            (
                "Sec-WebSocket-Protocol",
                "qmux-01.moq-lite-05, qmux-00.moq-lite-05",
            ),
        ];
        let request = parse(&good, "GET").expect("a good upgrade");
        assert_eq!(request.path, "/watch");
        assert_eq!(request.query, "zone=a&token=t");
        assert_eq!(
            request.protocols,
            ["qmux-01.moq-lite-05", "qmux-00.moq-lite-05"]
        );

        assert!(parse(&good, "POST").is_err());
        for drop in 0..4 {
            let partial: Vec<_> = good
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != drop)
                .map(|(_, h)| *h)
                .collect();
            if drop == 1 {
                continue; // Connection is not checked: proxies rewrite it.
            }
            assert!(parse(&partial, "GET").is_err(), "without {:?}", good[drop]);
        }
        let mut wrong_version = good;
        wrong_version[2] = ("Sec-WebSocket-Version", "8");
        assert!(parse(&wrong_version, "GET").is_err());
    }
}
