//! Admin HTTP for operators and Kubernetes: `/live`, `/ready`, `/metrics`.
//!
//! It runs on its own OS thread with its own single-threaded runtime, so probes answer even
//! when the frame path and the delivery runtime are saturated. HTTP/1.1, GET only, one request
//! per connection, bounded header size and read time: a hostile client cannot hold it.

use crate::telemetry::Telemetry;
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MAX_REQUEST_BYTES: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

pub struct AdminServer {
    pub local_addr: SocketAddr,
}

/// Binds now (so a busy port is a start-up error) and serves on a thread of its own.
pub fn start(listen: &str, telemetry: Arc<Telemetry>) -> Result<AdminServer> {
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("--admin {listen:?} is not an address like 127.0.0.1:9090"))?;
    let std_listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("binding admin HTTP on {addr}"))?;
    std_listener.set_nonblocking(true)?;
    let local_addr = std_listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("admin runtime")?;
    std::thread::Builder::new()
        .name("admin-http".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(l) => l,
                    Err(e) => return tracing::error!(error = %e, "admin listener"),
                };
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let telemetry = telemetry.clone();
                    tokio::spawn(async move {
                        let _ =
                            tokio::time::timeout(READ_TIMEOUT, serve_one(stream, &telemetry)).await;
                    });
                }
            })
        })
        .context("spawning the admin thread")?;
    tracing::info!(addr = %local_addr, "admin HTTP: /live /ready /metrics");
    Ok(AdminServer { local_addr })
}

async fn serve_one(
    mut stream: tokio::net::TcpStream,
    telemetry: &Telemetry,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_REQUEST_BYTES {
            return respond(&mut stream, 431, "text/plain", "request header too large\n").await;
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/live") => respond(&mut stream, 200, "text/plain", "live\n").await,
        ("GET", "/ready") => {
            let (ready, body) = telemetry.readiness.report();
            respond(
                &mut stream,
                if ready { 200 } else { 503 },
                "text/plain",
                &body,
            )
            .await
        }
        ("GET", "/metrics") => {
            respond(
                &mut stream,
                200,
                "text/plain; version=0.0.4",
                &telemetry.render_prometheus(),
            )
            .await
        }
        ("GET", _) => {
            respond(
                &mut stream,
                404,
                "text/plain",
                "not found: try /live /ready /metrics\n",
            )
            .await
        }
        _ => respond(&mut stream, 405, "text/plain", "method not allowed\n").await,
    }
}

async fn respond(
    stream: &mut tokio::net::TcpStream,
    status: u16,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
