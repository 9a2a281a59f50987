//! A third-party viewer (PyPI `moq-rs`, from the repository's `.venv`) receives a rendering; the
//! access units it dumps must decode cleanly under ffmpeg's strictest error detection.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use edge_deliver::VideoTrackInfo;

fn venv_python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python")
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/moq_rs_subscribe.py")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moq_rs_receives_a_cleanly_decodable_stream() {
    init_tracing();
    let python = venv_python();
    // `make setup` creates the venv (CI runs it first): without it this fails, never passes.
    assert!(
        python.exists(),
        "no Python venv at {}: run `make setup` (it installs moq-rs==0.5.1 there)",
        python.display()
    );
    let units = access_units(&h264_clip(320, 240, 3, &[]));
    let server = loopback_server(Arc::new(FixedRouter("main"))).await;
    let publisher = server
        .publish_rendering(
            "main",
            VideoTrackInfo {
                width: 320,
                height: 240,
                fps: 30.0,
            },
        )
        .expect("publish");
    // Already streaming when the viewer arrives: it joins mid-GOP and must still start on a
    // keyframe (the group's first frame). Four loops outlast Python's start-up plus 3 s.
    let pacer = Pacer::start(publisher, units, 30.0, 4);

    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("moq_rs_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dump = dir.join("dump.h264");
    let stderr_log = dir.join("python.stderr");
    // No fingerprint given: the script fetches /certificate.sha256 like a browser page, and
    // moq-rs races its WebSocket fallback against our TCP port.
    let url = format!("https://{}/?zone=interop", server.local_addr());
    let mut child = Command::new(&python)
        .arg(script())
        .args([url.as_str(), "--seconds", "3", "--out"])
        .arg(&dump)
        .env("PYTHONUNBUFFERED", "1")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_log).unwrap())
        .spawn()
        .expect("start python");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll python") {
            break status;
        }
        if tokio::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "moq-rs client did not finish; stderr:\n{}",
                std::fs::read_to_string(&stderr_log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    let stderr = std::fs::read_to_string(&stderr_log).unwrap_or_default();
    assert!(
        status.success(),
        "moq-rs client failed ({status}); stdout: {stdout}\nstderr:\n{stderr}"
    );

    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a summary line"))
            .unwrap_or_else(|e| panic!("summary is JSON ({e}): {stdout}"));
    println!("moq-rs summary: {summary}");
    let frames = summary["frames"].as_u64().unwrap();
    assert!(frames >= 60, "about 3 s at 30 fps, got {frames}");
    assert!(summary["keyframes"].as_u64().unwrap() >= 2, "GOP of 1 s");
    assert_eq!(
        summary["first_is_keyframe"], true,
        "a joining viewer starts on a keyframe"
    );
    assert_eq!(summary["sei_missing"], 0);
    assert_eq!(summary["sei_increasing"], true);
    assert_eq!(summary["timestamps_increasing"], true);
    assert!(summary["sei_last_us"].as_u64().unwrap() > summary["sei_first_us"].as_u64().unwrap());
    assert!(summary["codec"].as_str().unwrap().starts_with("avc3."));

    let decoded = decode_strictly(&dump);
    if let Err(errors) = decoded {
        panic!("the dump must decode cleanly: {}", errors);
    }

    let publisher = pacer.finish();
    assert!(publisher.stats().frames_written > frames);
    drop(publisher);
    server.shutdown(0, "test over").await;
    let _ = std::fs::remove_dir_all(&dir);
}
