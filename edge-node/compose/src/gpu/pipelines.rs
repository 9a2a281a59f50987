//! The compute pipelines, built once per compositor.

/// Workgroup size of every entry point (`@workgroup_size(16, 4, 1)`): 16 words wide = 64
/// samples of a row, 4 rows.
pub const WORKGROUP_WORDS_X: u32 = 16;
pub const WORKGROUP_ROWS_Y: u32 = 4;

pub struct Pipelines {
    /// Group 0 of every pipeline: params (uniform, dynamic offset), source frame (read),
    /// output frame (read-write).
    pub frame_layout: wgpu::BindGroupLayout,
    /// Group 1 of the blend pipelines: one overlay's premultiplied YUVA texels.
    pub overlay_layout: wgpu::BindGroupLayout,
    pub scale: wgpu::ComputePipeline,
    pub blend_luma: wgpu::ComputePipeline,
    pub blend_chroma: wgpu::ComputePipeline,
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

impl Pipelines {
    pub fn new(device: &wgpu::Device) -> Self {
        let frame_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("compose frame"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: true,
                        min_binding_size: None,
                    },
                    count: None,
                },
                storage_entry(1, true),
                storage_entry(2, false),
            ],
        });
        let overlay_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("compose overlay"),
            entries: &[storage_entry(0, true)],
        });
        let scale_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("compose scale"),
            bind_group_layouts: &[Some(&frame_layout)],
            immediate_size: 0,
        });
        let blend_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("compose blend"),
            bind_group_layouts: &[Some(&frame_layout), Some(&overlay_layout)],
            immediate_size: 0,
        });
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
        let pipeline = |label, layout, module, entry_point| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: Some(layout),
                module,
                entry_point: Some(entry_point),
                compilation_options: wgpu::PipelineCompilationOptions::default(),
                cache: None,
            })
        };
        Self {
            scale: pipeline("scale_planes", &scale_layout, &scale_module, "scale_planes"),
            blend_luma: pipeline("blend_luma", &blend_layout, &blend_module, "blend_luma"),
            blend_chroma: pipeline("blend_chroma", &blend_layout, &blend_module, "blend_chroma"),
            frame_layout,
            overlay_layout,
        }
    }
}
