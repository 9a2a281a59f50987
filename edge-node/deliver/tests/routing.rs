//! Render groups on the wire: viewers routed by their URL query each receive only their own
//! rendering as `live`; refused viewers learn why; misbehaving clients disturb nobody.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use edge_core::sei::{self, unix_now_us};
use edge_deliver::client::{self, ClientOptions, Subscription};
use edge_deliver::{
    DeliverError, DeliveryServer, ServerConfig, TlsSource, VideoTrackInfo, CLOSE_CODE_REFUSED,
};

/// Rendering `b` stamps its frame clocks this far in the future, so a frame's origin is
/// readable from its SEI alone.
const B_OFFSET_US: u64 = 1_000_000_000_000;

const VIDEO: VideoTrackInfo = VideoTrackInfo {
    width: 320,
    height: 240,
    fps: 30.0,
};

fn options(server: &DeliveryServer) -> ClientOptions {
    ClientOptions {
        cert_sha256: Some(server.certificate_sha256_hex().to_string()),
        connect_timeout: Duration::from_secs(5),
    }
}

fn url(server: &DeliveryServer, query: &str) -> url::Url {
    url::Url::parse(&format!("https://{}/{query}", server.local_addr())).unwrap()
}

/// SEI times of the next `count` frames.
async fn frame_clocks(subscription: &mut Subscription, count: usize) -> Vec<u64> {
    let mut clocks = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while clocks.len() < count {
            match subscription.next_frame().await {
                Some(frame) => clocks.push(sei::read_frame_clock(&frame.data).expect("SEI")),
                None => break,
            }
        }
    })
    .await;
    clocks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_receive_only_their_rendering_and_refusals_carry_a_reason() {
    init_tracing();
    let units = access_units(&h264_clip(320, 240, 3, &[]));
    let router = Arc::new(QueryRouter::default());
    let server = loopback_server(router.clone()).await;
    let pacer_a = Pacer::start(
        server.publish_rendering("a", VIDEO).unwrap(),
        units.clone(),
        30.0,
        5,
    );
    let pacer_b = Pacer::start_with_clock_offset(
        server.publish_rendering("b", VIDEO).unwrap(),
        units,
        30.0,
        5,
        B_OFFSET_US,
    );
    assert!(matches!(
        server.publish_rendering("a", VIDEO),
        Err(DeliverError::DuplicateRendering(_))
    ));

    let mut viewer_a = client::subscribe(&url(&server, "?rendering=a&zone=x"), options(&server))
        .await
        .expect("viewer a");
    let mut viewer_b = client::subscribe(&url(&server, "?zone=y&rendering=b"), options(&server))
        .await
        .expect("viewer b");
    assert_eq!((server.viewers("a"), server.viewers("b")), (1, 1));

    // Refusals arrive as a close with the router's reason, for well-formed and junk queries.
    for (query, expected) in [
        ("?rendering=zzz", "no rendering named \"zzz\""),
        ("", "missing ?rendering="),
        ("?rendering=%ff%fe&&==&%", "no rendering named"),
    ] {
        match client::subscribe(&url(&server, query), options(&server)).await {
            Err(DeliverError::Refused { code, reason }) => {
                assert_eq!(code, CLOSE_CODE_REFUSED);
                assert!(reason.contains(expected), "{query:?}: reason {reason:?}");
            }
            Err(other) => panic!("{query:?}: expected a refusal, got {other}"),
            Ok(_) => panic!("{query:?}: expected a refusal, got a subscription"),
        }
    }

    let clocks_a = frame_clocks(&mut viewer_a, 45).await;
    let clocks_b = frame_clocks(&mut viewer_b, 45).await;
    assert_eq!(
        (clocks_a.len(), clocks_b.len()),
        (45, 45),
        "both keep streaming after the refusals"
    );
    assert!(
        clocks_a.iter().all(|&t| t < unix_now_us() + 1),
        "viewer a only sees rendering a"
    );
    assert!(
        clocks_b
            .iter()
            .all(|&t| t > unix_now_us() + B_OFFSET_US / 2),
        "viewer b only sees rendering b"
    );
    assert!(clocks_a.windows(2).all(|w| w[0] < w[1]) && clocks_b.windows(2).all(|w| w[0] < w[1]));

    drop(viewer_a);
    drop(viewer_b);
    assert!(
        wait_until(Duration::from_secs(5), || router
            .closed
            .lock()
            .unwrap()
            .len()
            == 2)
        .await,
        "the router hears about both routed sessions ending (and only those)"
    );
    assert_eq!((server.viewers("a"), server.viewers("b")), (0, 0));
    drop(pacer_a.finish());
    drop(pacer_b.finish());
    server.shutdown(0, "test over").await;
}

