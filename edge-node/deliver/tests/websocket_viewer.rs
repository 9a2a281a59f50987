//! The WebSocket fallback (moq over qmux on the TCP port), with the node's own client speaking
//! it through the `qmux` and `moq-net` crates: what a viewer gets over WebTransport, it gets
//! here, routing, refusals, control and operator closes included.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use edge_core::connection_gate::Verdict;
use edge_core::sei;
use edge_core::stats::LatencySamples;
use edge_deliver::client::{self, ClientOptions};
use edge_deliver::{VideoTrackInfo, ViewerTransport, CLOSE_CODE_REFUSED};
use edge_telemetry::peer_input::{connection_verdicts_on, ConnectionTransport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn video() -> VideoTrackInfo {
    VideoTrackInfo {
        width: 320,
        height: 240,
        fps: 30.0,
    }
}

fn ws_url(server: &edge_deliver::DeliveryServer, query: &str) -> url::Url {
    url::Url::parse(&format!("ws://{}/?{query}", server.local_addr())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_viewer_receives_every_frame_with_its_clock_and_it_decodes() {
    init_tracing();
    let units = access_units(&h264_clip(320, 240, 3, &[]));
    let router = Arc::new(QueryRouter::default());
    let server = loopback_server(router.clone()).await;
    let publisher = server.publish_rendering("a", video()).expect("publish");

    let accepted_before = connection_verdicts_on(ConnectionTransport::WebSocket, Verdict::Accept);
    let url = ws_url(&server, "rendering=a&token=secret");
    let subscribing =
        tokio::spawn(async move { client::subscribe(&url, ClientOptions::default()).await });
    assert!(
        wait_until(Duration::from_secs(5), || server.viewers("a") == 1).await,
        "the WebSocket viewer is routed like any other"
    );
    let sessions = server.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].transport, ViewerTransport::WebSocket);
    assert_eq!(sessions[0].query, "rendering=a&token=REDACTED");
    assert!(
        connection_verdicts_on(ConnectionTransport::WebSocket, Verdict::Accept) > accepted_before,
        "counted as a WebSocket connection the gate accepted"
    );
    assert!(
        publisher.take_keyframe_request(),
        "a joining viewer asks for an IDR"
    );

    let pacer = Pacer::start(publisher, units, 30.0, 1);
    let mut subscription = subscribing
        .await
        .unwrap()
        .expect("subscribe over WebSocket");
    let mut frames = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while frames.len() < 90 {
            match subscription.next_frame().await {
                Some(frame) => frames.push(frame),
                None => break,
            }
        }
    })
    .await;
    let publisher = pacer.finish();
    assert_eq!(publisher.stats().frames_written, 90);
    assert_eq!(frames.len(), 90, "every frame arrives on loopback");

    let mut latency = LatencySamples::default();
    let mut stream = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        let stamped = sei::read_frame_clock(&frame.data).expect("frame clock SEI survives qmux");
        latency.record_ms(frame.received_unix_us.saturating_sub(stamped) as f64 / 1e3);
        assert_eq!(frame.keyframe, i % 30 == 0, "frame {i}");
        assert_eq!(frame.group_sequence, (i / 30) as u64, "a group per GOP");
        stream.extend_from_slice(&frame.data);
    }
    assert_eq!(subscription.stats().groups_abandoned, 0);
    let p = latency.percentiles();
    println!(
        "WebSocket (qmux) loopback send->receive latency: p50 {:.3} ms, p95 {:.3} ms, p99 {:.3} ms over {} frames",
        p.p50,
        p.p95,
        p.p99,
        latency.count()
    );

    // What arrived is a stream ffmpeg decodes under its strictest error detection.
    let dump = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("websocket-viewer-{}.h264", std::process::id()));
    std::fs::write(&dump, &stream).unwrap();
    let decoded = decode_strictly(&dump);
    std::fs::remove_file(&dump).unwrap();
    if let Err(errors) = decoded {
        panic!("the received stream decodes cleanly: {}", errors);
    }

    // The viewer talks back on its control track, as over WebTransport.
    subscription
        .send_control(br#"{"type":"tap","x":0.5,"y":0.5}"#)
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || !router
            .controls
            .lock()
            .unwrap()
            .is_empty())
        .await,
        "the control message reaches the router"
    );

    // An operator's close ends the viewer's session (its code and reason on the wire: see
    // `a_refused_websocket_viewer_learns_why`).
    let id = server.sessions()[0].id;
    assert!(server.close_session(id, 4001, "kicked by operator"));
    tokio::time::timeout(Duration::from_secs(5), subscription.closed())
        .await
        .expect("the close arrives");
    assert!(
        wait_until(Duration::from_secs(5), || router
            .closed
            .lock()
            .unwrap()
            .contains(&id))
        .await,
        "the router hears the session ended"
    );
    drop(subscription);
    drop(publisher);
    server.shutdown(0, "test over").await;
}

