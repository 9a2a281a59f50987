//! The viewer page the node serves at `/`, in a real browser: Debian's Chromium driven by
//! `web/test/browser.mjs` (playwright-core) against a real delivery server publishing real
//! H.264 with the frame-clock SEI. Needs `scripts/setup-web.sh` (Chromium, `npm ci`, the page
//! bundle); without it these tests fail and say so.
//!
//! Figures are the page's own, measured in the page from the SEI clock (same machine, same
//! clock): SEI → decoded p99 ≤ 30 ms, SEI → drawn p50 ≤ 25 ms and p99 ≤ 50 ms, in one of up
//! to three 10 s windows (a shared machine's stalls land in some windows).

#[path = "../../node/tests/common/browser.rs"]
mod browser;
mod common;

use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use browser::{browser, browser_with_env, node_js, node_script_lines, web_dir};
use common::*;
use edge_deliver::{Refusal, SessionRouter, VideoTrackInfo, ViewerRequest};
use serde_json::Value;

const SEI_TO_DECODED_P99_MS: f64 = 30.0;
const SEI_TO_DRAWN_P50_MS: f64 = 25.0;
const SEI_TO_DRAWN_P99_MS: f64 = 50.0;
const MIN_DRAWN_SHARE: f64 = 0.95;
const MEASURE_SECONDS: u32 = 10;
/// A shared CI machine sometimes stalls every process for tens of milliseconds, which shows in
/// any one window's p99 (SEI→received, the node's own hand-over, goes up with it). The page
/// must meet the targets in one of this many windows; every window's figures are printed, with
/// the probe's worst stall beside them.
const MEASURE_WINDOWS: u32 = 3;

/// One browser (or Node.js script) at a time: the latency figures are the page's, not those of
/// three Chromiums and three publishers sharing the cores (the tests of one binary run in
/// parallel).
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn figure(result: &Value, metric: &str, stat: &str) -> f64 {
    result[metric][stat]
        .as_f64()
        .unwrap_or_else(|| panic!("{metric}.{stat} missing in {result}"))
}

/// A 720p30 clip looped for longer than any test here runs, as the rendering `main`.
async fn publishing_server(
    router: Arc<dyn SessionRouter>,
) -> (edge_deliver::DeliveryServer, Pacer) {
    publishing_rendering(router, "main").await
}

