//! Content understanding in the running node: detections reach viewers on the metadata track,
//! stamped with the exact media time of a video frame they received; and a missing model costs
//! understanding only, never the video.

mod common;

use common::*;
use edge_deliver::client::{self, ClientOptions};
use std::collections::HashSet;
use std::time::Duration;

fn serve(extra_config: &str) -> ServingNode {
    let config = write_node_config(
        "understanding",
        &format!(
            "[upstream]\nuri = \"testshow://?width=1280&height=720&fps=15\"\n\
             [server]\nlisten = \"127.0.0.1:0\"\n[output]\nfps = 15\n{extra_config}"
        ),
    );
    let mut cmd = node_command();
    cmd.args([
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--duration",
        "30",
    ]);
    spawn_serving(cmd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detections_arrive_on_the_metadata_track_stamped_with_their_video_frame() {
    let mut node = serve("");
    let url = node.url("");
    let mut viewer = client::subscribe(&url, ClientOptions::default())
        .await
        .expect("subscribe");
    let mut metadata = viewer.subscribe_metadata().await.expect("metadata track");
    let video = tokio::spawn(async move {
        let mut timestamps = HashSet::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
        while let Ok(Some(frame)) = tokio::time::timeout_at(deadline, viewer.next_frame()).await {
            timestamps.insert(frame.timestamp_us);
        }
        timestamps
    });
    let mut messages = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, metadata.next()).await {
        messages.push(message);
    }
    let video_timestamps = video.await.unwrap();

    // Five a second at the default cadence when the CPU is free; a loaded CI machine gets fewer.
    assert!(
        messages.len() >= 4,
        "results keep coming: {}",
        messages.len()
    );
    let first_video = *video_timestamps.iter().min().expect("video frames");
    let last_video = *video_timestamps.iter().max().expect("video frames");
    let (mut with_face, mut checked) = (0, 0);
    for (timestamp_us, payload) in &messages {
        let json: serde_json::Value = serde_json::from_slice(payload).expect("JSON");
        assert_eq!(json["model"], "centerface");
        assert_eq!(
            (json["width"].as_u64(), json["height"].as_u64()),
            (Some(1280), Some(720))
        );
        assert_eq!(
            json["frame"]["pts_ns"].as_u64().map(|ns| ns / 1000),
            Some(*timestamp_us),
            "the message is stamped with its frame's media time"
        );
        // Results for frames from before this viewer's first keyframe describe pictures it
        // never got; every other one names a frame it received.
        if (first_video..=last_video).contains(timestamp_us) {
            checked += 1;
            assert!(
                video_timestamps.contains(timestamp_us),
                "{timestamp_us} is the timestamp of a video frame the viewer received"
            );
        }
        let faces = json["detections"].as_array().unwrap();
        if faces.iter().any(|d| d["label"] == "face") {
            with_face += 1;
            let b = faces[0]["box"].as_array().unwrap();
            assert!(b.len() == 4 && b[0].as_f64() < b[2].as_f64());
        }
    }
    assert!(checked >= 3, "results during the viewer's video: {checked}");
    assert!(
        with_face * 10 >= messages.len() * 8,
        "the test show's host is found: {with_face}/{}",
        messages.len()
    );
    // How the runs fitted the frame path's idle time is on the operator's metrics.
    for series in [
        "edge_understanding_deferred_frames_total{model=\"centerface\"}",
        "edge_understanding_late_runs_total{model=\"centerface\"}",
    ] {
        assert!(node.metric(series).is_some(), "{series} on /metrics");
    }
    node.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_model_leaves_the_video_running_and_says_where_it_looked() {
    let empty = unique_temp_dir("no-models");
    let mut node = serve(&format!(
        "[understanding]\nmodels_dir = {:?}\n",
        empty.to_str().unwrap()
    ));
    // The decision, from the node's metrics: no model loaded, yet the node serves.
    assert_eq!(node.metric("edge_models_loaded"), Some(0.0));
    let (status, _, ready) = http(node.admin_port(), "GET", "/ready", &[], "");
    assert!(
        status == 200 && ready.contains("models: disabled"),
        "ready, with understanding off rather than loading: {ready}"
    );
    // What the operator reads: which model is missing and where the node looked.
    let log = node.log_text();
    assert!(
        log.contains(empty.to_str().unwrap()),
        "the node says where it looked for the models:\n{log}"
    );
    let url = node.url("");
    let mut viewer = client::subscribe(&url, ClientOptions::default())
        .await
        .expect("subscribe");
    let mut frames = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Some(_)) = tokio::time::timeout_at(deadline, viewer.next_frame()).await {
        frames += 1;
    }
    assert!(
        frames >= 30,
        "video keeps flowing without understanding: {frames}"
    );
    node.kill();
}
