//! DB (differentiable binarisation) text detection: the network outputs, per input pixel, the
//! probability of being inside a *shrunk* text region. Binarise, dilate by one pixel, take
//! 8-connected components, score each by its mean probability, and grow its box back out by
//! `area * unclip_ratio / perimeter` of the text line's rectangle (the distance training
//! shrank it by).
//!
//! Follows RapidOCR 1.4.4's `DBPostProcess` (mean over the region, like its "slow" score),
//! with two differences. The line's rectangle is the one with the component's second
//! moments rather than OpenCV's minimum-area rectangle: both give a slightly tilted line
//! (a photographed page) its true length and thickness, where an axis-aligned box would
//! not. And the output box is axis-aligned, because the published contract is
//! `[x0, y0, x1, y1]`.

use super::FeatureMap;
use crate::detection::Detection;

/// Lines thinner or shorter than this (map pixels) are noise.
const MIN_SIDE: f32 = 3.0;
/// Bounds the work on a pathological map.
const MAX_CANDIDATES: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DbParams {
    pub binary_threshold: f32,
    pub score_threshold: f32,
    pub unclip_ratio: f32,
}

/// Text boxes in map pixels (the map has the input tensor's size), best first.
pub fn decode_db_text(prob: &FeatureMap<'_>, params: &DbParams, label: &str) -> Vec<Detection> {
    let (w, h) = (prob.width, prob.height);
    let map = prob.plane(0);
    let binary: Vec<bool> = map.iter().map(|&p| p > params.binary_threshold).collect();
    let mask = dilate_2x2(&binary, w, h);
    let mut boxes = Vec::new();
    for c in components(&mask, w, h, map)
        .into_iter()
        .take(MAX_CANDIDATES)
    {
        let (length, thickness) = c.extent();
        if thickness < MIN_SIDE {
            continue;
        }
        let score = (c.prob_sum / c.pixels as f64) as f32;
        // A NaN score (a NaN in the map) never passes.
        if score.is_nan() || score < params.score_threshold {
            continue;
        }
        let grow = length * thickness * params.unclip_ratio / (2.0 * (length + thickness));
        let [x0, y0, x1, y1] = c.bbox;
        let (wf, hf) = (w as f32, h as f32);
        boxes.push(Detection {
            label: label.to_string(),
            score,
            bbox: [
                (x0 as f32 - grow).clamp(0.0, wf),
                (y0 as f32 - grow).clamp(0.0, hf),
                ((x1 + 1) as f32 + grow).clamp(0.0, wf),
                ((y1 + 1) as f32 + grow).clamp(0.0, hf),
            ],
            landmarks: vec![],
        });
    }
    boxes.sort_by(|a, b| b.score.total_cmp(&a.score));
    boxes
}

/// OpenCV's `dilate` with a 2x2 kernel of ones (anchor at its centre, the bottom-right cell):
/// a pixel is set when it or its left, upper or upper-left neighbour is. Joins characters
/// separated by a one-pixel gap.
fn dilate_2x2(mask: &[bool], w: usize, h: usize) -> Vec<bool> {
    let mut out = mask.to_vec();
    for y in 0..h {
        for x in 0..w {
            let at = |dx: usize, dy: usize| x >= dx && y >= dy && mask[(y - dy) * w + (x - dx)];
            out[y * w + x] = at(0, 0) || at(1, 0) || at(0, 1) || at(1, 1);
        }
    }
    out
}

/// One 8-connected region of the mask, summarised.
#[derive(Clone, Debug, PartialEq)]
struct Component {
    /// Inclusive pixel indices `[x0, y0, x1, y1]`.
    bbox: [usize; 4],
    pixels: u64,
    prob_sum: f64,
    /// Sums of x, y, x*x, y*y, x*y over the pixels, for the second moments.
    sums: [f64; 5],
}

