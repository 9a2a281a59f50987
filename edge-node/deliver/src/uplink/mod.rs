//! The uplink: this node's renderings, published to a MoQ relay (the fan-out tier beyond one
//! node).
//!
//! ```text
//! node origin (<rendering>/live, ...) ──► moq-lite publisher session over WebTransport
//!        ──► moq-relay at https://relay:4443/<prefix>  ──► viewers of the relay cluster
//! ```
//!
//! The node stays the only place that renders and encodes; the uplink announces the node's
//! renderings to the relay (all, or those [`UplinkConfig::renderings`] lists; per-viewer feeds
//! never), and the relay pulls the tracks its viewers ask for, once per relay however many
//! viewers it serves.
//!
//! **Naming.** A relay roots each session at the path it dialed (moq-relay scopes the
//! session's grant to it), so the URL path is the prefix: publishing to
//! `https://relay:4443/mall-a/node-1` makes rendering `r` appear on the relay as
//! `mall-a/node-1/r/live`. A viewer then connects to `https://relay:4443/mall-a/node-1/r` and
//! subscribes to `live`, exactly as it would on the node itself.
//!
//! **Failure.** The relay may restart or be replaced at any time: the uplink reconnects with
//! bounded exponential backoff, forever, logging each loss and recovery. A GOAWAY (a relay
//! draining) is answered make-before-break: a new session is opened (to the redirect, if one
//! was given) before the old one is let go.

use std::time::Duration;

use edge_core::backoff::Backoff;
use moq_net::{origin, Pattern, Patterns};
use rustls::pki_types::ServerName;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;
use web_transport_quinn::proto::ConnectRequest;

use crate::router::validate_rendering_name;
use crate::{net, DeliverError};

mod trust;

pub use trust::RelayTrust;

/// Where and how to publish.
#[derive(Clone, Debug)]
pub struct UplinkConfig {
    /// `https://HOST:PORT/PREFIX`: WebTransport to the relay; the path is the prefix every
    /// rendering is published under (may be `/`).
    pub url: Url,
    pub trust: RelayTrust,
    /// Budget for one attempt: QUIC, WebTransport CONNECT and MoQ SETUP.
    pub connect_timeout: Duration,
    /// First and longest wait between attempts; doubles in between.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Which renderings leave the node: `None` publishes every rendering; `Some(prefixes)` only
    /// renderings named by or under one of these rendering names (`shared` covers `shared` and
    /// `shared/g1`). Keep renderings carrying one viewer's personal items off a relay that
    /// anyone may subscribe to by naming the shareable ones under a prefix listed here.
    pub renderings: Option<Vec<String>>,
}

impl UplinkConfig {
    /// Defaults for everything but the relay: 5 s per attempt, retries from 0.5 s up to 10 s.
    pub fn new(url: Url, trust: RelayTrust) -> Self {
        Self {
            url,
            trust,
            connect_timeout: Duration::from_secs(5),
            retry_initial: Duration::from_millis(500),
            retry_max: Duration::from_secs(10),
            renderings: None,
        }
    }

    /// Checks what can be checked without the network, so a bad `--publish-to` fails at start.
    pub fn validate(&self) -> Result<(), DeliverError> {
        let invalid = |reason: &str| DeliverError::InvalidUrl {
            url: self.url.to_string(),
            reason: reason.to_string(),
        };
        if self.url.scheme() != "https" {
            return Err(invalid(
                "the relay URL must be https:// (WebTransport over QUIC)",
            ));
        }
        if self.url.host_str().is_none() {
            return Err(invalid("no host"));
        }
        if self.url.port_or_known_default().is_none() {
            return Err(invalid("no port"));
        }
        if self.connect_timeout.is_zero() || self.retry_initial.is_zero() {
            return Err(invalid(
                "connect timeout and retry interval must be above zero",
            ));
        }
        self.trust.check()?;
        self.published()?;
        Ok(())
    }

    /// The origin paths the uplink may publish. Per-viewer feeds (`~viewer/...`) can never
    /// match: a listed prefix is a valid rendering name, and those never begin with `~`.
    fn published(&self) -> Result<Patterns, DeliverError> {
        let Some(prefixes) = &self.renderings else {
            return rendering_patterns();
        };
        let mut patterns = Patterns::new();
        for prefix in prefixes {
            validate_rendering_name(prefix).map_err(|reason| DeliverError::InvalidRendering {
                name: prefix.clone(),
                reason,
            })?;
            patterns.insert(Pattern::subtree(prefix).map_err(moq_net::Error::from)?);
        }
        Ok(patterns)
    }
}

