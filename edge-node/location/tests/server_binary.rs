//! `mec-location-server` as a person runs it: a users file, a port, a query, a move.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::{loopback, raw_request};
use edge_location::{LocationClient, LocationConfig, NotificationListener, UserEventType};
use http::{Method, StatusCode};
use url::Url;

/// Kills the server when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(args: &[&str]) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mec-location-server"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mec-location-server");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut banner = String::new();
    BufReader::new(stdout)
        .read_line(&mut banner)
        .expect("banner line");
    (Running(child), banner)
}

#[tokio::test]
async fn serves_the_users_file_and_moves_users_on_request() {
    let dir = std::env::temp_dir().join(format!("mec-location-server-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let users = dir.join("users.json");
    std::fs::write(
        &users,
        r#"{"users": [{"address": "acr:10.0.0.1", "zoneId": "default", "accessPointId": "cell-9",
                       "latitude": 30.2713, "longitude": 120.1631}]}"#,
    )
    .expect("write users file");
    let port = {
        let probe = std::net::TcpListener::bind(loopback()).expect("bind");
        probe.local_addr().expect("bound").port()
    };
    let listen = format!("127.0.0.1:{port}");
    let (_server, banner) = start(&[
        "--listen",
        &listen,
        "--users",
        users.to_str().expect("utf-8"),
    ]);
    assert!(banner.contains("with 1 users"), "{banner}");

    let base = Url::parse(&format!("http://{listen}")).expect("literal URL");
    let client = LocationClient::new(LocationConfig::new(base.clone())).expect("valid config");
    let fix = client
        .user_zone("10.0.0.1".parse().unwrap())
        .await
        .expect("seeded user");
    assert_eq!(fix.zone_id, "default");
    assert_eq!(fix.location.map(|p| p.longitude), Some(120.1631));

    let (listener, mut events) = NotificationListener::bind(loopback()).await.expect("bind");
    client
        .subscribe_zone("yintai-mall", listener.callback_url())
        .await
        .expect("subscribed");
    let moved = raw_request(
        Method::PUT,
        &format!("{base}_control/users/acr:10.0.0.1"),
        Some("application/json"),
        r#"{"zoneId": "yintai-mall", "accessPointId": "cell-1"}"#,
    )
    .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text);
    assert_eq!(moved.body[0]["status"], 204, "{}", moved.text);
    let event = events.recv().await.expect("notification");
    assert_eq!(event.event, UserEventType::Entering);
    assert_eq!(event.zone_id, "yintai-mall");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_users_file_is_named_and_exits_non_zero() {
    let dir = std::env::temp_dir().join(format!("mec-location-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let users = dir.join("users.json");
    std::fs::write(
        &users,
        r#"{"users": [{"address": "10.0.0.1", "zoneId": "m", "accessPointId": "c"}]}"#,
    )
    .expect("write users file");
    let output = Command::new(env!("CARGO_BIN_EXE_mec-location-server"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--users",
            users.to_str().expect("utf-8"),
        ])
        .output()
        .expect("run mec-location-server");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("users[0].address"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}
