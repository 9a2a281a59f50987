//! Viewer tokens: JWTs signed HS256 (shared secret) or ES256 (P-256 public key from config),
//! carried in the URL query as `token=` because a browser cannot set headers on a WebTransport
//! connect. Checked before a session is accepted; every refusal says why.

use anyhow::{bail, Context, Result};
use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Viewer tokens (JWT). Off by default; when required, every session needs `?token=`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub required: bool,
    /// HS256 shared secret, at least 32 bytes (prefer `EDGE_NODE_AUTH_HS256_SECRET`).
    pub hs256_secret: Option<String>,
    /// ES256: PEM file of the P-256 public key that signs viewer tokens.
    pub es256_public_key: Option<PathBuf>,
}

/// What a valid token says about its viewer.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ViewerClaims {
    pub sub: String,
    /// Zones this viewer may be shown; empty means any.
    #[serde(default)]
    pub zones: Vec<String>,
    /// Display name for personal overlays.
    #[serde(default)]
    pub name: Option<String>,
    pub exp: u64,
}

pub struct ViewerAuth {
    key: DecodingKey,
    validation: Validation,
}

impl ViewerAuth {
    /// `None` when auth is off; an error names the bad key material.
    pub fn from_config(config: &AuthConfig) -> Result<Option<Self>> {
        if !config.required {
            return Ok(None);
        }
        let (key, algorithm) = match (&config.hs256_secret, &config.es256_public_key) {
            (Some(secret), None) if secret.len() >= 32 => (
                DecodingKey::from_secret(secret.as_bytes()),
                Algorithm::HS256,
            ),
            (Some(_), None) => bail!("auth.hs256_secret must be at least 32 bytes"),
            (None, Some(path)) => {
                let pem = std::fs::read(path)
                    .with_context(|| format!("auth.es256_public_key {}", path.display()))?;
                let key = DecodingKey::from_ec_pem(&pem).with_context(|| {
                    format!(
                        "auth.es256_public_key {} is not a P-256 public key PEM",
                        path.display()
                    )
                })?;
                (key, Algorithm::ES256)
            }
            (Some(_), Some(_)) => bail!("auth: set hs256_secret or es256_public_key, not both"),
            (None, None) => bail!("auth.required needs hs256_secret or es256_public_key"),
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Some(Self { key, validation }))
    }

    /// Checks the `token` query value; the error is the close reason the viewer sees.
    pub fn verify(&self, token: Option<&str>) -> Result<ViewerClaims, String> {
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or("auth: missing token (add ?token=JWT)")?;
        jsonwebtoken::decode::<ViewerClaims>(token, &self.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => "auth: token expired".to_string(),
                ErrorKind::InvalidSignature => "auth: token signature does not verify".to_string(),
                ErrorKind::InvalidAlgorithm => "auth: token uses the wrong algorithm".to_string(),
                ErrorKind::MissingRequiredClaim(claim) => {
                    format!("auth: token lacks the {claim} claim")
                }
                _ => format!("auth: malformed token ({e})"),
            })
    }
}

/// Whether the claims let the viewer see `zone`.
pub fn zone_allowed(claims: &ViewerClaims, zone: &str) -> bool {
    claims.zones.is_empty() || claims.zones.iter().any(|z| z == zone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn hs_auth() -> ViewerAuth {
        let config = AuthConfig {
            required: true,
            hs256_secret: Some(SECRET.into()),
            es256_public_key: None,
        };
        ViewerAuth::from_config(&config).unwrap().unwrap()
    }

    fn hs_token(claims: serde_json::Value, secret: &str) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn hs256_accepts_a_valid_token() {
        let t = hs_token(
            json!({"sub": "u1", "name": "Lin", "zones": ["yintai-mall"], "exp": now() + 60}),
            SECRET,
        );
        let claims = hs_auth().verify(Some(&t)).unwrap();
        assert_eq!(claims.name.as_deref(), Some("Lin"));
        assert!(zone_allowed(&claims, "yintai-mall") && !zone_allowed(&claims, "default"));
    }

    #[test]
    fn every_refusal_says_why() {
        let auth = hs_auth();
        assert_eq!(
            auth.verify(None).unwrap_err(),
            "auth: missing token (add ?token=JWT)"
        );
        let expired = hs_token(json!({"sub": "u1", "exp": now() - 3600}), SECRET);
        assert_eq!(
            auth.verify(Some(&expired)).unwrap_err(),
            "auth: token expired"
        );
        let forged = hs_token(
            json!({"sub": "u1", "exp": now() + 60}),
            "another-secret-another-secret-xx",
        );
        assert_eq!(
            auth.verify(Some(&forged)).unwrap_err(),
            "auth: token signature does not verify"
        );
        let no_sub = hs_token(json!({"exp": now() + 60}), SECRET);
        assert!(auth.verify(Some(&no_sub)).unwrap_err().contains("sub"));
        assert!(auth
            .verify(Some("not.a.jwt"))
            .unwrap_err()
            .starts_with("auth: malformed token"));
    }

    #[test]
    fn es256_verifies_with_the_public_key_only() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let dir = std::env::temp_dir().join(format!("edge-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let public = dir.join("viewer-tokens.pub.pem");
        std::fs::write(&public, key.public_key_pem()).unwrap();
        let config = AuthConfig {
            required: true,
            hs256_secret: None,
            es256_public_key: Some(public),
        };
        let auth = ViewerAuth::from_config(&config).unwrap().unwrap();
        let signing = EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
        let token = encode(
            &Header::new(Algorithm::ES256),
            &json!({"sub": "u2", "exp": now() + 60}),
            &signing,
        )
        .unwrap();
        assert_eq!(auth.verify(Some(&token)).unwrap().sub, "u2");
        // An HS256 token is refused by an ES256 node, whatever its secret.
        let hs = hs_token(json!({"sub": "u2", "exp": now() + 60}), SECRET);
        assert_eq!(
            auth.verify(Some(&hs)).unwrap_err(),
            "auth: token uses the wrong algorithm"
        );
    }

    #[test]
    fn weak_or_missing_keys_are_config_errors() {
        let weak = AuthConfig {
            required: true,
            hs256_secret: Some("short".into()),
            es256_public_key: None,
        };
        assert!(ViewerAuth::from_config(&weak).is_err());
        let none = AuthConfig {
            required: true,
            hs256_secret: None,
            es256_public_key: None,
        };
        assert!(ViewerAuth::from_config(&none).is_err());
        let off = AuthConfig::default();
        assert!(ViewerAuth::from_config(&off).unwrap().is_none());
    }
}