impl Component {
    /// Length and thickness of the rectangle with this region's second moments (a filled
    /// w x h rectangle gives w and h, at any rotation).
    fn extent(&self) -> (f32, f32) {
        let n = self.pixels as f64;
        let [sx, sy, sxx, syy, sxy] = self.sums;
        let (mx, my) = (sx / n, sy / n);
        // Each pixel is a unit square, not a point: it adds 1/12 to the variance.
        let a = sxx / n - mx * mx + 1.0 / 12.0;
        let c = syy / n - my * my + 1.0 / 12.0;
        let b = sxy / n - mx * my;
        let half_gap = (((a - c) / 2.0).powi(2) + b * b).sqrt();
        let (major, minor) = (
            (a + c) / 2.0 + half_gap,
            ((a + c) / 2.0 - half_gap).max(0.0),
        );
        ((12.0 * major).sqrt() as f32, (12.0 * minor).sqrt() as f32)
    }
}

/// The 8-connected components of `mask`, in raster order of their first pixel, with the
/// sum of `map` over each.
fn components(mask: &[bool], w: usize, h: usize, map: &[f32]) -> Vec<Component> {
    let mut seen = vec![false; mask.len()];
    let mut stack = Vec::new();
    let mut out = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let mut c = Component {
            bbox: [start % w, start / w, start % w, start / w],
            pixels: 0,
            prob_sum: 0.0,
            sums: [0.0; 5],
        };
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            let b = c.bbox;
            c.bbox = [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)];
            c.pixels += 1;
            c.prob_sum += map[i] as f64;
            let (xf, yf) = (x as f64, y as f64);
            for (sum, v) in c.sums.iter_mut().zip([xf, yf, xf * xf, yf * yf, xf * yf]) {
                *sum += v;
            }
            for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                    let j = ny * w + nx;
                    if mask[j] && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PARAMS: DbParams = DbParams {
        binary_threshold: 0.3,
        score_threshold: 0.5,
        unclip_ratio: 1.6,
    };

    fn decode(map: &[f32], w: usize, h: usize) -> Vec<Detection> {
        let fm = FeatureMap {
            channels: 1,
            height: h,
            width: w,
            data: map,
        };
        decode_db_text(&fm, &PARAMS, "text")
    }

    fn fill(map: &mut [f32], w: usize, [x0, y0, x1, y1]: [usize; 4], v: f32) {
        for y in y0..=y1 {
            for x in x0..=x1 {
                map[y * w + x] = v;
            }
        }
    }

    #[test]
    fn two_text_lines_become_two_wide_boxes() {
        let (w, h) = (64, 32);
        let mut map = vec![0.0; w * h];
        fill(&mut map, w, [8, 6, 44, 10], 0.9);
        fill(&mut map, w, [10, 20, 60, 24], 0.8);
        let boxes = decode(&map, w, h);
        assert_eq!(boxes.len(), 2);
        // Dilation adds one pixel right and down: the 37x5 line becomes a 38x6 region,
        // scored by its mean and grown by 38 * 6 * 1.6 / (2 * 44).
        assert!((boxes[0].score - 0.9 * 185.0 / 228.0).abs() < 1e-6);
        let d = 38.0 * 6.0 * 1.6 / 88.0;
        let expected = [8.0 - d, 6.0 - d, 46.0 + d, 12.0 + d];
        for (got, want) in boxes[0].bbox.iter().zip(expected) {
            assert!(
                (got - want).abs() < 1e-3,
                "{:?} vs {expected:?}",
                boxes[0].bbox
            );
        }
        assert!(boxes
            .iter()
            .all(|b| b.bbox[2] - b.bbox[0] > b.bbox[3] - b.bbox[1]));
    }

    #[test]
    fn a_tilted_line_keeps_its_thickness() {
        // A 4-pixel-thick line rising 1 pixel every 8 across 80 pixels.
        let (w, h) = (90, 30);
        let mut map = vec![0.0; w * h];
        for x in 5..85 {
            let top = 20 - x / 8;
            fill(&mut map, w, [x, top, x, top + 3], 0.9);
        }
        let mask: Vec<bool> = map.iter().map(|&p| p > 0.3).collect();
        let c = &components(&mask, w, h, &map)[0];
        let (length, thickness) = c.extent();
        assert!(
            (length - 80.0).abs() < 2.0 && (thickness - 4.0).abs() < 1.0,
            "{length} x {thickness}"
        );
        let boxes = decode(&map, w, h);
        assert_eq!(boxes.len(), 1);
        // The region's own mean (0.9 diluted by the dilated rim), not the mean over its
        // mostly empty axis-aligned box (about 0.2).
        assert!(boxes[0].score > 0.6, "{}", boxes[0].score);
    }

    #[test]
    fn specks_and_faint_regions_are_dropped() {
        let (w, h) = (32, 32);
        let mut map = vec![0.0; w * h];
        fill(&mut map, w, [2, 2, 2, 3], 0.99); // 1x2 speck (2x3 after dilation): too thin
        fill(&mut map, w, [10, 10, 25, 20], 0.35); // above the pixel, below the box threshold
        assert!(decode(&map, w, h).is_empty());
    }

    #[test]
    fn diagonal_pixels_are_one_component() {
        let (w, h) = (8, 8);
        let mut mask = vec![false; w * h];
        for i in 0..8 {
            mask[i * w + i] = true;
        }
        let map = vec![1.0; w * h];
        let comps = components(&mask, w, h, &map);
        assert_eq!(comps.len(), 1);
        assert_eq!(
            (comps[0].bbox, comps[0].pixels, comps[0].prob_sum),
            ([0, 0, 7, 7], 8, 8.0)
        );
    }

    #[test]
    fn dilation_grows_right_and_down() {
        let (w, h) = (3, 3);
        let mut mask = vec![false; 9];
        mask[4] = true;
        let d = dilate_2x2(&mask, w, h);
        let set: Vec<usize> = (0..9).filter(|&i| d[i]).collect();
        assert_eq!(set, [4, 5, 7, 8]);
    }

    proptest! {
        #[test]
        fn boxes_lie_inside_the_map_and_clear_the_threshold(
            (w, h, map) in (1usize..40, 1usize..40).prop_flat_map(|(w, h)| {
                (Just(w), Just(h), prop::collection::vec(
                    prop_oneof![Just(0.0f32), Just(0.95f32), 0.0f32..1.0], w * h))
            })
        ) {
            let boxes = decode(&map, w, h);
            for b in &boxes {
                let [x0, y0, x1, y1] = b.bbox;
                prop_assert!(0.0 <= x0 && x0 < x1 && x1 <= w as f32, "{:?}", b.bbox);
                prop_assert!(0.0 <= y0 && y0 < y1 && y1 <= h as f32, "{:?}", b.bbox);
                prop_assert!(b.score >= PARAMS.score_threshold && b.score <= 1.0);
            }
            prop_assert!(boxes.windows(2).all(|p| p[0].score >= p[1].score));
        }

        #[test]
        fn components_partition_the_mask(
            (w, h, mask) in (1usize..30, 1usize..30).prop_flat_map(|(w, h)| {
                (Just(w), Just(h), prop::collection::vec(prop::bool::weighted(0.3), w * h))
            })
        ) {
            let map = vec![0.5; w * h];
            let comps = components(&mask, w, h, &map);
            // The components' pixels add up to the mask's, and every set pixel lies in
            // some component's box.
            prop_assert_eq!(comps.iter().map(|c| c.pixels).sum::<u64>(), mask.iter().filter(|&&m| m).count() as u64);
            for (i, _) in mask.iter().enumerate().filter(|(_, &m)| m) {
                let (x, y) = (i % w, i / w);
                prop_assert!(comps.iter().any(|c| c.bbox[0] <= x && x <= c.bbox[2] && c.bbox[1] <= y && y <= c.bbox[3]));
            }
            for c in &comps {
                let b = c.bbox;
                prop_assert!(b[0] <= b[2] && b[2] < w && b[1] <= b[3] && b[3] < h);
                prop_assert!(c.pixels as usize <= (b[2] - b[0] + 1) * (b[3] - b[1] + 1));
                prop_assert!((c.prob_sum - 0.5 * c.pixels as f64).abs() < 1e-9);
                let (length, thickness) = c.extent();
                prop_assert!(length >= thickness && thickness >= 0.0);
            }
        }
    }
}
