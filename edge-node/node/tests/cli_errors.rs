//! Operator mistakes get one clear line on stderr and a non-zero exit, never a panic.

mod common;

use common::*;
use std::process::Output;

fn run(args: &[&str]) -> Output {
    node_command().args(args).output().expect("run edge-node")
}

fn assert_clean_failure(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "no panic: {stderr}");
    let error_line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("one error line: {stderr}"));
    assert!(
        error_line.contains(needle),
        "error names the problem ({needle:?}): {error_line}"
    );
}

/// A TCP port nothing listens on: bound, then freed. Another process taking it meanwhile would
/// change only which error the node reports, and the assertion names the address either way.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a TCP port");
    listener.local_addr().expect("bound").port()
}

#[test]
fn unknown_uri_scheme() {
    let out = run(&[
        "serve",
        "--upstream",
        "gopher://origin/show",
        "--listen",
        "127.0.0.1:0",
        "--duration",
        "1",
    ]);
    assert_clean_failure(&out, "gopher");
}

#[test]
fn unreachable_upstream() {
    let dead = closed_port();
    let out = run(&[
        "serve",
        "--upstream",
        &format!("rtsp://127.0.0.1:{dead}/show"),
        "--listen",
        "127.0.0.1:0",
        "--duration",
        "1",
    ]);
    assert_clean_failure(&out, &format!("127.0.0.1:{dead}"));
}

#[test]
fn unsupported_codec() {
    // A real video file in a codec no installed GStreamer decoder handles (ffmpeg's Commodore
    // 64 "a64multi" in Matroska), and an audio-only file: neither can feed the node.
    let dir = std::env::temp_dir().join(format!("edge-node-codec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let a64 = dir.join("show.mkv");
    let wav = dir.join("show.wav");
    for (input, codec, file) in [
        ("testsrc=size=320x200:rate=25", "a64multi", &a64),
        ("sine", "pcm_s16le", &wav),
    ] {
        let made = std::process::Command::new("ffmpeg")
            .args([
                "-v", "error", "-y", "-f", "lavfi", "-i", input, "-t", "2", "-c", codec,
            ])
            .arg(file)
            .status()
            .expect("run ffmpeg");
        assert!(made.success());
    }
    let listen = "127.0.0.1:0";
    let out = run(&[
        "serve",
        "--upstream",
        &format!("file://{}", a64.display()),
        "--listen",
        listen,
        "--duration",
        "1",
    ]);
    assert_clean_failure(&out, "Missing decoder");
    let out = run(&[
        "serve",
        "--upstream",
        &format!("file://{}", wav.display()),
        "--listen",
        listen,
        "--duration",
        "1",
    ]);
    assert_clean_failure(&out, "no video stream");
}

#[test]
fn broken_png_overlay() {
    let dir = std::env::temp_dir().join(format!("edge-node-png-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ad.png"), b"\x89PNG\r\n\x1a\nthen garbage").unwrap();
    std::fs::write(
        dir.join("node.toml"),
        "[server]\nlisten = \"127.0.0.1:0\"\n[[overlays]]\nname = \"ad\"\nimage = \"ad.png\"\n",
    )
    .unwrap();
    let config = dir.join("node.toml");
    let out = run(&[
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--duration",
        "1",
    ]);
    assert_clean_failure(&out, "ad.png");
    // check-config decodes it as serve does, so it refuses the file too.
    let out = run(&["check-config", config.to_str().unwrap()]);
    assert!(
        !out.status.success(),
        "check-config refuses a broken overlay"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("overlays[0].image") && stdout.contains("not a usable PNG"),
        "{stdout}"
    );
}

#[test]
fn invalid_config_lists_every_problem_with_its_place() {
    let dir = std::env::temp_dir().join(format!("edge-node-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("bad.toml");
    std::fs::write(
        &config,
        "[encode]\ngop_ms = 9000\nbitrate_kbps = 5\n[output]\nfps = 0\n",
    )
    .unwrap();
    let out = run(&["check-config", config.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    for place in ["encode.gop_ms", "encode.bitrate_kbps", "output.fps"] {
        assert!(stdout.contains(place), "{place} reported: {stdout}");
    }
    let out = run(&["serve", "--config", config.to_str().unwrap()]);
    assert_clean_failure(&out, "invalid config (3 problems)");

    std::fs::write(&config, "[encode\ngop_ms = 1000\n").unwrap();
    let out = run(&["check-config", config.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("bad.toml:1:"),
        "syntax error with line: {out:?}"
    );
}

#[test]
fn embedded_default_passes_check_config() {
    let path = repo_root().join("edge-node/node/default-config.toml");
    let out = run(&["check-config", path.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
}

/// Started from another directory with no asset directory named, the node still finds the
/// test show's picture (in the source tree its binary was built in) and serves.
#[test]
fn serve_finds_its_assets_from_any_directory() {
    let mut cmd = node_command();
    cmd.env_remove("EDGE_NODE_ASSET_DIR")
        .current_dir(std::env::temp_dir())
        .args([
            "serve",
            "--upstream",
            "testshow://?width=320&height=180&fps=15",
        ])
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--duration",
            "5",
        ]);
    // Serving is reported once the first frame of the test show is decoded.
    let node = spawn_serving(cmd);
    assert!(node.metric("edge_frames_total{stage=\"ingest\"}") >= Some(1.0));
}

/// `edge-node view` closes its session when it exits: the node counts the viewer out at once,
/// not at its idle timeout (several seconds) as it did when the close was never sent.
#[test]
fn view_closes_its_session_when_it_exits() {
    let node = start_node("testshow://?width=320&height=180&fps=15", 30);
    let out = node_command()
        .args(["view", node.url("").as_str(), "--duration", "2"])
        .output()
        .expect("run edge-node view");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = std::time::Instant::now();
    wait_until(
        std::time::Duration::from_secs(3),
        "the viewer's session gone",
        || node.sessions().is_empty(),
    );
    eprintln!("session gone {:?} after view exited", left.elapsed());
}
