//! `edge-node understand IMAGE`: run one model on a still image and print what it finds, in
//! the image's pixels. The same models, runtime and decoders the node runs on live frames.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use edge_understand::{ExecutionProvider, Model, RgbImage, Runtime, RuntimeOptions};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct UnderstandArgs {
    /// PNG image to look at.
    image: PathBuf,
    /// Model to run: a directory under the models directory holding a model.toml.
    #[arg(long, default_value = "centerface")]
    model: String,
    /// Print {"model", "width", "height", "detections": [{"label", "score", "box"}]} as JSON,
    /// boxes as [x0, y0, x1, y1] in the image's pixels.
    #[arg(long)]
    json: bool,
    /// Models directory [default: EDGE_NODE_MODELS_DIR, else models/ beside the executable
    /// or in the source tree].
    #[arg(long)]
    models_dir: Option<PathBuf>,
    /// ONNX Runtime library [default: ORT_DYLIB_PATH, else .cache/onnxruntime/].
    #[arg(long)]
    ort_library: Option<PathBuf>,
    /// Execution provider; GPU providers fall back to the CPU with a warning.
    #[arg(long, value_enum, default_value_t = Provider::Cpu)]
    execution_provider: Provider,
}

#[derive(Clone, Copy, ValueEnum)]
enum Provider {
    Cpu,
    Cuda,
    Tensorrt,
}

/// The published JSON shape of one detection.
#[derive(Serialize)]
struct JsonDetection<'a> {
    label: &'a str,
    score: f32,
    #[serde(rename = "box")]
    bbox: [f32; 4],
}

#[derive(Serialize)]
struct JsonReport<'a> {
    model: &'a str,
    width: u32,
    height: u32,
    detections: Vec<JsonDetection<'a>>,
}

pub fn run(args: UnderstandArgs) -> Result<()> {
    let models_dir = args
        .models_dir
        .clone()
        .unwrap_or_else(edge_understand::models_dir);
    let model_dir = model_dir(&models_dir, &args.model)?;
    let image = RgbImage::load_png(&args.image)?;
    let options = RuntimeOptions {
        library: args.ort_library.clone(),
        execution_provider: match args.execution_provider {
            Provider::Cpu => ExecutionProvider::Cpu,
            Provider::Cuda => ExecutionProvider::Cuda { device_id: 0 },
            Provider::Tensorrt => ExecutionProvider::Tensorrt { device_id: 0 },
        },
        ..RuntimeOptions::default()
    };
    let runtime = Runtime::load(&options)?;
    let mut model = Model::load(&runtime, &model_dir)?;
    let found = model
        .detect_rgb(&image)
        .with_context(|| format!("{}", args.image.display()))?;
    if args.json {
        let report = JsonReport {
            model: &found.model,
            width: found.width,
            height: found.height,
            detections: found
                .detections
                .iter()
                .map(|d| JsonDetection {
                    label: &d.label,
                    score: d.score,
                    bbox: d.bbox,
                })
                .collect(),
        };
        println!("{}", serde_json::to_string(&report)?);
    } else {
        for d in &found.detections {
            let [x0, y0, x1, y1] = d.bbox;
            println!(
                "{} {:.3} [{x0:.1}, {y0:.1}, {x1:.1}, {y1:.1}]",
                d.label, d.score
            );
        }
        eprintln!(
            "{}: {} detection(s) in {} ({}x{}), inference {:.1} ms",
            found.model,
            found.detections.len(),
            args.image.display(),
            found.width,
            found.height,
            found.timings.inference_ms
        );
    }
    Ok(())
}

/// `<models>/<name>`, refusing names that are paths and naming the models there are.
fn model_dir(models: &Path, name: &str) -> Result<PathBuf> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        bail!("--model must be a model name such as centerface, got {name:?}");
    }
    let dir = models.join(name);
    if !dir.join("model.toml").is_file() {
        let mut known: Vec<String> = std::fs::read_dir(models)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.path().join("model.toml").is_file())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        known.sort();
        bail!(
            "unknown model {name:?}: no {} (models in {}: {})",
            dir.join("model.toml").display(),
            models.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    Ok(dir)
}
