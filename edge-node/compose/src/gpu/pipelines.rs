//! The compute pipelines, built once per compositor.

/// Workgroup size of every entry point (`@workgroup_size(16, 4, 1)`): 16 words wide = 64
/// samples of a row, 4 rows.
pub const WORKGROUP_WORDS_X: u32 = 16;
pub const WORKGROUP_ROWS_Y: u32 = 4;

pub struct Pipelines {
    /// Group 0 of every pipeline: params (uniform, dynamic offset) and the output frame
    /// (read-write storage buffer of words).
    pub frame_layout: wgpu::BindGroupLayout,
    /// Group 1 of the blend pipelines: one overlay's premultiplied YUVA texels.
    pub overlay_layout: wgpu::BindGroupLayout,
    /// Group 1 of the scale pipelines: the source planes, Y, U, V.
    pub source_layout: wgpu::BindGroupLayout,
    /// Indexed by [`ScaleKind`].
    pub scale: [ScalePipelines; 2],
    pub blend_luma: wgpu::ComputePipeline,
    pub blend_chroma: wgpu::ComputePipeline,
}

/// The two builds of `scale_i420.wgsl` (its `enlarging` override).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleKind {
    /// Any scale: area average along each axis that reduces, bilinear along one that
    /// enlarges.
    General = 0,
    /// The ROI is no larger than the output along either axis: the same filter (bilinear
    /// there), unrolled.
    Enlarging = 1,
}

impl ScaleKind {
    /// The build for scaling a `roi_width` x `roi_height` region into `width` x `height`.
    pub fn of(roi_width: f32, roi_height: f32, width: u32, height: u32) -> Self {
        if roi_width <= width as f32 && roi_height <= height as f32 {
            Self::Enlarging
        } else {
            Self::General
        }
    }
}

pub struct ScalePipelines {
    pub luma: wgpu::ComputePipeline,
    pub chroma: wgpu::ComputePipeline,
}

fn storage_entry(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

fn params_entry() -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding: 0,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: true,
            min_binding_size: None,
        },
        count: None,
    }
}

fn texture_entry(binding: u32, sample_type: wgpu::TextureSampleType) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Texture {
            sample_type,
            view_dimension: wgpu::TextureViewDimension::D2,
            multisampled: false,
        },
        count: None,
    }
}

impl Pipelines {
    pub fn new(device: &wgpu::Device) -> Self {
        let layout = |label, entries: &[wgpu::BindGroupLayoutEntry]| {
            device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(label),
                entries,
            })
        };
        let frame_layout = layout("compose frame", &[params_entry(), storage_entry(2, false)]);
        let overlay_layout = layout("compose overlay", &[storage_entry(0, true)]);
        let texels = wgpu::TextureSampleType::Float { filterable: false };
        let source_layout = layout(
            "compose scale source",
            &[
                texture_entry(0, texels),
                texture_entry(1, texels),
                texture_entry(2, texels),
            ],
        );
        let pipeline_layout = |label, groups: [&wgpu::BindGroupLayout; 2]| {
            device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(label),
                bind_group_layouts: &[Some(groups[0]), Some(groups[1])],
                immediate_size: 0,
            })
        };
        let scale_layout = pipeline_layout("compose scale", [&frame_layout, &source_layout]);
        let blend_layout = pipeline_layout("compose blend", [&frame_layout, &overlay_layout]);
        let scale_module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("scale_i420.wgsl"),
            source: wgpu::ShaderSource::Wgsl(
                include_str!("../../../../shaders/scale_i420.wgsl").into(),
            ),
        });
        let blend_module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("blend_i420.wgsl"),
            source: wgpu::ShaderSource::Wgsl(
                include_str!("../../../../shaders/blend_i420.wgsl").into(),
            ),
        });
        let with_constants = |layout, module, entry_point, constants: &[(&str, f64)]| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry_point),
                layout: Some(layout),
                module,
                entry_point: Some(entry_point),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    ..Default::default()
                },
                cache: None,
            })
        };
        let pipeline =
            |layout, module, entry_point| with_constants(layout, module, entry_point, &[]);
        let scale = |enlarging: bool| {
            let constants = [("enlarging", f64::from(u8::from(enlarging)))];
            ScalePipelines {
                luma: with_constants(&scale_layout, &scale_module, "scale_luma", &constants),
                chroma: with_constants(&scale_layout, &scale_module, "scale_chroma", &constants),
            }
        };
        Self {
            scale: [scale(false), scale(true)],
            blend_luma: pipeline(&blend_layout, &blend_module, "blend_luma"),
            blend_chroma: pipeline(&blend_layout, &blend_module, "blend_chroma"),
            frame_layout,
            overlay_layout,
            source_layout,
        }
    }
}
