//! The admin endpoints a Kubernetes probe and Prometheus use, and a clean exit on SIGTERM.

mod common;

use common::*;
use std::time::Duration;

fn get(port: u16, path: &str) -> (u16, String) {
    let (status, _, body) = http(port, "GET", path, &[], "");
    (status, body)
}

/// `edge-node serve` on the test show, on ports it picks itself.
fn serve_testshow(mut cmd: std::process::Command) -> ServingNode {
    cmd.args([
        "serve",
        "--upstream",
        "testshow://?width=320&height=180&fps=30",
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
    ]);
    spawn_serving(cmd)
}

#[test]
fn probes_metrics_and_sigterm() {
    let mut node = serve_testshow(node_command());
    let admin = node.admin_port();

    assert_eq!(get(admin, "/live"), (200, "live\n".to_string()));
    let (status, body) = get(admin, "/ready");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("first frame: ok") && body.contains("models: ok"),
        "{body}"
    );

    // A viewer: render groups exist only while someone watches.
    let url = node.url("").to_string();
    let mut watching = node_command();
    watching.args(["view", &url, "--duration", "7", "--json"]);
    let mut viewer = Proc::spawn("viewer", watching);
    // Frames sent to the viewer fill every series below.
    wait_until(
        Duration::from_secs(20),
        "a frame sent to the viewer",
        || {
            node.metric("edge_viewers") == Some(1.0)
                && node
                    .metric("edge_frames_total{stage=\"send\"}")
                    .is_some_and(|n| n > 0.0)
        },
    );
    let (status, metrics) = get(admin, "/metrics");
    assert_eq!(status, 200);
    for needle in [
        "edge_stage_latency_seconds_bucket{stage=\"compose\",le=\"+Inf\"}",
        "edge_node_latency_seconds_count",
        "edge_frames_total{stage=\"send\"}",
        "edge_viewers 1",
        "edge_render_groups 1",
        "edge_upstream_up 1",
    ] {
        assert!(metrics.contains(needle), "{needle} in /metrics:\n{metrics}");
    }
    assert_eq!(get(admin, "/nope").0, 404);

    // SIGTERM with a viewer connected: readiness turns off, newcomers are refused, the viewer
    // keeps receiving until it leaves, then the node exits 0 (well inside the 20 s grace).
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &node.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // Generous deadlines below: each poll ends as soon as its condition holds, and a 2-core
    // machine running other test binaries can be slow to get there.
    wait_until(
        Duration::from_secs(20),
        "/ready answers 503 after SIGTERM",
        || get(admin, "/ready").0 == 503,
    );
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
    // The JSON report starts on a line of its own; log lines before it may contain braces.
    let start = report.find("\n{\n").expect("a JSON report") + 1;
    let report: serde_json::Value = serde_json::from_str(&report[start..]).unwrap();
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
}

const OPERATOR_TOKEN: &str = "operator-token-for-tests-0123";

/// Every metric the operators' dashboards and alerts rely on.
const REQUIRED_METRICS: [&str; 15] = [
    "edge_stage_latency_seconds",
    "edge_node_latency_seconds",
    "edge_frames_total",
    "edge_frames_dropped_total",
    "edge_viewers",
    "edge_render_groups",
    "edge_admission_total",
    "edge_upstream_up",
    "edge_budget_utilization_ratio",
    "edge_mec_requests_total",
    "edge_understanding_inference_seconds",
    "edge_models_loaded",
    "edge_campaign_generation",
    "edge_campaign_reload_total",
    "edge_frames_total{stage=\"ingest\"}",
];