async fn publishing_rendering(
    router: Arc<dyn SessionRouter>,
    rendering: &str,
) -> (edge_deliver::DeliveryServer, Pacer) {
    let server = loopback_server(router).await;
    let clip = h264_clip(1280, 720, 4, &[]);
    let publisher = server
        .publish_rendering(
            rendering,
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
    let _browser = ONE_BROWSER.lock().await;
    let mut verdicts = Vec::new();
    for window in 1..=MEASURE_WINDOWS {
        let run = play_one_window().await;
        run.assert_plays_correctly();
        let verdict = run.latency_verdict();
        println!(
            "window {window}/{MEASURE_WINDOWS}: {}; {}",
            run.summary,
            verdict
                .as_ref()
                .err()
                .map_or("within the targets", String::as_str)
        );
        match verdict {
            Ok(()) => return,
            Err(why) => verdicts.push(format!("window {window}: {why}")),
        }
    }
    panic!(
        "the page missed its latency targets in every one of {MEASURE_WINDOWS} windows: {}",
        verdicts.join("; ")
    );
}

/// What one measured window of the page playing showed.
struct PageRun {
    result: Value,
    span_s: f64,
    drawn_share: f64,
    summary: String,
}

/// Plays the page against a fresh publishing server for [`MEASURE_SECONDS`], while a probe
/// thread measures how late the machine wakes a sleeping thread.
async fn play_one_window() -> PageRun {
    let (server, pacer) = publishing_server(Arc::new(FixedRouter("main"))).await;
    let port = server.local_addr().port();
    let page = format!("http://127.0.0.1:{port}/?zone=yintai-mall");
    let screenshot = std::env::var("EDGE_VIEWER_SCREENSHOT")
        .unwrap_or_else(|_| format!("{}/viewer-phone.png", env!("CARGO_TARGET_TMPDIR")));
    let seconds = MEASURE_SECONDS.to_string();
    let probe = StallProbe::start();
    let result = browser(&["play", &page, &seconds, &screenshot]).await;
    let worst_stall_ms = probe.finish();
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
    let drawn_share = drawn_in_span as f64 / in_span.len().max(1) as f64;
    let span_s = (last - first) as f64 / 1e6;
    let summary = format!(
        "viewer page over {span_s:.1} s: {drawn_in_span}/{} source frames drawn ({:.1}%); \
         SEI→received p50 {:.1} ms p99 {:.1} ms; SEI→decoded p50 {:.1} ms p99 {:.1} ms; \
         SEI→drawn p50 {:.1} ms p99 {:.1} ms; SEI→painted (next animation frame) p50 {:.1} ms \
         p99 {:.1} ms; late drops {}, queue drops {}, skipped to a keyframe {}, decode errors {}; \
         screenshot {}; the machine woke a sleeping thread up to {worst_stall_ms:.1} ms late; \
         load average {}",
        in_span.len(),
        drawn_share * 100.0,
        figure(&result, "seiToReceivedMs", "p50"),
        figure(&result, "seiToReceivedMs", "p99"),
        figure(&result, "seiToDecodedMs", "p50"),
        figure(&result, "seiToDecodedMs", "p99"),
        figure(&result, "seiToDrawnMs", "p50"),
        figure(&result, "seiToDrawnMs", "p99"),
        figure(&result, "seiToPaintedMs", "p50"),
        figure(&result, "seiToPaintedMs", "p99"),
        result["droppedLate"],
        result["droppedQueue"],
        result["skippedToKeyframe"],
        result["decodeErrors"],
        screenshot,
        // Other work on the machine shows in every figure here: say how busy it was.
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim(),
    );
    PageRun {
        result,
        span_s,
        drawn_share,
        summary,
    }
}

impl PageRun {
    /// What no busy machine excuses: the picture fills the screen, the page measured the whole
    /// window, and nothing failed to decode.
    fn assert_plays_correctly(&self) {
        for orientation in ["portrait", "landscape"] {
            let layout = &self.result["layout"][orientation];
            let viewport = &layout["viewport"];
            assert_eq!(
                (&layout["width"], &layout["height"]),
                (&viewport[0], &viewport[1]),
                "the picture fills the {orientation} screen: {layout}"
            );
        }
        assert!(
            self.span_s >= f64::from(MEASURE_SECONDS) - 1.0,
            "measured only {:.1} s: {}",
            self.span_s,
            self.summary
        );
        assert_eq!(self.result["decodeErrors"], 0, "{}", self.summary);
    }

    /// Whether the frames drawn and the latency figures are within the targets.
    fn latency_verdict(&self) -> Result<(), String> {
        let decoded_p99 = figure(&self.result, "seiToDecodedMs", "p99");
        let drawn_p50 = figure(&self.result, "seiToDrawnMs", "p50");
        let drawn_p99 = figure(&self.result, "seiToDrawnMs", "p99");
        let mut missed = Vec::new();
        if self.drawn_share < MIN_DRAWN_SHARE {
            missed.push(format!(
                "only {:.1}% of source frames drawn",
                self.drawn_share * 100.0
            ));
        }
        for (what, value, limit) in [
            ("SEI→decoded p99", decoded_p99, SEI_TO_DECODED_P99_MS),
            ("SEI→drawn p50", drawn_p50, SEI_TO_DRAWN_P50_MS),
            ("SEI→drawn p99", drawn_p99, SEI_TO_DRAWN_P99_MS),
        ] {
            if value > limit {
                missed.push(format!("{what} {value:.1} ms > {limit} ms"));
            }
        }
        if missed.is_empty() {
            Ok(())
        } else {
            Err(missed.join(", "))
        }
    }
}

/// A thread that sleeps 1 ms at a time and keeps the worst lateness of its wake-ups: how long
/// the machine left a ready thread waiting while a window was measured.
struct StallProbe {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Duration>,
}

impl StallProbe {
    fn start() -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let nap = Duration::from_millis(1);
            let mut worst = Duration::ZERO;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let before = std::time::Instant::now();
                std::thread::sleep(nap);
                worst = worst.max(before.elapsed().saturating_sub(nap));
            }
            worst
        });
        Self { stop, thread }
    }

    /// The worst lateness seen, in milliseconds.
    fn finish(self) -> f64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let worst = self.thread.join().expect("the stall probe does not panic");
        worst.as_secs_f64() * 1000.0
    }
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
    let _browser = ONE_BROWSER.lock().await;
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

