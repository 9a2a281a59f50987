//! Parameters of one scale (ROI of the source into an output size) for `scale_i420.wgsl`.

use edge_core::ChromaSite;

use crate::job::Roi;

use super::params::ScaleParams;
use super::words::WordLayout;

/// Format of the source planes as the scale reads them: 4 consecutive samples of a row per
/// texel, so a plane of `stride_words` words per row is that many texels wide.
pub const SOURCE_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;

/// The scale of `roi` (source luma pixels) of `source` into the whole of `output`, whose
/// chroma samples sit at `site` in both.
pub fn scale_params(
    source: &WordLayout,
    output: &WordLayout,
    roi: Roi,
    site: ChromaSite,
) -> ScaleParams {
    let step = [
        roi.width / output.frame.width as f32,
        roi.height / output.frame.height as f32,
    ];
    ScaleParams {
        src: source.planes,
        dst: output.planes,
        roi: plane_rois(roi, step, site),
    }
}

/// Per-plane ROI: chroma planes are half the luma size in both directions. The shader puts
/// output sample j at `roi + (j + 0.5) * step` in the plane's own pixels, which is where a
/// centre-sited chroma sample belongs. A sample sited `o` luma pixels into its 2x2 block
/// (left-sited: o = 0.5 across) is at output luma `2j + o`, source luma `x + (2j + o) * step`,
/// source chroma `(that - o) / 2 + 0.5`: the ROI's chroma origin moves by
/// `(step - 1) * (o - 1) / 2`. Nothing moves at 1:1; at 3:1 left-sited chroma moves half a
/// chroma pixel left, without which its picture would shift right of the luma.
fn plane_rois(roi: Roi, step: [f32; 2], site: ChromaSite) -> [[f32; 4]; 3] {
    let luma = [roi.x, roi.y, roi.width, roi.height];
    let (ox, oy) = site.offset_in_block();
    let shift = |step: f32, o: f64| (step - 1.0) * (o as f32 - 1.0) / 2.0;
    let chroma = [
        roi.x / 2.0 + shift(step[0], ox),
        roi.y / 2.0 + shift(step[1], oy),
        roi.width / 2.0,
        roi.height / 2.0,
    ];
    [luma, chroma, chroma]
}
