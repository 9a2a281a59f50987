use std::net::SocketAddr;

/// Everything that can go wrong while delivering or receiving a rendering.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("binding {protocol} on {addr}: {source}")]
    Bind {
        protocol: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS certificate: {0}")]
    Certificate(String),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("invalid rendering name {name:?}: {reason}")]
    InvalidRendering { name: String, reason: &'static str },
    #[error("rendering {0:?} is already published")]
    DuplicateRendering(String),
    #[error("the delivery server is shut down")]
    ServerClosed,
    #[error("moq: {0}")]
    Moq(#[from] moq_net::Error),
    #[error("hang: {0}")]
    Hang(#[from] hang::Error),
    #[error("invalid URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("fetching the certificate hash from {addr}: {reason}")]
    CertificateHash { addr: String, reason: String },
    #[error("connecting to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("the server refused the session (code {code}): {reason}")]
    Refused { code: u32, reason: String },
    #[error("timed out after {after_ms} ms while {during}")]
    Timeout { during: &'static str, after_ms: u64 },
    #[error("the broadcast has no video track in its catalog")]
    NoVideoTrack,
}
