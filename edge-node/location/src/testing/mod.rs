//! A Location API server that follows ETSI GS MEC 013 V2.2.1 for the resources the node uses,
//! over real HTTP, for tests and manual runs (`mec-location-server`).
//!
//! It keeps users (address → zone, access point, optional point fix) and zonal-traffic
//! subscriptions in memory. [`MecServer::move_user`] changes a user's attachment and POSTs the
//! spec's `ZonalPresenceNotification` to every matching subscription. Faults are injected with
//! [`MecServer::fail_next`] and [`MecServer::delay`]; requests are validated as the spec says and
//! refused with `ProblemDetails`.
//!
//! Served under `{base_url}/location/v2`:
//! - `GET /queries/users?address=…&zoneId=…&accessPointId=…` (all filters optional and
//!   repeatable; an `address` filter that matches nobody is a 404);
//! - `GET|POST /subscriptions/zonalTraffic`, `GET|DELETE /subscriptions/zonalTraffic/{id}`.
//!
//! Outside the API, for people driving a demo: `PUT /_control/users/{address}` with
//! `{"zoneId": "...", "accessPointId": "..."}` does what `move_user` does and answers the
//! deliveries.

mod presence;
mod routes;
mod users_file;

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use http::Method;
pub use http::StatusCode;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use url::Url;

pub use users_file::{parse_users_file, SeedUser, UsersFileError};

use crate::client::GeoPoint;
use crate::config::{LocationConfig, DEFAULT_API_ROOT};
use crate::error::LocationError;
use crate::model::{UserEventType, ZonalTrafficSubscription};
use crate::transport::Transport;
use presence::{notifications_for, presence_events, Attachment};

/// How long the server waits for a subscriber to take a notification.
const NOTIFICATION_TIMEOUT: Duration = Duration::from_secs(2);

/// A user as the server holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub zone_id: String,
    pub access_point_id: String,
    pub location: Option<GeoPoint>,
    pub updated: SystemTime,
}

/// What happened to one notification [`MecServer::move_user`] sent.
#[derive(Debug)]
pub struct NotificationDelivery {
    pub callback_url: String,
    pub zone_id: String,
    pub event: UserEventType,
    /// The subscriber's HTTP status, or why there was none.
    pub result: Result<StatusCode, LocationError>,
}

impl NotificationDelivery {
    /// The subscriber answered 2xx.
    pub fn delivered(&self) -> bool {
        matches!(&self.result, Ok(status) if status.is_success())
    }
}

