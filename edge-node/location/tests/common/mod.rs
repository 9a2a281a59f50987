//! Helpers shared by the integration tests: a test server on a free port and a plain HTTP
//! client for requests the Location client would never send.

#![allow(dead_code)] // each test binary uses a subset

use std::net::SocketAddr;

use bytes::Bytes;
use edge_location::testing::MecServer;
use http::header::CONTENT_TYPE;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("literal socket address")
}

pub async fn mec_server() -> MecServer {
    MecServer::start(loopback())
        .await
        .expect("bind the test Location API server")
}

pub struct RawReply {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: serde_json::Value,
    pub text: String,
}

/// One request with an arbitrary body and content type; the answer's JSON (or `Null`).
pub async fn raw_request(
    method: Method,
    url: &str,
    content_type: Option<&str>,
    body: &str,
) -> RawReply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = Request::builder().method(method).uri(url);
    if let Some(content_type) = content_type {
        request = request.header(CONTENT_TYPE, content_type);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("valid test request");
    let response = client.request(request).await.expect("test server answers");
    let status = response.status();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("whole body")
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    RawReply {
        status,
        content_type,
        body,
        text,
    }
}

/// Asserts an `application/problem+json` answer with this status whose `detail` contains `needle`.
pub fn assert_problem(reply: &RawReply, status: StatusCode, needle: &str) {
    assert_eq!(reply.status, status, "body: {}", reply.text);
    assert_eq!(
        reply.content_type.as_deref(),
        Some("application/problem+json"),
        "body: {}",
        reply.text
    );
    assert_eq!(
        reply.body["status"],
        status.as_u16(),
        "body: {}",
        reply.text
    );
    let detail = reply.body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(needle),
        "detail `{detail}` lacks `{needle}`"
    );
}
