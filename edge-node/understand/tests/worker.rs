//! The worker off the frame path: `offer` never waits for inference, the newest frame wins,
//! and every result names the frame it came from.

mod common;

use common::*;
use edge_core::frame_window::FrameWindow;
use edge_core::sei::unix_now_us;
use edge_understand::{Cadence, Understanding};
use std::sync::{mpsc, Arc};
use std::time::Duration;

#[test]
fn offers_never_wait_and_results_carry_their_frame() {
    let rt = runtime();
    let faces = model(&rt, "centerface").with_cadence(Cadence::EveryFrames(1));
    let (tx, rx) = mpsc::channel();
    // The result callback holds the worker (as a slow inference would) until the test lets go,
    // so the offers below meet a worker that is certainly busy.
    let (release, held) = mpsc::channel::<()>();
    let worker = Understanding::start(vec![faces], move |d| {
        let _ = tx.send(d);
        let _ = held.recv();
    })
    .unwrap();

    let astronaut = image("astronaut.png");
    let frames: Vec<_> = (0..30)
        .map(|seq| Arc::new(frame_720p(&astronaut, seq)))
        .collect();
    worker.offer(frames[0].clone());
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a result for the first frame");
    assert_eq!(first.frame.unwrap().seq, 0);

    // The worker is inside its result callback: an offer that waited for it would never return.
    let worker = Arc::new(worker);
    let (offered, all_offered) = mpsc::channel();
    let offering = std::thread::spawn({
        let (worker, frames) = (worker.clone(), frames.clone());
        move || {
            for frame in &frames[1..] {
                worker.offer(frame.clone());
            }
            let _ = offered.send(());
        }
    });
    all_offered
        .recv_timeout(Duration::from_secs(30))
        .expect("offers return while the worker is busy");
    offering.join().expect("the offering thread");
    // Newest wins: frame 1 waited in the slot, 2..=29 each replaced the one before.
    let stats = worker.stats();
    assert_eq!((stats.frames_offered, stats.frames_replaced), (30, 28));

    // Let go: the worker understands the newest frame, and only that one.
    drop(release);
    let last = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a result for the newest frame");
    let worker = Arc::try_unwrap(worker).unwrap_or_else(|_| panic!("the offering thread joined"));
    let stats = worker.stop();
    let mut results = vec![first, last];
    results.extend(rx.try_iter());

    assert_eq!(stats.frames_offered, 30);
    let m = &stats.models[0];
    assert_eq!(m.model, "centerface");
    assert_eq!(m.runs as usize, results.len());
    assert_eq!(m.failures, 0);
    assert!(m.inference_ms.p50 > 0.0 && m.total_ms.p99 >= m.inference_ms.p50);
    // Each result is for one offered frame, newest-first order is never violated, and the
    // face is found in each.
    let mut last_seq = None;
    for d in &results {
        let meta = d.frame.expect("frame results carry their frame");
        assert_eq!(meta, frames[meta.seq as usize].meta);
        assert!(last_seq < Some(meta.seq));
        last_seq = Some(meta.seq);
        assert_eq!(d.detections.len(), 1);
    }
    assert_eq!(last_seq, Some(29), "{stats:?}");
}

/// `stop` wakes an idle worker (it waits for frames on a condition variable) and joins it.
#[test]
fn stop_returns_when_idle() {
    let rt = runtime();
    let worker = Understanding::start(vec![model(&rt, "ppocr-det")], |_| {}).unwrap();
    let (stopped, stats) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = stopped.send(worker.stop());
    });
    let stats = stats
        .recv_timeout(Duration::from_secs(30))
        .expect("stop returns");
    assert_eq!((stats.frames_offered, stats.models[0].runs), (0, 0));
}

/// Paced beside a frame path, the model waits for the offered frame's encodes, passes over a
/// frame whose idle window is already spent, and runs on one whose window has room.
#[test]
fn paced_inference_waits_for_the_idle_window() {
    let rt = runtime();
    let faces = model(&rt, "centerface").with_cadence(Cadence::EveryFrames(1));
    let window = Arc::new(FrameWindow::new());
    let (tx, rx) = mpsc::channel();
    let worker = Understanding::start_paced(vec![faces], Some(window.clone()), move |d| {
        let _ = tx.send((d, std::time::Instant::now()));
    })
    .unwrap();
    let astronaut = image("astronaut.png");
    // Made beforehand: a debug build takes a good part of an interval to make one.
    let frames: Vec<_> = (0..3)
        .map(|seq| Arc::new(frame_720p(&astronaut, seq)))
        .collect();
    let frame = |seq: usize| frames[seq].clone();
    // A source at about 5 frames a second, so the window is long even for a debug build.
    const INTERVAL_US: u64 = 190_000;
    let start = unix_now_us() - 2 * INTERVAL_US;

    window.rendered(0, start, 1);
    worker.offer(frame(0));
    std::thread::sleep(Duration::from_millis(30));
    let encoded_at = std::time::Instant::now();
    window.encoded(0);
    let (first, got_at) = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(first.frame.unwrap().seq, 0);
    assert!(
        got_at > encoded_at + Duration::from_millis(1),
        "inference started before the frame's encode was out"
    );

    // Arrived a whole interval ago: its window is spent.
    window.rendered(1, start + INTERVAL_US, 0);
    worker.offer(frame(1));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while worker.stats().models[0].deferred == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "frame 1 never passed over"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    // Arriving now: a whole interval ahead.
    window.rendered(2, unix_now_us(), 0);
    worker.offer(frame(2));
    let (last, _) = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(last.frame.unwrap().seq, 2);
    let stats = worker.stop();
    let m = &stats.models[0];
    assert_eq!((m.runs, m.deferred, m.late), (2, 1, 0), "{stats:?}");
}
