//! Everything a Location API call can end in, typed so the node can pick a fallback and label a
//! metric without parsing messages.

use crate::model::ProblemDetails;

#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    #[error("invalid Location API configuration: {0}")]
    Config(String),

    #[error("Location API at {url} did not answer within {timeout_ms} ms")]
    Timeout { url: String, timeout_ms: u64 },

    #[error("Location API at {url} refused the connection")]
    ConnectionRefused { url: String },

    #[error("could not reach the Location API at {url}: {reason}")]
    Unreachable { url: String, reason: String },

    #[error("the Location API does not know user {address} (404)")]
    UnknownUser { address: String },

    #[error("the Location API has no subscription at {resource_url} (404)")]
    UnknownSubscription { resource_url: String },

    #[error("Location API at {url} answered {status}: {}", describe_problem(.problem, .body_excerpt))]
    Status {
        url: String,
        status: u16,
        /// The `ProblemDetails` the server sent, when its body was one.
        problem: Option<Box<ProblemDetails>>,
        /// The start of a body that was not `ProblemDetails`, for the log.
        body_excerpt: String,
    },

    #[error("malformed Location API response from {url}: `{field}`: {reason}")]
    Malformed {
        url: String,
        /// Path of the offending member, e.g. `userList.user[0].zoneId`.
        field: String,
        reason: String,
    },
}

impl LocationError {
    /// A short, fixed label for metrics (`reason` label of a fallback counter).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Config(_) => "config",
            Self::Timeout { .. } => "timeout",
            Self::ConnectionRefused { .. } => "connection_refused",
            Self::Unreachable { .. } => "unreachable",
            Self::UnknownUser { .. } => "unknown_user",
            Self::UnknownSubscription { .. } => "unknown_subscription",
            Self::Status { .. } => "http_status",
            Self::Malformed { .. } => "malformed_response",
        }
    }
}

fn describe_problem(problem: &Option<Box<ProblemDetails>>, body_excerpt: &str) -> String {
    match problem {
        Some(problem) => problem.to_string(),
        None if body_excerpt.is_empty() => "(empty body)".to_owned(),
        None => format!("(not ProblemDetails) {body_excerpt}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_error_quotes_problem_title_and_detail() {
        let error = LocationError::Status {
            url: "http://mec/location/v2/queries/users".into(),
            status: 503,
            problem: Some(Box::new(ProblemDetails::new(
                503,
                "Service Unavailable",
                "maintenance",
            ))),
            body_excerpt: String::new(),
        };
        assert_eq!(
            error.to_string(),
            "Location API at http://mec/location/v2/queries/users answered 503: \
             \"Service Unavailable\": maintenance"
        );
        assert_eq!(error.kind(), "http_status");
    }
}
