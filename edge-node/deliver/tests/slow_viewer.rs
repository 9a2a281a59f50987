//! Fault test: a viewer behind a link at half the stream's bitrate stays live, and the viewers
//! beside it lose nothing.
//!
//! Real peers, real network: the node's delivery server on the host, two viewers on loopback,
//! and a third viewer inside a network namespace made by the test, reached over a veth pair whose
//! host side is shaped with `tc tbf` to half the stream's measured bitrate. Every viewer runs this
//! crate's client (the one `edge-node view` uses); the slow one runs on a thread that entered the
//! namespace, so every socket it opens lives there.
//!
//! The stream is 640x360 at ~1 Mbit/s with a keyframe every 0.5 s, half the shortest GOP a node
//! is configured with: a keyframe plus the link's queue then take most of a GOP, the hardest case
//! for "newest group first", and the one in which the node used to collapse within a minute (no
//! superseded group was ever given up, so the link carried GOPs the viewer had already skipped
//! and the viewer's stream credit filled with them). EDGE_SLOW_VIEWER_SECONDS (default 60) and
//! EDGE_SLOW_VIEWER_GOP_FRAMES (default 15) change the run; EDGE_SLOW_VIEWER_GROUPS=1 also prints
//! what the slow viewer received of each group.
//!
//! Needs root (CAP_NET_ADMIN, for `ip netns`, `ip link` and `tc`): ignored in `make test`, run by
//! `make test-faults`, where a missing capability fails with that message instead of passing.

mod common;

use std::fs::File;
use std::future::Future;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use edge_core::sei::{self, unix_now_us};
use edge_deliver::client::{self, ClientOptions, SubscriptionStats};
use edge_deliver::{DeliveryServer, DeliveryStats, ServerConfig, TlsSource, VideoTrackInfo};

const FPS: f64 = 30.0;
/// The most the shaped link queues before it drops (tbf's `latency`).
const LINK_QUEUE: Duration = Duration::from_millis(200);
/// Head-room for a shared 2-core machine running the node, three viewers and the encoder-like
/// pacer in one process (scheduling), and for one loss recovery on the shaped link: its queue
/// overflows now and then (tbf drops), and a lost last packet of a keyframe costs a probe
/// timeout, about two round trips of ~250 ms under load.
const MARGIN: Duration = Duration::from_millis(750);
/// The least of the link's bytes that must arrive as frames: the rest is IP/UDP/QUIC overhead,
/// retransmissions, and what was in flight of a group when a newer one superseded it.
const MIN_DELIVERED: f64 = 0.75;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// One frame as a viewer received it.
#[derive(Clone, Copy, Debug)]
struct Received {
    received_us: u64,
    sei_us: u64,
    bytes: usize,
    group: u64,
}

#[derive(Debug, Default)]
struct ViewerLog {
    frames: Vec<Received>,
    stats: SubscriptionStats,
}

/// Reads a subscription until `until_us` (wall clock, µs since the epoch).
async fn watch(url: url::Url, options: ClientOptions, until_us: u64) -> ViewerLog {
    let mut subscription = client::subscribe(&url, options)
        .await
        .unwrap_or_else(|e| panic!("subscribe {url}: {e}"));
    let mut log = ViewerLog::default();
    loop {
        let left = until_us.saturating_sub(unix_now_us());
        if left == 0 {
            break;
        }
        let next =
            tokio::time::timeout(Duration::from_micros(left), subscription.next_frame()).await;
        let Ok(Some(frame)) = next else { break };
        log.frames.push(Received {
            received_us: frame.received_unix_us,
            sei_us: sei::read_frame_clock(&frame.data).expect("frame clock SEI"),
            bytes: frame.data.len(),
            group: frame.group_sequence,
        });
    }
    log.stats = subscription.stats();
    log
}

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A network namespace joined to the host by a veth pair; the host side's egress (node to
/// viewer) is shaped by tbf. Removed on drop.
struct SlowLink {
    namespace: String,
    host_if: String,
    host_ip: String,
}