/// The same refusal reaches a page on the WebSocket fallback: the node opens the qmux session,
/// then closes it with the code and reason, as it does a WebTransport session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_viewer_on_the_websocket_fallback_sees_the_nodes_reason() {
    init_tracing();
    let _browser = ONE_BROWSER.lock().await;
    let server = loopback_server(Arc::new(NobodyRouter)).await;
    let page = format!("http://127.0.0.1:{}/", server.local_addr().port());
    let result = browser_with_env(
        &["refused", &page],
        &[("EDGE_BROWSER_NO_WEBTRANSPORT", "1")],
    )
    .await;
    server.shutdown(0, "test over").await;
    println!("refused page over WebSocket: {result}");
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
    let _browser = ONE_BROWSER.lock().await;
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

/// The page's state changes, read from `browser.mjs states` as they happen.
struct StateWatch {
    child: std::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<Value>,
}

impl StateWatch {
    fn start(page: &str) -> Self {
        use std::io::BufRead;
        let mut child = Command::new(node_js())
            .arg(web_dir().join("test/browser.mjs"))
            .args(["states", page])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("node runs");
        let stdout = child.stdout.take().expect("piped stdout");
        let (send, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(json) = line.strip_prefix("EDGE_STATE ") {
                    let state = serde_json::from_str(json).expect("state line is JSON");
                    if send.send(state).is_err() {
                        return;
                    }
                }
            }
        });
        Self { child, lines }
    }

    /// Waits for a state named `state`, returning it with its status text.
    async fn expect(&mut self, state: &str, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(next)) if next["state"] == state => return next,
                Ok(Some(next)) => seen.push(next),
                Ok(None) => panic!("the browser script ended before {state}; saw {seen:?}"),
                Err(_) => panic!("no {state} within {within:?}; saw {seen:?}"),
            }
        }
    }
}

