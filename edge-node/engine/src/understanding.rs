//! Content understanding in the node: the ONNX models of `[understanding]` run on their own
//! thread on the newest frame; their latest results drive placement and follow-face zoom and go
//! out to viewers on the metadata track. The frame path only offers frames and reads the latest
//! results; it never waits for inference.

use anyhow::{Context, Result};
use edge_core::frame_window::FrameWindow;
use edge_core::geometry::Rect;
use edge_core::rendering::Obstacles;
use edge_core::I420Frame;
use edge_deliver::DeliveryServer;
use edge_telemetry::{ModelsState, Telemetry};
use edge_understand::{
    Cadence, Detections, ExecutionProvider, Model, Runtime, RuntimeOptions, Understanding,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Content understanding: ONNX models run off the frame path on the newest frame.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UnderstandingConfig {
    pub enabled: bool,
    /// Model names: directories under `models_dir` holding a `model.toml`.
    pub models: Vec<String>,
    /// Where the models live; default `EDGE_NODE_MODELS_DIR`, else `models/` beside the
    /// executable or in the source tree.
    pub models_dir: Option<PathBuf>,
    /// Run each model at most this often (ms); 0 = the model's own default cadence.
    pub interval_ms: u64,
    /// The ONNX Runtime library; default `ORT_DYLIB_PATH`, else `.cache/onnxruntime/`.
    pub ort_library: Option<PathBuf>,
    /// `cpu`, `cuda` or `tensorrt` (GPU providers fall back to the CPU with a warning).
    pub execution_provider: String,
}

impl UnderstandingConfig {
    /// Whether any model is to run at all.
    pub fn wanted(&self) -> bool {
        self.enabled && !self.models.is_empty()
    }
}

impl Default for UnderstandingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            models: vec!["centerface".into()],
            models_dir: None,
            interval_ms: 0,
            ort_library: None,
            execution_provider: "cpu".into(),
        }
    }
}

/// What the models last found, by model.
#[derive(Default)]
pub struct LatestDetections {
    by_model: Mutex<HashMap<String, Arc<Detections>>>,
    /// Bumped on every result, so the frame path feeds its smoothers only new observations.
    version: AtomicU64,
}

impl LatestDetections {
    fn store(&self, detections: Arc<Detections>) {
        self.by_model
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(detections.model.clone(), detections);
        self.version.fetch_add(1, Ordering::Relaxed);
    }

    pub fn obstacles(&self) -> Obstacles {
        let map = self.by_model.lock().unwrap_or_else(|p| p.into_inner());
        let mut obstacles = Obstacles {
            version: self.version.load(Ordering::Relaxed),
            ..Obstacles::default()
        };
        for detections in map.values() {
            for d in &detections.detections {
                let rect = covering_rect(d.bbox);
                match d.label.as_str() {
                    "face" => obstacles.faces.push((rect, d.score)),
                    _ => obstacles.text.push(rect),
                }
            }
        }
        obstacles
    }
}

/// The whole pixels a detection's box `[x0, y0, x1, y1]` touches: an obstacle never shrinks.
pub(crate) fn covering_rect([x0, y0, x1, y1]: [f32; 4]) -> Rect {
    Rect::from_corners(
        x0.floor() as i32,
        y0.floor() as i32,
        x1.ceil() as i32,
        y1.ceil() as i32,
    )
}

/// Results waiting to be published: a few cadences' worth.
const RESULTS_QUEUE: usize = 8;

/// The running models.
pub struct NodeUnderstanding {
    worker: Understanding,
    pub latest: Arc<LatestDetections>,
}