impl SlowLink {
    fn create(rate_bits: u64) -> Result<Self, String> {
        let id = std::process::id() % 100_000;
        let namespace = format!("edge-slow-{id}");
        run("ip", &["netns", "add", &namespace])?;
        // From here on, dropping the link removes whatever was made.
        let link = Self {
            namespace,
            host_if: format!("esl{id}h"),
            host_ip: format!("10.201.{}.1", id % 250),
        };
        let (ns, host) = (link.namespace.as_str(), link.host_if.as_str());
        let peer = format!("esl{id}p");
        let peer_ip = format!("10.201.{}.2/30", id % 250);
        run(
            "ip",
            &["link", "add", host, "type", "veth", "peer", "name", &peer],
        )?;
        run("ip", &["link", "set", &peer, "netns", ns])?;
        run(
            "ip",
            &["addr", "add", &format!("{}/30", link.host_ip), "dev", host],
        )?;
        run("ip", &["link", "set", host, "up"])?;
        for args in [
            vec!["addr", "add", &peer_ip, "dev", &peer],
            vec!["link", "set", &peer, "up"],
            vec!["link", "set", "lo", "up"],
        ] {
            let mut all = vec!["netns", "exec", ns, "ip"];
            all.extend(args);
            run("ip", &all)?;
        }
        // Burst: a few full-size packets, as a radio link's scheduler grants; the queue holds
        // LINK_QUEUE's worth at the rate, beyond which the link drops.
        let (rate, latency) = (
            format!("{rate_bits}bit"),
            format!("{}ms", LINK_QUEUE.as_millis()),
        );
        run(
            "tc",
            &[
                "qdisc", "add", "dev", host, "root", "tbf", "rate", &rate, "burst", "6000",
                "latency", &latency,
            ],
        )?;
        Ok(link)
    }

    /// Bytes the shaped side has sent (node to viewer), and packets it dropped.
    fn sent_and_dropped(&self) -> (u64, u64) {
        let out = run("tc", &["-s", "qdisc", "show", "dev", &self.host_if]).unwrap_or_default();
        let number_after = |key: &str| -> u64 {
            out.split_whitespace()
                .skip_while(|w| *w != key)
                .nth(1)
                .and_then(|w| w.trim_end_matches(',').parse().ok())
                .unwrap_or(0)
        };
        (number_after("Sent"), number_after("(dropped"))
    }

    /// Runs `work` on a new thread inside the namespace, on a runtime of its own: every socket it
    /// opens is the namespace's.
    fn spawn<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Pin<Box<dyn Future<Output = T>>> + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{}", self.namespace);
        std::thread::spawn(move || {
            let namespace = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            extern "C" {
                fn setns(fd: i32, nstype: i32) -> i32;
            }
            const CLONE_NEWNET: i32 = 0x4000_0000;
            // SAFETY: a plain syscall on a descriptor this thread owns; it moves only this
            // thread into the namespace.
            let rc = unsafe { setns(namespace.as_raw_fd(), CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "setns into {path}: {}",
                std::io::Error::last_os_error()
            );
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(work())
        })
    }
}

