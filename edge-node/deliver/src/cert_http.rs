//! `GET /certificate.sha256` over plain HTTP/1.1 on the QUIC port number, for browsers that must
//! pin the self-signed certificate before they can open WebTransport.
//!
//! Hand-written on purpose: one fixed response does not justify an HTTP stack, and every limit a
//! hostile client could push on is explicit here (header bytes, time, concurrent connections).
//! Anything else that arrives (the moq client's WebSocket fallback, scanners, garbage) gets a
//! short 404 or 400 and the connection is closed; none of it is an error of ours.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

pub const CERTIFICATE_PATH: &str = "/certificate.sha256";

/// A request head larger than this is refused: ours is one short line plus a few headers.
const MAX_REQUEST_HEAD_BYTES: usize = 8 * 1024;
/// Whole-connection budget: reading the request and writing the answer.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; further ones are closed on accept.
const MAX_CONNECTIONS: usize = 256;

/// Serves the hash until the task is aborted.
pub async fn serve(listener: TcpListener, sha256_hex: Arc<str>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Per-connection failures (reset before accept, fd exhaustion) must not end the
                // listener; back off briefly so fd exhaustion does not spin.
                tracing::debug!(error = %e, "certificate endpoint accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%remote, "certificate endpoint busy, closing connection");
            continue;
        };
        let hash = sha256_hex.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(CONNECTION_TIMEOUT, answer(stream, &hash)).await {
                Ok(Ok(outcome)) => {
                    tracing::debug!(%remote, ?outcome, "certificate endpoint request")
                }
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "certificate endpoint connection ended")
                }
                Err(_) => tracing::debug!(%remote, "certificate endpoint connection timed out"),
            }
        });
    }
}

/// What a request turned into, for the debug log and the tests.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Hash,
    Preflight,
    NotFound,
    BadRequest,
}

async fn answer(mut stream: TcpStream, sha256_hex: &str) -> std::io::Result<Outcome> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let outcome = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            // Closed before a full request head: nothing to answer.
            return Ok(Outcome::BadRequest);
        }
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = find_head_end(&head) {
            break classify(&head[..end]);
        }
        if head.len() > MAX_REQUEST_HEAD_BYTES {
            break Outcome::BadRequest;
        }
    };
    let response = render(&outcome, sha256_hex);
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(outcome)
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Decides from the request line alone; headers are irrelevant to a fixed public resource.
pub fn classify(head: &[u8]) -> Outcome {
    let Ok(head) = std::str::from_utf8(head) else {
        return Outcome::BadRequest;
    };
    let request_line = head.split("\r\n").next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Outcome::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Outcome::BadRequest;
    }
    // The query is ignored (cache busters like `?t=123` are common).
    let path = target.split('?').next().unwrap_or_default();
    match (method, path == CERTIFICATE_PATH) {
        ("GET", true) => Outcome::Hash,
        ("OPTIONS", true) => Outcome::Preflight,
        _ => Outcome::NotFound,
    }
}

fn render(outcome: &Outcome, sha256_hex: &str) -> String {
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
        Outcome::NotFound => {
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
        }
        Outcome::BadRequest => {
            "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_classified() {
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
        assert_eq!(classify(b"\x16\x03\x01garbage"), Outcome::BadRequest);
        assert_eq!(classify(b"GET /certificate.sha256"), Outcome::BadRequest);
        assert_eq!(classify(b"GET / SPDY/3"), Outcome::BadRequest);
        assert_eq!(classify(b""), Outcome::BadRequest);
    }

    #[test]
    fn hash_response_carries_cors_and_exact_body() {
        let body = "ab".repeat(32);
        let response = render(&Outcome::Hash, &body);
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(response.contains("Access-Control-Allow-Origin: *\r\n"));
        assert!(response.contains("Content-Length: 64\r\n"));
        assert!(response.ends_with(&format!("\r\n\r\n{body}")));
    }
}