/// The operator API end to end on a real node: the token is required, the session list shows
/// a real viewer (token redacted) and DELETE disconnects it with a code and reason it sees,
/// and `POST /api/v1/drain` drains like SIGTERM and the process exits 0.
#[test]
fn operator_api_sessions_and_drain() {
    let mut cmd = node_command();
    cmd.env("EDGE_NODE_ADMIN_TOKEN", OPERATOR_TOKEN);
    let mut node = serve_testshow(cmd);
    let admin = node.admin_port();
    let bearer = format!("Bearer {OPERATOR_TOKEN}");
    let auth = [("Authorization", bearer.as_str())];

    // Refused without the token and with a wrong one; probes and metrics stay open.
    let (status, head, body) = http(admin, "GET", "/api/v1/sessions", &[], "");
    assert_eq!(status, 401, "{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer realm=\"edge-node\""),
        "{head}"
    );
    assert!(head.contains("application/problem+json"), "{head}");
    let wrong = [("Authorization", "Bearer operator-token-for-tests-0124")];
    let (status, head, _) = http(admin, "GET", "/api/v1/sessions", &wrong, "");
    assert_eq!(status, 401);
    assert!(head.contains("invalid_token"), "{head}");
    let (status, body) = get(admin, "/ready");
    assert_eq!(status, 200, "{body}");

    let (status, _, spec) = http(admin, "GET", "/api/v1/openapi.json", &auth, "");
    assert_eq!(status, 200);
    let spec: serde_json::Value = serde_json::from_str(&spec).expect("OpenAPI is JSON");
    assert_eq!(spec["openapi"], "3.1.0");
    assert!(spec["paths"]["/api/v1/sessions/{id}"]["delete"].is_object());

    let (status, metrics) = get(admin, "/metrics");
    assert_eq!(status, 200);
    for name in REQUIRED_METRICS {
        assert!(metrics.contains(name), "{name} in /metrics:\n{metrics}");
    }

    // A real viewer, listed and then disconnected by the operator.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = node.url("?zone=floor-2&token=viewer-credential");
    let viewer = runtime
        .block_on(edge_deliver::client::subscribe(
            &url,
            edge_deliver::client::ClientOptions {
                cert_sha256: None,
                connect_timeout: Duration::from_secs(10),
            },
        ))
        .expect("viewer connects");

    // The client is through its handshake; the node lists the session once it has routed it.
    wait_until(Duration::from_secs(20), "the viewer is listed", || {
        let (status, _, body) = http(admin, "GET", "/api/v1/sessions", &auth, "");
        status == 200 && body != "{\"sessions\":[]}"
    });
    let (status, _, body) = http(admin, "GET", "/api/v1/sessions", &auth, "");
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.contains("viewer-credential"),
        "tokens never listed: {body}"
    );
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{body}");
    let session = &sessions[0];
    assert_eq!(session["zone"], "floor-2", "{body}");
    assert_eq!(session["transport"], "webtransport");
    assert!(session["query"]
        .as_str()
        .unwrap()
        .contains("token=REDACTED"));
    assert!(session["remote"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert!(session["connected_at"].as_str().unwrap().ends_with('Z'));
    let id = session["id"].as_u64().unwrap();

    let path = format!("/api/v1/sessions/{id}?reason=moved%20to%20another%20node");
    assert_eq!(http(admin, "DELETE", &path, &auth, "").0, 204);
    let closed = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(20), viewer.closed()).await })
        .expect("the viewer sees the close");
    assert_eq!(closed, Some((2, "moved to another node".to_string())));
    assert_eq!(http(admin, "DELETE", &path, &auth, "").0, 404);
    wait_until(Duration::from_secs(20), "session left the list", || {
        http(admin, "GET", "/api/v1/sessions", &auth, "").2 == "{\"sessions\":[]}"
    });
    drop(viewer);

    // Drain through the API: not ready at once, then exit 0.
    let json = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    let (status, _, body) = http(
        admin,
        "POST",
        "/api/v1/drain",
        &json,
        "{\"grace_ms\": 1000}",
    );
    assert_eq!(
        (status, body.as_str()),
        (202, "{\"draining\":true,\"grace_ms\":1000}")
    );
    let (status, body) = get(admin, "/ready");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not draining: waiting"), "{body}");
    let status = node.wait_exit(Duration::from_secs(15));
    assert!(
        status.success(),
        "exit 0 after the API drain, got {status}:\n{}",
        node.log_text()
    );
}

fn serve_with_config(config: &str) -> ServingNode {
    let path = write_node_config("admin", config);
    let mut cmd = node_command();
    cmd.args(["serve", "--config", path.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]);
    spawn_serving(cmd)
}

/// `PUT /api/v1/campaigns` is validated like a file (every problem, with its place) and, when
/// valid, applies at the next frame: the watching viewer's rendering changes group at once.
#[test]
fn campaigns_replaced_through_the_api_apply_at_the_next_frame() {
    let node = serve_with_config(
        "[upstream]\nuri = \"testshow://?width=640&height=360&fps=15\"\n[understanding]\nenabled = false\n",
    );
    let admin = node.admin_port();
    let (status, current) = get(admin, "/api/v1/campaigns");
    assert_eq!(status, 200);
    assert!(current.contains("yintai-mall"), "{current}");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = node.url("?zone=yintai-mall");
    let watcher = runtime.spawn(async move {
        let mut viewer = edge_deliver::client::subscribe(&url, Default::default())
            .await
            .expect("viewer");
        let mut frames = 0u32;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
        while let Ok(Some(_)) = tokio::time::timeout_at(deadline, viewer.next_frame()).await {
            frames += 1;
        }
        frames
    });
    // The viewer's rendering, as the node reports it.
    let rendering = || -> Option<String> {
        let sessions = node.sessions();
        let [session] = &sessions[..] else {
            return None;
        };
        Some(session["rendering"].as_str()?.to_string())
    };
    wait_until(Duration::from_secs(20), "the viewer is served", || {
        rendering().is_some() && node.metric("edge_render_groups") == Some(1.0)
    });
    let before = rendering().expect("one session");
    let decision = &node.sessions()[0]["decision"];
    assert_eq!(
        (&decision["zone"], &decision["zone_source"]),
        (&"yintai-mall".into(), &"hint".into()),
        "the viewer's hint decides its zone: {decision}"
    );

    let broken = current.replace(
        "overlays = [\"yintai-mall-ad\"",
        "overlays = [\"no-such-ad\"",
    );
    assert_ne!(broken, current, "the default names the mall ad");
    let toml = [("Content-Type", "application/toml")];
    let (status, _, body) = http(admin, "PUT", "/api/v1/campaigns", &toml, &broken);
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("no-such-ad") && body.contains(':'),
        "every problem, placed: {body}"
    );

    let cheaper = current.replace("¥168", "¥99");
    assert_ne!(cheaper, current, "the default card costs ¥168");
    let (status, _, body) = http(admin, "PUT", "/api/v1/campaigns", &toml, &cheaper);
    assert_eq!(status, 200, "{body}");
    // The card changed: the viewer moves to a new rendering at the next frame.
    wait_until(Duration::from_secs(5), "the viewer's new rendering", || {
        rendering().is_some_and(|now| now != before)
    });
    let (_, now) = get(admin, "/api/v1/campaigns");
    assert!(now.contains("¥99"), "GET returns what is in force");
    let (_, metrics) = get(admin, "/metrics");
    assert!(metrics.contains("edge_campaign_generation 2"), "{metrics}");
    assert!(
        runtime.block_on(watcher).unwrap() > 45,
        "the viewer kept watching throughout"
    );
}

