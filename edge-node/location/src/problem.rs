//! `application/problem+json` answers for the two HTTP servers in this crate.

use axum::response::{IntoResponse, Response};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, StatusCode};

use crate::model::ProblemDetails;

pub(crate) fn problem_response(
    status: StatusCode,
    title: &str,
    detail: impl Into<String>,
) -> Response {
    let problem = ProblemDetails::new(status.as_u16(), title, detail);
    let json = serde_json::to_vec(&problem).expect("ProblemDetails is plain data");
    (status, [(CONTENT_TYPE, "application/problem+json")], json).into_response()
}

pub(crate) fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let json = serde_json::to_vec(body).expect("Location API bodies are plain data");
    (status, [(CONTENT_TYPE, "application/json")], json).into_response()
}

/// `None` when the request may carry JSON (no Content-Type, `application/json`, `*/*+json`);
/// otherwise the 415 answer the spec lists.
pub(crate) fn reject_non_json(headers: &HeaderMap) -> Option<Response> {
    let content_type = headers.get(CONTENT_TYPE)?;
    let essence = content_type
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") {
        return None;
    }
    Some(problem_response(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "Unsupported Media Type",
        format!("expected application/json, got `{essence}`"),
    ))
}
