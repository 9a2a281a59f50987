//! Receives the `ZonalPresenceNotification`s the platform POSTs for a zonal-traffic subscription
//! and hands them to the node as [`ZoneEvent`]s on a bounded channel.
//!
//! The HTTP side never waits on the node: a full channel answers 503 (the platform may retry)
//! instead of holding the platform's request open.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use http::{HeaderMap, StatusCode};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use url::Url;

use crate::address::{ip_of_acr_address, is_uri_address};
use crate::model::{UserEventType, ZonalPresenceNotificationBody, SUBSCRIPTION_LINK_REL};
use crate::problem::{problem_response, reject_non_json};
use crate::transport::describe_json_error;

/// Path the listener serves; [`NotificationListener::callback_url`] ends with it.
pub const NOTIFICATION_PATH: &str = "/mec/location/notifications";

/// Events buffered for the node before the listener answers 503.
pub const EVENT_QUEUE_CAPACITY: usize = 1024;

/// A notification is a few hundred bytes.
const MAX_NOTIFICATION_BYTES: usize = 64 * 1024;

/// A UE entered, left or moved within a subscribed zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneEvent {
    /// The UE's address, e.g. `acr:10.0.0.1`; [`ZoneEvent::ue_ip`] gives the IP.
    pub address: String,
    /// The zone the event is about: the one left for `Leaving`, the one entered for `Entering`.
    pub zone_id: String,
    pub event: UserEventType,
    pub current_access_point_id: String,
    pub previous_access_point_id: Option<String>,
    pub timestamp: SystemTime,
    /// The subscription that caused it, when the platform links it (it SHOULD).
    pub subscription_url: Option<String>,
}

impl ZoneEvent {
    pub fn ue_ip(&self) -> Option<IpAddr> {
        ip_of_acr_address(&self.address)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error("cannot listen for Location API notifications on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error(
        "{0} is a wildcard address the MEC platform cannot call back; \
         use NotificationListener::bind_with_callback_base to name a reachable one"
    )]
    WildcardAddress(SocketAddr),
    #[error("callback base `{0}` must be an absolute http URL")]
    BadCallbackBase(String),
}

pub struct NotificationListener {
    local_addr: SocketAddr,
    callback_url: Url,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

struct Shared {
    events: mpsc::Sender<ZoneEvent>,
    rejected_total: AtomicU64,
    dropped_total: AtomicU64,
}

impl NotificationListener {
    /// Listens on `addr` (port 0 picks one) and advertises `http://<bound addr><NOTIFICATION_PATH>`.
    pub async fn bind(
        addr: SocketAddr,
    ) -> Result<(Self, mpsc::Receiver<ZoneEvent>), ListenerError> {
        if addr.ip().is_unspecified() {
            return Err(ListenerError::WildcardAddress(addr));
        }
        Self::start(addr, None).await
    }

    /// Listens on `addr` but advertises `callback_base` + [`NOTIFICATION_PATH`], for a node
    /// bound to a wildcard address or reached through a NAT or a Kubernetes Service.
    pub async fn bind_with_callback_base(
        addr: SocketAddr,
        callback_base: Url,
    ) -> Result<(Self, mpsc::Receiver<ZoneEvent>), ListenerError> {
        if callback_base.scheme() != "http" || callback_base.host().is_none() {
            return Err(ListenerError::BadCallbackBase(callback_base.to_string()));
        }
        Self::start(addr, Some(callback_base)).await
    }

