//! `LocationClient::user_zone` against the real test server: success and every failure kind.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use common::{loopback, mec_server};
use edge_location::testing::StatusCode;
use edge_location::{GeoPoint, LocationClient, LocationConfig, LocationError};
use url::Url;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("literal IP")
}

#[tokio::test]
async fn finds_the_zone_of_a_known_ue() {
    let server = mec_server().await;
    server.set_user("acr:10.0.0.1", "yintai-mall", "cell-1");
    server.set_user("acr:10.0.0.2", "default", "cell-9");
    let mall = GeoPoint {
        latitude: 30.2713,
        longitude: 120.1631,
    };
    assert!(server.set_user_location("acr:10.0.0.1", Some(mall)));
    let client = LocationClient::new(server.client_config()).expect("valid config");

    let fix = client.user_zone(ip("10.0.0.1")).await.expect("known user");
    assert_eq!(fix.address, "acr:10.0.0.1");
    assert_eq!(fix.zone_id, "yintai-mall");
    assert_eq!(fix.access_point_id, "cell-1");
    assert_eq!(fix.location, Some(mall));
    let age = SystemTime::now()
        .duration_since(fix.timestamp)
        .expect("fix is not from the future");
    assert!(age < Duration::from_secs(60), "fix is {age:?} old");

    let other = client.user_zone(ip("10.0.0.2")).await.expect("known user");
    assert_eq!(other.zone_id, "default");
    assert_eq!(other.location, None);
}

#[tokio::test]
async fn ipv6_ues_are_addressed_as_acr_uris() {
    let server = mec_server().await;
    server.set_user("acr:2001:db8::7", "yintai-mall", "cell-2");
    let client = LocationClient::new(server.client_config()).expect("valid config");
    let fix = client
        .user_zone(ip("2001:db8::7"))
        .await
        .expect("known user");
    assert_eq!(fix.zone_id, "yintai-mall");
}

#[tokio::test]
async fn unknown_ue_is_a_typed_404() {
    let server = mec_server().await;
    server.set_user("acr:10.0.0.1", "yintai-mall", "cell-1");
    let client = LocationClient::new(server.client_config()).expect("valid config");
    let error = client.user_zone(ip("10.9.9.9")).await.unwrap_err();
    match &error {
        LocationError::UnknownUser { address } => assert_eq!(address, "acr:10.9.9.9"),
        other => panic!("expected UnknownUser, got {other:?}"),
    }
    assert_eq!(error.kind(), "unknown_user");
}

#[tokio::test]
async fn server_error_quotes_the_problem_details_and_is_consumed() {
    let server = mec_server().await;
    server.set_user("acr:10.0.0.1", "yintai-mall", "cell-1");
    server.fail_next(StatusCode::INTERNAL_SERVER_ERROR);
    let client = LocationClient::new(server.client_config()).expect("valid config");

    let error = client.user_zone(ip("10.0.0.1")).await.unwrap_err();
    match &error {
        LocationError::Status {
            status, problem, ..
        } => {
            assert_eq!(*status, 500);
            let problem = problem.as_ref().expect("the server sent ProblemDetails");
            assert_eq!(problem.title.as_deref(), Some("Internal Server Error"));
            assert_eq!(problem.status, Some(500));
        }
        other => panic!("expected Status, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("500") && message.contains("\"Internal Server Error\""),
        "{message}"
    );
    assert!(message.contains("fault injected"), "{message}");

    // One injected fault, one failed call.
    let fix = client
        .user_zone(ip("10.0.0.1"))
        .await
        .expect("fault was consumed");
    assert_eq!(fix.zone_id, "yintai-mall");
}

#[tokio::test]
async fn error_without_problem_details_shows_the_body() {
    let server = mec_server().await;
    server.reply_next_raw(StatusCode::BAD_GATEWAY, "upstream exploded");
    let client = LocationClient::new(server.client_config()).expect("valid config");
    let error = client.user_zone(ip("10.0.0.1")).await.unwrap_err();
    match &error {
        LocationError::Status {
            status,
            problem: None,
            body_excerpt,
            ..
        } => {
            assert_eq!(*status, 502);
            assert_eq!(body_excerpt, "upstream exploded");
        }
        other => panic!("expected Status without ProblemDetails, got {other:?}"),
    }
}

#[tokio::test]
async fn slow_server_times_out_within_the_bound() {
    let server = mec_server().await;
    server.set_user("acr:10.0.0.1", "yintai-mall", "cell-1");
    server.delay(Duration::from_secs(3));
    let mut config = server.client_config();
    config.timeout = Duration::from_millis(300);
    let client = LocationClient::new(config).expect("valid config");

    let started = Instant::now();
    let error = client.user_zone(ip("10.0.0.1")).await.unwrap_err();
    // The server answers after 3 s: a timeout error means the client gave up on its own. How
    // soon after 300 ms is the scheduler's business on a shared machine, not this test's.
    match &error {
        LocationError::Timeout { timeout_ms, .. } => assert_eq!(*timeout_ms, 300),
        other => panic!("expected Timeout, got {other:?}"),
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300),
        "returned before the timeout: {elapsed:?}"
    );
    assert_eq!(error.kind(), "timeout");
}

