//! One loaded model: its descriptor, an ONNX Runtime session on the chosen execution provider,
//! and the path from a frame or image to detections in that source's pixels.

use crate::cadence::Cadence;
use crate::decode::centerface::{decode_centerface, CenterfaceMaps};
use crate::decode::db_text::{decode_db_text, DbParams};
use crate::decode::{to_source_pixels, FeatureMap};
use crate::descriptor::{DecoderKind, ModelDescriptor};
use crate::detection::{Detection, Detections, StageTimings};
use crate::error::{Result, UnderstandError};
use crate::image::RgbImage;
use crate::preprocess::{i420_to_tensor, rgb_to_tensor, tensor_size};
use crate::runtime::{ExecutionProvider, Runtime};
use edge_core::frame::{FrameMeta, I420Frame, PlaneLayout};
use ort::ep::{self, ExecutionProvider as _};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct Model {
    descriptor: ModelDescriptor,
    weights: PathBuf,
    session: Session,
    execution_provider: ExecutionProvider,
    cadence: Cadence,
    /// Reused between runs: the input tensor is rebuilt in place every frame.
    tensor: Vec<f32>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.descriptor.name)
            .field("weights", &self.weights)
            .field("execution_provider", &self.execution_provider)
            .field("cadence", &self.cadence)
            .finish()
    }
}

impl Model {
    /// Loads `<dir>/model.toml` and its weights on the runtime's execution provider (falling
    /// back to the CPU, with a warning, when a GPU provider cannot run).
    pub fn load(runtime: &Runtime, dir: &Path) -> Result<Self> {
        let descriptor = ModelDescriptor::load(dir)?;
        let weights = descriptor.weights_path(dir);
        let model = descriptor.name.clone();
        if !weights.is_file() {
            return Err(UnderstandError::WeightsMissing {
                model,
                path: weights,
            });
        }
        let (session, execution_provider) = open_session(runtime, &descriptor.name, &weights)?;
        check_signature(&session, &descriptor).map_err(|reason| {
            UnderstandError::WeightsMismatch {
                model: model.clone(),
                path: weights.clone(),
                reason,
            }
        })?;
        tracing::info!(model = %descriptor.name, weights = %weights.display(), ?execution_provider, "model loaded");
        Ok(Self {
            cadence: descriptor.cadence(),
            descriptor,
            weights,
            session,
            execution_provider,
            tensor: Vec::new(),
        })
    }

    pub fn name(&self) -> &str {
        &self.descriptor.name
    }

    pub fn descriptor(&self) -> &ModelDescriptor {
        &self.descriptor
    }

    /// The execution provider actually running this model (after any fallback).
    pub fn execution_provider(&self) -> ExecutionProvider {
        self.execution_provider
    }

    /// How often the worker runs this model: the descriptor's default unless overridden.
    pub fn cadence(&self) -> Cadence {
        self.cadence
    }

    pub fn with_cadence(mut self, cadence: Cadence) -> Self {
        self.cadence = cadence;
        self
    }

    /// Runs the model once on a grey frame of the source's size and returns how long that took.
    /// A provider's first run pays its one-time set-up (CUDA context, cuDNN's kernel choice for
    /// the input's shape: 1.6-2 s on an H200); paid here, before the frame path starts, it
    /// neither delays the first detections nor contends with the first frames viewers get.
    pub fn warm_up(&mut self, source: (u32, u32)) -> Result<std::time::Duration> {
        let bad_frame = |e: edge_core::frame::FrameError| UnderstandError::Inference {
            model: self.descriptor.name.clone(),
            reason: format!("warm-up frame: {e}"),
        };
        // I420 wants even sides; a rounded-down size gives the same tensor shape.
        let layout =
            PlaneLayout::new(source.0.max(2) & !1, source.1.max(2) & !1).map_err(bad_frame)?;
        let grey = bytes::Bytes::from(vec![128u8; layout.total_len()]);
        let frame = I420Frame::new(layout, grey, FrameMeta::default()).map_err(bad_frame)?;
        let started = Instant::now();
        self.detect_i420(&frame)?;
        Ok(started.elapsed())
    }

