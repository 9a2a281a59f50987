//! Operator mistakes and unreachable upstreams give clear errors, never a panic.

mod common;

use common::config;
use edge_media::{Ingest, IngestConfig, MediaError};
use std::time::Duration;

fn start(cfg: IngestConfig) -> Result<Ingest, MediaError> {
    Ingest::start(cfg, |_| {}, |_| {})
}

#[test]
fn unknown_scheme_is_an_immediate_error() {
    let err = start(config("gopher://example.com/show")).err().unwrap();
    assert!(matches!(err, MediaError::UnsupportedUri { .. }));
    let msg = err.to_string();
    assert!(msg.contains("gopher") && msg.contains("rtmp"), "{msg}");
    assert!(start(config("not a uri")).is_err());
}

#[test]
fn missing_file_names_the_path() {
    let err = start(config("file:///nonexistent/dir/show.ts"))
        .err()
        .unwrap();
    assert!(matches!(err, MediaError::FileNotFound { .. }));
    assert!(
        err.to_string().contains("/nonexistent/dir/show.ts"),
        "{err}"
    );
}

#[test]
fn missing_test_show_asset_says_to_run_setup() {
    let mut cfg = config("testshow://");
    cfg.asset_dirs = vec!["/nonexistent-assets".into(), "/also-not-here".into()];
    let msg = start(cfg).err().unwrap().to_string();
    assert!(
        msg.contains("/nonexistent-assets/astronaut.png, /also-not-here/astronaut.png")
            && msg.contains("make setup"),
        "{msg}"
    );
}

#[test]
fn unreachable_upstream_times_out_with_the_last_failure() {
    // Nothing listens on port 9 of localhost: the connection is refused at once.
    let ingest = start(config("rtsp://127.0.0.1:9/live")).unwrap();
    // Connections are refused at once, so only the 3 s wait itself can end this with
    // `NoFirstFrame`: the error is the proof that the wait is bounded.
    let err = ingest.wait_first_frame(Duration::from_secs(3)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, MediaError::NoFirstFrame { .. }), "{msg}");
    assert!(msg.contains("rtsp://127.0.0.1:9/live"), "{msg}");
    assert!(
        !msg.contains("is the upstream publishing"),
        "no failure detail: {msg}"
    );
    ingest.stop();
}
