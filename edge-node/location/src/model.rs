//! Wire types of ETSI GS MEC 013 V2.2.1 (`components/schemas` of LocationAPI.json), limited to the
//! resources this crate uses. Field names follow the spec exactly (`resourceURL`, `nanoSeconds`,
//! `notifyURL`, ...); the client, the notification listener and the test server share them so the
//! three cannot drift apart.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// `TimeStamp`: Unix time split in seconds and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeStamp {
    pub seconds: u64,
    /// The schema names it `nanoSeconds`; the spec's own examples write `nanoseconds`, so both
    /// are accepted on input.
    #[serde(rename = "nanoSeconds", alias = "nanoseconds")]
    pub nano_seconds: u32,
}

impl TimeStamp {
    pub fn from_system_time(time: SystemTime) -> Self {
        let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        Self {
            seconds: since_epoch.as_secs(),
            nano_seconds: since_epoch.subsec_nanos(),
        }
    }

    /// `None` when `nanoSeconds` is not below one second, which the spec's Unix time forbids.
    pub fn to_system_time(self) -> Option<SystemTime> {
        if self.nano_seconds >= 1_000_000_000 {
            return None;
        }
        UNIX_EPOCH.checked_add(Duration::new(self.seconds, self.nano_seconds))
    }
}

/// `ProblemDetails` (IETF RFC 7807) as the spec defines it: every member optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemDetails {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub problem_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

impl ProblemDetails {
    pub fn new(status: u16, title: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            problem_type: None,
            title: Some(title.into()),
            status: Some(status),
            detail: Some(detail.into()),
            instance: None,
        }
    }
}

impl std::fmt::Display for ProblemDetails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.title, &self.detail) {
            (Some(title), Some(detail)) => write!(f, "\"{title}\": {detail}"),
            (Some(title), None) => write!(f, "\"{title}\""),
            (None, Some(detail)) => write!(f, "{detail}"),
            (None, None) => write!(f, "(ProblemDetails without title or detail)"),
        }
    }
}

/// `LocationInfo`, reduced to the members the node can use (a point); the rest is ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocationInfo {
    /// 1..N values; more than one only for a polygon (`shape` 7).
    pub latitude: Vec<f64>,
    pub longitude: Vec<f64>,
    pub shape: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<u32>,
}

/// `UserInfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    pub address: String,
    pub access_point_id: String,
    pub zone_id: String,
    #[serde(rename = "resourceURL")]
    pub resource_url: String,
    pub timestamp: TimeStamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_info: Option<LocationInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_location_info: Option<String>,
}

/// `UserList`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserList {
    #[serde(default)]
    pub user: Vec<UserInfo>,
    #[serde(rename = "resourceURL")]
    pub resource_url: String,
}

/// Body of a 200 answer to `GET /queries/users`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserListBody {
    pub user_list: UserList,
}

/// `UserEventType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UserEventType {
    Entering,
    Leaving,
    Transferring,
}

impl UserEventType {
    pub const ALL: [UserEventType; 3] = [Self::Entering, Self::Leaving, Self::Transferring];
}

/// `CallbackReference`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackReference {
    #[serde(rename = "notifyURL")]
    pub notify_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_format: Option<String>,
}

/// `ZonalTrafficSubscription`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZonalTrafficSubscription {
    pub callback_reference: CallbackReference,
    pub zone_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_correlator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interest_realm: Option<Vec<String>>,
    /// Missing means "every event" (spec, `userEventCriteria` description).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_event_criteria: Option<Vec<UserEventType>>,
    #[serde(
        rename = "resourceURL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub resource_url: Option<String>,
}

impl ZonalTrafficSubscription {
    pub fn wants(&self, event: UserEventType) -> bool {
        self.user_event_criteria
            .as_ref()
            .is_none_or(|criteria| criteria.contains(&event))
    }
}

/// Request and response body of `/subscriptions/zonalTraffic` (the spec wraps the object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZonalTrafficSubscriptionBody {
    pub zonal_traffic_subscription: ZonalTrafficSubscription,
}

