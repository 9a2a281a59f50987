//! Parameters of one scale (ROI of the source into an output size) for `scale_i420.wgsl`.

use crate::job::Roi;

use super::params::ScaleParams;
use super::words::WordLayout;

/// Format of the source planes as the scale reads them: 4 consecutive samples of a row per
/// texel, so a plane of `stride_words` words per row is that many texels wide.
pub const SOURCE_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;

/// The scale of `roi` (source luma pixels) of `source` into the whole of `output`.
pub fn scale_params(source: &WordLayout, output: &WordLayout, roi: Roi) -> ScaleParams {
    ScaleParams {
        src: source.planes,
        dst: output.planes,
        roi: plane_rois(roi),
    }
}

/// Per-plane ROI: chroma planes are half the luma size in both directions.
fn plane_rois(roi: Roi) -> [[f32; 4]; 3] {
    let luma = [roi.x, roi.y, roi.width, roi.height];
    let chroma = luma.map(|v| v / 2.0);
    [luma, chroma, chroma]
}