/// A loopback server (`config`'s timeouts, a generated certificate) publishing rendering `main`
/// from a 3 s clip at 30 fps, and a viewer watching it.
async fn watched_server(config: ServerConfig) -> (DeliveryServer, Pacer, Subscription) {
    let units = access_units(&h264_clip(320, 240, 3, &[]));
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: TlsSource::Generate,
        ..config
    };
    let server = DeliveryServer::bind(config, Arc::new(FixedRouter("main")))
        .await
        .unwrap();
    let pacer = Pacer::start(
        server.publish_rendering("main", VIDEO).unwrap(),
        units,
        30.0,
        8,
    );
    let viewer = client::subscribe(&url(&server, ""), options(&server))
        .await
        .expect("viewer");
    (server, pacer, viewer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_clients_do_not_disturb_a_viewer() {
    init_tracing();
    let (server, pacer, mut viewer) = watched_server(ServerConfig {
        handshake_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
        ..ServerConfig::default()
    })
    .await;
    let addr = server.local_addr();

    // Junk datagrams at the QUIC port.
    let junk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for size in [1, 20, 1200, 1500] {
        junk.send_to(&vec![0xa5; size], addr).unwrap();
    }
    // An ALPN nobody speaks: the TLS handshake fails.
    let (endpoint, config) = raw_quic_client("definitely-not-moq");
    let refused = endpoint
        .connect_with(config, addr, "localhost")
        .unwrap()
        .await;
    assert!(refused.is_err(), "unknown ALPN must not connect");
    // HTTP/3 that never sends its CONNECT: dropped at the handshake timeout.
    let (endpoint, config) = raw_quic_client("h3");
    let silent = endpoint
        .connect_with(config, addr, "localhost")
        .unwrap()
        .await
        .expect("QUIC ok");
    // A viewer that vanishes without closing (its network path dies): reaped at the idle timeout.
    let (proxy_addr, cut) = udp_relay(addr).await;
    let proxied_url = url::Url::parse(&format!("https://{proxy_addr}/")).unwrap();
    let vanishing = client::subscribe(&proxied_url, options(&server))
        .await
        .expect("second viewer");
    assert_eq!(server.viewers("main"), 2);
    cut.store(true, Ordering::Relaxed);
    assert!(
        wait_until(Duration::from_secs(3), || silent.close_reason().is_some()).await,
        "the silent connection is closed by the server"
    );
    assert!(
        wait_until(Duration::from_secs(5), || server.viewers("main") == 1).await,
        "the vanished viewer is counted out"
    );
    drop(vanishing);

    // Through all of it the real viewer kept receiving, in order.
    let clocks = frame_clocks(&mut viewer, 60).await;
    assert_eq!(clocks.len(), 60);
    assert!(clocks.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(server.viewers("main"), 1);

    // Shutdown reaches the viewer as the end of its stream.
    let shutdown = tokio::spawn(async move { server.shutdown(4242, "maintenance").await });
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while viewer.next_frame().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the stream ends when the server shuts down");
    shutdown.await.unwrap();
    drop(pacer.finish());
}

/// A UDP relay in front of `server` for one client; setting the flag drops every packet both
/// ways, like a phone leaving coverage.
async fn udp_relay(server: SocketAddr) -> (SocketAddr, Arc<AtomicBool>) {
    let socket = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let upstream = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    upstream.connect(server).await.unwrap();
    let cut = Arc::new(AtomicBool::new(false));
    let client = Arc::new(std::sync::Mutex::new(None::<SocketAddr>));
    let addr = socket.local_addr().unwrap();
    {
        let (socket, upstream, cut, client) = (
            socket.clone(),
            upstream.clone(),
            cut.clone(),
            client.clone(),
        );
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                *client.lock().unwrap() = Some(from);
                if !cut.load(Ordering::Relaxed) {
                    let _ = upstream.send(&buf[..n]).await;
                }
            }
        });
    }
    {
        let cut = cut.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = upstream.recv(&mut buf).await {
                let to = *client.lock().unwrap();
                if let (false, Some(to)) = (cut.load(Ordering::Relaxed), to) {
                    let _ = socket.send_to(&buf[..n], to).await;
                }
            }
        });
    }
    (addr, cut)
}

