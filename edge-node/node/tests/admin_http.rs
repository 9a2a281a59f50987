//! The admin endpoints a Kubernetes probe and Prometheus use, and a clean exit on SIGTERM.

mod common;

use common::*;
use std::io::{Read, Write};
use std::time::Duration;

fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("admin port open");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn probes_metrics_and_sigterm() {
    let (quic, admin) = (free_port(), free_port());
    let mut cmd = node_command();
    cmd.args([
        "serve",
        "--upstream",
        "testshow://?width=320&height=180&fps=30",
        "--listen",
        &format!("127.0.0.1:{quic}"),
    ])
    .args(["--admin", &format!("127.0.0.1:{admin}")]);
    let mut node = Proc::spawn("edge-node", cmd);
    node.wait_for("edge-node serving at", Duration::from_secs(60));

    assert_eq!(get(admin, "/live"), (200, "live\n".to_string()));
    let (status, body) = get(admin, "/ready");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("first frame: ok") && body.contains("models: disabled"),
        "{body}"
    );

    std::thread::sleep(Duration::from_secs(1));
    let (status, metrics) = get(admin, "/metrics");
    assert_eq!(status, 200);
    for needle in [
        "edge_stage_latency_seconds_bucket{stage=\"compose\",le=\"+Inf\"}",
        "edge_node_latency_seconds_count",
        "edge_frames_total{stage=\"send\"}",
        "edge_viewers 0",
        "edge_render_groups 1",
        "edge_upstream_up 1",
    ] {
        assert!(metrics.contains(needle), "{needle} in /metrics:\n{metrics}");
    }
    assert_eq!(get(admin, "/nope").0, 404);

    // SIGTERM with a viewer connected: readiness turns off, newcomers are refused, the viewer
    // keeps receiving until it leaves, then the node exits 0 (well inside the 20 s grace).
    let url = format!("https://127.0.0.1:{quic}/");
    let mut watching = node_command();
    watching.args(["view", &url, "--duration", "5", "--json"]);
    let mut viewer = Proc::spawn("viewer", watching);
    std::thread::sleep(Duration::from_secs(2));
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &node.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    std::thread::sleep(Duration::from_millis(300));
    let (status, body) = get(admin, "/ready");
    assert_eq!(status, 503, "not ready while draining: {body}");
    assert!(body.contains("not draining: waiting"), "{body}");

    let late = node_command()
        .args(["view", &url, "--duration", "2"])
        .output()
        .unwrap();
    let late_err = String::from_utf8_lossy(&late.stderr);
    assert!(
        !late.status.success() && late_err.contains("draining"),
        "a new viewer is refused with the reason: {late_err}"
    );

    assert!(
        viewer.wait_exit(Duration::from_secs(20)).success(),
        "{}",
        viewer.log_text()
    );
    let report = viewer.log_text();
    let report: serde_json::Value =
        serde_json::from_str(&report[report.find('{').unwrap()..]).unwrap();
    assert!(
        report["frames_received"].as_u64().unwrap() >= 100,
        "served through the drain: {report}"
    );

    let status = node.wait_exit(Duration::from_secs(15));
    assert!(
        status.success(),
        "exit 0 after the drain, got {status}:\n{}",
        node.log_text()
    );
    assert!(
        node.log_text().contains("drain over"),
        "{}",
        node.log_text()
    );
}
