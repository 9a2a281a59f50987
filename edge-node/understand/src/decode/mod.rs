//! Output decoders: pure functions from a model's raw output maps to detections in the
//! model's input-tensor pixels, plus NMS and the mapping back to source pixels.
//!
//! A new output format is one more function here and one more `DecoderKind`.

pub mod centerface;
pub mod db_text;
pub mod nms;

use crate::detection::Detection;

/// One output tensor `[1, channels, height, width]` (batch 1), row-major.
#[derive(Clone, Copy, Debug)]
pub struct FeatureMap<'a> {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub data: &'a [f32],
}

impl<'a> FeatureMap<'a> {
    /// Checks that `data` holds `[1, channels, height, width]`.
    pub fn new(shape: &[i64], data: &'a [f32]) -> Result<Self, String> {
        let dims: Vec<usize> = shape
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| format!("negative dimension in {shape:?}")))
            .collect::<Result<_, _>>()?;
        match dims[..] {
            [1, channels, height, width] if channels * height * width == data.len() => Ok(Self {
                channels,
                height,
                width,
                data,
            }),
            _ => Err(format!(
                "expected an output of shape [1, C, H, W] holding {} values, got {shape:?}",
                data.len()
            )),
        }
    }

    pub fn plane(&self, channel: usize) -> &'a [f32] {
        let n = self.height * self.width;
        &self.data[channel * n..(channel + 1) * n]
    }
}

/// Scales boxes and landmarks from tensor pixels (`tensor_size`) to source pixels
/// (`source_size`), clamping them inside the source.
pub fn to_source_pixels(
    detections: &mut [Detection],
    tensor_size: (u32, u32),
    source_size: (u32, u32),
) {
    let sx = source_size.0 as f32 / tensor_size.0 as f32;
    let sy = source_size.1 as f32 / tensor_size.1 as f32;
    let (w, h) = (source_size.0 as f32, source_size.1 as f32);
    for d in detections {
        let b = &mut d.bbox;
        *b = [
            (b[0] * sx).clamp(0.0, w),
            (b[1] * sy).clamp(0.0, h),
            (b[2] * sx).clamp(0.0, w),
            (b[3] * sy).clamp(0.0, h),
        ];
        for p in &mut d.landmarks {
            *p = [(p[0] * sx).clamp(0.0, w), (p[1] * sy).clamp(0.0, h)];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_map_checks_shape() {
        let data = [0.0; 12];
        assert!(FeatureMap::new(&[1, 3, 2, 2], &data).is_ok());
        assert!(FeatureMap::new(&[2, 3, 2, 1], &data).is_err());
        assert!(FeatureMap::new(&[1, 3, 2, 3], &data).is_err());
        assert!(FeatureMap::new(&[1, -3, 2, 2], &data).is_err());
        assert!(FeatureMap::new(&[12], &data).is_err());
    }

    #[test]
    fn boxes_scale_and_clamp_to_the_source() {
        let mut d = vec![Detection {
            label: "face".into(),
            score: 1.0,
            bbox: [10.0, 20.0, 700.0, 30.0],
            landmarks: vec![[320.0, 192.0]],
        }];
        to_source_pixels(&mut d, (640, 384), (1280, 720));
        assert_eq!(d[0].bbox, [20.0, 37.5, 1280.0, 56.25]);
        assert_eq!(d[0].landmarks, [[640.0, 360.0]]);
    }
}