pub struct MecServer {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

pub(crate) struct Shared {
    /// `http://<addr>`: the `apiRoot` clients use.
    base_url: String,
    state: Mutex<ServerState>,
    notifier: Transport,
}

/// An injected answer that replaces the next API request's real one.
#[derive(Debug, Clone)]
enum Fault {
    /// The status with a `ProblemDetails` body.
    Status(StatusCode),
    /// Exactly these bytes as `application/json`, for clients' malformed-body handling.
    Raw { status: StatusCode, body: String },
}

#[derive(Default)]
struct ServerState {
    users: BTreeMap<String, UserRecord>,
    subscriptions: BTreeMap<u64, ZonalTrafficSubscription>,
    next_subscription_id: u64,
    faults: VecDeque<Fault>,
    delay: Duration,
    bearer_token: Option<String>,
    requests_served: u64,
}

impl MecServer {
    /// Serves on `addr` (port 0 picks a free one) until [`shutdown`](Self::shutdown) or drop.
    pub async fn start(addr: SocketAddr) -> io::Result<Self> {
        let tcp = tokio::net::TcpListener::bind(addr).await?;
        let local_addr = tcp.local_addr()?;
        let notifier = Transport::new(NOTIFICATION_TIMEOUT, None)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let shared = Arc::new(Shared {
            base_url: format!("http://{local_addr}"),
            state: Mutex::new(ServerState {
                next_subscription_id: 1,
                ..ServerState::default()
            }),
            notifier,
        });
        let router = routes::router(shared.clone());
        let (shutdown, shutdown_signal) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(tcp, router)
                .with_graceful_shutdown(async {
                    let _ = shutdown_signal.await;
                })
                .await;
            if let Err(error) = served {
                tracing::warn!(%error, "MEC Location API test server stopped");
            }
        });
        Ok(Self {
            local_addr,
            shared,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    /// The `apiRoot` to give [`LocationConfig::base_url`].
    pub fn base_url(&self) -> Url {
        Url::parse(&self.shared.base_url).expect("built from a socket address")
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A client configuration pointing here, with the default timeout.
    pub fn client_config(&self) -> LocationConfig {
        LocationConfig::new(self.base_url())
    }

    /// Places a user without notifying anyone (test setup).
    pub fn set_user(&self, address: &str, zone_id: &str, access_point_id: &str) {
        let mut state = self.shared.lock();
        let location = state.users.get(address).and_then(|user| user.location);
        state.users.insert(
            address.to_owned(),
            UserRecord {
                zone_id: zone_id.to_owned(),
                access_point_id: access_point_id.to_owned(),
                location,
                updated: SystemTime::now(),
            },
        );
    }

    /// Gives a known user a point fix (reported as `locationInfo`); false for an unknown user.
    pub fn set_user_location(&self, address: &str, location: Option<GeoPoint>) -> bool {
        match self.shared.lock().users.get_mut(address) {
            Some(user) => {
                user.location = location;
                true
            }
            None => false,
        }
    }

    pub fn remove_user(&self, address: &str) -> bool {
        self.shared.lock().users.remove(address).is_some()
    }

    pub fn user(&self, address: &str) -> Option<UserRecord> {
        self.shared.lock().users.get(address).cloned()
    }

    /// Moves a user (an unknown one appears) and delivers the notifications this causes, in
    /// order: `Leaving` to the old zone's subscribers, `Entering` to the new zone's, or
    /// `Transferring` for a new access point in the same zone.
    pub async fn move_user(
        &self,
        address: &str,
        zone_id: &str,
        access_point_id: &str,
    ) -> Vec<NotificationDelivery> {
        self.shared
            .move_user(address, zone_id, access_point_id)
            .await
    }

    /// The next API request is answered with `status` and a `ProblemDetails`; calls queue.
    pub fn fail_next(&self, status: StatusCode) {
        self.shared.lock().faults.push_back(Fault::Status(status));
    }

    /// The next API request is answered with `status` and exactly `body` as
    /// `application/json`, valid or not; queues with [`fail_next`](Self::fail_next).
    pub fn reply_next_raw(&self, status: StatusCode, body: &str) {
        self.shared.lock().faults.push_back(Fault::Raw {
            status,
            body: body.to_owned(),
        });
    }

    /// Every API answer waits this long first; `Duration::ZERO` turns it off.
    pub fn delay(&self, delay: Duration) {
        self.shared.lock().delay = delay;
    }

    /// Requires `Authorization: Bearer <token>` on API requests (401 otherwise); `None` turns it off.
    pub fn require_bearer_token(&self, token: Option<&str>) {
        self.shared.lock().bearer_token = token.map(str::to_owned);
    }

    /// The live subscriptions, oldest first, each with its `resourceURL`.
    pub fn subscriptions(&self) -> Vec<ZonalTrafficSubscription> {
        self.shared.lock().subscriptions.values().cloned().collect()
    }

    /// API requests received, faulted ones included.
    pub fn requests_served(&self) -> u64 {
        self.shared.lock().requests_served
    }

    /// Stops serving and waits for in-flight requests.
    pub async fn shutdown(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MecServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ServerState> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn api_url(&self, path: &str) -> String {
        format!("{}{DEFAULT_API_ROOT}{path}", self.base_url)
    }

    async fn move_user(
        &self,
        address: &str,
        zone_id: &str,
        access_point_id: &str,
    ) -> Vec<NotificationDelivery> {
        let now = SystemTime::now();
        let outgoing = {
            let mut state = self.lock();
            let previous = state
                .users
                .get(address)
                .map(|user| (user.zone_id.clone(), user.access_point_id.clone()));
            let location = state.users.get(address).and_then(|user| user.location);
            state.users.insert(
                address.to_owned(),
                UserRecord {
                    zone_id: zone_id.to_owned(),
                    access_point_id: access_point_id.to_owned(),
                    location,
                    updated: now,
                },
            );
            let previous_attachment =
                previous
                    .as_ref()
                    .map(|(zone_id, access_point_id)| Attachment {
                        zone_id,
                        access_point_id,
                    });
            let next = Attachment {
                zone_id,
                access_point_id,
            };
            let events = presence_events(previous_attachment.as_ref(), &next);
            let subscriptions: Vec<_> = state.subscriptions.values().cloned().collect();
            notifications_for(
                &events,
                &subscriptions,
                address,
                previous
                    .as_ref()
                    .map(|(_, access_point_id)| access_point_id.as_str()),
                access_point_id,
                now,
            )
        };
        let mut deliveries = Vec::with_capacity(outgoing.len());
        for notification in outgoing {
            let json = serde_json::to_vec(&notification.body).expect("notification is plain data");
            let result = self
                .notifier
                .exchange(Method::POST, &notification.notify_url, Some(json))
                .await
                .map(|reply| reply.status);
            let sent = &notification.body.zonal_presence_notification;
            if let Err(error) = &result {
                tracing::warn!(%error, url = %notification.notify_url, "notification not delivered");
            }
            deliveries.push(NotificationDelivery {
                callback_url: notification.notify_url,
                zone_id: sent.zone_id.clone(),
                event: sent.user_event_type,
                result,
            });
        }
        deliveries
    }
}