/// Where the uplink stands, for logs, readiness and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UplinkStatus {
    /// Dialing the relay (`attempt` counts from 1 since the last good session).
    Connecting { attempt: u32 },
    /// A publisher session is up; `version` is the negotiated MoQ version.
    Connected { version: String },
    /// The last attempt or session failed; the next attempt starts after `retry_in`.
    Waiting { retry_in: Duration, error: String },
}

/// A session that lasted this long counts as good: the backoff starts over afterwards. A relay
/// that accepts and then drops the session at once is retried with growing pauses instead.
const STABLE_SESSION: Duration = Duration::from_secs(10);

/// Publishes an origin to a relay until stopped or dropped.
pub struct Uplink {
    status: watch::Receiver<UplinkStatus>,
    task: JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl Uplink {
    /// Validates `config` and starts publishing everything `origin` holds (every broadcast
    /// announced on it now or later). Must run inside a tokio runtime; returns at once, the
    /// connection is made in the background (see [`Uplink::status`]).
    pub fn start(config: UplinkConfig, origin: origin::Consumer) -> Result<Self, DeliverError> {
        crate::install_crypto_provider();
        config.validate()?;
        let origin = origin.scope("", &config.published()?)?;
        let (status_tx, status) = watch::channel(UplinkStatus::Connecting { attempt: 1 });
        let (stop, stop_rx) = watch::channel(false);
        tracing::info!(relay = %config.url, "uplink starting: publishing every rendering to the relay");
        let task = tokio::spawn(run(config, origin, status_tx, stop_rx));
        Ok(Self { status, task, stop })
    }

    pub fn status(&self) -> UplinkStatus {
        self.status.borrow().clone()
    }

    /// Waits until a session is up (or `timeout` passes); true when connected.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut status = self.status.clone();
        tokio::time::timeout(
            timeout,
            status.wait_for(|s| matches!(s, UplinkStatus::Connected { .. })),
        )
        .await
        .is_ok_and(|r| r.is_ok())
    }

    /// Closes the relay session cleanly (the relay ends the node's broadcasts at once rather
    /// than after an idle timeout) and stops reconnecting.
    pub async fn stop(mut self) {
        self.stop.send_replace(true);
        if tokio::time::timeout(Duration::from_secs(2), &mut self.task)
            .await
            .is_err()
        {
            tracing::warn!("uplink did not stop in time; aborting it");
        }
        // Dropping aborts whatever is left.
    }
}

