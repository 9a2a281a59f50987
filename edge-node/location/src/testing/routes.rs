//! HTTP handlers of the test Location API server.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use http::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION};
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use serde::{Deserialize, Serialize};
use url::Url;

use super::{Fault, Shared};
use crate::address::is_uri_address;
use crate::config::DEFAULT_API_ROOT;
use crate::model::{
    LocationInfo, NotificationSubscriptionList, NotificationSubscriptionListBody, TimeStamp,
    UserEventType, UserInfo, UserList, UserListBody, ZonalTrafficSubscriptionBody,
};
use crate::problem::{json_response, problem_response, reject_non_json};
use crate::transport::describe_json_error;

const MAX_REQUEST_BYTES: usize = 64 * 1024;
const SUBSCRIPTION_ID_PREFIX: &str = "sub-";
/// `shape` 2 = ELLIPSOID_POINT.
const SHAPE_POINT: u8 = 2;

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(&format!("{DEFAULT_API_ROOT}/queries/users"), get(users_get))
        .route(
            &format!("{DEFAULT_API_ROOT}/subscriptions/zonalTraffic"),
            get(subscriptions_get).post(subscriptions_post),
        )
        .route(
            &format!("{DEFAULT_API_ROOT}/subscriptions/zonalTraffic/{{subscriptionId}}"),
            get(subscription_get).delete(subscription_delete),
        )
        .route("/_control/users/{address}", put(control_move_user))
        .fallback(unknown_resource)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(shared)
}

/// Counts the request, then applies the injected delay, an injected fault and the token check.
async fn gate(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let (delay, fault, token) = {
        let mut state = shared.lock();
        state.requests_served += 1;
        (
            state.delay,
            state.faults.pop_front(),
            state.bearer_token.clone(),
        )
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match fault {
        Some(Fault::Status(status)) => {
            return Some(problem_response(
                status,
                status.canonical_reason().unwrap_or("Injected fault"),
                "fault injected by MecServer::fail_next",
            ))
        }
        Some(Fault::Raw { status, body }) => {
            return Some((status, [(CONTENT_TYPE, "application/json")], body).into_response())
        }
        None => {}
    }
    let expected = token.map(|token| format!("Bearer {token}"));
    match (expected, headers.get(AUTHORIZATION)) {
        (Some(expected), Some(given)) if given.as_bytes() == expected.as_bytes() => None,
        (Some(_), Some(_)) => Some(problem_response(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "the bearer token is not valid",
        )),
        (Some(_), None) => Some(problem_response(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "an Authorization: Bearer header is required",
        )),
        (None, _) => None,
    }
}

fn bad_request(detail: impl Into<String>) -> Response {
    problem_response(StatusCode::BAD_REQUEST, "Bad Request", detail)
}

fn not_found(detail: impl Into<String>) -> Response {
    problem_response(StatusCode::NOT_FOUND, "Not Found", detail)
}

async fn unknown_resource(uri: Uri) -> Response {
    not_found(format!("no Location API resource at {}", uri.path()))
}

/// `GET /queries/users`: filters `address`, `zoneId`, `accessPointId`, each repeatable (the
/// spec's arrays, `form` style) or comma-separated.
async fn users_get(State(shared): State<Arc<Shared>>, headers: HeaderMap, uri: Uri) -> Response {
    if let Some(refusal) = gate(&shared, &headers).await {
        return refusal;
    }
    let mut addresses = Vec::new();
    let mut zone_ids = Vec::new();
    let mut access_point_ids = Vec::new();
    let query = uri.query().unwrap_or("");
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let values = value
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        match key.as_ref() {
            "address" => addresses.extend(values),
            "zoneId" => zone_ids.extend(values),
            "accessPointId" => access_point_ids.extend(values),
            other => {
                return bad_request(format!(
                    "unknown query parameter `{other}`; expected address, zoneId or accessPointId"
                ))
            }
        }
    }
    if let Some(bad) = addresses.iter().find(|a| !is_uri_address(a)) {
        return bad_request(format!(
            "address `{bad}` is not a URI; a UE is addressed as acr:<UE IP address>"
        ));
    }
    let users: Vec<UserInfo> = {
        let state = shared.lock();
        state
            .users
            .iter()
            .filter(|(address, user)| {
                (addresses.is_empty() || addresses.contains(address))
                    && (zone_ids.is_empty() || zone_ids.contains(&user.zone_id))
                    && (access_point_ids.is_empty()
                        || access_point_ids.contains(&user.access_point_id))
            })
            .map(|(address, user)| UserInfo {
                address: address.clone(),
                access_point_id: user.access_point_id.clone(),
                zone_id: user.zone_id.clone(),
                resource_url: user_resource_url(&shared, address),
                timestamp: TimeStamp::from_system_time(user.updated),
                location_info: user.location.map(|point| LocationInfo {
                    latitude: vec![point.latitude],
                    longitude: vec![point.longitude],
                    shape: SHAPE_POINT,
                    accuracy: None,
                }),
                context_location_info: None,
            })
            .collect()
    };
    if !addresses.is_empty() && users.is_empty() {
        return not_found(format!("no user with address {}", addresses.join(", ")));
    }
    json_response(
        StatusCode::OK,
        &UserListBody {
            user_list: UserList {
                user: users,
                resource_url: shared.api_url("/queries/users"),
            },
        },
    )
}

