//! Real models (fetched by setup) on real images (scikit-image's test set).

mod common;

use common::*;
use edge_understand::{Detections, Model, UnderstandError};

fn describe(d: &Detections) -> String {
    d.detections
        .iter()
        .map(|d| format!("{} {:.3} {:?}", d.label, d.score, d.bbox))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn astronaut_has_exactly_one_face_where_her_face_is() {
    let rt = runtime();
    let mut faces = model(&rt, "centerface");
    let d = faces.detect_rgb(&image("astronaut.png")).unwrap();
    assert_eq!(
        (d.model.as_str(), d.width, d.height),
        ("centerface", 512, 512)
    );
    assert_eq!(d.detections.len(), 1, "{}", describe(&d));
    let face = &d.detections[0];
    assert_eq!(face.label, "face");
    assert!(face.score > 0.5);
    // Eileen Collins' face: centre around (x 200, y 110) in the 512x512 portrait.
    let [x0, y0, x1, y1] = face.bbox;
    let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    assert!(
        (150.0..260.0).contains(&cx) && (60.0..170.0).contains(&cy),
        "{:?}",
        face.bbox
    );
    assert!(
        (40.0..160.0).contains(&(x1 - x0)),
        "face width {:?}",
        face.bbox
    );
    // Five landmarks, all inside the box.
    assert_eq!(face.landmarks.len(), 5);
    for [x, y] in &face.landmarks {
        assert!(
            x0 <= *x && *x <= x1 && y0 <= *y && *y <= y1,
            "{:?}",
            face.landmarks
        );
    }
}

#[test]
fn coffee_and_cat_have_no_face() {
    let rt = runtime();
    let mut faces = model(&rt, "centerface");
    for name in ["coffee.png", "chelsea.png"] {
        let d = faces.detect_rgb(&image(name)).unwrap();
        assert!(d.detections.is_empty(), "{name}: {}", describe(&d));
    }
}

#[test]
fn page_text_lines_are_found_as_wide_boxes() {
    let rt = runtime();
    let mut text = model(&rt, "ppocr-det");
    let d = text.detect_rgb(&image("page.png")).unwrap();
    assert_eq!((d.width, d.height), (384, 191));
    // The page shows seven lines: the title, five lines of prose and a line of code.
    let n = d.detections.len();
    assert!((7..=9).contains(&n), "{n} text boxes:\n{}", describe(&d));
    for t in &d.detections {
        assert_eq!(t.label, "text");
        let [x0, y0, x1, y1] = t.bbox;
        assert!(0.0 <= x0 && x0 < x1 && x1 <= 384.0 && 0.0 <= y0 && y0 < y1 && y1 <= 191.0);
        assert!(x1 - x0 > 3.0 * (y1 - y0), "a line is wide: {:?}", t.bbox);
    }
    // Lines do not swallow each other: the five prose lines are five boxes, stacked.
    let mut prose: Vec<[f32; 4]> = d
        .detections
        .iter()
        .map(|t| t.bbox)
        .filter(|b| (40.0..140.0).contains(&((b[1] + b[3]) / 2.0)))
        .collect();
    prose.sort_by(|a, b| a[1].total_cmp(&b[1]));
    assert_eq!(prose.len(), 5, "{prose:?}");
    assert!(prose
        .windows(2)
        .all(|p| (p[1][1] + p[1][3]) / 2.0 - (p[0][1] + p[0][3]) / 2.0 > 12.0));
}

#[test]
fn a_720p_frame_finds_the_face_in_frame_pixels_with_its_timestamps() {
    let rt = runtime();
    let mut faces = model(&rt, "centerface");
    let frame = frame_720p(&image("astronaut.png"), 42);
    let d = faces.detect_i420(&frame).unwrap();
    assert_eq!((d.width, d.height), (1280, 720));
    assert_eq!(d.frame, Some(frame.meta));
    assert_eq!(d.detections.len(), 1, "{}", describe(&d));
    // The portrait sits at (384, 104) in the frame.
    let [x0, y0, x1, y1] = d.detections[0].bbox;
    let (cx, cy) = ((x0 + x1) / 2.0 - 384.0, (y0 + y1) / 2.0 - 104.0);
    assert!(
        (150.0..260.0).contains(&cx) && (60.0..170.0).contains(&cy),
        "{:?}",
        d.detections[0].bbox
    );
}

#[test]
fn missing_model_dir_names_the_descriptor() {
    let rt = runtime();
    let dir = repo_root().join("models/no-such-model");
    let err = Model::load(&rt, &dir).unwrap_err();
    assert!(
        matches!(err, UnderstandError::DescriptorMissing { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("models/no-such-model/model.toml"),
        "{err}"
    );
}

/// A scratch model directory holding `centerface`'s descriptor.
fn scratch_model(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("edge-understand-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        repo_root().join("models/centerface/model.toml"),
        dir.join("model.toml"),
    )
    .unwrap();
    dir
}

#[test]
fn missing_weights_name_the_file_and_the_fix() {
    let rt = runtime();
    let dir = scratch_model("noweights");
    let err = Model::load(&rt, &dir).unwrap_err().to_string();
    let weights = dir.join("centerface.onnx");
    assert_eq!(
        err,
        format!(
            "model centerface: weights {} not found. Run `make setup` to fetch them",
            weights.display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn corrupt_weights_name_the_file() {
    let rt = runtime();
    let dir = scratch_model("corrupt");
    let weights = dir.join("centerface.onnx");
    std::fs::write(&weights, b"this is not an ONNX protobuf").unwrap();
    let err = Model::load(&rt, &dir).unwrap_err();
    assert!(matches!(err, UnderstandError::WeightsLoad { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "model centerface: weights {} could not be loaded: ",
            weights.display()
        )),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn weights_that_contradict_the_descriptor_are_refused() {
    let rt = runtime();
    let dir = scratch_model("mismatch");
    // PP-OCR's weights under CenterFace's descriptor: wrong input name and output count.
    std::fs::copy(
        repo_root().join("models/ppocr-det/ch_PP-OCRv4_det_infer.onnx"),
        dir.join("centerface.onnx"),
    )
    .unwrap_or_else(|e| panic!("{e} (run `make setup` to fetch the model weights)"));
    let err = Model::load(&rt, &dir).unwrap_err();
    assert!(
        matches!(err, UnderstandError::WeightsMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("input.1"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn gpu_providers_fall_back_to_the_cpu_when_the_library_lacks_them() {
    use edge_understand::{ExecutionProvider, Runtime, RuntimeOptions};
    // Setup installs the CPU build of ONNX Runtime (the PyPI `onnxruntime` wheel).
    for wanted in [
        ExecutionProvider::Cuda { device_id: 0 },
        ExecutionProvider::Tensorrt { device_id: 0 },
    ] {
        let rt = Runtime::load(&RuntimeOptions {
            execution_provider: wanted,
            ..RuntimeOptions::default()
        })
        .unwrap();
        let mut faces = Model::load(&rt, &repo_root().join("models/centerface")).unwrap();
        assert_eq!(faces.execution_provider(), ExecutionProvider::Cpu);
        let d = faces.detect_rgb(&image("astronaut.png")).unwrap();
        assert_eq!(d.detections.len(), 1);
    }
}

#[test]
fn warm_up_runs_each_model_at_the_sources_size_without_changing_what_it_finds() {
    let rt = runtime();
    let astronaut = image("astronaut.png");
    for name in ["centerface", "ppocr-det"] {
        let mut cold = model(&rt, name);
        let expected = cold.detect_rgb(&astronaut).unwrap();

        let mut warmed = model(&rt, name);
        // Odd sides (a cropped upstream) round down to an I420 frame, not an error.
        let took = warmed.warm_up((1281, 721)).unwrap();
        assert!(
            took > std::time::Duration::ZERO,
            "{name}: warm-up ran nothing"
        );
        let found = warmed.detect_rgb(&astronaut).unwrap();
        assert_eq!(
            found.detections.len(),
            expected.detections.len(),
            "{name}: a warmed-up model finds what a cold one does"
        );
        for (a, b) in found.detections.iter().zip(&expected.detections) {
            assert_eq!(a.bbox, b.bbox, "{name}: same boxes");
        }
    }
}
