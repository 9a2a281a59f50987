//! `edge-bench` on its own and through `edge-node bench`: a bad flag is refused with the same
//! words either way, before anything is measured.

use std::path::PathBuf;
use std::process::Command;

fn edge_bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edge-bench"))
}

/// `edge-node`, built beside `edge-bench` when the workspace's tests are built together.
fn edge_node() -> Command {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_edge-bench")).with_file_name("edge-node");
    assert!(
        path.is_file(),
        "no edge-node at {}: build the workspace's tests together (`cargo test --workspace`)",
        path.display()
    );
    Command::new(path)
}

fn refusal(mut command: Command) -> String {
    let out = command
        .args(["--resolution", "7x7"])
        .output()
        .expect("runs");
    assert!(!out.status.success(), "a 7x7 test show is refused");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn a_bad_resolution_is_refused_before_anything_runs() {
    let stderr = refusal(edge_bench());
    assert!(
        stderr.contains("--resolution must be WIDTHxHEIGHT with even sides >= 16, got \"7x7\""),
        "{stderr}"
    );
}

#[test]
fn edge_node_bench_runs_edge_bench_with_its_arguments() {
    let mut node = edge_node();
    node.arg("bench");
    assert_eq!(refusal(node), refusal(edge_bench()));
}

#[test]
fn edge_node_bench_help_is_edge_bench_help() {
    let help = |mut command: Command| {
        let out = command.arg("--help").output().expect("runs");
        assert!(out.status.success());
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let mut node = edge_node();
    node.arg("bench");
    let through_node = help(node);
    assert!(through_node.contains("--capacity"), "{through_node}");
    assert_eq!(through_node, help(edge_bench()));
}

#[test]
fn the_upstream_file_bench_refuses_a_bad_zoom_or_a_missing_file_before_anything_runs() {
    let run = |args: &[&str]| {
        let out = edge_bench().args(args).output().expect("runs");
        assert!(!out.status.success(), "{args:?} is refused");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    };
    let file = std::env::temp_dir().join(format!("edge-bench-cli-{}.mp4", std::process::id()));
    std::fs::write(&file, b"not a video").unwrap();
    let path = file.to_str().unwrap();
    let bad_zoom = run(&["--upstream-file", path, "--zoom-viewer", "0.9,0.9,0.5,0.5"]);
    assert!(bad_zoom.contains("--zoom-viewer"), "{bad_zoom}");
    let not_video = run(&["--upstream-file", path]);
    assert!(
        not_video.contains("probe") && not_video.contains(path),
        "{not_video}"
    );
    std::fs::remove_file(&file).unwrap();
    let missing = run(&["--upstream-file", "/nonexistent/show.mp4"]);
    assert!(missing.contains("/nonexistent/show.mp4"), "{missing}");
}