/// `NotificationSubscriptionList`, reduced to the zonal-traffic subscriptions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationSubscriptionList {
    #[serde(default)]
    pub zonal_traffic_subscription: Vec<ZonalTrafficSubscription>,
    #[serde(rename = "resourceURL")]
    pub resource_url: String,
}

/// Body of a 200 answer to `GET /subscriptions/zonalTraffic`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationSubscriptionListBody {
    pub notification_subscription_list: NotificationSubscriptionList,
}

/// `Link`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub rel: String,
    pub href: String,
}

/// `ZonalPresenceNotification`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZonalPresenceNotification {
    pub zone_id: String,
    pub address: String,
    pub user_event_type: UserEventType,
    pub current_access_point_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_access_point_id: Option<String>,
    pub timestamp: TimeStamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interest_realm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_data: Option<String>,
    /// The schema says an array of `Link`; the spec's example shows a single object. Both are
    /// read, an array is written.
    #[serde(
        default,
        deserialize_with = "one_or_many_links",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub link: Vec<Link>,
}

/// Body POSTed to the subscriber's `notifyURL`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZonalPresenceNotificationBody {
    pub zonal_presence_notification: ZonalPresenceNotification,
}

/// `rel` of the link a notification carries back to its subscription.
pub const SUBSCRIPTION_LINK_REL: &str = "ZonalTrafficSubscription";

fn one_or_many_links<'de, D>(deserializer: D) -> Result<Vec<Link>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<Link>),
        One(Link),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::Many(links) => links,
        OneOrMany::One(link) => vec![link],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_round_trips_through_system_time() {
        let stamp = TimeStamp {
            seconds: 1_483_231_138,
            nano_seconds: 5,
        };
        let time = stamp.to_system_time().expect("valid timestamp");
        assert_eq!(TimeStamp::from_system_time(time), stamp);
    }

    #[test]
    fn timestamp_rejects_a_full_second_of_nanoseconds() {
        let stamp = TimeStamp {
            seconds: 1,
            nano_seconds: 1_000_000_000,
        };
        assert_eq!(stamp.to_system_time(), None);
    }

    #[test]
    fn spec_example_notification_parses() {
        // The spec's own example: lowercase `nanoseconds` and a single link object.
        let body = r#"{"zonalPresenceNotification": {
            "clientCorrelator": "0123", "zoneId": "zone01", "address": "acr:10.0.0.1",
            "userEventType": "Transferring", "currentAccessPointId": "ap2",
            "previousAccessPointId": "ap1",
            "timestamp": {"seconds": 1483231138, "nanoseconds": 0},
            "link": {"rel": "ZonalTrafficSubscription",
                     "href": "http://meAppServer.example.com/location/v2/subscriptions/zonalTraffic/sub123"}}}"#;
        let parsed: ZonalPresenceNotificationBody = serde_json::from_str(body).expect("parses");
        let notification = parsed.zonal_presence_notification;
        assert_eq!(notification.user_event_type, UserEventType::Transferring);
        assert_eq!(
            notification.previous_access_point_id.as_deref(),
            Some("ap1")
        );
        assert_eq!(notification.link.len(), 1);
        assert_eq!(notification.link[0].rel, SUBSCRIPTION_LINK_REL);
    }

    #[test]
    fn subscription_without_criteria_wants_every_event() {
        let subscription = ZonalTrafficSubscription {
            callback_reference: CallbackReference {
                notify_url: "http://127.0.0.1:1/n".into(),
                callback_data: None,
                notification_format: None,
            },
            zone_id: "zone01".into(),
            client_correlator: None,
            duration: None,
            interest_realm: None,
            user_event_criteria: None,
            resource_url: None,
        };
        assert!(UserEventType::ALL.iter().all(|e| subscription.wants(*e)));
        let leaving_only = ZonalTrafficSubscription {
            user_event_criteria: Some(vec![UserEventType::Leaving]),
            ..subscription
        };
        assert!(leaving_only.wants(UserEventType::Leaving));
        assert!(!leaving_only.wants(UserEventType::Entering));
    }

    #[test]
    fn problem_details_display_quotes_title_and_detail() {
        let problem = ProblemDetails::new(500, "Internal Error", "database down");
        assert_eq!(problem.to_string(), "\"Internal Error\": database down");
    }
}