/// A refused viewer gets its session, then qmux's APPLICATION_CLOSE with the node's code and
/// reason, as a WebTransport viewer gets them in its session close. Read off the wire: the
/// qmux 0.5.3 client reports a session the peer closed as plain `Closed` (the page's
/// @moq/qmux reports the reason).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_websocket_viewer_learns_why() {
    init_tracing();
    let server = loopback_server(Arc::new(QueryRouter::default())).await;
    let _publisher = server.publish_rendering("a", video()).expect("publish");
    let refused =
        client::subscribe(&ws_url(&server, "rendering=nope"), ClientOptions::default()).await;
    assert!(refused.is_err(), "a refused viewer gets no subscription");

    let mut stream = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    stream
        .write_all(
            "GET /?rendering=nope HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: qmux-01.moq-lite-05\r\n\r\n"
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut received))
        .await
        .expect("the node closes the connection")
        .unwrap();
    // APPLICATION_CLOSE (0x1d), code 403 as a QUIC varint (0x41 0x93), the reason's length,
    // the reason: one WebSocket binary message after the 101 and the transport parameters.
    let reason = b"no rendering named \"nope\" here";
    let mut close = vec![0x1d, 0x41, 0x93, reason.len() as u8];
    close.extend_from_slice(reason);
    assert_eq!(CLOSE_CODE_REFUSED, 403);
    assert!(
        received.windows(close.len()).any(|w| w == close.as_slice()),
        "the close carries the code and reason: {}",
        String::from_utf8_lossy(&received)
    );
    assert!(
        wait_until(Duration::from_secs(5), || server.active_sessions() == 0).await,
        "a refused session holds nothing"
    );
    server.shutdown(0, "test over").await;
}

/// Raw upgrade requests: what a browser, a scanner or an attacker may send to the TCP port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_upgrades_get_a_short_http_answer_and_nothing_else() {
    init_tracing();
    let server = loopback_server(Arc::new(FixedRouter("main"))).await;
    let addr = server.local_addr();
    let exchange = |request: String| async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
            .await
            .expect("answered and closed")
            .unwrap();
        String::from_utf8_lossy(&response).into_owned()
    };
    let upgrade = |protocols: &str, version: &str| {
        format!(
            "GET /?zone=a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: {version}\r\n\
             Sec-WebSocket-Protocol: {protocols}\r\n\r\n"
        )
    };
    for (request, expected) in [
        // Nothing of ours offered, or only a bare draft without a moq version.
        (upgrade("chat, soap", "13"), "qmux subprotocol"),
        (upgrade("qmux-01, webtransport", "13"), "qmux subprotocol"),
        (upgrade("qmux-01.moq-lite-05", "8"), "Sec-WebSocket-Version"),
        (
            "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n".to_string(),
            "Sec-WebSocket-Version",
        ),
    ] {
        let response = exchange(request.clone()).await;
        assert!(
            response.starts_with("HTTP/1.1 400"),
            "{request:?} -> {response}"
        );
        assert!(response.contains(expected), "{request:?} -> {response}");
    }
    // A good upgrade is answered with the subprotocol the node chose, and the session gives up
    // a client that then says nothing (MoQ SETUP never comes) at the handshake timeout.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(upgrade("qmux-02.moq-lite-05, qmux-01.moq-lite-04", "13").as_bytes())
        .await
        .unwrap();
    let mut head = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut head))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    assert!(
        head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{head}"
    );
    assert!(
        head.contains("Sec-WebSocket-Protocol: qmux-02.moq-lite-05\r\n"),
        "{head}"
    );
    assert_eq!(
        server.active_sessions(),
        1,
        "a handshaking session holds a permit"
    );
    drop(stream);
    assert!(
        wait_until(Duration::from_secs(12), || server.active_sessions() == 0).await,
        "a silent client is dropped"
    );
    server.shutdown(0, "test over").await;
}

/// A TCP proxy in front of the node for one connection whose node-to-viewer direction can be
/// stopped: a viewer whose socket backs up (a phone whose radio stalls) as the node sees it.
async fn stalling_proxy(
    node: std::net::SocketAddr,
) -> (std::net::SocketAddr, tokio::sync::watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stalled, mut stall) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let (viewer, _) = listener.accept().await.unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        // A small receive window here, so the node's side backs up instead of our buffers.
        socket.set_recv_buffer_size(64 * 1024).unwrap();
        let upstream = socket.connect(node).await.unwrap();
        let (mut viewer_read, mut viewer_write) = viewer.into_split();
        let (mut node_read, mut node_write) = upstream.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut viewer_read, &mut node_write).await;
        });
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            if stall.wait_for(|stalled| !stalled).await.is_err() {
                return;
            }
            let n = match node_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if viewer_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    });
    (addr, stalled)
}