fn user_resource_url(shared: &Shared, address: &str) -> String {
    let mut url =
        Url::parse(&shared.api_url("/queries/users")).expect("built from a socket address");
    url.query_pairs_mut().append_pair("address", address);
    url.into()
}

async fn subscriptions_get(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = gate(&shared, &headers).await {
        return refusal;
    }
    let subscriptions = shared.lock().subscriptions.values().cloned().collect();
    json_response(
        StatusCode::OK,
        &NotificationSubscriptionListBody {
            notification_subscription_list: NotificationSubscriptionList {
                zonal_traffic_subscription: subscriptions,
                resource_url: shared.api_url("/subscriptions/zonalTraffic"),
            },
        },
    )
}

async fn subscriptions_post(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refusal) = gate(&shared, &headers).await {
        return refusal;
    }
    if let Some(refusal) = reject_non_json(&headers) {
        return refusal;
    }
    let deserializer = &mut serde_json::Deserializer::from_slice(&body);
    let request: ZonalTrafficSubscriptionBody = match serde_path_to_error::deserialize(deserializer)
    {
        Ok(request) => request,
        Err(error) => {
            let (field, reason) = describe_json_error(&error);
            return bad_request(format!("`{field}`: {reason}"));
        }
    };
    let mut subscription = request.zonal_traffic_subscription;
    if subscription.zone_id.is_empty() {
        return bad_request("`zonalTrafficSubscription.zoneId` is empty");
    }
    let notify_url = &subscription.callback_reference.notify_url;
    let callable = Url::parse(notify_url)
        .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some());
    if !callable {
        return bad_request(format!(
            "`zonalTrafficSubscription.callbackReference.notifyURL` `{notify_url}` is not an absolute http(s) URL"
        ));
    }
    let resource_url = {
        let mut state = shared.lock();
        let id = state.next_subscription_id;
        state.next_subscription_id += 1;
        let resource_url = shared.api_url(&format!(
            "/subscriptions/zonalTraffic/{SUBSCRIPTION_ID_PREFIX}{id}"
        ));
        subscription.resource_url = Some(resource_url.clone());
        state.subscriptions.insert(id, subscription.clone());
        resource_url
    };
    let mut response = json_response(
        StatusCode::CREATED,
        &ZonalTrafficSubscriptionBody {
            zonal_traffic_subscription: subscription,
        },
    );
    if let Ok(location) = HeaderValue::from_str(&resource_url) {
        response.headers_mut().insert(LOCATION, location);
    }
    response
}

fn subscription_number(id: &str) -> Option<u64> {
    id.strip_prefix(SUBSCRIPTION_ID_PREFIX)?.parse().ok()
}

async fn subscription_get(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(refusal) = gate(&shared, &headers).await {
        return refusal;
    }
    let found = subscription_number(&id).and_then(|n| shared.lock().subscriptions.get(&n).cloned());
    match found {
        Some(subscription) => json_response(
            StatusCode::OK,
            &ZonalTrafficSubscriptionBody {
                zonal_traffic_subscription: subscription,
            },
        ),
        None => not_found(format!("no zonal traffic subscription `{id}`")),
    }
}

async fn subscription_delete(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(refusal) = gate(&shared, &headers).await {
        return refusal;
    }
    let removed = subscription_number(&id).and_then(|n| shared.lock().subscriptions.remove(&n));
    match removed {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => not_found(format!("no zonal traffic subscription `{id}`")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MoveRequest {
    zone_id: String,
    access_point_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryReport {
    callback_url: String,
    zone_id: String,
    event: UserEventType,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `PUT /_control/users/{address}`: the demo operator's `move_user`.
async fn control_move_user(
    State(shared): State<Arc<Shared>>,
    Path(address): Path<String>,
    body: Bytes,
) -> Response {
    if !is_uri_address(&address) {
        return bad_request(format!(
            "address `{address}` is not a URI (e.g. acr:10.0.0.1)"
        ));
    }
    let deserializer = &mut serde_json::Deserializer::from_slice(&body);
    let request: MoveRequest = match serde_path_to_error::deserialize(deserializer) {
        Ok(request) => request,
        Err(error) => {
            let (field, reason) = describe_json_error(&error);
            return bad_request(format!("`{field}`: {reason}"));
        }
    };
    if request.zone_id.is_empty() || request.access_point_id.is_empty() {
        return bad_request("zoneId and accessPointId must not be empty");
    }
    let deliveries = shared
        .move_user(&address, &request.zone_id, &request.access_point_id)
        .await;
    let reports: Vec<DeliveryReport> = deliveries
        .into_iter()
        .map(|delivery| {
            let (status, error) = match delivery.result {
                Ok(status) => (Some(status.as_u16()), None),
                Err(error) => (None, Some(error.to_string())),
            };
            DeliveryReport {
                callback_url: delivery.callback_url,
                zone_id: delivery.zone_id,
                event: delivery.event,
                status,
                error,
            }
        })
        .collect();
    json_response(StatusCode::OK, &reports)
}