impl NodeUnderstanding {
    /// Loads the runtime and models and starts the worker. `Ok(None)` when disabled; an error
    /// names the missing or broken file and every place looked: the caller logs it and serves
    /// without understanding.
    /// `source` is the upstream's picture size: each model runs once on a frame of that size
    /// before the worker starts, so its first real frame costs what every other one does.
    pub fn start(
        config: &UnderstandingConfig,
        source: (u32, u32),
        frame_window: Arc<FrameWindow>,
        server: Arc<DeliveryServer>,
        telemetry: Arc<Telemetry>,
    ) -> Result<Option<Self>> {
        if !config.wanted() {
            telemetry.readiness.set_models(ModelsState::Disabled);
            return Ok(None);
        }
        telemetry.readiness.set_models(ModelsState::Loading);
        let runtime = Runtime::load(&RuntimeOptions {
            library: config.ort_library.clone(),
            execution_provider: match config.execution_provider.as_str() {
                "cuda" => ExecutionProvider::Cuda { device_id: 0 },
                "tensorrt" => ExecutionProvider::Tensorrt { device_id: 0 },
                _ => ExecutionProvider::Cpu,
            },
            ..RuntimeOptions::default()
        })?;
        let dir = config
            .models_dir
            .clone()
            .unwrap_or_else(edge_understand::models_dir);
        let mut models = Vec::new();
        for name in &config.models {
            let mut model = Model::load(&runtime, &dir.join(name))
                .with_context(|| format!("model {name:?} in {}", dir.display()))?;
            match model.warm_up(source) {
                Ok(took) => {
                    tracing::info!(model = %name, ms = took.as_secs_f64() * 1e3, "model warmed up (the provider's one-time set-up)")
                }
                // The worker reports a model that keeps failing; one failed warm-up is not fatal.
                Err(e) => tracing::warn!(model = %name, error = %e, "model warm-up failed"),
            }
            let model = match config.interval_ms {
                0 => model,
                ms => model.with_cadence(Cadence::EveryMillis(ms)),
            };
            tracing::info!(model = %name, provider = ?model.execution_provider(), cadence = ?model.cadence(), "model loaded");
            models.push(model);
        }
        telemetry.set_models_loaded(models.len());
        let worker_ready = telemetry.clone();
        let latest = Arc::new(LatestDetections::default());
        let sink = latest.clone();
        // The worker runs at SCHED_IDLE, so a lock it held when preempted would stall whoever
        // waits for it (the frame path reading detections, encoders recording telemetry,
        // viewers' forwarders writing feeds) until a core idles. It only hands results over;
        // this thread, at normal priority, records and publishes them.
        let (results, outbox) = std::sync::mpsc::sync_channel::<Arc<Detections>>(RESULTS_QUEUE);
        std::thread::Builder::new()
            .name("understanding-out".into())
            .spawn(move || {
                for detections in outbox {
                    telemetry.inference(
                        &detections.model,
                        Duration::from_secs_f64(detections.timings.inference_ms / 1e3),
                    );
                    if let Some(frame) = &detections.frame {
                        match serde_json::to_vec(detections.as_ref()) {
                            Ok(json) => {
                                server.publish_metadata(json.into(), frame.pts_ns / 1_000);
                            }
                            Err(e) => tracing::warn!(error = %e, "detections not serialisable"),
                        }
                    }
                    sink.store(detections);
                }
            })
            .context("starting the understanding publisher thread")?;
        // Inference waits for each frame's encodes and runs only where it fits before the
        // next frame: on a CPU node it shares the cores (and their caches) with the encoders.
        let worker = Understanding::start_paced(
            models,
            Some(frame_window),
            move |detections: Arc<Detections>| {
                // Full only if the publisher stalls; a newer result follows within a cadence.
                let _ = results.try_send(detections);
            },
        )?;
        worker_ready.readiness.set_models(ModelsState::Loaded);
        Ok(Some(Self { worker, latest }))
    }

    /// Hands the worker the newest frame; never blocks (an unprocessed older frame is replaced).
    pub fn offer(&self, frame: Arc<I420Frame>) {
        self.worker.offer(frame);
    }

    pub fn stats(&self) -> edge_understand::UnderstandingStats {
        self.worker.stats()
    }
}
