//! Zonal-traffic subscriptions end to end: client subscribes, the test server moves a UE and
//! POSTs the spec's notification, the listener turns it into a `ZoneEvent`.

mod common;

use std::time::Duration;

use common::{assert_problem, loopback, mec_server, raw_request};
use edge_location::testing::StatusCode;
use edge_location::{
    ListenerError, LocationClient, LocationError, NotificationListener, UserEventType, ZoneEvent,
};
use http::Method;
use tokio::sync::mpsc;
use url::Url;

async fn next_event(events: &mut mpsc::Receiver<ZoneEvent>) -> ZoneEvent {
    tokio::time::timeout(Duration::from_secs(2), events.recv())
        .await
        .expect("an event within 2 s")
        .expect("listener still running")
}

#[tokio::test]
async fn walking_into_the_mall_notifies_both_zones() {
    let server = mec_server().await;
    server.set_user("acr:10.0.0.1", "default", "cell-9");
    let client = LocationClient::new(server.client_config()).expect("valid config");
    let (listener, mut events) = NotificationListener::bind(loopback()).await.expect("bind");

    let mall = client
        .subscribe_zone("yintai-mall", listener.callback_url())
        .await
        .expect("subscribed");
    assert_eq!(mall.zone_id, "yintai-mall");
    assert_eq!(mall.callback_url, listener.callback_url().as_str());
    assert!(
        mall.resource_url.starts_with(&format!(
            "{}location/v2/subscriptions/zonalTraffic/",
            server.base_url()
        )),
        "{}",
        mall.resource_url
    );
    let street = client
        .subscribe_zone("default", listener.callback_url())
        .await
        .expect("subscribed");
    assert_eq!(server.subscriptions().len(), 2);

    let deliveries = server
        .move_user("acr:10.0.0.1", "yintai-mall", "cell-1")
        .await;
    assert_eq!(deliveries.len(), 2);
    assert!(deliveries.iter().all(|d| d.delivered()), "{deliveries:?}");
    assert!(deliveries
        .iter()
        .all(|d| d.result.as_ref().ok() == Some(&StatusCode::NO_CONTENT)));

    let leaving = next_event(&mut events).await;
    assert_eq!(leaving.event, UserEventType::Leaving);
    assert_eq!(leaving.zone_id, "default");
    assert_eq!(
        leaving.subscription_url.as_deref(),
        Some(street.resource_url.as_str())
    );

    let entering = next_event(&mut events).await;
    assert_eq!(entering.event, UserEventType::Entering);
    assert_eq!(entering.zone_id, "yintai-mall");
    assert_eq!(entering.ue_ip(), Some("10.0.0.1".parse().unwrap()));
    assert_eq!(entering.current_access_point_id, "cell-1");
    assert_eq!(entering.previous_access_point_id.as_deref(), Some("cell-9"));
    assert_eq!(
        entering.subscription_url.as_deref(),
        Some(mall.resource_url.as_str())
    );

    // The query agrees with the notification.
    let fix = client
        .user_zone("10.0.0.1".parse().unwrap())
        .await
        .expect("known");
    assert_eq!(fix.zone_id, "yintai-mall");
}

#[tokio::test]
async fn access_point_change_inside_a_zone_is_transferring() {
    let server = mec_server().await;
    server.set_user("acr:10.0.0.3", "yintai-mall", "cell-1");
    let client = LocationClient::new(server.client_config()).expect("valid config");
    let (listener, mut events) = NotificationListener::bind(loopback()).await.expect("bind");
    client
        .subscribe_zone("yintai-mall", listener.callback_url())
        .await
        .expect("subscribed");

    server
        .move_user("acr:10.0.0.3", "yintai-mall", "cell-2")
        .await;
    let event = next_event(&mut events).await;
    assert_eq!(event.event, UserEventType::Transferring);
    assert_eq!(event.zone_id, "yintai-mall");
    assert_eq!(event.current_access_point_id, "cell-2");
}

#[tokio::test]
async fn unsubscribe_stops_notifications() {
    let server = mec_server().await;
    server.set_user("acr:10.0.0.1", "default", "cell-9");
    let client = LocationClient::new(server.client_config()).expect("valid config");
    let (listener, mut events) = NotificationListener::bind(loopback()).await.expect("bind");
    let subscription = client
        .subscribe_zone("yintai-mall", listener.callback_url())
        .await
        .expect("subscribed");

    client
        .unsubscribe(&subscription)
        .await
        .expect("unsubscribed");
    assert!(server.subscriptions().is_empty());

    let deliveries = server
        .move_user("acr:10.0.0.1", "yintai-mall", "cell-1")
        .await;
    assert!(deliveries.is_empty(), "{deliveries:?}");
    // move_user returns after delivering, so anything sent would already be queued.
    assert!(matches!(
        events.try_recv(),
        Err(mpsc::error::TryRecvError::Empty)
    ));

    match client.unsubscribe(&subscription).await.unwrap_err() {
        LocationError::UnknownSubscription { resource_url } => {
            assert_eq!(resource_url, subscription.resource_url)
        }
        other => panic!("expected UnknownSubscription, got {other:?}"),
    }
}