impl Drop for StateWatch {
    fn drop(&mut self) {
        // Closing stdin ends the script; it also ends itself after 90 s whatever happens.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_says_when_the_picture_stops_when_the_node_goes_away_and_plays_when_it_returns() {
    init_tracing();
    let _browser = ONE_BROWSER.lock().await;
    let (server, pacer) = publishing_server(Arc::new(FixedRouter("main"))).await;
    let port = server.local_addr().port();
    let page = format!("http://127.0.0.1:{port}/");
    let mut watch = StateWatch::start(&page);
    watch.expect("playing", Duration::from_secs(20)).await;

    // The upstream stops but the node keeps the session (and the rendering): a frozen picture
    // must not pass for a live one.
    let _publisher = pacer.finish();
    let stalled = watch.expect("stalled", Duration::from_secs(5)).await;
    println!("stalled: {stalled}");

    // The node shuts down with a reason: the page says it and retries.
    server.shutdown(1, "node restarting for maintenance").await;
    let reconnecting = watch.expect("reconnecting", Duration::from_secs(5)).await;
    println!("reconnecting: {reconnecting}");
    assert!(
        reconnecting["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("node restarting for maintenance"),
        "the node's reason is on the page: {reconnecting}"
    );

    // The node comes back on the same port (with a new certificate): the page finds it, pins the
    // new hash and plays again, without a reload.
    // The old server's sockets close as its tasks wind down: bind as soon as the port is free.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let server = loop {
        let config = edge_deliver::ServerConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            ..edge_deliver::ServerConfig::default()
        };
        match edge_deliver::DeliveryServer::bind(config, Arc::new(FixedRouter("main"))).await {
            Ok(server) => break server,
            Err(e) if tokio::time::Instant::now() < deadline => {
                println!("port {port} not free yet: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the same port again: {e}"),
        }
    };
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
    let pacer = Pacer::start(
        publisher,
        access_units(&h264_clip(1280, 720, 4, &[])),
        30.0,
        30,
    );
    watch.expect("playing", Duration::from_secs(20)).await;
    pacer.finish();
    server.shutdown(0, "test over").await;
}

/// Plain HTTP against the page files: validators, headers, and nothing outside the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_files_are_served_with_validators_and_nothing_else_is() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    init_tracing();
    let _quiet = ONE_BROWSER.lock().await;
    assert!(
        web_dir().join("dist/index.html").exists(),
        "web/dist is missing: run scripts/setup-web.sh"
    );
    let server = loopback_server(Arc::new(FixedRouter("main"))).await;
    let addr = server.local_addr();
    let exchange = |request: String| async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
            .await
            .expect("answered in time")
            .expect("read");
        String::from_utf8_lossy(&response).into_owned()
    };
    let header = |response: &str, name: &str| {
        response
            .split("\r\n\r\n")
            .next()
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                let (key, value) = l.split_once(':')?;
                key.eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_string())
            })
    };

    let page = exchange("GET /?zone=yintai-mall HTTP/1.1\r\nHost: x\r\n\r\n".into()).await;
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert_eq!(
        header(&page, "content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    let csp = header(&page, "content-security-policy").expect("the page has a CSP");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    assert!(page.contains("viewer.js"), "{page}");
    let etag = header(&page, "etag").expect("an ETag");

    let again = exchange(format!(
        "GET / HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\n\r\n"
    ))
    .await;
    assert!(
        again.starts_with("HTTP/1.1 304 Not Modified\r\n"),
        "{again}"
    );
    assert!(again.ends_with("\r\n\r\n"), "a 304 has no body: {again}");

    let script = exchange("HEAD /viewer.js HTTP/1.1\r\nHost: x\r\n\r\n".into()).await;
    assert!(script.starts_with("HTTP/1.1 200 OK\r\n"), "{script}");
    assert_eq!(
        header(&script, "content-type").as_deref(),
        Some("text/javascript; charset=utf-8")
    );
    let length: u64 = header(&script, "content-length")
        .and_then(|l| l.parse().ok())
        .expect("Content-Length");
    let on_disk = std::fs::metadata(web_dir().join("dist/viewer.js"))
        .unwrap()
        .len();
    assert_eq!(length, on_disk);
    assert!(script.ends_with("\r\n\r\n"), "HEAD has no body");

    for request in [
        "GET /../Cargo.toml HTTP/1.1\r\n\r\n",
        "GET /..%2fCargo.toml HTTP/1.1\r\n\r\n",
        "GET /.gitignore HTTP/1.1\r\n\r\n",
        "GET /nothing-here.js HTTP/1.1\r\n\r\n",
        "DELETE / HTTP/1.1\r\n\r\n",
    ] {
        let response = exchange(request.into()).await;
        assert!(
            response.starts_with("HTTP/1.1 404"),
            "{request:?} -> {response}"
        );
    }
    server.shutdown(0, "test over").await;
}

/// Every iOS browser lacks WebTransport; the page then speaks moq's qmux over a WebSocket on the
/// same port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_webtransport_the_page_plays_over_the_websocket_fallback() {
    init_tracing();
    let _browser = ONE_BROWSER.lock().await;
    let (server, pacer) = publishing_server(Arc::new(FixedRouter("main"))).await;
    let page = format!("http://127.0.0.1:{}/", server.local_addr().port());
    let result = browser_with_env(
        &["play", &page, "5"],
        &[("EDGE_BROWSER_NO_WEBTRANSPORT", "1")],
    )
    .await;
    pacer.finish();
    server.shutdown(0, "test over").await;
    assert_eq!(result["video"]["transport"], "WebSocket (qmux)", "{result}");
    let drawn = result["drawn"].as_u64().expect("drawn count");
    println!(
        "viewer page over WebSocket (qmux), 5 s: {drawn} frames drawn; SEI→received p50 {:.1} ms \
         p99 {:.1} ms; SEI→drawn p50 {:.1} ms p99 {:.1} ms; load average {}",
        figure(&result, "seiToReceivedMs", "p50"),
        figure(&result, "seiToReceivedMs", "p99"),
        figure(&result, "seiToDrawnMs", "p50"),
        figure(&result, "seiToDrawnMs", "p99"),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim(),
    );
    assert!(
        drawn >= 140,
        "drew only {drawn} frames in 5 s over WebSocket"
    );
}

