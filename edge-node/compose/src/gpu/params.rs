//! Uniform blocks of the shaders, laid out exactly as WGSL's uniform address space wants them
//! (a test checks the offsets against naga's layout of the real shader source).

use bytemuck::{Pod, Zeroable};

/// `struct Plane` in the shaders.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct PlaneParams {
    pub offset_words: u32,
    pub stride_words: u32,
    pub width: u32,
    pub height: u32,
}

/// `struct ScaleParams` in `scale_i420.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct ScaleParams {
    /// The source frame's planes.
    pub src: [PlaneParams; 3],
    /// The output frame's planes.
    pub dst: [PlaneParams; 3],
    /// Per plane, in that plane's samples: x, y, width, height.
    pub roi: [[f32; 4]; 3],
}

/// `struct BlendParams` in `blend_i420.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlendParams {
    pub dst: [PlaneParams; 3],
    pub overlay_size: [u32; 2],
    pub overlay_origin: [i32; 2],
    pub clip: [u32; 4],
    pub opacity: f32,
    pub _pad: [f32; 3],
    /// Chroma filter weights of luma columns 2c-1, 2c, 2c+1 (fourth unused), and of rows.
    pub taps_x: [f32; 4],
    pub taps_y: [f32; 4],
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// (member name, offset) of a struct in a WGSL source, as naga lays it out.
    fn wgsl_layout(source: &str, struct_name: &str) -> (u32, Vec<(String, u32)>) {
        let module = naga::front::wgsl::parse_str(source).expect("shader parses");
        for (_, ty) in module.types.iter() {
            if ty.name.as_deref() != Some(struct_name) {
                continue;
            }
            if let naga::TypeInner::Struct { members, span } = &ty.inner {
                let members = members
                    .iter()
                    .map(|m| (m.name.clone().unwrap_or_default(), m.offset))
                    .collect();
                return (*span, members);
            }
        }
        panic!("struct {struct_name} not found");
    }

    #[test]
    fn scale_params_match_the_shader() {
        let (span, members) = wgsl_layout(
            include_str!("../../../../shaders/scale_i420.wgsl"),
            "ScaleParams",
        );
        assert_eq!(span as usize, size_of::<ScaleParams>());
        let expected = [
            ("src", offset_of!(ScaleParams, src)),
            ("dst", offset_of!(ScaleParams, dst)),
            ("roi", offset_of!(ScaleParams, roi)),
        ];
        assert_eq!(members.len(), expected.len());
        for ((name, offset), (want_name, want_offset)) in members.iter().zip(expected) {
            assert_eq!((name.as_str(), *offset as usize), (want_name, want_offset));
        }
    }

    #[test]
    fn blend_params_match_the_shader() {
        let (span, members) = wgsl_layout(
            include_str!("../../../../shaders/blend_i420.wgsl"),
            "BlendParams",
        );
        assert_eq!(span as usize, size_of::<BlendParams>());
        let expected = [
            ("dst", offset_of!(BlendParams, dst)),
            ("overlay_size", offset_of!(BlendParams, overlay_size)),
            ("overlay_origin", offset_of!(BlendParams, overlay_origin)),
            ("clip", offset_of!(BlendParams, clip)),
            ("opacity", offset_of!(BlendParams, opacity)),
            ("taps_x", offset_of!(BlendParams, taps_x)),
            ("taps_y", offset_of!(BlendParams, taps_y)),
        ];
        assert_eq!(members.len(), expected.len());
        for ((name, offset), (want_name, want_offset)) in members.iter().zip(expected) {
            assert_eq!((name.as_str(), *offset as usize), (want_name, want_offset));
        }
    }
}
