//! The viewer page the node serves at `/`, in a real browser: Debian's Chromium driven by
//! `web/test/browser.mjs` (playwright-core) against a real delivery server publishing real
//! H.264 with the frame-clock SEI. Needs `scripts/setup-web.sh` (Chromium, `npm ci`, the page
//! bundle); without it these tests fail and say so.
//!
//! Figures are the page's own, measured in the page from the SEI clock (same machine, same
//! clock): SEI → decoded p99 ≤ 30 ms, SEI → drawn p50 ≤ 25 ms and p99 ≤ 50 ms.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use edge_deliver::{Refusal, SessionRouter, VideoTrackInfo, ViewerRequest};
use serde_json::Value;

const SEI_TO_DECODED_P99_MS: f64 = 30.0;
const SEI_TO_DRAWN_P50_MS: f64 = 25.0;
const SEI_TO_DRAWN_P99_MS: f64 = 50.0;
const MIN_DRAWN_SHARE: f64 = 0.95;
const MEASURE_SECONDS: u32 = 10;

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web")
}

/// Runs `web/test/browser.mjs` and returns its result object. The script bounds its own run
/// (90 s); the deadline here only catches a script that ignores it.
async fn browser(args: &[&str]) -> Value {
    let web = web_dir();
    for (needed, what) in [
        (web.join("dist/index.html"), "the page bundle"),
        (web.join("node_modules/playwright-core"), "npm ci in web/"),
        (PathBuf::from("/usr/bin/chromium"), "Debian's chromium"),
    ] {
        assert!(
            needed.exists(),
            "{} is missing ({what}): run scripts/setup-web.sh",
            needed.display()
        );
    }
    let mut command = Command::new("node");
    command.arg(web.join("test/browser.mjs")).args(args);
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::task::spawn_blocking(move || command.output()),
    )
    .await
    .expect("browser script ends within its own limit")
    .expect("browser script thread")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "browser script failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    if !stderr.trim().is_empty() {
        eprintln!("browser script stderr:\n{stderr}");
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("EDGE_BROWSER_RESULT "))
        .unwrap_or_else(|| panic!("no result line in:\n{stdout}"));
    serde_json::from_str(line).expect("result is JSON")
}

fn figure(result: &Value, metric: &str, stat: &str) -> f64 {
    result[metric][stat]
        .as_f64()
        .unwrap_or_else(|| panic!("{metric}.{stat} missing in {result}"))
}

