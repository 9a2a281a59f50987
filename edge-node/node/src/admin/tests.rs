//! The admin router in-process: the OpenAPI document matches the routes, the token guards the
//! operator API and nothing else, and each operator endpoint answers as documented.

use super::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use tower::ServiceExt;

const TOKEN: &str = "operator-token-0123456789";

fn app(token: Option<&str>) -> (Router, Arc<Shared>, mpsc::Receiver<DrainRequest>) {
    let (drains, drain_requests) = mpsc::channel(1);
    let shared = Arc::new(Shared {
        telemetry: Arc::new(Telemetry::new()),
        delivery: OnceLock::new(),
        campaigns: OnceLock::new(),
        viewers: OnceLock::new(),
        drains,
        default_drain_grace: Duration::from_secs(20),
    });
    let token = token.map(|t| Arc::new(bearer::OperatorToken::new(t)));
    (router(shared.clone(), token), shared, drain_requests)
}

async fn call(
    app: &Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, String) {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn authorized() -> [(&'static str, &'static str); 1] {
    [("authorization", "Bearer operator-token-0123456789")]
}

fn openapi_operations() -> BTreeSet<(String, String)> {
    let doc: serde_json::Value =
        serde_json::from_str(api::OPENAPI_JSON).expect("openapi.json is JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .filter(|k| ["get", "put", "post", "delete", "patch"].contains(&k.as_str()))
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect()
}

#[test]
fn openapi_lists_exactly_the_served_routes() {
    let served: BTreeSet<(String, String)> = routes()
        .into_iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(openapi_operations(), served);
}

#[test]
fn openapi_marks_the_operator_api_as_token_protected() {
    let doc: serde_json::Value = serde_json::from_str(api::OPENAPI_JSON).unwrap();
    assert_eq!(doc["security"][0]["operatorToken"], serde_json::json!([]));
    for (method, path) in openapi_operations() {
        let operation = &doc["paths"][&path][&method];
        let open = operation["security"] == serde_json::json!([]);
        assert_eq!(
            open,
            !path.starts_with(API_PREFIX),
            "{method} {path}: only probes and metrics are open"
        );
        if !open {
            assert!(
                operation["responses"]["401"].is_object(),
                "{method} {path} documents 401"
            );
        }
    }
}

/// Every documented route is served (never 404 or 405), with the token.
#[tokio::test]
async fn every_documented_route_is_served() {
    let (app, _shared, _drains) = app(Some(TOKEN));
    for (method, path) in openapi_operations() {
        let path = path.replace("{id}", "1");
        let (status, body) = call(&app, &method.to_uppercase(), &path, &authorized(), "").await;
        assert!(
            status != StatusCode::NOT_FOUND || body.contains("no such session"),
            "{method} {path}: {status} {body}"
        );
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
    }
    let (status, body) = call(&app, "GET", "/api/v1/nope", &authorized(), "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn the_token_guards_the_operator_api_only() {
    let (app, _shared, _drains) = app(Some(TOKEN));
    let (status, body) = call(&app, "GET", "/api/v1/openapi.json", &[], "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("\"status\":401"), "{body}");
    let wrong = [("authorization", "Bearer operator-token-9999999999")];
    assert_eq!(
        call(&app, "GET", "/api/v1/sessions", &wrong, "").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, "GET", "/api/v1/openapi.json", &authorized(), "")
            .await
            .0,
        StatusCode::OK
    );
    for probe in ["/live", "/metrics"] {
        assert_eq!(call(&app, "GET", probe, &[], "").await.0, StatusCode::OK);
    }
    assert_eq!(
        call(&app, "GET", "/ready", &[], "").await.0,
        StatusCode::SERVICE_UNAVAILABLE,
        "nothing is up in this test"
    );

    let (open, _shared, _drains) = super::tests::app(None);
    assert_eq!(
        call(&open, "GET", "/api/v1/openapi.json", &[], "").await.0,
        StatusCode::OK,
        "without a configured token the API is open"
    );
}

#[tokio::test]
async fn sessions_need_a_running_delivery_server() {
    let (app, _shared, _drains) = app(None);
    let (status, body) = call(&app, "GET", "/api/v1/sessions", &[], "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, body) = call(&app, "DELETE", "/api/v1/sessions/abc", &[], "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let long = format!("/api/v1/sessions/1?reason={}", "x".repeat(300));
    assert_eq!(
        call(&app, "DELETE", &long, &[], "").await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

#[tokio::test]
async fn drain_is_requested_once_with_its_grace() {
    let (app, shared, mut drains) = app(None);
    for (body, expected) in [
        ("{\"grace_ms\": 700000}", StatusCode::UNPROCESSABLE_ENTITY),
        ("{\"grace\": 5}", StatusCode::BAD_REQUEST),
        ("not json", StatusCode::BAD_REQUEST),
    ] {
        assert_eq!(
            call(&app, "POST", "/api/v1/drain", &[], body).await.0,
            expected,
            "{body}"
        );
    }
    assert!(
        !shared.telemetry.readiness.draining.load(Ordering::Relaxed),
        "refused requests change nothing"
    );
    let (status, body) = call(&app, "POST", "/api/v1/drain", &[], "{\"grace_ms\": 1500}").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, "{\"draining\":true,\"grace_ms\":1500}");
    assert_eq!(
        drains.try_recv().unwrap(),
        DrainRequest {
            grace: Duration::from_millis(1500)
        }
    );
    assert!(shared.telemetry.readiness.draining.load(Ordering::Relaxed));
    assert_eq!(
        call(&app, "POST", "/api/v1/drain", &[], "").await.0,
        StatusCode::CONFLICT
    );

    let (app, _shared, mut drains) = super::tests::app(None);
    assert_eq!(
        call(&app, "POST", "/api/v1/drain", &[], "").await.0,
        StatusCode::ACCEPTED
    );
    assert_eq!(drains.try_recv().unwrap().grace, Duration::from_secs(20));
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let (app, _shared, _drains) = app(None);
    let big = " ".repeat(MAX_BODY_BYTES + 1);
    let (status, body) = call(&app, "POST", "/api/v1/drain", &[], &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
}

/// A campaign set held as text, validated by parsing it with the format's real parser and by
/// one rule (a `campaigns` list must be present). It stands in for the edge-campaign store at
/// the [`CampaignAdmin`] seam so the HTTP mapping can be tested on its own.
struct TextCampaigns {
    state: Mutex<(String, String, u64)>,
    refused: std::sync::atomic::AtomicU64,
}

impl CampaignAdmin for TextCampaigns {
    fn current(&self) -> (String, String, u64) {
        self.state.lock().unwrap().clone()
    }

    fn reload_counts(&self) -> (u64, u64) {
        let applied = self.state.lock().unwrap().2 - 1;
        (
            applied,
            self.refused.load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    fn replace(&self, body: &str, content_type: &str) -> Result<u64, Vec<String>> {
        let value: serde_json::Value = match content_type {
            "application/json" => serde_json::from_str(body).map_err(|e| vec![e.to_string()])?,
            "application/toml" => toml::from_str(body).map_err(|e| vec![e.to_string()])?,
            "application/yaml" => {
                edge_campaign::read_document(body, edge_campaign::Format::Yaml)
                    .map_err(|e| e.into_iter().map(|p| p.message).collect::<Vec<_>>())?
            }
            other => return Err(vec![format!("unexpected media type {other}")]),
        };
        if !value["campaigns"].is_array() {
            self.refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(vec!["campaigns: missing list".into()]);
        }
        let mut state = self.state.lock().unwrap();
        *state = (body.to_string(), content_type.to_string(), state.2 + 1);
        Ok(state.2)
    }
}

#[tokio::test]
async fn campaigns_are_read_and_replaced_with_validation() {
    let (app, shared, _drains) = app(None);
    let (status, body) = call(&app, "GET", "/api/v1/campaigns", &[], "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("campaigns not configured"), "{body}");

    shared
        .campaigns
        .set(Arc::new(TextCampaigns {
            state: Mutex::new(("campaigns = []\n".into(), "application/toml".into(), 1)),
            refused: Default::default(),
        }))
        .ok()
        .unwrap();
    let (status, body) = call(&app, "GET", "/api/v1/campaigns", &[], "").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "campaigns = []\n")
    );

    let yaml = [("content-type", "application/yaml")];
    let (status, body) = call(&app, "PUT", "/api/v1/campaigns", &yaml, "campaigns: []\n").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "{\"generation\":2}")
    );

    let (status, body) = call(&app, "PUT", "/api/v1/campaigns", &yaml, "zones: []\n").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["errors"][0], "campaigns: missing list");

    let plain = [("content-type", "text/plain")];
    assert_eq!(
        call(&app, "PUT", "/api/v1/campaigns", &plain, "x").await.0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let (_, metrics) = call(&app, "GET", "/metrics", &[], "").await;
    assert!(metrics.contains("edge_campaign_generation 2"), "{metrics}");
    assert!(metrics.contains("edge_campaign_reload_total{result=\"invalid\"} 1"));
}
