//! The worker off the frame path: `offer` never waits for inference, the newest frame wins,
//! and every result names the frame it came from.

mod common;

use common::*;
use edge_understand::{Cadence, Understanding};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

#[test]
fn offers_never_wait_and_results_carry_their_frame() {
    let rt = runtime();
    let faces = model(&rt, "centerface").with_cadence(Cadence::EveryFrames(1));
    let (tx, rx) = mpsc::channel();
    let worker = Understanding::start(vec![faces], move |d| {
        let _ = tx.send(d);
    })
    .unwrap();

    let astronaut = image("astronaut.png");
    let frames: Vec<_> = (0..30)
        .map(|seq| Arc::new(frame_720p(&astronaut, seq)))
        .collect();
    let mut offer_times = Vec::new();
    for frame in &frames {
        let started = Instant::now();
        worker.offer(frame.clone());
        offer_times.push(started.elapsed());
        // A 100 fps source: faster than CenterFace runs on a CPU.
        std::thread::sleep(Duration::from_millis(10));
    }
    // Newest wins: the last frame offered is never replaced, so it is understood last.
    let mut results = Vec::new();
    while results
        .last()
        .map(|d: &Arc<edge_understand::Detections>| d.frame.unwrap().seq)
        != Some(29)
    {
        let d = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no result for the last frame; got {}", results.len()));
        results.push(d);
    }
    let stats = worker.stop();
    results.extend(rx.try_iter());

    // Waiting for inference would make every offer take tens of milliseconds; the median
    // says it never does (a single slow one is the scheduler on a busy 2-core machine).
    offer_times.sort();
    assert!(
        offer_times[offer_times.len() / 2] < Duration::from_millis(1),
        "offer times {offer_times:?}"
    );
    assert_eq!(stats.frames_offered, 30);
    assert!(stats.frames_replaced > 0, "{stats:?}");
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

#[test]
fn stop_returns_promptly_when_idle() {
    let rt = runtime();
    let worker = Understanding::start(vec![model(&rt, "ppocr-det")], |_| {}).unwrap();
    let started = Instant::now();
    let stats = worker.stop();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!((stats.frames_offered, stats.models[0].runs), (0, 0));
}
