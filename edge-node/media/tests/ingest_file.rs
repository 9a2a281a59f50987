//! `file://` upstreams: real-time pacing, loss and reconnect, looping, a mid-stream
//! resolution change.

mod common;

use common::{assert_monotonic, config, h264_ts, temp_dir, Recorder};
use edge_media::{Ingest, UpstreamEvent};
use std::time::{Duration, Instant};

fn count(r: &common::Recorded, f: impl Fn(&UpstreamEvent) -> bool) -> usize {
    r.events.iter().filter(|e| f(e)).count()
}

#[test]
fn file_is_paced_then_lost_at_its_end_and_reconnects_when_it_returns() {
    let dir = temp_dir("file-loss");
    let path = dir.join("show.ts");
    h264_ts(&path, 320, 240, 30, 0, "smpte");
    let uri = format!("file://{}", path.display());
    let mut cfg = config(&uri);
    cfg.reconnect_initial = Duration::from_millis(100);
    cfg.reconnect_max = Duration::from_millis(400);
    let rec = Recorder::default();
    let started = Instant::now();
    let ingest = Ingest::start(cfg, rec.sink(), rec.events()).unwrap();
    let format = ingest.wait_first_frame(Duration::from_secs(10)).unwrap();
    assert_eq!((format.width, format.height), (320, 240));

    // The file ends after one second of video: that is a loss for a live node.
    rec.wait_for("loss at end of file", Duration::from_secs(10), |r| {
        count(r, |e| matches!(e, UpstreamEvent::Lost { .. })) >= 1
    });
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "1 s of video played in {:?}: not paced",
        started.elapsed()
    );
    let first_run = rec.with(|r| r.frames.len());
    assert!(first_run >= 25, "only {first_run} frames");
    std::fs::rename(&path, dir.join("away.ts")).unwrap();
    rec.wait_for("failed reconnects", Duration::from_secs(10), |r| {
        count(r, |e| matches!(e, UpstreamEvent::Reconnecting { .. })) >= 3
    });
    rec.with(|r| {
        let reasons: Vec<_> = r
            .events
            .iter()
            .filter_map(|e| match e {
                UpstreamEvent::Lost { reason } => Some(reason.clone()),
                _ => None,
            })
            .collect();
        assert!(reasons[0].contains("ended"), "{reasons:?}");
        assert!(reasons.len() >= 2, "{reasons:?}");
    });
    std::fs::rename(dir.join("away.ts"), &path).unwrap();
    rec.wait_for("reconnect", Duration::from_secs(10), |r| {
        count(r, |e| matches!(e, UpstreamEvent::Connected { .. })) >= 2
            && r.frames.len() > first_run + 5
    });
    let metrics = ingest.metrics();
    ingest.stop();
    assert!(metrics.reconnects_total() >= 3);
    rec.with(|r| assert_monotonic(&r.frames));
}

#[test]
fn looping_file_continues_without_loss() {
    let dir = temp_dir("file-loop");
    let path = dir.join("short.ts");
    h264_ts(&path, 320, 240, 15, 0, "ball");
    let rec = Recorder::default();
    let ingest = Ingest::start(
        config(&format!("file://{}?loop=1", path.display())),
        rec.sink(),
        rec.events(),
    )
    .unwrap();
    // 15 frames per loop: 40 frames need at least two loops.
    rec.wait_for("frames across loops", Duration::from_secs(10), |r| {
        r.frames.len() >= 40
    });
    ingest.stop();
    rec.with(|r| {
        assert_monotonic(&r.frames);
        assert_eq!(
            count(r, |e| matches!(e, UpstreamEvent::Lost { .. })),
            0,
            "{:?}",
            r.events
        );
    });
}

#[test]
fn resolution_change_mid_stream_emits_format_changed() {
    let dir = temp_dir("file-resize");
    let (a, b, joined) = (dir.join("a.ts"), dir.join("b.ts"), dir.join("joined.ts"));
    h264_ts(&a, 320, 240, 20, 0, "smpte");
    h264_ts(&b, 640, 480, 20, 20 * 33_333_333, "ball");
    let mut bytes = std::fs::read(&a).unwrap();
    bytes.extend(std::fs::read(&b).unwrap());
    std::fs::write(&joined, bytes).unwrap();

    let rec = Recorder::default();
    let ingest = Ingest::start(
        config(&format!("file://{}", joined.display())),
        rec.sink(),
        rec.events(),
    )
    .unwrap();
    rec.wait_for("frames at the new size", Duration::from_secs(10), |r| {
        r.frames.iter().filter(|f| f.0 == 640).count() >= 10
    });
    ingest.stop();
    rec.with(|r| {
        let changed = r.events.iter().find_map(|e| match e {
            UpstreamEvent::FormatChanged { from, to } => Some((*from, *to)),
            _ => None,
        });
        let (from, to) = changed.unwrap_or_else(|| panic!("no FormatChanged in {:?}", r.events));
        assert_eq!(
            (from.width, from.height, to.width, to.height),
            (320, 240, 640, 480)
        );
        assert!(r.frames.iter().filter(|f| f.0 == 320).count() >= 10);
        assert!(r
            .frames
            .iter()
            .all(|f| (f.0, f.1) == (320, 240) || (f.0, f.1) == (640, 480)));
        assert_monotonic(&r.frames);
    });
}