#[tokio::test]
async fn subscribe_failure_quotes_the_problem() {
    let server = mec_server().await;
    server.fail_next(StatusCode::SERVICE_UNAVAILABLE);
    let client = LocationClient::new(server.client_config()).expect("valid config");
    let callback = Url::parse("http://127.0.0.1:9/cb").expect("literal URL");
    let error = client
        .subscribe_zone("yintai-mall", &callback)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("503") && error.to_string().contains("\"Service Unavailable\""),
        "{error}"
    );
    assert!(server.subscriptions().is_empty());
}

#[tokio::test]
async fn listener_rejects_garbage_with_problem_details() {
    let (listener, mut events) = NotificationListener::bind(loopback()).await.expect("bind");
    let url = listener.callback_url().as_str().to_owned();

    let garbage = raw_request(Method::POST, &url, Some("application/json"), "garbage").await;
    assert_problem(&garbage, StatusCode::BAD_REQUEST, "(body)");

    let missing = raw_request(
        Method::POST,
        &url,
        Some("application/json"),
        r#"{"zonalPresenceNotification": {"zoneId": "mall", "address": "acr:10.0.0.1",
            "userEventType": "Entering", "timestamp": {"seconds": 1, "nanoSeconds": 0}}}"#,
    )
    .await;
    assert_problem(
        &missing,
        StatusCode::BAD_REQUEST,
        "zonalPresenceNotification.currentAccessPointId",
    );

    let not_a_uri = raw_request(
        Method::POST,
        &url,
        Some("application/json"),
        r#"{"zonalPresenceNotification": {"zoneId": "mall", "address": "10.0.0.1",
            "userEventType": "Entering", "currentAccessPointId": "ap1",
            "timestamp": {"seconds": 1, "nanoSeconds": 0}}}"#,
    )
    .await;
    assert_problem(&not_a_uri, StatusCode::BAD_REQUEST, "is not a URI");

    let text = raw_request(Method::POST, &url, Some("text/plain"), "{}").await;
    assert_problem(
        &text,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "application/json",
    );

    let wrong_method = raw_request(Method::GET, &url, None, "").await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);

    let elsewhere = format!("http://{}/other", listener.local_addr());
    let unknown = raw_request(Method::POST, &elsewhere, Some("application/json"), "{}").await;
    assert_problem(
        &unknown,
        StatusCode::NOT_FOUND,
        "notifications are accepted at",
    );

    assert_eq!(listener.rejected_total(), 4);
    assert!(matches!(
        events.try_recv(),
        Err(mpsc::error::TryRecvError::Empty)
    ));

    // A valid one still goes through after the garbage.
    let valid = raw_request(
        Method::POST,
        &url,
        Some("application/json"),
        r#"{"zonalPresenceNotification": {"zoneId": "mall", "address": "acr:10.0.0.1",
            "userEventType": "Leaving", "currentAccessPointId": "ap1",
            "timestamp": {"seconds": 1700000000, "nanoSeconds": 0}}}"#,
    )
    .await;
    assert_eq!(valid.status, StatusCode::NO_CONTENT);
    assert_eq!(next_event(&mut events).await.event, UserEventType::Leaving);
}

#[tokio::test]
async fn listener_answers_503_once_the_node_stops_reading() {
    let (listener, events) = NotificationListener::bind(loopback()).await.expect("bind");
    drop(events);
    let reply = raw_request(
        Method::POST,
        listener.callback_url().as_str(),
        Some("application/json"),
        r#"{"zonalPresenceNotification": {"zoneId": "mall", "address": "acr:10.0.0.1",
            "userEventType": "Entering", "currentAccessPointId": "ap1",
            "timestamp": {"seconds": 1, "nanoSeconds": 0}}}"#,
    )
    .await;
    assert_problem(&reply, StatusCode::SERVICE_UNAVAILABLE, "no longer reads");
    assert_eq!(listener.dropped_total(), 1);
}

#[tokio::test]
async fn wildcard_bind_needs_an_explicit_callback_base() {
    let wildcard = "0.0.0.0:0".parse().expect("literal");
    assert!(matches!(
        NotificationListener::bind(wildcard).await,
        Err(ListenerError::WildcardAddress(_))
    ));
    let base = Url::parse("http://edge-node.site.local:9000").expect("literal URL");
    let (listener, _events) = NotificationListener::bind_with_callback_base(wildcard, base)
        .await
        .expect("bind");
    assert_eq!(
        listener.callback_url().as_str(),
        "http://edge-node.site.local:9000/mec/location/notifications"
    );
    listener.shutdown().await;
}
