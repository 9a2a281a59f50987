//! Session routing: which rendering a viewer gets, decided from its request before it is
//! accepted. The decision itself belongs to the node (zones, campaigns, auth); this module is the
//! contract plus the checks that keep a router's answer from escaping its rendering's scope.

use std::net::SocketAddr;

/// What the node knows about a viewer when it decides where to route it.
#[derive(Clone, Debug)]
pub struct ViewerRequest {
    /// Unique for the lifetime of the server; passed back to [`SessionRouter::closed`].
    pub session_id: u64,
    pub remote: SocketAddr,
    /// The request URL's path, e.g. `/` (WebTransport), or the path a raw-QUIC client put in its
    /// SETUP (moq-lite-05 and newer; empty for older versions).
    pub path: String,
    /// The raw query string without `?`, e.g. `zone=yintai-mall&token=...`; empty when absent.
    pub query: String,
    pub transport: ViewerTransport,
}

/// How a viewer reached the node. Every transport gets the same routing, tracks and control.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ViewerTransport {
    /// WebTransport over HTTP/3 (browsers, `edge-node view`).
    WebTransport,
    /// moq over raw QUIC (native moq clients).
    Quic,
    /// moq's qmux over a WebSocket on the TCP port (browsers without WebTransport: iOS).
    WebSocket,
}

impl ViewerTransport {
    pub const ALL: [ViewerTransport; 3] = [Self::WebTransport, Self::Quic, Self::WebSocket];

    /// The label operators see (sessions API, metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WebTransport => "webtransport",
            Self::Quic => "quic",
            Self::WebSocket => "websocket",
        }
    }
}

impl ViewerRequest {
    /// The query as decoded `key=value` pairs (percent-decoding and `+` handled). Malformed
    /// escapes are kept literally rather than rejected: the router decides what is acceptable.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// The query for logs and the sessions API: every credential-bearing value replaced (keys
    /// matched case-insensitively: `token`, `TOKEN`, `access_token`, `jwt`, `password`, ...),
    /// each key and value cut to [`MAX_LOGGED_QUERY_VALUE`] characters and the whole to
    /// [`MAX_LOGGED_QUERY_BYTES`], so a peer can neither leak a secret into a log nor fill one.
    pub fn loggable_query(&self) -> String {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in self.query_pairs() {
            let value = if is_secret_key(&key) {
                "REDACTED".to_string()
            } else {
                shorten(&value, MAX_LOGGED_QUERY_VALUE)
            };
            serializer.append_pair(&shorten(&key, MAX_LOGGED_QUERY_VALUE), &value);
        }
        bounded(serializer.finish(), MAX_LOGGED_QUERY_BYTES)
    }

    /// The first value of `key` in the query, decoded.
    pub fn query_value(&self, key: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }
}

/// Longest key or value of a query as logged, in characters.
pub const MAX_LOGGED_QUERY_VALUE: usize = 64;

/// Longest query as logged, in bytes.
pub const MAX_LOGGED_QUERY_BYTES: usize = 512;

/// Query keys whose values are credentials, compared without case.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "token",
        "jwt",
        "secret",
        "password",
        "passwd",
        "auth",
        "key",
        "signature",
        "sig",
    ]
    .iter()
    .any(|secret| key == *secret || key.ends_with(&format!("_{secret}")))
}

/// `text` cut to `max` characters, saying how long it was (in characters a query writes as
/// they are: `zone=aaa...10000-bytes`).
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}...{}-bytes", &text[..cut], text.len()),
    }
}

/// Longest refusal reason sent, in bytes: it travels in the WebTransport/QUIC close and a
/// player shows it as it is.
pub const MAX_REFUSAL_REASON_BYTES: usize = 160;

/// Why a viewer was turned away. The reason is sent to the viewer as the session's close reason,
/// so it must be safe to show (no secrets): short words, one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// At most [`MAX_REFUSAL_REASON_BYTES`], without control characters.
    pub reason: String,
}

impl Refusal {
    /// A refusal saying `reason`, with control characters made spaces and anything past
    /// [`MAX_REFUSAL_REASON_BYTES`] cut (at a character boundary, marked with `…`).
    pub fn new(reason: impl Into<String>) -> Self {
        let reason: String = reason
            .into()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        Self {
            reason: bounded(reason, MAX_REFUSAL_REASON_BYTES),
        }
    }
}

/// `text` cut to at most `max_bytes` (on a character boundary, marked with an ellipsis).
pub(crate) fn bounded(mut text: String, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text;
    }
    const MORE: &str = "…";
    let mut end = max_bytes - MORE.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(MORE);
    text
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Decides, per viewer, which rendering it receives.
///
/// Called on the server's network tasks: keep both methods quick and non-blocking.
pub trait SessionRouter: Send + Sync + 'static {
    /// Called with the viewer's request BEFORE the session is accepted. `Ok(rendering name)`
    /// serves that rendering as the broadcast `live`; the rendering need not be published yet
    /// (the viewer waits for it). `Err` closes the session with [`crate::CLOSE_CODE_REFUSED`]
    /// and the refusal's reason.
    fn route(&self, request: &ViewerRequest) -> Result<String, Refusal>;

    /// A message the viewer sent on its control track (see [`crate::control`]): already size-
    /// and rate-limited. `Err` is logged with the session; the session carries on.
    fn control(&self, _session_id: u64, _message: &[u8]) -> Result<(), String> {
        Err("this node accepts no control messages".into())
    }

    /// The session routed earlier with this id has ended, however it ended.
    fn closed(&self, _session_id: u64) {}
}