    async fn start(
        addr: SocketAddr,
        callback_base: Option<Url>,
    ) -> Result<(Self, mpsc::Receiver<ZoneEvent>), ListenerError> {
        let bind_error = |source| ListenerError::Bind { addr, source };
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(bind_error)?;
        let local_addr = tcp.local_addr().map_err(bind_error)?;
        let base = match callback_base {
            Some(base) => base.as_str().trim_end_matches('/').to_owned(),
            None => format!("http://{local_addr}"),
        };
        let callback_url = Url::parse(&format!("{base}{NOTIFICATION_PATH}"))
            .map_err(|_| ListenerError::BadCallbackBase(base.clone()))?;

        let (events, receiver) = mpsc::channel(EVENT_QUEUE_CAPACITY);
        let shared = Arc::new(Shared {
            events,
            rejected_total: AtomicU64::new(0),
            dropped_total: AtomicU64::new(0),
        });
        let router = Router::new()
            .route(NOTIFICATION_PATH, post(receive_notification))
            .fallback(unknown_path)
            .layer(DefaultBodyLimit::max(MAX_NOTIFICATION_BYTES))
            .with_state(shared.clone());
        let (shutdown, shutdown_signal) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(tcp, router)
                .with_graceful_shutdown(async {
                    let _ = shutdown_signal.await;
                })
                .await;
            if let Err(error) = served {
                tracing::warn!(%error, "Location notification listener stopped");
            }
        });
        tracing::info!(%callback_url, "listening for Location API notifications");
        Ok((
            Self {
                local_addr,
                callback_url,
                shared,
                shutdown: Some(shutdown),
                task: Some(task),
            },
            receiver,
        ))
    }

    /// The URL to give the platform as `callbackReference.notifyURL`.
    pub fn callback_url(&self) -> &Url {
        &self.callback_url
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Notifications answered 400/415 because they were not valid `ZonalPresenceNotification`s.
    pub fn rejected_total(&self) -> u64 {
        self.shared.rejected_total.load(Ordering::Relaxed)
    }

    /// Valid notifications answered 503 because the node's queue was full or closed.
    pub fn dropped_total(&self) -> u64 {
        self.shared.dropped_total.load(Ordering::Relaxed)
    }

    /// Stops accepting notifications and waits for in-flight ones to finish.
    pub async fn shutdown(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for NotificationListener {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

async fn receive_notification(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(rejection) = reject_non_json(&headers) {
        shared.rejected_total.fetch_add(1, Ordering::Relaxed);
        return rejection;
    }
    let event = match zone_event_of(&body) {
        Ok(event) => event,
        Err(detail) => {
            shared.rejected_total.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%detail, "rejected a malformed Location API notification");
            return problem_response(StatusCode::BAD_REQUEST, "Bad Request", detail);
        }
    };
    match shared.events.try_send(event) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => {
            shared.dropped_total.fetch_add(1, Ordering::Relaxed);
            let detail = match error {
                mpsc::error::TrySendError::Full(_) => "the node's notification queue is full",
                mpsc::error::TrySendError::Closed(_) => "the node no longer reads notifications",
            };
            problem_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                detail,
            )
        }
    }
}

async fn unknown_path() -> Response {
    problem_response(
        StatusCode::NOT_FOUND,
        "Not Found",
        format!("notifications are accepted at {NOTIFICATION_PATH} only"),
    )
}

/// The event in a notification body, or a detail for the 400 naming what is wrong.
pub(crate) fn zone_event_of(body: &[u8]) -> Result<ZoneEvent, String> {
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    let parsed: ZonalPresenceNotificationBody = serde_path_to_error::deserialize(deserializer)
        .map_err(|error| {
            let (field, reason) = describe_json_error(&error);
            format!("`{field}`: {reason}")
        })?;
    let notification = parsed.zonal_presence_notification;
    if notification.zone_id.is_empty() {
        return Err("`zonalPresenceNotification.zoneId` is empty".into());
    }
    if !is_uri_address(&notification.address) {
        return Err(format!(
            "`zonalPresenceNotification.address` `{}` is not a URI (e.g. acr:10.0.0.1)",
            notification.address
        ));
    }
    let timestamp = notification.timestamp.to_system_time().ok_or_else(|| {
        format!(
            "`zonalPresenceNotification.timestamp.nanoSeconds` {} is not below one second",
            notification.timestamp.nano_seconds
        )
    })?;
    let subscription_url = notification
        .link
        .iter()
        .find(|link| link.rel == SUBSCRIPTION_LINK_REL)
        .map(|link| link.href.clone());
    Ok(ZoneEvent {
        address: notification.address,
        zone_id: notification.zone_id,
        event: notification.user_event_type,
        current_access_point_id: notification.current_access_point_id,
        previous_access_point_id: notification.previous_access_point_id,
        timestamp,
        subscription_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_a_missing_member() {
        let body = br#"{"zonalPresenceNotification": {"zoneId": "mall", "address": "acr:10.0.0.1",
            "currentAccessPointId": "ap1", "timestamp": {"seconds": 1, "nanoSeconds": 0}}}"#;
        let detail = zone_event_of(body).unwrap_err();
        assert!(
            detail.contains("zonalPresenceNotification.userEventType"),
            "{detail}"
        );
    }

    #[test]
    fn rejects_an_unknown_event_type() {
        let body = br#"{"zonalPresenceNotification": {"zoneId": "mall", "address": "acr:10.0.0.1",
            "userEventType": "Teleporting", "currentAccessPointId": "ap1",
            "timestamp": {"seconds": 1, "nanoSeconds": 0}}}"#;
        let detail = zone_event_of(body).unwrap_err();
        assert!(detail.contains("userEventType"), "{detail}");
    }

    #[test]
    fn reads_the_subscription_link() {
        let body = br#"{"zonalPresenceNotification": {"zoneId": "mall", "address": "acr:10.0.0.1",
            "userEventType": "Entering", "currentAccessPointId": "ap1",
            "timestamp": {"seconds": 1, "nanoSeconds": 0},
            "link": [{"rel": "ZonalTrafficSubscription", "href": "http://mec/sub-1"}]}}"#;
        let event = zone_event_of(body).expect("valid");
        assert_eq!(event.subscription_url.as_deref(), Some("http://mec/sub-1"));
        assert_eq!(event.ue_ip(), Some("10.0.0.1".parse().unwrap()));
    }
}