impl Drop for Uplink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every path whose first segment can begin a rendering name (ASCII letters, digits, `.`, `_`,
/// `-`: see [`crate::router::validate_rendering_name`]). That is all a rendering publishes and
/// nothing of the per-viewer feeds under `~viewer/`: those are personal and never leave the node.
fn rendering_patterns() -> Result<Patterns, DeliverError> {
    let first_bytes = (b'0'..=b'9')
        .chain(b'a'..=b'z')
        .chain(b'A'..=b'Z')
        .chain([b'.', b'_', b'-']);
    let mut patterns = Patterns::new();
    for first in first_bytes {
        let pattern: Pattern = format!("{}*/**", first as char)
            .parse()
            .map_err(moq_net::Error::from)?;
        patterns.insert(pattern);
    }
    Ok(patterns)
}

/// The backoff after a session or attempt ended: start over after a good session, otherwise
/// keep growing. `lasted` is `None` for an attempt that never connected.
fn delay_after(backoff: &mut Backoff, lasted: Option<Duration>) -> Duration {
    if lasted.is_some_and(|lasted| lasted >= STABLE_SESSION) {
        backoff.reset();
    }
    backoff.next_delay()
}

/// Why a running session ended.
enum Ended {
    /// The relay (or the network) closed it.
    Lost(String),
    /// The relay asked us to move (GOAWAY); the session still carries media until replaced.
    Draining { redirect: Option<Url> },
    /// [`Uplink::stop`].
    Stopped,
}

async fn run(
    config: UplinkConfig,
    origin: origin::Consumer,
    status: watch::Sender<UplinkStatus>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(config.retry_initial, config.retry_max);
    // The session being replaced after a GOAWAY: kept publishing until its successor is up.
    let mut draining: Option<RelaySession> = None;
    let mut target = config.url.clone();
    loop {
        status.send_replace(UplinkStatus::Connecting {
            attempt: backoff.attempts() + 1,
        });
        let attempt = tokio::time::timeout(
            config.connect_timeout,
            RelaySession::connect(&target, &config.trust, &origin),
        );
        let attempt = tokio::select! {
            attempt = attempt => attempt.unwrap_or_else(|_| Err(DeliverError::Timeout {
                during: "connecting to the relay",
                after_ms: config.connect_timeout.as_millis() as u64,
            })),
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        let (error, lasted) = match attempt {
            Ok(session) => {
                if let Some(old) = draining.take() {
                    old.close(0, "replaced after GOAWAY");
                }
                let version = session.session.version().to_string();
                tracing::info!(relay = %target, %version, "uplink connected: renderings are published to the relay");
                status.send_replace(UplinkStatus::Connected { version });
                let started = tokio::time::Instant::now();
                match session.serve(&mut stop).await {
                    Ended::Stopped => break,
                    Ended::Draining { redirect } => {
                        tracing::info!(relay = %target, redirect = ?redirect.as_ref().map(Url::as_str), "relay is draining (GOAWAY): reconnecting before it closes");
                        target = redirect.unwrap_or_else(|| config.url.clone());
                        draining = Some(session);
                        // Make-before-break: dial the successor while this session still
                        // carries media; at once, unless relays keep draining us right after
                        // we connect (then the backoff applies, or we would spin).
                        let lasted = started.elapsed();
                        if lasted < STABLE_SESSION {
                            let pause = delay_after(&mut backoff, Some(lasted));
                            tokio::select! {
                                _ = tokio::time::sleep(pause) => {}
                                _ = stop.wait_for(|stopped| *stopped) => break,
                            }
                        } else {
                            backoff.reset();
                        }
                        continue;
                    }
                    Ended::Lost(reason) => (reason, Some(started.elapsed())),
                }
            }
            Err(e) => (e.to_string(), None),
        };
        // A failed redirect falls back to the configured relay.
        target = config.url.clone();
        let retry_in = delay_after(&mut backoff, lasted);
        if lasted.is_some() {
            tracing::warn!(relay = %config.url, %error, retry_in_ms = retry_in.as_millis() as u64, "uplink lost: reconnecting");
        } else {
            tracing::warn!(relay = %config.url, %error, attempt = backoff.attempts(), retry_in_ms = retry_in.as_millis() as u64, "uplink could not connect to the relay");
        }
        status.send_replace(UplinkStatus::Waiting { retry_in, error });
        tokio::select! {
            _ = tokio::time::sleep(retry_in) => {}
            _ = stop.wait_for(|stopped| *stopped) => break,
        }
    }
    if let Some(old) = draining.take() {
        old.close(0, "node shutting down");
    }
    tracing::info!(relay = %config.url, "uplink stopped");
}

/// One publisher session with the relay.
struct RelaySession {
    transport: web_transport_quinn::Session,
    session: moq_net::Session,
    driver: JoinHandle<()>,
    endpoint: quinn::Endpoint,
}

impl RelaySession {
    async fn connect(
        url: &Url,
        trust: &RelayTrust,
        origin: &origin::Consumer,
    ) -> Result<Self, DeliverError> {
        let connect_error = |reason: String| DeliverError::Connect {
            url: url.to_string(),
            reason,
        };
        let host = url
            .host_str()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
            .ok_or_else(|| connect_error("no host".into()))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| connect_error("no port".into()))?;
        // Resolved on every attempt: a relay Service's address may change across restarts.
        let remote = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| connect_error(format!("resolving {host}: {e}")))?
            .next()
            .ok_or_else(|| connect_error(format!("{host} resolves to no address")))?;
        let client_config = trust.quic_client_config(remote, &host).await?;
        let local: std::net::SocketAddr = if remote.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let runtime = quinn::default_runtime().ok_or_else(|| DeliverError::Bind {
            protocol: "UDP",
            addr: local,
            source: std::io::Error::other("no async runtime found for quinn"),
        })?;
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            None,
            net::bind_udp(local)?,
            runtime,
        )
        .map_err(|source| DeliverError::Bind {
            protocol: "UDP",
            addr: local,
            source,
        })?;
        let server_name = ServerName::try_from(host.clone())
            .map_err(|e| connect_error(format!("host name: {e}")))?;
        let connection = endpoint
            .connect_with(client_config, remote, &server_name.to_str())
            .map_err(|e| connect_error(format!("QUIC: {e}")))?
            .await
            .map_err(|e| connect_error(format!("QUIC handshake: {e}")))?;
        let request = ConnectRequest::new(url.clone())
            .with_protocols(moq_net::ALPNS.iter().map(|p| p.to_string()));
        let transport = web_transport_quinn::Session::connect(connection, request)
            .await
            .map_err(|e| connect_error(format!("WebTransport: {e}")))?;
        // Publish only: the relay is told so in SETUP and checks the grant for publishing.
        let (session, driver) = moq_net::Client::new()
            .with_publisher(origin.clone())
            .connect(tokio::time::Instant::now().into_std(), transport.clone())
            .await
            .inspect_err(|_| transport.close(0, b"MoQ setup failed"))?;
        let driver = tokio::spawn(async move {
            let end = moq_net::time::run(driver).await;
            tracing::debug!(reason = %end, "uplink session driver ended");
        });
        Ok(Self {
            transport,
            session,
            driver,
            endpoint,
        })
    }

    /// Runs until the session closes, the relay sends GOAWAY, or the uplink is stopped.
    async fn serve(&self, stop: &mut watch::Receiver<bool>) -> Ended {
        let goaway = self.session.draining();
        tokio::select! {
            reason = self.session.closed() => {
                // The WebTransport close usually says more (the relay's code and reason).
                let detail = self.transport.close_reason().map(|r| r.to_string());
                Ended::Lost(detail.unwrap_or_else(|| reason.to_string()))
            }
            away = goaway.recv() => {
                let redirect = away.and_then(|g| {
                    let uri = g.uri();
                    (!uri.is_empty()).then(|| Url::parse(uri).ok()).flatten()
                });
                Ended::Draining { redirect }
            }
            _ = stop.wait_for(|stopped| *stopped) => {
                self.close(0, "node shutting down");
                Ended::Stopped
            }
        }
    }

    fn close(&self, code: u32, reason: &str) {
        self.transport.close(code, reason.as_bytes());
        self.driver.abort();
        self.endpoint.close(code.into(), reason.as_bytes());
    }
}

