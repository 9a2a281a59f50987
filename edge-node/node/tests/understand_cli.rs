//! `edge-node understand IMAGE [--model NAME] [--json]` on scikit-image's test images, with
//! the real models setup fetches.

mod common;

use common::*;
use std::process::Output;

fn understand(args: &[&str]) -> Output {
    node_command()
        .arg("understand")
        .args(args)
        .output()
        .expect("run edge-node understand")
}

fn asset(name: &str) -> String {
    repo_root()
        .join(".cache/assets")
        .join(name)
        .display()
        .to_string()
}

/// Runs with `--json` and parses stdout; a failure says to run setup when that is the cause.
fn understand_json(args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = understand(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "edge-node understand {args:?} failed (run `make setup` if models are missing): {stderr}"
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is one JSON object ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn astronaut_json_has_exactly_one_face_in_image_pixels() {
    let v = understand_json(&[&asset("astronaut.png")]);
    let obj = v.as_object().expect("an object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["detections", "height", "model", "width"]);
    assert_eq!(v["model"], "centerface");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(512), Some(512))
    );
    let detections = v["detections"].as_array().expect("a list");
    assert_eq!(detections.len(), 1, "{v}");
    let face = detections[0].as_object().unwrap();
    let mut keys: Vec<&str> = face.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["box", "label", "score"]);
    assert_eq!(face["label"], "face");
    assert!(face["score"].as_f64().unwrap() > 0.5);
    let b: Vec<f64> = face["box"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(b.len(), 4);
    assert!(
        0.0 <= b[0] && b[0] < b[2] && b[2] <= 512.0 && 0.0 <= b[1] && b[1] < b[3] && b[3] <= 512.0
    );
    let (cx, cy) = ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0);
    assert!(
        (150.0..260.0).contains(&cx) && (60.0..170.0).contains(&cy),
        "{b:?}"
    );
}

#[test]
fn no_face_in_coffee_or_cat() {
    for name in ["coffee.png", "chelsea.png"] {
        let v = understand_json(&[&asset(name)]);
        assert_eq!(
            v["detections"].as_array().map(Vec::len),
            Some(0),
            "{name}: {v}"
        );
    }
}

#[test]
fn text_model_finds_the_page_lines() {
    let v = understand_json(&[&asset("page.png"), "--model", "ppocr-det"]);
    assert_eq!(v["model"], "ppocr-det");
    let lines = v["detections"].as_array().unwrap();
    assert!(lines.len() >= 7, "{v}");
    assert!(lines.iter().all(|l| l["label"] == "text"));
}

#[test]
fn text_form_prints_one_line_per_detection() {
    let out = understand(&[&asset("page.png"), "--model", "ppocr-det"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.len() >= 7, "{stdout}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("text 0.") && l.ends_with(']')),
        "{stdout}"
    );
}

#[test]
fn unknown_model_and_bad_image_are_clear_errors() {
    let out = understand(&[&asset("astronaut.png"), "--model", "yolo"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert!(stderr.contains("unknown model \"yolo\""), "{stderr}");
    assert!(stderr.contains("centerface, ppocr-det"), "{stderr}");

    let out = understand(&["/nonexistent/picture.png"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: image /nonexistent/picture.png: "),
        "{stderr}"
    );
}

#[test]
fn missing_runtime_library_names_where_it_looked() {
    let out = understand(&[
        &asset("astronaut.png"),
        "--ort-library",
        "/nonexistent/libonnxruntime.so.1.31.1",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert!(
        stderr.contains("looked at: /nonexistent/libonnxruntime.so.1.31.1 (config)"),
        "{stderr}"
    );
}
