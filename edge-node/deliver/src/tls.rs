//! The server's TLS identity: loaded from PEM files, or a short-lived self-signed certificate
//! that browsers accept through `serverCertificateHashes`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::DeliverError;

/// Chromium refuses `serverCertificateHashes` for certificates valid 14 days or longer.
pub const GENERATED_VALIDITY: Duration = Duration::from_secs(13 * 24 * 3600);

/// Backdating covers a viewer whose clock runs a little behind the node's.
const GENERATED_BACKDATE: Duration = Duration::from_secs(3600);

/// Where the server's certificate comes from.
#[derive(Clone, Debug, Default)]
pub enum TlsSource {
    /// A fresh self-signed ECDSA P-256 certificate for localhost, 127.0.0.1, ::1 and this
    /// host's name, valid for [`GENERATED_VALIDITY`]. Viewers pin it by its SHA-256.
    #[default]
    Generate,
    /// A certificate chain and its private key, both PEM.
    Files { cert_pem: PathBuf, key_pem: PathBuf },
}

/// A loaded identity plus the SHA-256 of its leaf certificate.
pub struct ServerIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// Lower-case hex SHA-256 of the leaf certificate's DER.
    pub sha256_hex: String,
}

impl ServerIdentity {
    pub fn load(source: &TlsSource) -> Result<Self, DeliverError> {
        let (chain, key) = match source {
            TlsSource::Generate => generate_self_signed()?,
            TlsSource::Files { cert_pem, key_pem } => load_pem_files(cert_pem, key_pem)?,
        };
        let leaf = chain.first().ok_or_else(|| {
            DeliverError::Certificate("the certificate file holds no certificate".into())
        })?;
        let sha256_hex = certificate_sha256_hex(leaf);
        Ok(Self {
            chain,
            key,
            sha256_hex,
        })
    }
}

/// Lower-case hex SHA-256 of a certificate's DER, the form browsers and our client pin.
pub fn certificate_sha256_hex(cert: &CertificateDer<'_>) -> String {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    to_hex(web_transport_quinn::crypto::sha256(&provider, cert).as_ref())
}

pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0x0f) as usize] as char);
    }
    out
}

/// Parses hex (either case, optional `:` separators as browsers print them) into bytes.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text.trim().bytes().filter(|b| *b != b':').collect();
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            Some((hi * 16 + lo) as u8)
        })
        .collect()
}

fn generate_self_signed(
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), DeliverError> {
    let cert_error = |e: rcgen::Error| DeliverError::Certificate(e.to_string());
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Some(host) = hostname() {
        names.push(host);
    }
    let mut params = rcgen::CertificateParams::new(names).map_err(cert_error)?;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - GENERATED_BACKDATE;
    // Validity counts from not_before, so the backdate comes out of the 13 days, keeping the
    // whole span under Chromium's 14-day limit.
    params.not_after = params.not_before + GENERATED_VALIDITY;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "edge-node self-signed");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(cert_error)?;
    let cert = params.self_signed(&key).map_err(cert_error)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok((vec![cert.der().clone()], key))
}

/// This host's name, when it is one a certificate can carry (a DNS name, not free text).
fn hostname() -> Option<String> {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())?;
    let name = raw.trim().to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name != "localhost"
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    valid.then_some(name)
}

fn load_pem_files(
    cert_pem: &std::path::Path,
    key_pem: &std::path::Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), DeliverError> {
    let chain = CertificateDer::pem_file_iter(cert_pem)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| DeliverError::Certificate(format!("reading {}: {e}", cert_pem.display())))?;
    let key = PrivateKeyDer::from_pem_file(key_pem)
        .map_err(|e| DeliverError::Certificate(format!("reading {}: {e}", key_pem.display())))?;
    Ok((chain, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificate_is_short_lived_p256() {
        crate::install_crypto_provider();
        let identity = ServerIdentity::load(&TlsSource::Generate).unwrap();
        assert_eq!(identity.sha256_hex.len(), 64);
        assert_eq!(identity.chain.len(), 1);
        // rustls must accept the key (ECDSA P-256 through ring).
        let provider = rustls::crypto::ring::default_provider();
        let signing = provider
            .key_provider
            .load_private_key(identity.key.clone_key())
            .unwrap();
        assert_eq!(signing.algorithm(), rustls::SignatureAlgorithm::ECDSA);
    }

    #[test]
    fn hex_roundtrips_and_accepts_browser_form() {
        let bytes = [0x00, 0xab, 0xff, 0x10];
        assert_eq!(to_hex(&bytes), "00abff10");
        assert_eq!(from_hex("00abff10").unwrap(), bytes);
        assert_eq!(from_hex("00:AB:FF:10").unwrap(), bytes);
        assert!(from_hex("0g").is_none());
        assert!(from_hex("abc").is_none());
        assert!(from_hex("").is_none());
    }

    #[test]
    fn missing_files_are_an_error_not_a_panic() {
        let source = TlsSource::Files {
            cert_pem: "/nonexistent/cert.pem".into(),
            key_pem: "/nonexistent/key.pem".into(),
        };
        assert!(matches!(
            ServerIdentity::load(&source),
            Err(DeliverError::Certificate(_))
        ));
    }
}
