//! The admin endpoints: probes, metrics, and the operator API (sessions, drain, campaigns).

use super::problem::Problem;
use super::{DrainRequest, Shared, ViewerDecision};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use edge_deliver::{DeliveryServer, SessionInfo};
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Application close code of a session an operator disconnected (the node's shutdown uses 1,
/// a refused viewer 403).
pub const CLOSE_CODE_OPERATOR: u32 = 2;
/// What the viewer is told when no reason is given.
const DEFAULT_CLOSE_REASON: &str = "disconnected by operator";
/// A close reason travels in one QUIC frame: keep it short.
const MAX_CLOSE_REASON_BYTES: usize = 200;
/// The longest drain grace an operator may ask for (the config's own limit).
const MAX_DRAIN_GRACE_MS: u64 = 600_000;

pub const OPENAPI_JSON: &str = include_str!("openapi.json");

type AppState = State<Arc<Shared>>;

pub async fn live() -> &'static str {
    "live\n"
}

/// 200 when every readiness check passes, else 503; one line per check either way.
pub async fn ready(State(shared): AppState) -> (StatusCode, String) {
    let (ready, body) = shared.telemetry.readiness.report();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body)
}

pub async fn metrics(State(shared): AppState) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics_text(&shared),
    )
        .into_response()
}

/// The telemetry's metrics, and the campaign store's reload counters where one is attached.
fn metrics_text(shared: &Shared) -> String {
    let mut text = shared.telemetry.render_prometheus();
    if let Some(campaigns) = shared.campaigns.get() {
        let (applied, refused) = campaigns.reload_counts();
        text.push_str(&format!(
            "# HELP edge_campaign_reload_total Campaign sets offered after start (file edits and API), by result.\n# TYPE edge_campaign_reload_total counter\nedge_campaign_reload_total{{result=\"ok\"}} {applied}\nedge_campaign_reload_total{{result=\"invalid\"}} {refused}\n"
        ));
    }
    text
}

pub async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not found")
        .detail("see /api/v1/openapi.json; probes: /live /ready /metrics")
}

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

/// The delivery server, once the node has started it and until it shuts down.
fn delivery(shared: &Shared) -> Result<Arc<DeliveryServer>, Problem> {
    shared
        .delivery
        .get()
        .and_then(|weak| weak.upgrade())
        .ok_or_else(|| {
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "delivery not running")
                .detail("the node is starting or shutting down")
        })
}

#[derive(Debug, Serialize)]
pub struct SessionView {
    pub id: u64,
    pub remote: String,
    /// The rendering (render group) the session is served.
    pub rendering: String,
    pub zone: Option<String>,
    /// RFC 3339, UTC.
    pub connected_at: String,
    pub transport: &'static str,
    pub path: String,
    /// The connect query with `token` redacted.
    pub query: String,
    /// What the node decided for this viewer; `None` while the node has not wired its viewer
    /// directory in, or once the viewer left it.
    pub decision: Option<ViewerDecision>,
}

impl From<SessionInfo> for SessionView {
    fn from(s: SessionInfo) -> Self {
        let zone = url::form_urlencoded::parse(s.query.as_bytes())
            .find(|(k, _)| k == "zone")
            .map(|(_, v)| shown_hint(&v));
        Self {
            id: s.id,
            remote: s.remote.to_string(),
            rendering: s.rendering,
            zone,
            connected_at: rfc3339(s.connected_at),
            transport: s.transport.as_str(),
            path: s.path,
            query: s.query,
            decision: None,
        }
    }
}

/// The most characters of a viewer's own words (its zone hint) the API shows.
const MAX_HINT_CHARS: usize = 64;

/// A value the viewer chose, as an operator should see it: control characters written as
/// escapes (a NUL or a newline stays visible and cannot break a line), cut to
/// [`MAX_HINT_CHARS`]. What the node decided is in `decision`.
fn shown_hint(value: &str) -> String {
    let mut shown = String::new();
    for (count, c) in value.chars().enumerate() {
        if count == MAX_HINT_CHARS {
            shown.push('…');
            break;
        }
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}

fn rfc3339(at: std::time::SystemTime) -> String {
    let at = time::OffsetDateTime::from(at);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| {
            // Only years beyond 9999 fail to format; say the instant another way.
            let ms = at.unix_timestamp_nanos() / 1_000_000;
            format!("@{ms}ms")
        })
}