/// A WebSocket viewer that stops reading for seconds holds nobody else up, and the node gives
/// up its oldest groups instead of queueing them: when it reads again it is back at the live
/// edge within a few groups, not seconds behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_viewer_that_stops_reading_holds_nobody_and_skips_ahead() {
    init_tracing();
    // About 12 Mbit/s (noise defeats the encoder), a group every third of a second: the node's
    // socket buffer (up to 4 MiB) fills within seconds of the viewer stalling.
    let units = access_units(&h264_clip(
        640,
        360,
        2,
        &[
            "-vf",
            "noise=alls=60:allf=t+u",
            "-b:v",
            "8M",
            "-g",
            "10",
            "-sc_threshold",
            "0",
        ],
    ));
    let bytes_per_second = units.iter().map(|(au, _)| au.len()).sum::<usize>() / 2;
    let server = loopback_server(Arc::new(FixedRouter("a"))).await;
    let publisher = server.publish_rendering("a", video()).expect("publish");
    let (proxy, stalled) = stalling_proxy(server.local_addr()).await;

    let fast_url = ws_url(&server, "viewer=fast");
    let slow_url = url::Url::parse(&format!("ws://{proxy}/?viewer=slow")).unwrap();
    let pacer = Pacer::start(publisher, units, 30.0, 8);
    let mut fast = client::subscribe(&fast_url, ClientOptions::default())
        .await
        .expect("fast viewer");
    let mut slow = client::subscribe(&slow_url, ClientOptions::default())
        .await
        .expect("slow viewer");
    let slow_id = server
        .sessions()
        .iter()
        .find(|s| s.query == "viewer=slow")
        .expect("slow session listed")
        .id;

    // The fast viewer reads throughout; its frame clocks and latencies are kept.
    let fast_reader = tokio::spawn(async move {
        let mut latency = LatencySamples::default();
        let mut clocks = Vec::new();
        while let Ok(Some(frame)) =
            tokio::time::timeout(Duration::from_secs(3), fast.next_frame()).await
        {
            let stamped = sei::read_frame_clock(&frame.data).expect("SEI");
            latency.record_ms(frame.received_unix_us.saturating_sub(stamped) as f64 / 1e3);
            clocks.push(stamped);
        }
        (clocks, latency)
    });

    // Two seconds of normal viewing, then the slow viewer's socket stops for six.
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Some(_)) = tokio::time::timeout_at(until, slow.next_frame()).await {}
    stalled.send_replace(true);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let during = server
        .delivery_stats(slow_id)
        .expect("slow session established");
    stalled.send_replace(false);
    let resumed = std::time::Instant::now();
    let mut caught_up = None;
    let mut behind_ms = Vec::new();
    while let Ok(Some(frame)) =
        tokio::time::timeout(Duration::from_secs(3), slow.next_frame()).await
    {
        let stamped = sei::read_frame_clock(&frame.data).expect("SEI");
        let late_ms = frame.received_unix_us.saturating_sub(stamped) as f64 / 1e3;
        behind_ms.push(late_ms);
        if late_ms < 300.0 && caught_up.is_none() {
            caught_up = Some(resumed.elapsed());
        }
        if resumed.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    let sent = pacer.sent();
    let publisher = pacer.finish();
    let (fast_clocks, fast_latency) = fast_reader.await.unwrap();
    // Everything published from the fast viewer's first frame on.
    let first = *fast_clocks
        .first()
        .expect("the fast viewer received frames");
    let written = sent.iter().filter(|s| s.sei_unix_us >= first).count();
    let fast_frames = fast_clocks.len();
    let p = fast_latency.percentiles();
    println!(
        "stream {:.1} Mbit/s; slow viewer stalled 6 s: node gave up {} of its groups, it was \
         back within 300 ms of live {:?} after reading again (first frames {:.0} ms behind); \
         fast viewer beside it: {fast_frames}/{written} frames, latency p50 {:.1} ms, p99 {:.1} ms",
        bytes_per_second as f64 * 8.0 / 1e6,
        during.groups_superseded,
        caught_up,
        behind_ms.first().copied().unwrap_or_default(),
        p.p50,
        p.p99,
    );
    assert!(
        during.groups_superseded >= 1,
        "a backed-up viewer's oldest groups are given up: {during:?}"
    );
    let caught_up = caught_up.expect("the slow viewer gets back to the live edge");
    assert!(
        caught_up < Duration::from_secs(3),
        "back at the live edge {caught_up:?} after reading again"
    );
    assert!(
        fast_frames * 100 >= written * 95,
        "the viewer beside it keeps receiving: {fast_frames}/{written}"
    );
    drop(slow);
    drop(publisher);
    server.shutdown(0, "test over").await;
}