#[tokio::test]
async fn closed_port_is_connection_refused() {
    // Bind then drop to get a port nobody listens on.
    let port = {
        let listener = std::net::TcpListener::bind(loopback()).expect("bind");
        listener.local_addr().expect("bound").port()
    };
    let url = Url::parse(&format!("http://127.0.0.1:{port}")).expect("literal URL");
    let client = LocationClient::new(LocationConfig::new(url)).expect("valid config");
    let error = client.user_zone(ip("10.0.0.1")).await.unwrap_err();
    assert!(
        matches!(error, LocationError::ConnectionRefused { .. }),
        "expected ConnectionRefused, got {error:?}"
    );
    assert!(
        error.to_string().contains("refused the connection"),
        "{error}"
    );
}

#[tokio::test]
async fn missing_member_is_named() {
    let server = mec_server().await;
    // A user without `zoneId`.
    server.reply_next_raw(
        StatusCode::OK,
        r#"{"userList": {"resourceURL": "http://x/location/v2/queries/users",
            "user": [{"address": "acr:10.0.0.1", "accessPointId": "cell-1",
                      "resourceURL": "http://x/u", "timestamp": {"seconds": 1, "nanoSeconds": 0}}]}}"#,
    );
    let client = LocationClient::new(server.client_config()).expect("valid config");
    let error = client.user_zone(ip("10.0.0.1")).await.unwrap_err();
    match &error {
        LocationError::Malformed { field, reason, .. } => {
            assert_eq!(field, "userList.user[0].zoneId");
            assert!(reason.contains("missing field"), "{reason}");
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
    assert!(
        error.to_string().contains("userList.user[0].zoneId"),
        "{error}"
    );
}

#[tokio::test]
async fn mistyped_member_and_non_json_body_are_malformed() {
    let server = mec_server().await;
    server.reply_next_raw(
        StatusCode::OK,
        r#"{"userList": {"resourceURL": "r", "user": [{"address": "acr:10.0.0.1",
            "accessPointId": "cell-1", "zoneId": "mall", "resourceURL": "u",
            "timestamp": {"seconds": "yesterday", "nanoSeconds": 0}}]}}"#,
    );
    server.reply_next_raw(StatusCode::OK, "<html>maintenance</html>");
    let client = LocationClient::new(server.client_config()).expect("valid config");

    match client.user_zone(ip("10.0.0.1")).await.unwrap_err() {
        LocationError::Malformed { field, .. } => {
            assert_eq!(field, "userList.user[0].timestamp.seconds")
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
    match client.user_zone(ip("10.0.0.1")).await.unwrap_err() {
        LocationError::Malformed { field, .. } => assert_eq!(field, "(body)"),
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[tokio::test]
async fn answer_about_another_user_is_unknown_user() {
    let server = mec_server().await;
    server.reply_next_raw(
        StatusCode::OK,
        r#"{"userList": {"resourceURL": "r", "user": [{"address": "acr:10.0.0.2",
            "accessPointId": "cell-1", "zoneId": "mall", "resourceURL": "u",
            "timestamp": {"seconds": 1, "nanoSeconds": 0}}]}}"#,
    );
    let client = LocationClient::new(server.client_config()).expect("valid config");
    let error = client.user_zone(ip("10.0.0.1")).await.unwrap_err();
    assert!(
        matches!(error, LocationError::UnknownUser { .. }),
        "expected UnknownUser, got {error:?}"
    );
}

#[tokio::test]
async fn bearer_token_is_sent_when_configured() {
    let server = mec_server().await;
    server.set_user("acr:10.0.0.1", "yintai-mall", "cell-1");
    server.require_bearer_token(Some("s3cret"));

    let anonymous = LocationClient::new(server.client_config()).expect("valid config");
    match anonymous.user_zone(ip("10.0.0.1")).await.unwrap_err() {
        LocationError::Status {
            status: 401,
            problem: Some(problem),
            ..
        } => assert_eq!(problem.title.as_deref(), Some("Unauthorized")),
        other => panic!("expected 401, got {other:?}"),
    }

    let mut config = server.client_config();
    config.bearer_token = Some("s3cret".into());
    let authorized = LocationClient::new(config).expect("valid config");
    let fix = authorized
        .user_zone(ip("10.0.0.1"))
        .await
        .expect("token accepted");
    assert_eq!(fix.zone_id, "yintai-mall");
}

#[tokio::test]
async fn https_base_url_is_a_config_error() {
    let url = Url::parse("https://mec.example").expect("literal URL");
    let error = LocationClient::new(LocationConfig::new(url))
        .err()
        .expect("https is refused");
    assert_eq!(error.kind(), "config");
}