/// Longest rendering name accepted; it becomes part of every path on the origin.
pub const MAX_RENDERING_NAME_BYTES: usize = 128;

/// A rendering name becomes the prefix `<name>/` on the shared origin, so it must be a plain
/// relative path: segments of `[A-Za-z0-9._-]`, no empty, `.` or `..` segment and none of the
/// wildcard spellings a pattern could interpret.
pub fn validate_rendering_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty");
    }
    if name.len() > MAX_RENDERING_NAME_BYTES {
        return Err("too long");
    }
    for segment in name.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err("empty, '.' or '..' path segment");
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err("only ASCII letters, digits, '.', '_', '-' and '/' are allowed");
        }
    }
    Ok(())
}

/// The WebTransport sub-protocol to answer with: the client's most preferred protocol that
/// moq-net also speaks. `None` when there is no overlap (or the client sent none), in which case
/// moq-net negotiates inside its SETUP and lands on moq-lite-02.
pub fn select_protocol(requested: &[String]) -> Option<String> {
    requested
        .iter()
        .find(|p| moq_net::ALPNS.contains(&p.as_str()))
        .cloned()
}

/// Splits what a raw-QUIC client advertised in SETUP (`/path?query`) like a URL would be.
pub fn split_setup_path(advertised: &str) -> (String, String) {
    match advertised.split_once('?') {
        Some((path, query)) => (path.to_string(), query.to_string()),
        None => (advertised.to_string(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str) -> ViewerRequest {
        ViewerRequest {
            session_id: 1,
            remote: "127.0.0.1:1".parse().unwrap(),
            path: "/".into(),
            query: query.into(),
            transport: ViewerTransport::WebTransport,
        }
    }

    #[test]
    fn query_values_are_decoded() {
        let r = request("zone=yintai%20mall&lat=30.27&zone=second&x=%zz");
        assert_eq!(r.query_value("zone").as_deref(), Some("yintai mall"));
        assert_eq!(r.query_value("lat").as_deref(), Some("30.27"));
        assert_eq!(r.query_value("x").as_deref(), Some("%zz"));
        assert_eq!(r.query_value("missing"), None);
        assert_eq!(r.query_pairs().len(), 4);
    }

    #[test]
    fn logged_queries_hide_every_credential_and_stay_short() {
        let r = request("zone=a&TOKEN=eyJ.secret&access_token=x&Api_Key=k&name=Ada");
        assert_eq!(
            r.loggable_query(),
            "zone=a&TOKEN=REDACTED&access_token=REDACTED&Api_Key=REDACTED&name=Ada"
        );
        let long = request(&format!("zone={}", "z".repeat(10_000)));
        let logged = long.loggable_query();
        assert!(logged.len() < 120, "{logged}");
        assert!(logged.ends_with("...10000-bytes"), "{logged}");
        let many = request(&"a=b&".repeat(5_000));
        assert!(many.loggable_query().len() <= MAX_LOGGED_QUERY_BYTES + 32);
    }

    #[test]
    fn refusal_reasons_are_one_short_line() {
        assert_eq!(Refusal::new("node full").reason, "node full");
        assert_eq!(Refusal::new("a\nb\u{7}").reason, "a b ");
        let long = Refusal::new("é".repeat(1_000)).reason;
        assert!(long.len() <= MAX_REFUSAL_REASON_BYTES, "{}", long.len());
        assert!(long.ends_with('…') && long.starts_with("éé"));
    }

    #[test]
    fn rendering_names_stay_inside_their_scope() {
        for good in ["a", "zone-a/zoom.2", "yintai_mall/720p"] {
            assert!(validate_rendering_name(good).is_ok(), "{good}");
        }
        let long = "x".repeat(MAX_RENDERING_NAME_BYTES + 1);
        for bad in [
            "",
            "a//b",
            "/a",
            "a/",
            "..",
            "a/../b",
            "*",
            "a/**",
            "a b",
            "ä",
            long.as_str(),
        ] {
            assert!(validate_rendering_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn protocol_is_the_clients_first_supported_choice() {
        let requested = vec![
            "unknown".to_string(),
            "moq-lite-05".to_string(),
            "moq-lite-06".to_string(),
        ];
        assert_eq!(select_protocol(&requested).as_deref(), Some("moq-lite-05"));
        assert_eq!(select_protocol(&["nope".to_string()]), None);
        assert_eq!(select_protocol(&[]), None);
    }

    #[test]
    fn setup_paths_split_like_urls() {
        assert_eq!(
            split_setup_path("/x?zone=a"),
            ("/x".into(), "zone=a".into())
        );
        assert_eq!(split_setup_path(""), (String::new(), String::new()));
    }
}
