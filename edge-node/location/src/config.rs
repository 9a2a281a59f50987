//! Where the Location API is and how long the node may wait for it.

use std::time::Duration;

use url::Url;

use crate::error::LocationError;

/// Path of the Location API under the platform's `apiRoot` (`{apiRoot}/location/v2`).
pub const DEFAULT_API_ROOT: &str = "/location/v2";

/// A viewer join must not wait on the MEC platform longer than this by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(300);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationConfig {
    /// Scheme, host, port and any prefix of the platform's `apiRoot`, e.g. `http://mec.local:8080`.
    /// Only `http` is supported: MEC platforms serve on the site network.
    pub base_url: Url,
    /// Path of the API under `base_url`; [`DEFAULT_API_ROOT`] unless the platform differs.
    pub api_root: String,
    /// Upper bound for a whole call: connect, request and the complete response body.
    pub timeout: Duration,
    /// Sent as `Authorization: Bearer <token>` when the platform requires OAuth 2.0.
    pub bearer_token: Option<String>,
}

impl LocationConfig {
    pub fn new(base_url: Url) -> Self {
        Self {
            base_url,
            api_root: DEFAULT_API_ROOT.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            bearer_token: None,
        }
    }

    /// `base_url` + `api_root` without a trailing slash, after checking both.
    pub(crate) fn api_base(&self) -> Result<String, LocationError> {
        if self.base_url.scheme() != "http" {
            return Err(LocationError::Config(format!(
                "base_url {} uses scheme `{}`; only http is supported",
                self.base_url,
                self.base_url.scheme()
            )));
        }
        if self.base_url.host().is_none() {
            return Err(LocationError::Config(format!(
                "base_url {} has no host",
                self.base_url
            )));
        }
        if self.base_url.query().is_some() || self.base_url.fragment().is_some() {
            return Err(LocationError::Config(format!(
                "base_url {} must not carry a query or fragment",
                self.base_url
            )));
        }
        if self.timeout.is_zero() {
            return Err(LocationError::Config("timeout must be above zero".into()));
        }
        let root = self.api_root.trim_matches('/');
        if root.contains(['?', '#']) {
            return Err(LocationError::Config(format!(
                "api_root `{}` must be a plain path",
                self.api_root
            )));
        }
        let base = self.base_url.as_str().trim_end_matches('/');
        Ok(if root.is_empty() {
            base.to_owned()
        } else {
            format!("{base}/{root}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(base: &str) -> LocationConfig {
        LocationConfig::new(Url::parse(base).expect("literal URL"))
    }

    #[test]
    fn joins_base_and_api_root_with_one_slash() {
        assert_eq!(
            config("http://mec:8080").api_base().unwrap(),
            "http://mec:8080/location/v2"
        );
        let mut prefixed = config("http://mec:8080/sandbox1/");
        prefixed.api_root = "location/v2/".into();
        assert_eq!(
            prefixed.api_base().unwrap(),
            "http://mec:8080/sandbox1/location/v2"
        );
    }

    #[test]
    fn rejects_https_and_zero_timeout() {
        let error = config("https://mec").api_base().unwrap_err();
        assert!(error.to_string().contains("only http"), "{error}");
        let mut zero = config("http://mec");
        zero.timeout = Duration::ZERO;
        assert!(matches!(zero.api_base(), Err(LocationError::Config(_))));
    }
}