/// A 720p30 clip looped for longer than any test here runs.
async fn publishing_server(
    router: Arc<dyn SessionRouter>,
) -> (edge_deliver::DeliveryServer, Pacer) {
    let server = loopback_server(router).await;
    let clip = h264_clip(1280, 720, 4, &[]);
    let publisher = server
        .publish_rendering(
            "main",
            VideoTrackInfo {
                width: 1280,
                height: 720,
                fps: 30.0,
            },
        )
        .expect("publish");
    let pacer = Pacer::start(publisher, access_units(&clip), 30.0, 30);
    (server, pacer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_at_root_plays_every_frame_within_the_latency_targets() {
    init_tracing();
    let (server, pacer) = publishing_server(Arc::new(FixedRouter("main"))).await;
    let port = server.local_addr().port();
    let page = format!("http://127.0.0.1:{port}/?zone=yintai-mall");
    let screenshot = std::env::var("EDGE_VIEWER_SCREENSHOT")
        .unwrap_or_else(|_| format!("{}/viewer-phone.png", env!("CARGO_TARGET_TMPDIR")));
    let seconds = MEASURE_SECONDS.to_string();
    let result = browser(&["play", &page, &seconds, &screenshot]).await;
    let sent = pacer.sent();
    pacer.finish();
    server.shutdown(0, "test over").await;

    // Every source frame whose clock falls inside the measured span should have been drawn.
    let drawn: HashSet<u64> = result["drawnSeiUs"]
        .as_array()
        .expect("drawnSeiUs")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    let (first, last) = (
        drawn.iter().min().copied().expect("frames were drawn"),
        drawn.iter().max().copied().expect("frames were drawn"),
    );
    let in_span: Vec<u64> = sent
        .iter()
        .map(|s| s.sei_unix_us)
        .filter(|t| (first..=last).contains(t))
        .collect();
    let drawn_in_span = in_span.iter().filter(|t| drawn.contains(t)).count();
    let share = drawn_in_span as f64 / in_span.len().max(1) as f64;
    let span_s = (last - first) as f64 / 1e6;

    let decoded_p99 = figure(&result, "seiToDecodedMs", "p99");
    let drawn_p50 = figure(&result, "seiToDrawnMs", "p50");
    let drawn_p99 = figure(&result, "seiToDrawnMs", "p99");
    println!(
        "viewer page over {span_s:.1} s: {drawn_in_span}/{} source frames drawn ({:.1}%); \
         SEI→received p50 {:.1} ms p99 {:.1} ms; SEI→decoded p50 {:.1} ms p99 {decoded_p99:.1} ms; \
         SEI→drawn p50 {drawn_p50:.1} ms p99 {drawn_p99:.1} ms; SEI→painted (next animation \
         frame) p50 {:.1} ms p99 {:.1} ms; late drops {}, queue drops {}, decode errors {}; \
         screenshot {}",
        in_span.len(),
        share * 100.0,
        figure(&result, "seiToReceivedMs", "p50"),
        figure(&result, "seiToReceivedMs", "p99"),
        figure(&result, "seiToDecodedMs", "p50"),
        figure(&result, "seiToPaintedMs", "p50"),
        figure(&result, "seiToPaintedMs", "p99"),
        result["droppedLate"],
        result["droppedQueue"],
        result["decodeErrors"],
        screenshot,
    );
    assert!(
        span_s >= f64::from(MEASURE_SECONDS) - 1.0,
        "measured only {span_s:.1} s"
    );
    assert!(
        share >= MIN_DRAWN_SHARE,
        "only {:.1}% of source frames drawn",
        share * 100.0
    );
    assert!(
        decoded_p99 <= SEI_TO_DECODED_P99_MS,
        "SEI→decoded p99 {decoded_p99:.1} ms > {SEI_TO_DECODED_P99_MS} ms"
    );
    assert!(
        drawn_p50 <= SEI_TO_DRAWN_P50_MS,
        "SEI→drawn p50 {drawn_p50:.1} ms > {SEI_TO_DRAWN_P50_MS} ms"
    );
    assert!(
        drawn_p99 <= SEI_TO_DRAWN_P99_MS,
        "SEI→drawn p99 {drawn_p99:.1} ms > {SEI_TO_DRAWN_P99_MS} ms"
    );
}

/// Admits nobody, with the words an operator's node would use.
struct NobodyRouter;

const REFUSAL: &str = "over the frame budget, node full: no room for another rendering";

impl SessionRouter for NobodyRouter {
    fn route(&self, _request: &ViewerRequest) -> Result<String, Refusal> {
        Err(Refusal::new(REFUSAL))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_viewer_sees_the_nodes_reason() {
    init_tracing();
    let server = loopback_server(Arc::new(NobodyRouter)).await;
    let page = format!("http://127.0.0.1:{}/", server.local_addr().port());
    let result = browser(&["refused", &page]).await;
    server.shutdown(0, "test over").await;
    println!("refused page: {result}");
    assert_eq!(result["refusal"], REFUSAL, "{result}");
    assert!(
        result["detail"]
            .as_str()
            .unwrap_or_default()
            .contains(REFUSAL),
        "the reason is on the page: {result}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_moq_watch_element_still_plays_the_node() {
    init_tracing();
    let (server, pacer) = publishing_server(Arc::new(FixedRouter("main"))).await;
    let node = format!("http://127.0.0.1:{}/", server.local_addr().port());
    let result = browser(&["watch", &node, "5"]).await;
    pacer.finish();
    server.shutdown(0, "test over").await;
    let decoded = result["decoded"].as_u64().expect("decoded count");
    println!("@moq/watch 0.4.6 decoded {decoded} frames in 5 s");
    // 30 fps for 5 s; the player may skip a little while it settles its buffer.
    assert!(
        decoded >= 135,
        "@moq/watch decoded only {decoded} frames in 5 s"
    );
}
