//! End to end with a third-party viewer: `edge-node serve` on the built-in test show, PyPI
//! `moq-rs` 0.5.1 subscribing to `live` over WebTransport, and ffmpeg's strict decoder judging
//! what arrived.

mod common;

use common::*;
use edge_core::sei::unix_now_us;
use std::process::Command;
use std::time::Duration;

#[test]
fn moq_rs_receives_clean_timestamped_h264_from_serve() {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} missing: run `make setup` (it installs moq-rs==0.5.1)",
        python.display()
    );
    let script = repo_root().join("edge-node/deliver/tests/moq_rs_subscribe.py");

    let started_us = unix_now_us();
    let mut node = start_node("testshow://?width=640&height=360&fps=30", 60);

    let dir = unique_temp_dir("e2e");
    let dump = dir.join("live.h264");
    let mut cmd = Command::new(&python);
    cmd.arg(&script)
        .args([node.url("").as_str(), "--seconds", "4", "--out"])
        .arg(&dump)
        .env("PYTHONUNBUFFERED", "1");
    let mut viewer = Proc::spawn("moq-rs", cmd);
    let status = viewer.wait_exit(Duration::from_secs(40));
    let log = viewer.log_text();
    assert!(
        status.success(),
        "moq-rs viewer failed:\n{log}\nnode:\n{}",
        node.log_text()
    );

    let line = log
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .expect("moq-rs printed a JSON summary");
    let summary: serde_json::Value = serde_json::from_str(line).unwrap();
    eprintln!("moq-rs summary: {summary}");
    let frames = summary["frames"].as_u64().unwrap();
    assert!(
        frames >= 90,
        "at least 3 s of frames at 30 fps, got {frames}"
    );
    assert_eq!(summary["first_is_keyframe"], true);
    assert!(
        summary["keyframes"].as_u64().unwrap() >= 2,
        "a GOP of 1 s gives several IDRs in 4 s"
    );
    assert_eq!(
        summary["sei_missing"], 0,
        "every frame carries the frame-clock SEI"
    );
    assert_eq!(summary["sei_increasing"], true);
    let (first, last) = (
        summary["sei_first_us"].as_u64().unwrap(),
        summary["sei_last_us"].as_u64().unwrap(),
    );
    assert!(
        first >= started_us && last <= unix_now_us(),
        "SEI times are this run's wall clock"
    );
    assert!(
        last - first >= 2_500_000,
        "SEI times span the seconds received ({first}..{last})"
    );
    assert!(summary["codec"].as_str().unwrap().starts_with("avc3."));

    let decode = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-xerror",
            "-err_detect",
            "explode",
            "-i",
        ])
        .arg(&dump)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(
        decode.status.success(),
        "strict decode failed: {}",
        String::from_utf8_lossy(&decode.stderr)
    );
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(&dump)
        .output()
        .expect("run ffprobe");
    let probed = String::from_utf8_lossy(&probe.stdout).trim().to_string();
    assert_eq!(
        probed,
        format!("640,360,{frames}"),
        "every received access unit decodes to a 640x360 picture"
    );

    node.kill();
    let _ = std::fs::remove_dir_all(&dir);
}