impl Drop for SlowLink {
    fn drop(&mut self) {
        let _ = run("ip", &["link", "del", &self.host_if]);
        let _ = run("ip", &["netns", "del", &self.namespace]);
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn lags_ms(frames: &[Received]) -> Vec<f64> {
    let mut lags: Vec<f64> = frames
        .iter()
        .map(|f| f.received_us.saturating_sub(f.sei_us) as f64 / 1e3)
        .collect();
    lags.sort_by(f64::total_cmp);
    lags
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs CAP_NET_ADMIN: run with make test-faults as root"]
async fn a_viewer_on_a_link_at_half_the_bitrate_stays_live_and_others_lose_nothing() {
    init_tracing();
    let seconds: u64 = env_or("EDGE_SLOW_VIEWER_SECONDS", 60);
    let gop_frames: usize = env_or("EDGE_SLOW_VIEWER_GOP_FRAMES", 15);
    // Film-grain-like noise so every frame costs bits, x264 in CBR at ~1 Mbit/s.
    let clip = h264_clip(
        640,
        360,
        10,
        &[
            "-g",
            &gop_frames.to_string(),
            "-sc_threshold",
            "0",
            "-vf",
            "noise=alls=12:allf=t",
            "-b:v",
            "1000k",
            "-maxrate",
            "1000k",
            "-bufsize",
            "1000k",
        ],
    );
    let units = access_units(&clip);
    let clip_bytes: usize = units.iter().map(|(au, _)| au.len()).sum();
    let bitrate = (clip_bytes as f64 * 8.0 / (units.len() as f64 / FPS)) as u64;
    let link_rate = bitrate / 2;
    let gop = Duration::from_secs_f64(gop_frames as f64 / FPS);
    // The link's delay for the frames that matter: its queue, plus the time the largest
    // keyframe takes to cross it (no viewer can show a keyframe before it has arrived).
    let largest_keyframe = units
        .iter()
        .filter(|(_, keyframe)| *keyframe)
        .map(|(au, _)| au.len())
        .max()
        .unwrap_or(0);
    let link_delay =
        LINK_QUEUE + Duration::from_secs_f64(largest_keyframe as f64 * 8.0 / link_rate as f64);

    let link = SlowLink::create(link_rate).unwrap_or_else(|e| {
        panic!(
            "the slow-viewer fault test needs root (CAP_NET_ADMIN) for network namespaces, veth \
             and tc; run `make test-faults` as root. Setting up the link failed: {e}"
        )
    });

    let config = ServerConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        tls: TlsSource::Generate,
        ..ServerConfig::default()
    };
    let server = DeliveryServer::bind(config, Arc::new(FixedRouter("main")))
        .await
        .expect("bind");
    let port = server.local_addr().port();
    let publisher = server
        .publish_rendering(
            "main",
            VideoTrackInfo {
                width: 640,
                height: 360,
                fps: FPS,
            },
        )
        .expect("publish");
    let options = ClientOptions {
        cert_sha256: Some(server.certificate_sha256_hex().to_string()),
        connect_timeout: Duration::from_secs(20),
    };

    let until_us = unix_now_us() + (seconds + 2) * 1_000_000;
    let fast: Vec<_> = (0..2)
        .map(|i| {
            let url = url::Url::parse(&format!("https://127.0.0.1:{port}/?fast={i}")).unwrap();
            tokio::spawn(watch(url, options.clone(), until_us))
        })
        .collect();
    let slow = {
        let url = url::Url::parse(&format!("https://{}:{port}/?slow=1", link.host_ip)).unwrap();
        let options = options.clone();
        link.spawn(move || Box::pin(watch(url, options, until_us)))
    };
    assert!(
        wait_until(Duration::from_secs(10), || server.viewers("main") == 3).await,
        "three viewers routed"
    );
    let (link_bytes_before, _) = link.sent_and_dropped();
    let publish_start = Instant::now();
    let loops = (seconds as f64 * FPS / units.len() as f64).ceil() as usize;
    let pacer = Pacer::start(publisher, units, FPS, loops);
    while !pacer.is_finished() && publish_start.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = pacer.sent();
    drop(pacer.finish());

    // The node's own account of each viewer's transport, read while the sessions are up.
    let deliveries: Vec<(bool, DeliveryStats)> = server
        .sessions()
        .iter()
        .filter_map(|s| Some((!s.remote.ip().is_loopback(), server.delivery_stats(s.id)?)))
        .collect();
    let mut fast_logs = Vec::new();
    for task in fast {
        fast_logs.push(task.await.expect("fast viewer"));
    }
    let slow_log = tokio::task::spawn_blocking(move || slow.join())
        .await
        .unwrap()
        .expect("slow viewer thread");
    let (link_bytes_after, link_dropped) = link.sent_and_dropped();
    let link_bytes = link_bytes_after - link_bytes_before;
    let (first_sent_us, last_sent_us) = match (sent.first(), sent.last()) {
        (Some(first), Some(last)) => (first.sei_unix_us, last.sei_unix_us),
        _ => panic!("nothing was published"),
    };

    // The slow viewer's figures.
    let frames = &slow_log.frames;
    assert!(!frames.is_empty(), "the slow viewer received nothing");
    // Stalls while watching: between frames, and the silence after the last one. The wait for
    // the first frame (a new connection's slow start on a slow link) is reported on its own.
    let first_frame_us = frames[0].received_us.saturating_sub(first_sent_us);
    let (mut longest_stall_us, mut stall_at_us) = (0, 0);
    let last = frames.last().expect("checked").received_us;
    let gaps = frames
        .windows(2)
        .map(|pair| {
            (
                pair[1].received_us - pair[0].received_us,
                pair[0].received_us,
            )
        })
        .chain([(last_sent_us.saturating_sub(last), last)]);
    for (gap, at) in gaps {
        if gap > longest_stall_us {
            (longest_stall_us, stall_at_us) = (gap, at);
        }
    }
    let lags = lags_ms(frames);
    let delivered_bytes: usize = frames.iter().map(|f| f.bytes).sum();
    let delivered = delivered_bytes as f64 / link_bytes.max(1) as f64;
    let mut per_5s = vec![0u32; ((last_sent_us - first_sent_us) / 5_000_000 + 1) as usize];
    for frame in frames {
        let bucket = (frame.received_us.saturating_sub(first_sent_us) / 5_000_000) as usize;
        if let Some(count) = per_5s.get_mut(bucket) {
            *count += 1;
        }
    }
    let mut groups: Vec<u64> = frames.iter().map(|f| f.group).collect();
    groups.dedup();

    println!(
        "slow viewer fault test: {seconds} s published, GOP {} ms, stream {} kbit/s; slow link: \
         tbf {} kbit/s, queue {} ms, link delay {} ms (queue + largest keyframe {} KB)",
        gop.as_millis(),
        bitrate / 1000,
        link_rate / 1000,
        LINK_QUEUE.as_millis(),
        link_delay.as_millis(),
        largest_keyframe / 1000
    );
    println!(
        "  slow viewer: first frame after {} ms, longest stall {} ms (at +{:.1} s), lag p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
        first_frame_us / 1000,
        longest_stall_us / 1000,
        stall_at_us.saturating_sub(first_sent_us) as f64 / 1e6,
        percentile(&lags, 0.5),
        percentile(&lags, 0.95),
        percentile(&lags, 1.0)
    );
    println!(
        "  slow viewer: {} of {} frames, {} of {} groups seen, {} groups cut short; frames per 5 s {per_5s:?}",
        frames.len(),
        sent.len(),
        groups.len(),
        sent.iter().filter(|s| s.keyframe).count(),
        slow_log.stats.groups_abandoned
    );
    println!(
        "  slow link: {:.2} MB sent ({link_dropped} packets dropped), {:.2} MB arrived as frames ({:.0}%)",
        link_bytes as f64 / 1e6,
        delivered_bytes as f64 / 1e6,
        100.0 * delivered
    );
    for (slow, delivery) in &deliveries {
        println!(
            "  node, {} viewer: {} groups superseded, send window {} KiB",
            if *slow { "slow" } else { "fast" },
            delivery.groups_superseded,
            delivery.send_window / 1024
        );
    }
    if std::env::var_os("EDGE_SLOW_VIEWER_GROUPS").is_some() {
        for group in &groups {
            let of: Vec<&Received> = frames.iter().filter(|f| f.group == *group).collect();
            println!(
                "    group {group}: {} frames, {} B, from +{:.2} s",
                of.len(),
                of.iter().map(|f| f.bytes).sum::<usize>(),
                of[0].received_us.saturating_sub(first_sent_us) as f64 / 1e6
            );
        }
    }

    println!(
        "fault-figure slow_viewer.longest_stall_ms {:.0}",
        longest_stall_us as f64 / 1000.0
    );
    println!(
        "fault-figure slow_viewer.lag_p95_ms {:.0}",
        percentile(&lags, 0.95)
    );
    println!(
        "fault-figure slow_viewer.lag_max_ms {:.0}",
        percentile(&lags, 1.0)
    );
    let mut fast_p99_ms: f64 = 0.0;

    // The fast viewers: every frame published after their first one, in order.
    for (i, log) in fast_logs.iter().enumerate() {
        let first = log.frames.first().map_or(u64::MAX, |f| f.sei_us);
        let expected: Vec<u64> = sent
            .iter()
            .map(|s| s.sei_unix_us)
            .filter(|&t| t >= first)
            .collect();
        let got: Vec<u64> = log.frames.iter().map(|f| f.sei_us).collect();
        let longest_gap = log
            .frames
            .windows(2)
            .map(|w| w[1].received_us - w[0].received_us)
            .max()
            .unwrap_or(0);
        let lags = lags_ms(&log.frames);
        println!(
            "  fast viewer {i}: {} of {} frames since its first, longest gap {} ms, lag p50 {:.1} ms, p99 {:.1} ms",
            got.len(),
            expected.len(),
            longest_gap / 1000,
            percentile(&lags, 0.5),
            percentile(&lags, 0.99)
        );
        fast_p99_ms = fast_p99_ms.max(percentile(&lags, 0.99));
        assert!(
            !got.is_empty() && got == expected,
            "fast viewer {i} lost or reordered frames beside the slow one ({} of {})",
            got.len(),
            expected.len()
        );
    }

    println!("fault-figure slow_viewer.others_p99_ms {fast_p99_ms:.1}");
    println!(
        "fault-figure slow_viewer.stall_bound_ms {}",
        (gop + link_delay + MARGIN).as_millis()
    );

    let bound = gop + link_delay + MARGIN;
    let stall = Duration::from_micros(longest_stall_us);
    assert!(
        stall <= bound,
        "the slow viewer stalled {} ms, more than one GOP ({} ms) + its link's delay ({} ms) + \
         margin ({} ms)",
        stall.as_millis(),
        gop.as_millis(),
        link_delay.as_millis(),
        MARGIN.as_millis()
    );
    // Joining is not staying live, but a viewer must not wait long to join either: a new
    // connection's slow start over the queue, then the first keyframe, within two such bounds.
    let first_frame = Duration::from_micros(first_frame_us);
    assert!(
        first_frame <= 2 * bound,
        "the slow viewer's first frame came after {} ms, more than {} ms",
        first_frame.as_millis(),
        (2 * bound).as_millis()
    );
    let lag_p95 = Duration::from_secs_f64(percentile(&lags, 0.95) / 1e3);
    assert!(
        lag_p95 <= bound,
        "the slow viewer fell behind live: lag p95 {} ms, more than {} ms",
        lag_p95.as_millis(),
        bound.as_millis()
    );
    assert!(
        delivered >= MIN_DELIVERED,
        "only {:.0}% of the slow link's bytes arrived as frames (at least {:.0}% expected): the \
         rest went to groups the viewer gave up",
        100.0 * delivered,
        100.0 * MIN_DELIVERED
    );
}
