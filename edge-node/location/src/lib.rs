//! Where is the viewer: the node's client of the ETSI MEC 013 Location API.
//!
//! Implements **ETSI GS MEC 013 V2.2.1** (Location API, OpenAPI `LocationAPI.json` of
//! `forge.etsi.org/rep/mec/gs013-location-api`, API version `location/v2`), the resources the
//! node needs:
//! - `GET {apiRoot}/location/v2/queries/users?address=acr:<UE IP>`: the UE's zone and access
//!   point ([`LocationClient::user_zone`]);
//! - `POST {apiRoot}/location/v2/subscriptions/zonalTraffic` and `DELETE` of its
//!   `resourceURL`: zone presence ([`LocationClient::subscribe_zone`],
//!   [`LocationClient::unsubscribe`]); the platform POSTs `zonalPresenceNotification`s to a
//!   [`NotificationListener`], which yields [`ZoneEvent`]s.
//!
//! Data flow: viewer join → (off the frame path) `user_zone` → zone → render group. Zone
//! notifications → `ZoneEvent` → the node moves the viewer's group at the next IDR.
//!
//! **Never call this from the frame path.** Every call is async and bounded end to end by
//! [`LocationConfig::timeout`] (300 ms by default), and every failure is a typed
//! [`LocationError`] whose [`kind`](LocationError::kind) labels a fallback metric; the caller
//! falls back (lat/lon, hint, default zone) rather than waiting.
//!
//! [`testing::MecServer`] is a real HTTP server following the same spec, for tests and the
//! `mec-location-server` binary.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use edge_location::testing::MecServer;
//! use edge_location::{LocationClient, NotificationListener, UserEventType};
//!
//! let mec = MecServer::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
//! mec.set_user("acr:10.0.0.1", "default", "cell-9");
//!
//! let client = LocationClient::new(mec.client_config()).unwrap();
//! let zone = match client.user_zone("10.0.0.1".parse().unwrap()).await {
//!     Ok(fix) => fix.zone_id,
//!     // The node falls back here (lat/lon, hint, default) and counts `error.kind()`.
//!     Err(error) => panic!("{error}"),
//! };
//! assert_eq!(zone, "default");
//!
//! let (listener, mut events) = NotificationListener::bind("127.0.0.1:0".parse().unwrap())
//!     .await
//!     .unwrap();
//! client.subscribe_zone("yintai-mall", listener.callback_url()).await.unwrap();
//! mec.move_user("acr:10.0.0.1", "yintai-mall", "cell-1").await;
//! let event = events.recv().await.unwrap();
//! assert_eq!((event.zone_id.as_str(), event.event), ("yintai-mall", UserEventType::Entering));
//! # }
//! ```

mod address;
mod client;
mod config;
mod error;
mod listener;
pub mod model;
mod problem;
pub mod testing;
mod transport;

pub use address::{acr_address, ip_of_acr_address};
pub use client::{GeoPoint, LocationClient, Subscription, UserFix};
pub use config::{LocationConfig, DEFAULT_API_ROOT, DEFAULT_TIMEOUT};
pub use error::LocationError;
pub use listener::{
    ListenerError, NotificationListener, ZoneEvent, EVENT_QUEUE_CAPACITY, NOTIFICATION_PATH,
};
pub use model::{ProblemDetails, UserEventType};

/// The parsers of bytes a MEC server or notifier sends, for the fuzz targets in `fuzz/`:
/// each must return an error, never panic, whatever the body.
#[doc(hidden)]
pub mod fuzzing {
    use crate::model::{UserListBody, ZonalTrafficSubscriptionBody};

    /// A `GET /queries/users` reply, read as the client reads it (every user's fix).
    pub fn user_list_reply(body: &[u8]) {
        if let Ok(list) = crate::transport::parse_json::<UserListBody>("fuzz", body) {
            for (index, user) in list.user_list.user.iter().enumerate() {
                let _ = crate::client::user_fix_of("fuzz", index, user);
            }
        }
    }

    /// A `POST /subscriptions/zonalTraffic` reply and an error body's problem details.
    pub fn subscription_reply(body: &[u8]) {
        let _ = crate::transport::parse_json::<ZonalTrafficSubscriptionBody>("fuzz", body);
        let _ = crate::transport::problem_of(body);
    }

    /// A zonal-presence notification POSTed to the listener.
    pub fn notification(body: &[u8]) -> Result<(), String> {
        crate::listener::zone_event_of(body).map(|_| ())
    }
}
