//! The operator API's bearer token (RFC 6750): checked in constant time, refused with
//! `401` and `WWW-Authenticate: Bearer`.

use super::problem::Problem;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ring::digest::{digest, SHA256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The configured operator token, kept only as its SHA-256 so comparisons take the same time
/// whatever the length or content of a guess.
pub struct OperatorToken {
    sha256: [u8; 32],
}

impl OperatorToken {
    pub fn new(token: &str) -> Self {
        Self {
            sha256: sha256(token.as_bytes()),
        }
    }

    pub fn matches(&self, presented: &[u8]) -> bool {
        self.sha256.ct_eq(&sha256(presented)).into()
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

/// Why a request was not let in.
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    Missing,
    Invalid,
}

/// Checks an `Authorization` header value against `token` (`None`: the API is open).
pub fn check(token: Option<&OperatorToken>, authorization: Option<&[u8]>) -> Result<(), Denied> {
    let Some(token) = token else {
        return Ok(());
    };
    let Some(value) = authorization else {
        return Err(Denied::Missing);
    };
    // The scheme is case-insensitive (RFC 9110 §11.1); the token is everything after one space.
    let presented = match value.split_at_checked(7) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"bearer ") => rest,
        _ => return Err(Denied::Missing),
    };
    if token.matches(presented) {
        Ok(())
    } else {
        Err(Denied::Invalid)
    }
}

/// Middleware for every `/api/v1/` route.
pub async fn require(
    State(token): State<Option<Arc<OperatorToken>>>,
    request: Request,
    next: Next,
) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    match check(token.as_deref(), authorization) {
        Ok(()) => next.run(request).await,
        Err(denied) => refuse(denied),
    }
}

fn refuse(denied: Denied) -> Response {
    let (challenge, detail) = match denied {
        Denied::Missing => (
            "Bearer realm=\"edge-node\"",
            "send Authorization: Bearer <operator token>",
        ),
        Denied::Invalid => (
            "Bearer realm=\"edge-node\", error=\"invalid_token\"",
            "the bearer token is not the operator token",
        ),
    };
    tracing::info!(?denied, "operator API request refused");
    let mut response = Problem::new(StatusCode::UNAUTHORIZED, "unauthorized")
        .detail(detail)
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let token = OperatorToken::new("operator-token-0123456789");
        let t = Some(&token);
        assert_eq!(check(t, Some(b"Bearer operator-token-0123456789")), Ok(()));
        assert_eq!(check(t, Some(b"bearer operator-token-0123456789")), Ok(()));
        assert_eq!(check(t, None), Err(Denied::Missing));
        assert_eq!(
            check(t, Some(b"Basic b3BlcmF0b3I6eA==")),
            Err(Denied::Missing)
        );
        assert_eq!(check(t, Some(b"Bearer")), Err(Denied::Missing));
        for wrong in [
            &b"Bearer operator-token-012345678"[..],
            b"Bearer operator-token-0123456789 ",
            b"Bearer ",
            b"Bearer \xff\xfe",
        ] {
            assert_eq!(check(t, Some(wrong)), Err(Denied::Invalid), "{wrong:?}");
        }
        assert_eq!(check(None, None), Ok(()), "no token configured: open");
    }

    #[test]
    fn refusals_carry_the_bearer_challenge() {
        let response = refuse(Denied::Invalid);
        assert_eq!(response.status(), 401);
        assert!(response.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer "));
    }
}