#[derive(Debug, Serialize)]
pub struct SessionList {
    pub sessions: Vec<SessionView>,
}

pub async fn list_sessions(State(shared): AppState) -> Result<Json<SessionList>, Problem> {
    let sessions = delivery(&shared)?.sessions();
    let viewers = shared.viewers.get();
    Ok(Json(SessionList {
        sessions: sessions
            .into_iter()
            .map(|session| {
                let id = session.id;
                let mut view = SessionView::from(session);
                view.decision = viewers.and_then(|v| v.decision(id));
                view
            })
            .collect(),
    }))
}

/// `DELETE /api/v1/sessions/{id}[?reason=...]`: 204, or 404 when no such session.
pub async fn close_session(
    State(shared): AppState,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<StatusCode, Problem> {
    let id: u64 = id.parse().map_err(|_| {
        Problem::new(StatusCode::BAD_REQUEST, "bad session id")
            .detail(format!("{id:?} is not a session id (an unsigned integer)"))
    })?;
    let reason = query
        .as_deref()
        .and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "reason")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_else(|| DEFAULT_CLOSE_REASON.to_string());
    if reason.len() > MAX_CLOSE_REASON_BYTES {
        return Err(
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "close reason too long").detail(
                format!(
                    "at most {MAX_CLOSE_REASON_BYTES} bytes, got {}",
                    reason.len()
                ),
            ),
        );
    }
    if delivery(&shared)?.close_session(id, CLOSE_CODE_OPERATOR, &reason) {
        tracing::info!(session = id, %reason, "session disconnected by operator");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::new(StatusCode::NOT_FOUND, "no such session")
            .detail(format!("no established session {id}")))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DrainBody {
    grace_ms: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct Draining {
    pub draining: bool,
    pub grace_ms: u64,
}

fn body_problem(rejection: BytesRejection) -> Problem {
    Problem::new(rejection.status(), "request body rejected").detail(rejection.body_text())
}

/// `POST /api/v1/drain` with an optional `{"grace_ms": N}`: the SIGTERM drain, 202.
pub async fn drain(
    State(shared): AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Draining>), Problem> {
    let body = body.map_err(body_problem)?;
    let request: DrainBody = if body.iter().all(u8::is_ascii_whitespace) {
        DrainBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            Problem::new(StatusCode::BAD_REQUEST, "bad drain request")
                .detail(format!("expected {{\"grace_ms\": N}} or no body: {e}"))
        })?
    };
    let grace = match request.grace_ms {
        Some(ms) if ms > MAX_DRAIN_GRACE_MS => {
            return Err(
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "grace too long").detail(format!(
                    "grace_ms must be at most {MAX_DRAIN_GRACE_MS}, got {ms}"
                )),
            )
        }
        Some(ms) => Duration::from_millis(ms),
        None => shared.default_drain_grace,
    };
    let readiness = &shared.telemetry.readiness;
    if readiness.draining.load(Ordering::Relaxed) {
        return Err(Problem::new(StatusCode::CONFLICT, "already draining"));
    }
    match shared.drains.try_send(DrainRequest { grace }) {
        Ok(()) => {}
        Err(mpsc_error) => {
            let full = matches!(mpsc_error, tokio::sync::mpsc::error::TrySendError::Full(_));
            return Err(if full {
                Problem::new(StatusCode::CONFLICT, "already draining")
            } else {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "the node is stopping")
            });
        }
    }
    // Readiness off and newcomers refused at once, even before the serve loop picks it up.
    readiness.draining.store(true, Ordering::Relaxed);
    let grace_ms = grace.as_millis() as u64;
    tracing::info!(grace_ms, "drain requested by operator");
    Ok((
        StatusCode::ACCEPTED,
        Json(Draining {
            draining: true,
            grace_ms,
        }),
    ))
}

