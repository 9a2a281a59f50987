//! Greedy non-maximum suppression: of boxes that overlap by at least an IoU threshold, only
//! the best scoring survives.

use crate::detection::{iou, Detection};

/// Keeps the best-scoring detections, dropping any that overlaps an already kept one by IoU
/// >= `iou_threshold`. The result is ordered by descending score (ties: input order).
pub fn nms(mut detections: Vec<Detection>, iou_threshold: f32) -> Vec<Detection> {
    // A stable sort keeps ties in input order, so the result is deterministic.
    detections.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::with_capacity(detections.len());
    for d in detections {
        if kept.iter().all(|k| iou(&k.bbox, &d.bbox) < iou_threshold) {
            kept.push(d);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn det(score: f32, bbox: [f32; 4]) -> Detection {
        Detection {
            label: "x".into(),
            score,
            bbox,
            landmarks: vec![],
        }
    }

    #[test]
    fn overlapping_boxes_collapse_to_the_best() {
        let out = nms(
            vec![
                det(0.6, [0.0, 0.0, 10.0, 10.0]),
                det(0.9, [1.0, 1.0, 11.0, 11.0]),
                det(0.7, [50.0, 50.0, 60.0, 60.0]),
            ],
            0.3,
        );
        let scores: Vec<f32> = out.iter().map(|d| d.score).collect();
        assert_eq!(scores, [0.9, 0.7]);
    }

    fn arb_detection() -> impl Strategy<Value = Detection> {
        (
            0.0f32..1.0,
            0.0f32..100.0,
            0.0f32..100.0,
            0.0f32..40.0,
            0.0f32..40.0,
        )
            .prop_map(|(s, x, y, w, h)| det(s, [x, y, x + w, y + h]))
    }

    proptest! {
        #[test]
        fn nms_properties(input in prop::collection::vec(arb_detection(), 0..40), thr in 0.05f32..0.95) {
            let out = nms(input.clone(), thr);
            // No kept pair overlaps at or above the threshold.
            for (i, a) in out.iter().enumerate() {
                for b in &out[i + 1..] {
                    prop_assert!(iou(&a.bbox, &b.bbox) < thr);
                }
            }
            // A subset of the input.
            for d in &out {
                prop_assert!(input.contains(d));
            }
            // The best box always survives, and the result is sorted by score.
            if let Some(best) = input.iter().map(|d| d.score).max_by(f32::total_cmp) {
                prop_assert_eq!(out[0].score, best);
            }
            prop_assert!(out.windows(2).all(|w| w[0].score >= w[1].score));
            // Every dropped box is covered by a kept box that scores at least as well.
            for d in &input {
                prop_assert!(out.iter().any(|k| k.score >= d.score
                    && (k == d || iou(&k.bbox, &d.bbox) >= thr)));
            }
        }
    }
}
