//! What a model found in one frame or image, in that source's pixels.

use edge_core::frame::FrameMeta;
use serde::Serialize;

/// One detected object.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Detection {
    pub label: String,
    pub score: f32,
    /// `[x0, y0, x1, y1]` in source pixels, x0 <= x1, y0 <= y1, inside the source.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// Keypoints in source pixels (CenterFace: eyes, nose, mouth corners); empty otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub landmarks: Vec<[f32; 2]>,
}

/// Everything one model found in one source frame (or image).
#[derive(Clone, Debug, Serialize)]
pub struct Detections {
    pub model: String,
    /// The frame these detections came from; `None` for a still image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<FrameMeta>,
    /// Source size: the space `bbox` and `landmarks` are in.
    pub width: u32,
    pub height: u32,
    pub detections: Vec<Detection>,
    /// Where the time went, for stats; not part of the published schema.
    #[serde(skip)]
    pub timings: StageTimings,
}

/// Milliseconds spent in each step of one detection.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageTimings {
    pub preprocess_ms: f64,
    pub inference_ms: f64,
    pub decode_ms: f64,
}

impl StageTimings {
    pub fn total_ms(&self) -> f64 {
        self.preprocess_ms + self.inference_ms + self.decode_ms
    }
}

/// Area of the intersection over area of the union; 0 when either box is empty.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_known_boxes() {
        assert_eq!(iou(&[0.0, 0.0, 2.0, 2.0], &[0.0, 0.0, 2.0, 2.0]), 1.0);
        assert_eq!(iou(&[0.0, 0.0, 2.0, 2.0], &[1.0, 0.0, 3.0, 2.0]), 2.0 / 6.0);
        assert_eq!(iou(&[0.0, 0.0, 1.0, 1.0], &[2.0, 2.0, 3.0, 3.0]), 0.0);
        assert_eq!(iou(&[1.0, 1.0, 1.0, 1.0], &[1.0, 1.0, 1.0, 1.0]), 0.0);
    }

    #[test]
    fn serialises_box_and_skips_empty_landmarks() {
        let d = Detection {
            label: "text".into(),
            score: 0.5,
            bbox: [1.0, 2.0, 3.0, 4.0],
            landmarks: vec![],
        };
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"label":"text","score":0.5,"box":[1.0,2.0,3.0,4.0]}"#
        );
    }
}
