//! Snapshots of live frames, and the decode -> encode floor on the test show.

mod common;

use common::config;
use edge_core::I420Frame;
use edge_media::{floor::run_floor_with, write_png_snapshot, Ingest};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn snapshot_of_a_test_show_frame_is_a_png_of_the_right_size() {
    let latest: Arc<Mutex<Option<I420Frame>>> = Arc::default();
    let slot = latest.clone();
    let ingest = Ingest::start(
        config("testshow://?width=480&height=270&fps=15"),
        move |f| *slot.lock().unwrap() = Some(f),
        |_| {},
    )
    .unwrap();
    ingest.wait_first_frame(Duration::from_secs(10)).unwrap();
    ingest.stop();
    let frame = latest.lock().unwrap().clone().unwrap();
    let path = common::temp_dir("snapshot").join("frame.png");
    write_png_snapshot(&frame, &path).unwrap();

    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut rgb = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut rgb).unwrap();
    assert_eq!((info.width, info.height), (480, 270));
    assert_eq!(info.color_type, png::ColorType::Rgb);
    // Not a flat image: the bars and the face give a wide range of colours.
    let distinct: std::collections::HashSet<_> =
        rgb.chunks(3).map(|p| (p[0], p[1], p[2])).collect();
    assert!(distinct.len() > 100, "{} colours", distinct.len());

    let err =
        write_png_snapshot(&frame, std::path::Path::new("/nonexistent-dir/x.png")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent-dir/x.png"), "{err}");
}

#[test]
fn floor_reports_decode_encode_latency_on_the_test_show() {
    let report = run_floor_with(
        config("testshow://?width=640&height=360&fps=30"),
        Duration::from_secs(2),
        Duration::from_millis(300),
    )
    .unwrap();
    assert_eq!((report.format.width, report.format.height), (640, 360));
    assert_eq!(report.encoder, edge_media::best_h264_encoder().unwrap());
    assert!(report.frames_encoded >= 40, "{report:?}");
    assert!(report.frames_decoded >= report.frames_encoded);
    let node = report.latency.percentiles();
    assert!(report.latency.count() >= 40, "{report:?}");
    assert!(node.p50 > 0.0 && node.p50 < 50.0, "{node:?}");
    assert!(report.encode_latency.count() >= 40);
    assert!(report.decode_latency.count() >= 40);
    eprintln!(
        "floor 640x360: node {:?} decode {:?} encode {:?}",
        node,
        report.decode_latency.percentiles(),
        report.encode_latency.percentiles()
    );
}
