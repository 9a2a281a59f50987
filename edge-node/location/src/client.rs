//! The Location API client: where is a UE now, and tell me when UEs enter or leave a zone.
//!
//! Every call is async and bounded by [`LocationConfig::timeout`] end to end. The node must still
//! call it off the frame path (a viewer-join task, not a render tick): a timeout bounds the wait,
//! it does not make a network round trip free.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use http::header::LOCATION;
use http::{Method, StatusCode};
use url::Url;

use crate::address::acr_address;
use crate::config::LocationConfig;
use crate::error::LocationError;
use crate::model::{
    CallbackReference, LocationInfo, UserEventType, UserInfo, UserListBody,
    ZonalTrafficSubscription, ZonalTrafficSubscriptionBody,
};
use crate::transport::{parse_json, status_error, Reply, Transport};

/// Where the Location API last saw a UE.
#[derive(Debug, Clone, PartialEq)]
pub struct UserFix {
    /// The UE's address as the API spells it, e.g. `acr:10.0.0.1`.
    pub address: String,
    pub zone_id: String,
    /// For a cellular access point this is the cell identity; MEC 013 has no separate cell field.
    pub access_point_id: String,
    /// When the platform took the fix.
    pub timestamp: SystemTime,
    /// The point fix, when the platform reports one (`locationInfo`, not a polygon).
    pub location: Option<GeoPoint>,
    /// Free text such as a floor or aisle (`contextLocationInfo`).
    pub context_location_info: Option<String>,
}

/// WGS84 degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoPoint {
    pub latitude: f64,
    pub longitude: f64,
}

/// A zonal-traffic subscription held on the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The subscription's own URL (`resourceURL`), used to cancel it.
    pub resource_url: String,
    pub zone_id: String,
    pub callback_url: String,
    /// Seconds the platform will keep the subscription, when it says (`duration`).
    pub duration_s: Option<u32>,
}

pub struct LocationClient {
    transport: Transport,
    api_base: String,
    timeout: Duration,
}

impl LocationClient {
    pub fn new(config: LocationConfig) -> Result<Self, LocationError> {
        let api_base = config.api_base()?;
        let transport = Transport::new(config.timeout, config.bearer_token.as_deref())?;
        Ok(Self {
            transport,
            api_base,
            timeout: config.timeout,
        })
    }

    /// The bound on every call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The zone of the UE with this IP: `GET /queries/users?address=acr:<ip>`.
    pub async fn user_zone(&self, ue_ip: IpAddr) -> Result<UserFix, LocationError> {
        self.user_fix(&acr_address(ue_ip)).await
    }

    /// Same as [`user_zone`](Self::user_zone) for any address URI (`acr:`, `sip:`, `tel:`).
    pub async fn user_fix(&self, address: &str) -> Result<UserFix, LocationError> {
        let mut url = self.endpoint("/queries/users")?;
        url.query_pairs_mut().append_pair("address", address);
        let reply = self
            .transport
            .exchange(Method::GET, url.as_str(), None)
            .await?;
        match reply.status {
            StatusCode::OK => {
                let body: UserListBody = parse_json(&reply.url, &reply.body)?;
                let (index, user) = body
                    .user_list
                    .user
                    .iter()
                    .enumerate()
                    .find(|(_, user)| user.address == address)
                    .ok_or_else(|| LocationError::UnknownUser {
                        address: address.to_owned(),
                    })?;
                user_fix_of(&reply.url, index, user)
            }
            StatusCode::NOT_FOUND => Err(LocationError::UnknownUser {
                address: address.to_owned(),
            }),
            _ => Err(status_error(&reply)),
        }
    }

