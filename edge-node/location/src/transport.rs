//! One HTTP/1.1 exchange with a deadline over the whole of it (connect, request, full body), with
//! transport failures turned into [`LocationError`]s. Used by the client and by the test server
//! when it delivers notifications.

use std::error::Error as _;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

use crate::error::LocationError;
use crate::model::ProblemDetails;

/// Location API bodies are a few hundred bytes; anything this large is not one.
const MAX_BODY_BYTES: usize = 1 << 20;

#[derive(Clone)]
pub(crate) struct Transport {
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
    authorization: Option<HeaderValue>,
}

pub(crate) struct Reply {
    pub url: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Transport {
    pub fn new(timeout: Duration, bearer_token: Option<&str>) -> Result<Self, LocationError> {
        let authorization = bearer_token
            .map(|token| {
                HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                    LocationError::Config(
                        "bearer token contains characters not allowed in a header".into(),
                    )
                })
            })
            .transpose()?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            client,
            timeout,
            authorization,
        })
    }

    /// Sends the request and reads the whole answer, all within the timeout.
    pub async fn exchange(
        &self,
        method: Method,
        url: &str,
        json_body: Option<Vec<u8>>,
    ) -> Result<Reply, LocationError> {
        let uri: Uri = url
            .parse()
            .map_err(|e| LocationError::Config(format!("`{url}` is not a valid URI: {e}")))?;
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(ACCEPT, "application/json");
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        let body = match json_body {
            Some(json) => {
                request = request.header(CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(json))
            }
            None => Full::new(Bytes::new()),
        };
        let request = request.body(body).map_err(|e| {
            LocationError::Config(format!("cannot build a request for `{url}`: {e}"))
        })?;

        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| request_error(url, &e))?;
            let (parts, incoming) = response.into_parts();
            let body = Limited::new(incoming, MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| body_error(url, e))?
                .to_bytes();
            Ok(Reply {
                url: url.to_owned(),
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| LocationError::Timeout {
                url: url.to_owned(),
                timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
            })?
    }
}

fn request_error(url: &str, error: &hyper_util::client::legacy::Error) -> LocationError {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(io_error) = cause.downcast_ref::<io::Error>() {
            if io_error.kind() == io::ErrorKind::ConnectionRefused {
                return LocationError::ConnectionRefused {
                    url: url.to_owned(),
                };
            }
        }
        source = cause.source();
    }
    LocationError::Unreachable {
        url: url.to_owned(),
        reason: error_chain(error),
    }
}

fn body_error(url: &str, error: Box<dyn std::error::Error + Send + Sync>) -> LocationError {
    if error.is::<http_body_util::LengthLimitError>() {
        return LocationError::Malformed {
            url: url.to_owned(),
            field: "(body)".into(),
            reason: format!("body is larger than {MAX_BODY_BYTES} bytes"),
        };
    }
    LocationError::Unreachable {
        url: url.to_owned(),
        reason: format!("response body cut off: {}", error_chain(error.as_ref())),
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Parses a JSON body, naming the member that is missing or wrong when it fails.
pub(crate) fn parse_json<T: DeserializeOwned>(url: &str, body: &[u8]) -> Result<T, LocationError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let (field, reason) = describe_json_error(&error);
        LocationError::Malformed {
            url: url.to_owned(),
            field,
            reason,
        }
    })
}

/// (`path.of.member`, reason). A missing member is named in the path rather than its parent.
pub(crate) fn describe_json_error(
    error: &serde_path_to_error::Error<serde_json::Error>,
) -> (String, String) {
    let path = error.path().to_string();
    let reason = error.inner().to_string();
    let missing = reason
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name.to_owned());
    let field = match (missing, path.as_str()) {
        (Some(name), ".") => name,
        (Some(name), parent) => format!("{parent}.{name}"),
        (None, ".") => "(body)".to_owned(),
        (None, path) => path.to_owned(),
    };
    (field, reason)
}

/// The body as `ProblemDetails` when it is one (at least a title, detail or status).
pub(crate) fn problem_of(body: &[u8]) -> Option<ProblemDetails> {
    let problem: ProblemDetails = serde_json::from_slice(body).ok()?;
    let informative =
        problem.title.is_some() || problem.detail.is_some() || problem.status.is_some();
    informative.then_some(problem)
}

/// An error for a status the caller did not expect.
pub(crate) fn status_error(reply: &Reply) -> LocationError {
    let problem = problem_of(&reply.body);
    let body_excerpt = if problem.is_some() {
        String::new()
    } else {
        String::from_utf8_lossy(&reply.body[..reply.body.len().min(200)]).into_owned()
    };
    LocationError::Status {
        url: reply.url.clone(),
        status: reply.status.as_u16(),
        problem: problem.map(Box::new),
        body_excerpt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)] // read only through Debug; the test is about which member fails
    struct Outer {
        inner: Vec<Inner>,
    }
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Inner {
        #[serde(rename = "zoneId")]
        zone_id: String,
    }

    #[test]
    fn names_the_missing_member() {
        let error = parse_json::<Outer>("u", br#"{"inner":[{"zoneId":"a"},{}]}"#).unwrap_err();
        match error {
            LocationError::Malformed { field, .. } => assert_eq!(field, "inner[1].zoneId"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn names_the_mistyped_member() {
        let error = parse_json::<Outer>("u", br#"{"inner":[{"zoneId":7}]}"#).unwrap_err();
        match error {
            LocationError::Malformed { field, reason, .. } => {
                assert_eq!(field, "inner[0].zoneId");
                assert!(reason.contains("invalid type"), "{reason}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn problem_needs_some_content() {
        assert_eq!(problem_of(b"{}"), None);
        assert_eq!(problem_of(b"not json"), None);
        assert_eq!(
            problem_of(br#"{"title":"Bad","status":400}"#).and_then(|p| p.title),
            Some("Bad".to_owned())
        );
    }
}
