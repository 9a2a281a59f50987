//! How the uplink trusts the relay: a pinned certificate hash (given, or fetched from the
//! relay's `/certificate.sha256`) or a CA, and the QUIC client configuration built on it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::client::{fetch_certificate_hash, PinnedCertificate};
use crate::tls::from_hex;
use crate::DeliverError;

/// How the node decides it is talking to the real relay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayTrust {
    /// Pin the relay's leaf certificate by its SHA-256 (hex, `:` separators allowed): for a
    /// relay with a self-signed certificate whose hash the operator distributes.
    Sha256(String),
    /// Fetch the hash from `GET /certificate.sha256` over TCP on the relay's host and port
    /// before every connection, then pin it. Trust on first use: only for development or a
    /// network the operator controls (moq-relay serves it when its HTTP listener is on).
    FetchSha256,
    /// Verify the relay's chain and host name against the CA certificates in this PEM file.
    CaFile(PathBuf),
}

impl RelayTrust {
    /// Checks what can be checked before connecting (the hash's form, the CA file).
    pub(super) fn check(&self) -> Result<(), DeliverError> {
        match self {
            RelayTrust::Sha256(hex) => pinned_bytes(hex).map(drop),
            RelayTrust::CaFile(path) => load_roots(path).map(drop),
            RelayTrust::FetchSha256 => Ok(()),
        }
    }

    /// The QUIC client configuration for one connection to the relay at `remote` (`host` as
    /// named in the URL). Reads the CA file or fetches the hash anew each time, so a renewed
    /// certificate is picked up on the next reconnect.
    pub(super) async fn quic_client_config(
        &self,
        remote: SocketAddr,
        host: &str,
    ) -> Result<quinn::ClientConfig, DeliverError> {
        let tls = match self {
            RelayTrust::Sha256(hex) => pinned_tls(pinned_bytes(hex)?)?,
            RelayTrust::FetchSha256 => {
                pinned_tls(pinned_bytes(&fetch_certificate_hash(remote, host).await?)?)?
            }
            RelayTrust::CaFile(path) => ca_tls(load_roots(path)?)?,
        };
        quic_client_config(tls)
    }
}

/// Outgoing bytes quinn may hold for the relay. The uplink carries every rendering once, so it
/// gets the server's per-viewer window times a few renderings' worth of IDR bursts.
const UPLINK_SEND_WINDOW_BYTES: u64 = 32 * 1024 * 1024;

/// A keep-alive well inside the idle timeout, so a quiet node (no rendering published yet)
/// keeps its session; a relay silent for the idle timeout is gone and is redialed.
const KEEP_ALIVE: Duration = Duration::from_secs(2);
const IDLE_TIMEOUT_MS: u32 = 6_000;

fn pinned_bytes(hex: &str) -> Result<Vec<u8>, DeliverError> {
    from_hex(hex)
        .filter(|bytes| bytes.len() == 32)
        .ok_or_else(|| {
            DeliverError::Certificate(format!(
                "relay certificate hash is not a hex SHA-256: {hex:?}"
            ))
        })
}

fn load_roots(path: &std::path::Path) -> Result<rustls::RootCertStore, DeliverError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| DeliverError::Certificate(format!("reading {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(DeliverError::Certificate(format!(
            "{} holds no certificate",
            path.display()
        )));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| {
            DeliverError::Certificate(format!("CA certificate in {}: {e}", path.display()))
        })?;
    }
    Ok(roots)
}

fn pinned_tls(sha256: Vec<u8>) -> Result<rustls::ClientConfig, DeliverError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PinnedCertificate::new(sha256, provider.clone());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

fn ca_tls(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, DeliverError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn quic_client_config(mut tls: rustls::ClientConfig) -> Result<quinn::ClientConfig, DeliverError> {
    tls.alpn_protocols = vec![web_transport_quinn::ALPN.as_bytes().to_vec()];
    let tls = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| DeliverError::Certificate(format!("client TLS not usable for QUIC: {e}")))?;
    let mut config = quinn::ClientConfig::new(Arc::new(tls));
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(KEEP_ALIVE));
    transport.max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(
        IDLE_TIMEOUT_MS,
    ))));
    transport.send_window(UPLINK_SEND_WINDOW_BYTES);
    config.transport_config(Arc::new(transport));
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_ca_file_is_a_clear_error() {
        let path =
            std::env::temp_dir().join(format!("edge-uplink-empty-{}.pem", std::process::id()));
        std::fs::write(&path, "").unwrap();
        let err = load_roots(&path).unwrap_err().to_string();
        std::fs::remove_file(&path).unwrap();
        assert!(err.contains("holds no certificate"), "{err}");
    }
}
