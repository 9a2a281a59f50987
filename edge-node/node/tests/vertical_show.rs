//! A vertical (9:16) show end to end: the test show shot upright, served and watched. A
//! rendition names the picture's short side, so the viewer gets an upright picture of the
//! source's own aspect, with the overlays inside it.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn a_vertical_show_reaches_the_viewer_upright_at_its_own_aspect() {
    let mut node_cmd = node_command();
    node_cmd
        .args([
            "serve",
            "--upstream",
            "testshow://?width=540&height=960&fps=15",
        ])
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--duration",
            "20",
        ])
        .env("EDGE_NODE_UNDERSTANDING_ENABLED", "false")
        .env("EDGE_NODE_BUDGET_ADMISSION", "false");
    let node = spawn_serving(node_cmd);

    let snapshot = unique_temp_dir("vertical").join("viewer.png");
    let mut view = node_command();
    view.args(["view", node.url("?zone=yintai-mall").as_str()])
        .args(["--duration", "4", "--json", "--fps", "15", "--snapshot"])
        .arg(&snapshot);
    let mut viewer = Proc::spawn("viewer", view);
    let status = viewer.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "viewer failed:\n{}", viewer.log_text());
    let log = viewer.log_text();
    let json_start = log.find("\n{\n").map_or(0, |i| i + 1);
    let report: serde_json::Value =
        serde_json::from_str(&log[json_start..]).unwrap_or_else(|e| panic!("{e}: {log}"));
    assert_eq!(
        report["snapshot_size"],
        serde_json::json!([536, 952]),
        "the default 720p rendition of a 540x960 show is the show itself, upright (its width a whole number of chroma words): {report}"
    );
    assert!(report["frames_decoded"].as_u64().unwrap() >= 30, "{report}");

    // The picture holds the campaign's overlays: the mall ad's warm colours somewhere in it,
    // which a landscape layout would have pushed off an upright frame.
    let png = std::fs::read(&snapshot).expect("snapshot written");
    let (width, height, rgba) = edge_compose::decode_png_rgba(&png).expect("a PNG");
    assert_eq!((width, height), (536, 952));
    let warm = rgba
        .chunks_exact(4)
        .filter(|p| p[0] > 200 && p[1] > 60 && p[1] < 170 && p[2] < 140)
        .count();
    assert!(warm > 2_000, "the mall ad is drawn: {warm} warm pixels");
}