/// The page's SEI parser (web/src/sei.js) reads what the node's writer (edge-core) stamps,
/// including times whose bytes need emulation prevention and units without the clock.
#[test]
fn the_pages_sei_parser_reads_the_nodes_frame_clock() {
    use edge_core::sei;
    let _quiet = ONE_BROWSER.blocking_lock();
    let clip = h264_clip(320, 240, 1, &[]);
    let units = access_units(&clip);
    let times: [u64; 6] = [
        1_764_806_400_000_000,
        0,
        // Zero runs followed by 0x00..0x03: the writer must escape, the reader unescape.
        0x0000_0300_0001_0000,
        0x0000_0000_0000_0003,
        0x0003_0000_0300_0000,
        u64::MAX >> 11,
    ];
    let mut expected = Vec::new();
    let mut hex_lines = Vec::new();
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    for (i, time) in times.iter().enumerate() {
        let (au, _) = &units[i % units.len()];
        let stamped = sei::stamp_access_unit(au, *time);
        assert_eq!(sei::read_frame_clock(&stamped), Some(*time));
        hex_lines.push(hex(&stamped));
        expected.push(time.to_string());
    }
    // A unit without the clock.
    hex_lines.push(hex(&units[1].0));
    expected.push("none".to_string());
    let parsed = node_script_lines("sei-check.mjs", &hex_lines);
    assert_eq!(parsed, expected);
}

/// Wheel, pinch, double tap and tap on the picture reach the node as the control messages of
/// README "Control channel", within the node's rate limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gestures_reach_the_node_as_zoom_and_tap_messages() {
    init_tracing();
    let _browser = ONE_BROWSER.lock().await;
    let router = Arc::new(QueryRouter::default());
    let (server, pacer) = publishing_rendering(router.clone(), "a").await;
    let page = format!(
        "http://127.0.0.1:{}/?rendering=a",
        server.local_addr().port()
    );
    let result = browser(&["gestures", &page]).await;
    // The last messages may still be on their way.
    let expected = result["controlSent"].as_u64().expect("controlSent") as usize;
    wait_until(Duration::from_secs(5), || {
        router.controls.lock().unwrap().len() >= expected
    })
    .await;
    pacer.finish();
    server.shutdown(0, "test over").await;
    let messages: Vec<Value> = router
        .controls
        .lock()
        .unwrap()
        .iter()
        .map(|(_, bytes)| serde_json::from_slice(bytes).expect("each message is JSON"))
        .collect();
    println!("views: {}", result["views"]);
    println!("control messages: {messages:?}");
    assert_eq!(messages.len(), expected, "every message sent arrived");

    // The browser scales wheel deltas (device pixels, platform), so the wheel only has to zoom
    // in; the pinch doubles the finger spread, so it halves the view exactly.
    let views = &result["views"];
    let after_wheel = views["afterWheel"]["w"].as_f64().expect("view");
    let after_pinch = views["afterPinch"]["w"].as_f64().expect("view");
    assert!(after_wheel < 0.95, "the wheel zoomed in: {views}");
    assert!(
        (after_pinch - after_wheel / 2.0).abs() < 0.01,
        "the pinch halved the view: {views}"
    );
    assert_eq!(views["afterDoubleTap"]["w"], 1);

    let zooms: Vec<&Value> = messages.iter().filter(|m| m["type"] == "zoom").collect();
    for zoom in zooms.iter().filter(|m| m.get("reset").is_none()) {
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| zoom[k].as_f64().expect("number"));
        assert!(w > 0.0 && h > 0.0 && x + w <= 1.0 && y + h <= 1.0, "{zoom}");
        assert!(
            (w - h).abs() < 1e-9,
            "the view keeps the picture's aspect: {zoom}"
        );
    }
    let narrowest = zooms
        .iter()
        .filter_map(|m| m["w"].as_f64())
        .fold(1.0, f64::min);
    assert!(
        (narrowest - after_pinch).abs() < 0.001,
        "the node was sent the pinched view: {narrowest}"
    );
    let reset = messages
        .iter()
        .position(|m| m["type"] == "zoom" && m["reset"] == true)
        .expect("the double tap resets the zoom");
    let last = messages.last().expect("messages");
    assert_eq!(last["type"], "tap", "{last}");
    assert!(
        (last["x"].as_f64().unwrap() - 0.25).abs() < 0.01
            && (last["y"].as_f64().unwrap() - 0.75).abs() < 0.01,
        "the tap lands where the finger did: {last}"
    );
    assert!(reset < messages.len() - 1);
}