/// A request the budget cannot carry is refused with the reason, and counted; nobody else slows.
#[test]
fn admission_refuses_what_the_budget_cannot_carry() {
    let node = serve_with_config(
        "[upstream]\nuri = \"testshow://?width=640&height=360&fps=15\"\n[understanding]\nenabled = false\n[budget]\nnode_latency_p99_ms = 0.5\n",
    );
    let admin = node.admin_port();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = node.url("");
    match runtime.block_on(edge_deliver::client::subscribe(&url, Default::default())) {
        Err(edge_deliver::DeliverError::Refused { code, reason }) => {
            assert_eq!(code, edge_deliver::CLOSE_CODE_REFUSED);
            assert!(reason.contains("over the frame budget"), "{reason}");
        }
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(_) => panic!("a 0.5 ms budget cannot carry a 640x360 group"),
    }
    let (_, metrics) = get(admin, "/metrics");
    assert!(
        metrics.contains("edge_admission_total{decision=\"refuse\"} 1"),
        "{metrics}"
    );
}

/// A campaign file edited in place: a broken edit is refused and counted, and the API keeps
/// returning the text in force with its generation; a good edit then applies.
#[test]
fn a_refused_file_edit_is_counted_and_the_api_shows_what_is_in_force() {
    let dir = write_node_config("campaign-file", "")
        .parent()
        .unwrap()
        .to_path_buf();
    let campaigns = dir.join("campaigns.toml");
    let original = edge_campaign::DEFAULT_CAMPAIGNS_TOML;
    std::fs::write(&campaigns, original).unwrap();
    let node = serve_with_config(&format!(
        "[upstream]\nuri = \"testshow://?width=320&height=180&fps=15\"\n[understanding]\nenabled = false\n[campaigns]\nfile = {:?}\nwatch_interval_ms = 100\n",
        campaigns.display().to_string()
    ));
    let admin = node.admin_port();
    let read_back = || {
        let (status, head, body) = http(admin, "GET", "/api/v1/campaigns", &[], "");
        assert_eq!(status, 200, "{body}");
        let etag = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("etag: ")
                    .map(String::from)
            })
            .expect("an ETag");
        (etag, body)
    };
    assert_eq!(read_back(), ("\"1\"".to_string(), original.to_string()));
    let counted = |result: &str| {
        node.metric(&format!(
            "edge_campaign_reload_total{{result=\"{result}\"}}"
        ))
    };
    assert_eq!((counted("ok"), counted("invalid")), (Some(0.0), Some(0.0)));

    let broken = original.replace(
        "overlays = [\"yintai-mall-ad\"",
        "overlays = [\"no-such-ad\"",
    );
    assert_ne!(broken, original, "the default names the mall ad");
    std::fs::write(&campaigns, &broken).unwrap();
    wait_until(Duration::from_secs(10), "the refused edit counted", || {
        counted("invalid") == Some(1.0)
    });
    assert_eq!(
        read_back(),
        ("\"1\"".to_string(), original.to_string()),
        "the API shows what is in force, not the broken file"
    );

    let cheaper = original.replace("¥168", "¥99");
    std::fs::write(&campaigns, &cheaper).unwrap();
    wait_until(Duration::from_secs(10), "the good edit applied", || {
        counted("ok") == Some(1.0)
    });
    assert_eq!(read_back(), ("\"2\"".to_string(), cheaper));
    // The gauge is the frame path's: set when a frame is drawn with the new campaigns.
    wait_until(
        Duration::from_secs(10),
        "the frame path on generation 2",
        || node.metric("edge_campaign_generation") == Some(2.0),
    );
}