impl Drop for RelaySession {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str, trust: RelayTrust) -> UplinkConfig {
        UplinkConfig::new(Url::parse(url).unwrap(), trust)
    }

    #[test]
    fn backoff_grows_while_failing_and_restarts_after_a_good_session() {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(4));
        let failing: Vec<u128> = (0..5)
            .map(|_| delay_after(&mut backoff, None).as_millis())
            .collect();
        assert_eq!(failing, vec![500, 1000, 2000, 4000, 4000]);
        // A session that dropped at once does not reset the backoff...
        assert_eq!(
            delay_after(&mut backoff, Some(Duration::from_secs(1))),
            Duration::from_secs(4)
        );
        // ...one that held for a while does.
        assert_eq!(
            delay_after(&mut backoff, Some(STABLE_SESSION)),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn bad_relay_settings_are_refused_before_any_connection() {
        let pin = "ab".repeat(32);
        assert!(
            config("https://relay:4443/site", RelayTrust::Sha256(pin.clone()))
                .validate()
                .is_ok()
        );
        let refused = [
            config("http://relay:4443/", RelayTrust::FetchSha256),
            config("moql://relay:4443/", RelayTrust::FetchSha256),
            config("https://relay:4443/", RelayTrust::Sha256("abc".into())),
            config("https://relay:4443/", RelayTrust::Sha256("ab".repeat(16))),
            config(
                "https://relay:4443/",
                RelayTrust::CaFile("/nonexistent/ca.pem".into()),
            ),
        ];
        for c in refused {
            assert!(c.validate().is_err(), "accepted {c:?}");
        }
        let mut zero = config("https://relay:4443/", RelayTrust::FetchSha256);
        zero.retry_initial = Duration::ZERO;
        assert!(zero.validate().is_err());
    }

    #[test]
    fn renderings_reach_the_relay_and_viewer_feeds_never_do() {
        let patterns = rendering_patterns().unwrap();
        for rendering in [
            "main/live",
            "mall-a/zoom-2/live",
            "R_1/live",
            ".x/live",
            "9/live",
        ] {
            assert!(patterns.matches(rendering), "{rendering} is not published");
        }
        for personal in ["~viewer/7/live", "~viewer/7", "~other/live"] {
            assert!(
                !patterns.matches(personal),
                "{personal} would leak to the relay"
            );
        }
    }

    #[test]
    fn listed_prefixes_limit_what_is_published() {
        let mut c = config("https://relay:4443/site-a", RelayTrust::FetchSha256);
        c.renderings = Some(vec!["shared".into(), "zone-a/wide".into()]);
        let patterns = c.published().unwrap();
        for published in ["shared/live", "shared/g1/live", "zone-a/wide/live"] {
            assert!(patterns.matches(published), "{published} is published");
        }
        for kept in ["g2/live", "sharedx/live", "zone-a/live", "~viewer/3/live"] {
            assert!(!patterns.matches(kept), "{kept} stays on the node");
        }
        for bad in ["~viewer", "", "a//b", "*"] {
            c.renderings = Some(vec![bad.into()]);
            assert!(c.validate().is_err(), "{bad:?} accepted");
        }
    }
}
