//! The built-in test show through the real decode path.

mod common;

use common::{assert_monotonic, config, Recorder};
use edge_core::sei::unix_now_us;
use edge_media::{Ingest, UpstreamEvent};
use std::time::Duration;

#[test]
fn test_show_delivers_sized_monotonic_frames_and_decode_latency() {
    let rec = Recorder::default();
    let per_frame: std::sync::Arc<std::sync::Mutex<Vec<Option<Duration>>>> = Default::default();
    let lookups = per_frame.clone();
    let mut record = rec.sink();
    let sink = move |f: edge_core::I420Frame| {
        lookups
            .lock()
            .unwrap()
            .push(edge_media::decode_latency(&f.meta));
        record(f);
    };
    let started_us = unix_now_us();
    let ingest = Ingest::start(
        config("testshow://?width=640&height=360&fps=30"),
        sink,
        rec.events(),
    )
    .unwrap();
    let format = ingest.wait_first_frame(Duration::from_secs(10)).unwrap();
    assert_eq!((format.width, format.height), (640, 360));
    assert!((format.fps - 30.0).abs() < 0.01, "{format:?}");

    rec.wait_for("45 frames", Duration::from_secs(10), |r| {
        r.frames.len() >= 45
    });
    let metrics = ingest.metrics();
    ingest.stop();
    let ended_us = unix_now_us();

    rec.with(|r| {
        assert!(r.frames.iter().all(|f| (f.0, f.1) == (640, 360)));
        assert_monotonic(&r.frames);
        assert!(r
            .frames
            .iter()
            .all(|f| (started_us..=ended_us).contains(&f.4)));
        // Live pacing: 45 frames at 30 fps span about 1.5 s of pts.
        let span_ms = (r.frames[44].3 - r.frames[0].3) / 1_000_000;
        assert!((1_300..=1_700).contains(&span_ms), "pts span {span_ms} ms");
        assert!(matches!(
            r.events.first(),
            Some(UpstreamEvent::Connected { .. })
        ));
        assert!(!r
            .events
            .iter()
            .any(|e| matches!(e, UpstreamEvent::Lost { .. })));
    });
    let decode = metrics.take_decode_latency();
    assert!(decode.count() >= 40, "decode samples: {}", decode.count());
    let p = decode.percentiles();
    assert!(p.p50 > 0.0 && p.p50 < 50.0, "decode latency {p:?}");
    // The per-frame lookup answers for (nearly) every frame the decoder measured.
    let per_frame = per_frame.lock().unwrap();
    let found = per_frame.iter().flatten().count();
    assert!(
        found * 10 >= per_frame.len() * 9,
        "{found} of {}",
        per_frame.len()
    );
    eprintln!("test show 640x360 decode latency ms: {p:?}");
}
