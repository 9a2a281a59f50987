//! The test server refuses what the spec refuses, with `ProblemDetails`.

mod common;

use common::{assert_problem, mec_server, raw_request};
use edge_location::testing::StatusCode;
use http::Method;

#[tokio::test]
async fn users_query_validates_its_parameters() {
    let server = mec_server().await;
    server.set_user("acr:10.0.0.1", "yintai-mall", "cell-1");
    server.set_user("acr:10.0.0.2", "default", "cell-9");
    let users = format!("{}location/v2/queries/users", server.base_url());

    let bare_ip = raw_request(Method::GET, &format!("{users}?address=10.0.0.1"), None, "").await;
    assert_problem(&bare_ip, StatusCode::BAD_REQUEST, "is not a URI");

    let unknown_param = raw_request(Method::GET, &format!("{users}?ip=10.0.0.1"), None, "").await;
    assert_problem(
        &unknown_param,
        StatusCode::BAD_REQUEST,
        "unknown query parameter `ip`",
    );

    let nobody = raw_request(
        Method::GET,
        &format!("{users}?address=acr%3A10.0.0.7"),
        None,
        "",
    )
    .await;
    assert_problem(&nobody, StatusCode::NOT_FOUND, "acr:10.0.0.7");

    // Without filters the spec lists every user; zoneId filters.
    let all = raw_request(Method::GET, &users, None, "").await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(
        all.body["userList"]["user"].as_array().map(Vec::len),
        Some(2)
    );
    let in_mall = raw_request(
        Method::GET,
        &format!("{users}?zoneId=yintai-mall"),
        None,
        "",
    )
    .await;
    let listed = &in_mall.body["userList"]["user"];
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert_eq!(listed[0]["address"], "acr:10.0.0.1");
    assert_eq!(listed[0]["accessPointId"], "cell-1");
    assert!(listed[0]["timestamp"]["nanoSeconds"].is_u64());
    assert!(listed[0]["resourceURL"].is_string());
}

#[tokio::test]
async fn subscription_requests_are_validated() {
    let server = mec_server().await;
    let subscriptions = format!(
        "{}location/v2/subscriptions/zonalTraffic",
        server.base_url()
    );

    let no_zone = raw_request(
        Method::POST,
        &subscriptions,
        Some("application/json"),
        r#"{"zonalTrafficSubscription": {"callbackReference": {"notifyURL": "http://127.0.0.1:9/cb"}}}"#,
    )
    .await;
    assert_problem(
        &no_zone,
        StatusCode::BAD_REQUEST,
        "zonalTrafficSubscription.zoneId",
    );

    let no_callback = raw_request(
        Method::POST,
        &subscriptions,
        Some("application/json"),
        r#"{"zonalTrafficSubscription": {"zoneId": "yintai-mall"}}"#,
    )
    .await;
    assert_problem(
        &no_callback,
        StatusCode::BAD_REQUEST,
        "zonalTrafficSubscription.callbackReference",
    );

    let relative_callback = raw_request(
        Method::POST,
        &subscriptions,
        Some("application/json"),
        r#"{"zonalTrafficSubscription": {"zoneId": "m", "callbackReference": {"notifyURL": "/cb"}}}"#,
    )
    .await;
    assert_problem(&relative_callback, StatusCode::BAD_REQUEST, "notifyURL");

    let bad_event = raw_request(
        Method::POST,
        &subscriptions,
        Some("application/json"),
        r#"{"zonalTrafficSubscription": {"zoneId": "m", "userEventCriteria": ["Teleporting"],
            "callbackReference": {"notifyURL": "http://127.0.0.1:9/cb"}}}"#,
    )
    .await;
    assert_problem(&bad_event, StatusCode::BAD_REQUEST, "userEventCriteria");

    let text = raw_request(Method::POST, &subscriptions, Some("text/plain"), "{}").await;
    assert_problem(
        &text,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "application/json",
    );

    assert!(server.subscriptions().is_empty());

    let created = raw_request(
        Method::POST,
        &subscriptions,
        Some("application/json"),
        r#"{"zonalTrafficSubscription": {"zoneId": "yintai-mall",
            "callbackReference": {"notifyURL": "http://127.0.0.1:9/cb"}}}"#,
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let resource = created.body["zonalTrafficSubscription"]["resourceURL"]
        .as_str()
        .expect("resourceURL in the answer")
        .to_owned();

    let listed = raw_request(Method::GET, &subscriptions, None, "").await;
    let list = &listed.body["notificationSubscriptionList"];
    assert_eq!(
        list["zonalTrafficSubscription"][0]["resourceURL"],
        resource.as_str()
    );
    assert_eq!(list["resourceURL"], subscriptions.as_str());

    let fetched = raw_request(Method::GET, &resource, None, "").await;
    assert_eq!(
        fetched.body["zonalTrafficSubscription"]["zoneId"],
        "yintai-mall"
    );

    let deleted = raw_request(Method::DELETE, &resource, None, "").await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = raw_request(Method::GET, &resource, None, "").await;
    assert_problem(
        &gone,
        StatusCode::NOT_FOUND,
        "no zonal traffic subscription",
    );
}

#[tokio::test]
async fn unknown_resources_are_problem_404s() {
    let server = mec_server().await;
    let reply = raw_request(
        Method::GET,
        &format!("{}location/v2/queries/nothing", server.base_url()),
        None,
        "",
    )
    .await;
    assert_problem(
        &reply,
        StatusCode::NOT_FOUND,
        "/location/v2/queries/nothing",
    );
}

#[tokio::test]
async fn control_endpoint_moves_a_user_and_reports_deliveries() {
    let server = mec_server().await;
    server.set_user("acr:10.0.0.1", "default", "cell-9");
    let url = format!("{}_control/users/acr:10.0.0.1", server.base_url());
    let reply = raw_request(
        Method::PUT,
        &url,
        Some("application/json"),
        r#"{"zoneId": "yintai-mall", "accessPointId": "cell-1"}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body, serde_json::json!([]));
    assert_eq!(
        server.user("acr:10.0.0.1").map(|u| u.zone_id),
        Some("yintai-mall".to_owned())
    );

    let missing = raw_request(
        Method::PUT,
        &url,
        Some("application/json"),
        r#"{"zoneId": "x"}"#,
    )
    .await;
    assert_problem(&missing, StatusCode::BAD_REQUEST, "accessPointId");
}