/// A viewer moved between renderings keeps one unbroken stream: the new rendering starts on
/// its keyframe in a new group, media time continues, and the viewer's commands reach the
/// router on its control track.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_viewer_switches_at_a_keyframe_without_a_gap_and_its_commands_arrive() {
    init_tracing();
    let units = access_units(&h264_clip(320, 240, 3, &[]));
    let router = Arc::new(QueryRouter::default());
    let server = loopback_server(router.clone()).await;
    let pacer_a = Pacer::start(
        server.publish_rendering("a", VIDEO).unwrap(),
        units.clone(),
        30.0,
        5,
    );
    let pacer_b = Pacer::start_with_clock_offset(
        server.publish_rendering("b", VIDEO).unwrap(),
        units,
        30.0,
        5,
        B_OFFSET_US,
    );
    let mut viewer = client::subscribe(&url(&server, "?rendering=a"), options(&server))
        .await
        .expect("viewer");
    let session = server.sessions()[0].id;
    let mut last_a = None;
    for _ in 0..10 {
        let frame = viewer.next_frame().await.expect("frame from a");
        assert!(sei::read_frame_clock(&frame.data).unwrap() < unix_now_us() + 1);
        last_a = Some(frame);
    }
    let last_a = last_a.unwrap();

    assert!(server.move_viewer(session, "b").unwrap());
    assert_eq!(
        server.viewer_rendering(session),
        Some((Some("a".to_string()), Some("b".to_string())))
    );
    let mut previous = last_a;
    let first_b = loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), viewer.next_frame())
            .await
            .expect("frames keep coming during the move")
            .expect("stream open");
        assert!(
            frame.timestamp_us >= previous.timestamp_us,
            "media time never goes back"
        );
        let gap = frame
            .received_unix_us
            .saturating_sub(previous.received_unix_us);
        assert!(
            gap < 200_000,
            "no gap while moving: {gap} us between frames"
        );
        if sei::read_frame_clock(&frame.data).unwrap() > unix_now_us() + B_OFFSET_US / 2 {
            break frame;
        }
        previous = frame;
    };
    assert!(first_b.keyframe, "the move happens on b's keyframe");
    assert!(
        first_b.group_sequence > previous.group_sequence,
        "in a new group"
    );
    assert_eq!(
        server.viewer_rendering(session),
        Some((Some("b".into()), None))
    );
    assert_eq!((server.viewers("a"), server.viewers("b")), (0, 1));
    for _ in 0..15 {
        let frame = viewer.next_frame().await.expect("frame from b");
        assert!(
            sei::read_frame_clock(&frame.data).unwrap() > unix_now_us() + B_OFFSET_US / 2,
            "after the move only b arrives"
        );
    }

    viewer
        .send_control(br#"{"type":"tap","x":0.5,"y":0.5}"#)
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || !router
            .controls
            .lock()
            .unwrap()
            .is_empty())
        .await,
        "the command reaches the router"
    );
    assert_eq!(
        router.controls.lock().unwrap()[0],
        (session, br#"{"type":"tap","x":0.5,"y":0.5}"#.to_vec())
    );
    assert!(
        viewer.send_control(&[b' '; 5000]).is_err(),
        "oversized commands are refused"
    );

    drop(viewer);
    drop(pacer_a.finish());
    drop(pacer_b.finish());
    server.shutdown(0, "test over").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_flood_is_dropped_counted_and_barely_logged() {
    use edge_telemetry::peer_input::{control_drops, suppressed_log_lines, ControlDrop};
    init_tracing();
    let units = access_units(&h264_clip(320, 240, 1, &[]));
    let router = Arc::new(QueryRouter::default());
    let server = loopback_server(router.clone()).await;
    let pacer = Pacer::start(
        server.publish_rendering("a", VIDEO).unwrap(),
        units,
        30.0,
        5,
    );
    let mut viewer = client::subscribe(&url(&server, "?rendering=a"), options(&server))
        .await
        .expect("viewer");
    viewer.next_frame().await.expect("a frame first");

    let over_rate_before = control_drops(ControlDrop::OverRate);
    let dropped_so_far =
        || control_drops(ControlDrop::OverRate) + control_drops(ControlDrop::Superseded);
    let (dropped_before, suppressed_before) = (dropped_so_far(), suppressed_log_lines());
    // 500 a second for 1.2 s: spaced so that most are read (back to back, the reader would
    // pass over all but the newest), far over the viewer's 60 a second.
    const SENT: u64 = 600;
    let mut pace = tokio::time::interval(Duration::from_millis(2));
    let sending = std::time::Instant::now();
    for i in 0..SENT {
        pace.tick().await;
        viewer
            .send_control(format!(r#"{{"type":"tap","x":0.5,"y":0.{i}}}"#).as_bytes())
            .unwrap();
    }
    // Every message is handed to the router, dropped over the rate or passed over for a newer
    // one; none is queued.
    let accounted =
        || router.controls.lock().unwrap().len() as u64 + dropped_so_far() - dropped_before;
    assert!(
        wait_until(Duration::from_secs(10), || accounted() >= SENT).await,
        "all {SENT} accounted for: {}",
        accounted()
    );
    let handed_over = router.controls.lock().unwrap().len() as u64;
    eprintln!(
        "control flood of {SENT}: {handed_over} handed over, {} dropped over the rate or superseded, {} log lines suppressed",
        dropped_so_far() - dropped_before,
        suppressed_log_lines() - suppressed_before
    );
    // Lines the drops wanted, less those their budgets turned away: what reached the log.
    let over_rate = control_drops(ControlDrop::OverRate) - over_rate_before;
    let suppressed = suppressed_log_lines() - suppressed_before;
    println!(
        "fault-figure control_flood.log_lines_per_s {:.1}",
        over_rate.saturating_sub(suppressed) as f64 / sending.elapsed().as_secs_f64()
    );
    // One budget per (fixed) second the messages kept arriving in, the last one included.
    let windows = sending.elapsed().as_secs() + 2;
    let per_second = u64::from(edge_deliver::control::MAX_MESSAGES_PER_SECOND);
    assert!(
        (1..=windows * per_second).contains(&handed_over),
        "the rate limit lets {per_second} a second through: {handed_over} in {windows} windows"
    );
    // Most were dropped: over the rate, or passed over for a newer one when the reader fell
    // behind (a busy machine shifts drops from the first reason to the second).
    let dropped = dropped_so_far() - dropped_before;
    assert!(
        dropped >= SENT / 2,
        "most were dropped: {dropped} ({over_rate} over the rate)"
    );
    // Each drop over the rate wanted a log line; the viewer's budget wrote a handful.
    assert!(
        suppressed >= over_rate.saturating_sub(5),
        "{suppressed} of {over_rate} drop lines suppressed"
    );
    // The viewer still watches.
    viewer.next_frame().await.expect("frames after the flood");

    drop(viewer);
    drop(pacer.finish());
    server.shutdown(0, "test over").await;
}

/// A burst of connections that complete QUIC and then say nothing (never a WebTransport
/// CONNECT): past 256 handshakes in flight the node asks new ones to prove their address (a
/// stateless QUIC Retry, which real clients pass), the viewer keeps watching throughout, and
/// the silent ones are gone at the handshake timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_silent_connections_meets_retries_and_the_viewer_keeps_watching() {
    use edge_core::connection_gate::Verdict;
    use edge_telemetry::peer_input::connection_verdicts;
    init_tracing();
    let (server, pacer, mut viewer) = watched_server(ServerConfig {
        handshake_timeout: Duration::from_secs(3),
        ..ServerConfig::default()
    })
    .await;
    let addr = server.local_addr();

    const SILENT: usize = 600;
    let rss_before = rss_kib();
    let retries_before = connection_verdicts(Verdict::Retry);
    let (endpoint, config) = raw_quic_client("h3");
    let mut connecting = tokio::task::JoinSet::new();
    for _ in 0..SILENT {
        let attempt = endpoint
            .connect_with(config.clone(), addr, "localhost")
            .unwrap();
        connecting.spawn(attempt);
    }
    let mut silent = Vec::new();
    let mut failures = std::collections::BTreeMap::<String, usize>::new();
    while let Some(done) = connecting.join_next().await {
        match done {
            Ok(Ok(connection)) => silent.push(connection),
            Ok(Err(e)) => *failures.entry(e.to_string()).or_default() += 1,
            Err(e) => *failures.entry(e.to_string()).or_default() += 1,
        }
    }
    let retried = connection_verdicts(Verdict::Retry) - retries_before;
    eprintln!(
        "{SILENT} silent connections: {} completed QUIC, {retried} Retry packets sent, failed: {failures:?}",
        silent.len()
    );
    assert!(
        retried > 0,
        "past 256 in flight, new handshakes are asked to prove their address"
    );
    assert!(
        silent.len() > SILENT / 2,
        "clients that answer the retry get in: {}",
        silent.len()
    );

    let clocks = frame_clocks(&mut viewer, 30).await;
    assert_eq!(clocks.len(), 30, "the viewer kept watching");
    assert!(clocks.windows(2).all(|w| w[0] < w[1]));
    let rss_during = rss_kib();
    assert!(
        wait_until(Duration::from_secs(10), || server.active_sessions() == 1).await,
        "the silent ones are gone at the handshake timeout: {} sessions",
        server.active_sessions()
    );
    drop(silent);
    // The figures, not a bound: this process also holds the 600 client connections.
    eprintln!(
        "RSS (server and clients in one process): {rss_before} KiB before, {rss_during} KiB during, {} KiB after",
        rss_kib()
    );
    drop(viewer);
    drop(pacer.finish());
    server.shutdown(0, "test over").await;
}

/// This process's resident memory, from /proc.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