    /// Detections in `frame`, in the frame's pixels, tagged with its timestamps.
    pub fn detect_i420(&mut self, frame: &I420Frame) -> Result<Detections> {
        let source = (frame.layout.width, frame.layout.height);
        let started = Instant::now();
        let size = tensor_size(&self.descriptor.input.size, source);
        i420_to_tensor(frame, size, &self.descriptor.input, &mut self.tensor);
        self.infer(source, size, Some(frame.meta), started)
    }

    /// Detections in `image`, in the image's pixels.
    pub fn detect_rgb(&mut self, image: &RgbImage) -> Result<Detections> {
        let source = (image.width, image.height);
        let started = Instant::now();
        let size = tensor_size(&self.descriptor.input.size, source);
        rgb_to_tensor(image, size, &self.descriptor.input, &mut self.tensor);
        self.infer(source, size, None, started)
    }

    /// Runs the session on `self.tensor` (already `size`) and decodes the outputs.
    fn infer(
        &mut self,
        source: (u32, u32),
        size: (u32, u32),
        frame: Option<FrameMeta>,
        started: Instant,
    ) -> Result<Detections> {
        let fail = |reason: String| UnderstandError::Inference {
            model: self.descriptor.name.clone(),
            reason,
        };
        let preprocessed = Instant::now();
        let shape = [1usize, 3, size.1 as usize, size.0 as usize];
        let input = TensorRef::from_array_view((shape, &self.tensor[..]))
            .map_err(|e| fail(e.to_string()))?;
        let outputs = self
            .session
            .run(ort::inputs![self.descriptor.input.name.as_str() => input])
            .map_err(|e| fail(e.to_string()))?;
        let inferred = Instant::now();
        let mut maps = Vec::with_capacity(outputs.len());
        for i in 0..outputs.len() {
            let (shape, data) = outputs[i]
                .try_extract_tensor::<f32>()
                .map_err(|e| fail(format!("output {i}: {e}")))?;
            maps.push(FeatureMap::new(shape, data).map_err(|e| fail(format!("output {i}: {e}")))?);
        }
        let mut detections = decode(&self.descriptor, &maps, size).map_err(fail)?;
        to_source_pixels(&mut detections, size, source);
        let decoded = Instant::now();
        Ok(Detections {
            model: self.descriptor.name.clone(),
            frame,
            width: source.0,
            height: source.1,
            detections,
            timings: StageTimings {
                preprocess_ms: ms(preprocessed - started),
                inference_ms: ms(inferred - preprocessed),
                decode_ms: ms(decoded - inferred),
            },
        })
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The descriptor's decoder on the session's outputs (in the session's output order).
fn decode(
    d: &ModelDescriptor,
    maps: &[FeatureMap<'_>],
    size: (u32, u32),
) -> std::result::Result<Vec<Detection>, String> {
    let o = &d.output;
    // `validate()` guarantees the decoder's parameters are present.
    let required = |v: Option<f32>| v.expect("descriptor validated: decoder parameter present");
    match (o.decoder, maps) {
        (DecoderKind::Centerface, &[heatmap, scale, offset, landmarks]) => {
            let maps = CenterfaceMaps {
                heatmap,
                scale,
                offset,
                landmarks,
            };
            maps.check()?;
            Ok(decode_centerface(
                &maps,
                size,
                o.score_threshold,
                required(o.nms_iou),
                d.label(),
            ))
        }
        (DecoderKind::DbText, &[prob]) => {
            if prob.channels != 1 {
                return Err(format!("expected a 1-channel map, got {}", prob.channels));
            }
            let params = DbParams {
                binary_threshold: required(o.binary_threshold),
                score_threshold: o.score_threshold,
                unclip_ratio: required(o.unclip_ratio),
            };
            let mut boxes = decode_db_text(&prob, &params, d.label());
            // The map has the input's size; say so explicitly in case a model pads it.
            let (sx, sy) = (
                size.0 as f32 / prob.width as f32,
                size.1 as f32 / prob.height as f32,
            );
            for b in &mut boxes {
                b.bbox = [
                    b.bbox[0] * sx,
                    b.bbox[1] * sy,
                    b.bbox[2] * sx,
                    b.bbox[3] * sy,
                ];
            }
            Ok(boxes)
        }
        (kind, maps) => Err(format!(
            "the {kind:?} decoder does not take {} outputs",
            maps.len()
        )),
    }
}

/// Outputs each decoder needs.
fn expected_outputs(kind: DecoderKind) -> usize {
    match kind {
        DecoderKind::Centerface => 4,
        DecoderKind::DbText => 1,
    }
}

fn check_signature(session: &Session, d: &ModelDescriptor) -> std::result::Result<(), String> {
    let inputs: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
    if inputs != [d.input.name.as_str()] {
        return Err(format!(
            "descriptor says one input named {:?}, the network has {inputs:?}",
            d.input.name
        ));
    }
    let outputs = session.outputs().len();
    let expected = expected_outputs(d.output.decoder);
    if outputs != expected {
        return Err(format!(
            "the {:?} decoder needs {expected} outputs, the network has {outputs}",
            d.output.decoder
        ));
    }
    Ok(())
}

/// A session on the configured execution provider, or on the CPU when that provider is not
/// available; returns the provider actually used.
fn open_session(
    runtime: &Runtime,
    model: &str,
    weights: &Path,
) -> Result<(Session, ExecutionProvider)> {
    let wanted = runtime.options.execution_provider;
    if wanted != ExecutionProvider::Cpu {
        match gpu_unavailable(wanted) {
            Some(reason) => tracing::warn!(
                model,
                ?wanted,
                library = %runtime.library().display(),
                "{reason}; running on the CPU"
            ),
            None => match build_session(runtime, wanted, weights) {
                Ok(session) => return Ok((session, wanted)),
                Err(reason) => tracing::warn!(
                    model,
                    ?wanted,
                    "execution provider failed ({reason}); running on the CPU"
                ),
            },
        }
    }
    build_session(runtime, ExecutionProvider::Cpu, weights)
        .map(|s| (s, ExecutionProvider::Cpu))
        .map_err(|reason| UnderstandError::WeightsLoad {
            model: model.to_string(),
            path: weights.to_path_buf(),
            reason,
        })
}

/// Why a GPU provider cannot be used with the loaded library, if it cannot.
fn gpu_unavailable(ep: ExecutionProvider) -> Option<String> {
    let (name, available) = match ep {
        ExecutionProvider::Cpu => return None,
        ExecutionProvider::Cuda { .. } => ("CUDA", ep::CUDA::is_available()),
        ExecutionProvider::Tensorrt { .. } => ("TensorRT", ep::TensorRT::is_available()),
    };
    match available {
        Ok(true) => None,
        Ok(false) => Some(format!("this ONNX Runtime was built without {name}")),
        Err(e) => Some(format!("cannot ask ONNX Runtime for its providers: {e}")),
    }
}

fn build_session(
    runtime: &Runtime,
    ep: ExecutionProvider,
    weights: &Path,
) -> std::result::Result<Session, String> {
    let o = &runtime.options;
    let providers = match ep {
        ExecutionProvider::Cpu => vec![],
        ExecutionProvider::Cuda { device_id } => vec![ep::CUDA::default()
            .with_device_id(device_id)
            .build()
            .error_on_failure()],
        ExecutionProvider::Tensorrt { device_id } => vec![
            ep::TensorRT::default()
                .with_device_id(device_id)
                .build()
                .error_on_failure(),
            ep::CUDA::default()
                .with_device_id(device_id)
                .build()
                .error_on_failure(),
        ],
    };
    let text = |e: ort::Error<_>| e.to_string();
    Session::builder(&runtime.environment)
        .map_err(|e| e.to_string())?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(text)?
        .with_intra_threads(o.intra_threads.max(1))
        .map_err(text)?
        .with_inter_threads(1)
        .map_err(text)?
        .with_intra_op_spinning(o.spinning)
        .map_err(text)?
        .with_inter_op_spinning(o.spinning)
        .map_err(text)?
        .with_execution_providers(providers)
        .map_err(text)?
        .commit_from_file(weights)
        .map_err(|e| e.to_string())
}
