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
    /// Group 1 of the scale pipelines: the source planes as R8 textures and the sampler.
    pub source_textures_layout: wgpu::BindGroupLayout,
    /// Bilinear, clamp-to-edge.
    pub bilinear: wgpu::Sampler,
    pub scale_luma: wgpu::ComputePipeline,
    pub scale_chroma: wgpu::ComputePipeline,
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
                storage_entry(2, false),
            ],
        });
        let overlay_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("compose overlay"),
            entries: &[storage_entry(0, true)],
        });
        let texture_entry = |binding| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Texture {
                sample_type: wgpu::TextureSampleType::Float { filterable: true },
                view_dimension: wgpu::TextureViewDimension::D2,
                multisampled: false,
            },
            count: None,
        };
        let source_textures_layout =
            device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some("compose source textures"),
                entries: &[
                    texture_entry(0),
                    texture_entry(1),
                    texture_entry(2),
                    wgpu::BindGroupLayoutEntry {
                        binding: 3,
                        visibility: wgpu::ShaderStages::COMPUTE,
                        ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
                        count: None,
                    },
                ],
            });
        let bilinear = device.create_sampler(&wgpu::SamplerDescriptor {
            label: Some("compose bilinear"),
            address_mode_u: wgpu::AddressMode::ClampToEdge,
            address_mode_v: wgpu::AddressMode::ClampToEdge,
            mag_filter: wgpu::FilterMode::Linear,
            min_filter: wgpu::FilterMode::Linear,
            ..Default::default()
        });
        let scale_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("compose scale"),
            bind_group_layouts: &[Some(&frame_layout), Some(&source_textures_layout)],
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
            scale_luma: pipeline("scale_luma", &scale_layout, &scale_module, "scale_luma"),
            scale_chroma: pipeline("scale_chroma", &scale_layout, &scale_module, "scale_chroma"),
            blend_luma: pipeline("blend_luma", &blend_layout, &blend_module, "blend_luma"),
            blend_chroma: pipeline("blend_chroma", &blend_layout, &blend_module, "blend_chroma"),
            frame_layout,
            overlay_layout,
            source_textures_layout,
            bilinear,
        }
    }
}