/// Routes everyone to `main` and remembers each viewer's query and control messages.
#[derive(Default)]
struct QueryLog(
    std::sync::Mutex<Vec<String>>,
    std::sync::Mutex<Vec<serde_json::Value>>,
);

impl SessionRouter for QueryLog {
    fn route(&self, request: &ViewerRequest) -> Result<String, Refusal> {
        self.0.lock().unwrap().push(request.query.clone());
        Ok("main".to_string())
    }

    fn control(&self, _session_id: u64, message: &[u8]) -> Result<(), String> {
        let message = serde_json::from_slice(message).map_err(|e| e.to_string())?;
        self.1.lock().unwrap().push(message);
        Ok(())
    }
}

/// A viewer that allowed the page its location is placed by it: `lat`/`lon` in the query the
/// node routes on (four decimals, about 11 m), beside what the page's own URL says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consenting_viewers_position_reaches_the_node() {
    init_tracing();
    let _browser = ONE_BROWSER.lock().await;
    let router = Arc::new(QueryLog::default());
    let (server, pacer) = publishing_server(router.clone()).await;
    let page = format!(
        "http://127.0.0.1:{}/?name=ana&stats",
        server.local_addr().port()
    );
    let result = browser_with_env(
        &["play", &page, "1"],
        &[("EDGE_BROWSER_GEO", "30.274085,120.155070")],
    )
    .await;
    pacer.finish();
    server.shutdown(0, "test over").await;
    let queries = router.0.lock().unwrap().clone();
    println!("queries: {queries:?}; page position {}", result["position"]);
    assert_eq!(
        queries.first().map(String::as_str),
        Some("name=ana&lat=30.2741&lon=120.1551")
    );
}

/// A viewer that had not allowed it yet taps "Use my location": the page sends the position on
/// its control channel (the node moves it at the next keyframe, no reconnect), and follows the
/// viewer as it moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn use_my_location_sends_the_position_and_follows_it() {
    init_tracing();
    let _browser = ONE_BROWSER.lock().await;
    let router = Arc::new(QueryLog::default());
    let (server, pacer) = publishing_server(router.clone()).await;
    let page = format!(
        "http://127.0.0.1:{}/?zone=default",
        server.local_addr().port()
    );
    let result = browser(&["locate", &page, "30.274085,120.155070"]).await;
    pacer.finish();
    server.shutdown(0, "test over").await;
    let queries = router.0.lock().unwrap().clone();
    let controls = router.1.lock().unwrap().clone();
    println!("queries: {queries:?}; controls: {controls:?}; {result}");
    assert_eq!(queries, ["zone=default"], "one session throughout");
    assert_eq!(
        controls,
        [
            serde_json::json!({"type": "position", "lat": 30.2741, "lon": 120.1551}),
            serde_json::json!({"type": "position", "lat": 30.2841, "lon": 120.1551}),
        ]
    );
    assert_eq!(result["buttonHidden"], true, "{result}");
}