    /// Subscribes to every UE entering, leaving or moving within `zone_id`; the platform will
    /// POST `ZonalPresenceNotification`s to `callback_url` (see
    /// [`NotificationListener`](crate::NotificationListener)).
    pub async fn subscribe_zone(
        &self,
        zone_id: &str,
        callback_url: &Url,
    ) -> Result<Subscription, LocationError> {
        if zone_id.is_empty() {
            return Err(LocationError::Config("zone_id must not be empty".into()));
        }
        let request = ZonalTrafficSubscriptionBody {
            zonal_traffic_subscription: ZonalTrafficSubscription {
                callback_reference: CallbackReference {
                    notify_url: callback_url.to_string(),
                    callback_data: None,
                    notification_format: None,
                },
                zone_id: zone_id.to_owned(),
                client_correlator: None,
                duration: None,
                interest_realm: None,
                user_event_criteria: Some(UserEventType::ALL.to_vec()),
                resource_url: None,
            },
        };
        let json = serde_json::to_vec(&request).expect("subscription body is plain data");
        let url = self.endpoint("/subscriptions/zonalTraffic")?;
        let reply = self
            .transport
            .exchange(Method::POST, url.as_str(), Some(json))
            .await?;
        if reply.status != StatusCode::CREATED && reply.status != StatusCode::OK {
            return Err(status_error(&reply));
        }
        let body: ZonalTrafficSubscriptionBody = parse_json(&reply.url, &reply.body)?;
        let created = body.zonal_traffic_subscription;
        let resource_url = self.resource_url_of(&reply, created.resource_url.as_deref())?;
        Ok(Subscription {
            resource_url,
            zone_id: created.zone_id,
            callback_url: created.callback_reference.notify_url,
            duration_s: created.duration,
        })
    }

    /// Cancels a subscription: `DELETE <resourceURL>`.
    pub async fn unsubscribe(&self, subscription: &Subscription) -> Result<(), LocationError> {
        let reply = self
            .transport
            .exchange(Method::DELETE, &subscription.resource_url, None)
            .await?;
        match reply.status {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(()),
            StatusCode::NOT_FOUND => Err(LocationError::UnknownSubscription {
                resource_url: subscription.resource_url.clone(),
            }),
            _ => Err(status_error(&reply)),
        }
    }

    fn endpoint(&self, path: &str) -> Result<Url, LocationError> {
        let text = format!("{}{path}", self.api_base);
        Url::parse(&text).map_err(|e| LocationError::Config(format!("bad endpoint `{text}`: {e}")))
    }

    /// The subscription URL from the body's `resourceURL`, else the `Location` header; a relative
    /// one is resolved against the request URL.
    fn resource_url_of(
        &self,
        reply: &Reply,
        in_body: Option<&str>,
    ) -> Result<String, LocationError> {
        let from_header = reply
            .headers
            .get(LOCATION)
            .and_then(|value| value.to_str().ok());
        let Some(raw) = in_body.or(from_header) else {
            return Err(LocationError::Malformed {
                url: reply.url.clone(),
                field: "zonalTrafficSubscription.resourceURL".into(),
                reason: "neither the body nor a Location header names the subscription".into(),
            });
        };
        let request_url = Url::parse(&reply.url).expect("the request URL was parsed before");
        request_url
            .join(raw)
            .map(String::from)
            .map_err(|e| LocationError::Malformed {
                url: reply.url.clone(),
                field: "zonalTrafficSubscription.resourceURL".into(),
                reason: format!("`{raw}` is not a URL: {e}"),
            })
    }
}

pub(crate) fn user_fix_of(
    url: &str,
    index: usize,
    user: &UserInfo,
) -> Result<UserFix, LocationError> {
    let malformed = |member: &str, reason: String| LocationError::Malformed {
        url: url.to_owned(),
        field: format!("userList.user[{index}].{member}"),
        reason,
    };
    if user.zone_id.is_empty() {
        return Err(malformed("zoneId", "empty".into()));
    }
    let timestamp = user.timestamp.to_system_time().ok_or_else(|| {
        malformed(
            "timestamp.nanoSeconds",
            format!("{} is not below one second", user.timestamp.nano_seconds),
        )
    })?;
    let location = match &user.location_info {
        Some(info) => point_of(info).map_err(|reason| malformed("locationInfo", reason))?,
        None => None,
    };
    Ok(UserFix {
        address: user.address.clone(),
        zone_id: user.zone_id.clone(),
        access_point_id: user.access_point_id.clone(),
        timestamp,
        location,
        context_location_info: user.context_location_info.clone(),
    })
}

/// The fix as a point; `None` for a polygon (`shape` 7), which has no single point.
fn point_of(info: &LocationInfo) -> Result<Option<GeoPoint>, String> {
    const POLYGON: u8 = 7;
    if info.shape == POLYGON {
        return Ok(None);
    }
    let (Some(&latitude), Some(&longitude)) = (info.latitude.first(), info.longitude.first())
    else {
        return Err("latitude and longitude need one value each".into());
    };
    if !(-90.0..=90.0).contains(&latitude) || !(-180.0..=180.0).contains(&longitude) {
        return Err(format!("({latitude}, {longitude}) is outside WGS84 range"));
    }
    Ok(Some(GeoPoint {
        latitude,
        longitude,
    }))
}