fn campaigns(shared: &Shared) -> Result<Arc<dyn super::CampaignAdmin>, Problem> {
    shared
        .campaigns
        .get()
        .cloned()
        .ok_or_else(|| Problem::new(StatusCode::SERVICE_UNAVAILABLE, "campaigns not configured"))
}

pub async fn get_campaigns(State(shared): AppState) -> Result<Response, Problem> {
    let store = campaigns(&shared)?;
    let (text, content_type, generation) = tokio::task::spawn_blocking(move || store.current())
        .await
        .map_err(internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::ETAG, format!("\"{generation}\"")),
        ],
        text,
    )
        .into_response())
}

/// The campaign body formats and the media types that name them.
pub fn campaign_media_type(content_type: &str) -> Option<&'static str> {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Some("application/json"),
        "application/toml" | "text/toml" | "text/x-toml" => Some("application/toml"),
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => {
            Some("application/yaml")
        }
        _ => None,
    }
}

#[derive(Debug, Serialize)]
pub struct Applied {
    pub generation: u64,
}

/// `PUT /api/v1/campaigns`: validate, apply like a hot reload, answer the new generation; 422
/// with every problem otherwise (the campaigns in force stay).
pub async fn put_campaigns(
    State(shared): AppState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Applied>, Problem> {
    let store = campaigns(&shared)?;
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = campaign_media_type(given).ok_or_else(|| {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported campaign format",
        )
        .detail(format!(
            "Content-Type {given:?}: use application/toml, application/yaml or application/json"
        ))
    })?;
    let body = body.map_err(body_problem)?;
    let text = String::from_utf8(body.to_vec()).map_err(|e| {
        Problem::new(StatusCode::BAD_REQUEST, "body is not UTF-8").detail(e.to_string())
    })?;
    let outcome = tokio::task::spawn_blocking(move || store.replace(&text, media_type))
        .await
        .map_err(internal)?;
    match outcome {
        Ok(generation) => {
            shared.telemetry.campaign_applied(generation);
            tracing::info!(generation, "campaigns replaced by operator");
            Ok(Json(Applied { generation }))
        }
        Err(problems) => {
            tracing::info!(
                problems = problems.len(),
                "campaigns from operator rejected"
            );
            Err(
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid campaigns")
                    .detail(format!(
                        "{} problem(s); nothing was applied",
                        problems.len()
                    ))
                    .errors(problems),
            )
        }
    }
}

fn internal(e: tokio::task::JoinError) -> Problem {
    tracing::error!(error = %e, "campaign store call failed");
    Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "campaign store failed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn campaign_media_types_are_normalized() {
        assert_eq!(
            campaign_media_type("application/json; charset=utf-8"),
            Some("application/json")
        );
        assert_eq!(campaign_media_type("Text/YAML"), Some("application/yaml"));
        assert_eq!(
            campaign_media_type("application/toml"),
            Some("application/toml")
        );
        assert_eq!(campaign_media_type("text/plain"), None);
        assert_eq!(campaign_media_type(""), None);
    }

    #[test]
    fn a_hint_shows_its_control_characters_as_escapes_and_is_cut() {
        assert_eq!(shown_hint("mall\0\nERROR x"), "mall\\u{0}\\nERROR x");
        let long = shown_hint(&"z".repeat(10_000));
        assert_eq!(long.chars().count(), MAX_HINT_CHARS + 1);
        assert!(long.ends_with('…'));
        assert_eq!(shown_hint("银泰"), "银泰");
    }

    #[test]
    fn sessions_show_their_zone_and_time() {
        let view = SessionView::from(SessionInfo {
            id: 4,
            remote: "192.0.2.1:4000".parse().unwrap(),
            rendering: "yintai/720p".into(),
            path: "/".into(),
            query: "zone=yintai-mall&token=REDACTED".into(),
            transport: edge_deliver::ViewerTransport::WebTransport,
            connected_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        });
        assert_eq!(view.zone.as_deref(), Some("yintai-mall"));
        assert_eq!(view.connected_at, "2023-11-14T22:13:20.123Z");
        assert_eq!(view.transport, "webtransport");
    }
}
