//! The long-lived compositor: owns the device, the pipelines, the overlays and pooled buffers.
//! Per source frame it uploads the source once and renders every job in one submission.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use edge_core::{FrameMeta, I420Frame, PlaneLayout, VideoColour};

use crate::error::ComposeError;
use crate::gpu::adapter::{choose_adapter, AdapterChoice, AdapterSummary};
use crate::gpu::params::{BlendParams, ScaleParams};
use crate::gpu::pipelines::{Pipelines, ScaleKind, WORKGROUP_ROWS_Y, WORKGROUP_WORDS_X};
use crate::gpu::pool::{BufferKind, BufferPool};
use crate::gpu::scale::{scale_params, SOURCE_FORMAT};
use crate::gpu::words::WordLayout;
use crate::job::{ComposedFrame, OverlayId, OverlayPlacement, RenderJob, Roi};
use crate::overlay::YuvaImage;
use crate::plan::{
    checked_layout, plan_job, scale_groups, BlendPlan, JobPath, JobPlan, ScaleGroup,
};

/// Longest wait for one frame's GPU work. Far above any real frame (a few ms); reaching it
/// means a hung device, and the frame thread must get an error rather than block forever.
const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes of the uniform block bound per dispatch: the larger of the two params structs.
const PARAMS_BINDING_BYTES: u64 = {
    let scale = std::mem::size_of::<ScaleParams>();
    let blend = std::mem::size_of::<BlendParams>();
    (if scale > blend { scale } else { blend }) as u64
};

#[derive(Clone, Debug)]
pub struct CompositorOptions {
    /// Backends to consider. Default: Vulkan, then GL as the fallback.
    pub backends: wgpu::Backends,
    /// Only adapters whose name contains this (case-insensitive), e.g. "llvmpipe".
    pub adapter_name_contains: Option<String>,
    /// Accept a CPU rasteriser (lavapipe/llvmpipe) when no GPU is present. Default: true.
    pub allow_software: bool,
    /// Compose identity jobs (source size, overlays only) on the CPU: one copy of the source
    /// and the overlay rectangles, instead of four full-frame copies through the device.
    /// `None` (the default) does so exactly when the adapter is itself the CPU.
    pub identity_on_cpu: Option<bool>,
}

impl Default for CompositorOptions {
    fn default() -> Self {
        Self {
            backends: wgpu::Backends::VULKAN | wgpu::Backends::GL,
            adapter_name_contains: None,
            allow_software: true,
            identity_on_cpu: None,
        }
    }
}

struct GpuOverlay {
    /// As loaded (straight-alpha RGBA8), kept to convert again when the source's colour
    /// description changes.
    rgba: Vec<u8>,
    image: YuvaImage,
    buffer: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    /// Blend weights for the CPU path, made on first use there (at the opacity last drawn).
    cpu: Option<crate::cpu_blend::Prepared>,
}

/// The source frame on the GPU, reallocated when the resolution changes. Uploaded per frame
/// only in the forms that frame's jobs read: the buffer of words for identity jobs (copied as
/// it is), the textures for scaled jobs (read by the scale).
struct SourceSlot {
    layout: WordLayout,
    buffer: wgpu::Buffer,
    /// Y, U, V, 4 samples of a row per texel ([`SOURCE_FORMAT`]).
    textures: [wgpu::Texture; 3],
    textures_bind_group: wgpu::BindGroup,
}

/// One uniform buffer holding every dispatch's parameters of a frame, each in its own slot at
/// a dynamic offset, written with a single `write_buffer`.
struct ParamsRing {
    buffer: wgpu::Buffer,
    slot_bytes: u64,
    capacity_slots: u64,
}

/// The GPU side of one job of the current frame.
struct JobTarget {
    layout: WordLayout,
    work: wgpu::Buffer,
    readback: wgpu::Buffer,
}

/// GPU work of one frame, submitted and being read back.
struct GpuFrame {
    submission: wgpu::SubmissionIndex,
    /// Job index (into the frame's jobs) and its buffers, in job order.
    targets: Vec<(usize, JobTarget)>,
    /// Jobs whose picture is another job's (same scale, no overlays): (job, that job).
    shares: Vec<(usize, usize)>,
    mapped: std::sync::mpsc::Receiver<(usize, Result<(), wgpu::BufferAsyncError>)>,
}

/// Where the frame's dispatches find their parameters.
struct FrameSlots {
    /// Per scale group: its slot and parameters.
    scales: Vec<(u32, ScaleParams)>,
    /// Per job with a buffer of its own: one slot per blend.
    blends: Vec<Vec<u32>>,
}

pub struct Compositor {
    device: wgpu::Device,
    queue: wgpu::Queue,
    adapter: AdapterSummary,
    pipelines: Pipelines,
    overlays: HashMap<OverlayId, GpuOverlay>,
    /// Never reused: u64 does not wrap in any real lifetime.
    next_overlay_id: u64,
    source: Option<SourceSlot>,
    params: ParamsRing,
    /// Scales the last frame ran on the device: one per distinct (ROI, output size).
    last_frame_scales: usize,
    pool: BufferPool,
    /// Validation errors reported by wgpu outside any call's return value.
    gpu_errors: Arc<Mutex<Vec<String>>>,
    /// Set once the device is lost: every later call fails until the owner builds a new
    /// compositor.
    device_lost: Arc<Mutex<Option<String>>>,
    identity_on_cpu: bool,
    /// The source's matrix, range and chroma site: overlays are converted into it, scaled
    /// chroma is sampled at its site.
    colour: VideoColour,
}

impl Compositor {
    /// Picks the adapter, creates the device, builds the pipelines and runs one warm-up frame
    /// through each of them so that no viewer's first frame pays for shader compilation.
    pub fn new(options: CompositorOptions) -> Result<Self, ComposeError> {
        let started = Instant::now();
        let mut instance_descriptor = wgpu::InstanceDescriptor::new_without_display_handle();
        instance_descriptor.backends = options.backends;
        let instance = wgpu::Instance::new(instance_descriptor);
        let (adapter, summary) = choose_adapter(
            &instance,
            &AdapterChoice {
                backends: options.backends,
                name_contains: options.adapter_name_contains.clone(),
                allow_software: options.allow_software,
            },
        )?;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("edge-compose"),
            // The adapter's own limits: a 4K frame is 12 MiB, above the 128 MiB default only
            // for absurd sizes, which `plan` refuses anyway; taking the adapter's limits
            // avoids refusing frames a GPU could handle.
            required_limits: adapter.limits(),
            memory_hints: wgpu::MemoryHints::Performance,
            ..Default::default()
        }))
        .map_err(|source| ComposeError::RequestDevice {
            adapter: summary.name.clone(),
            source,
        })?;

        let gpu_errors = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&gpu_errors);
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
            lock(&sink).push(error.to_string());
        }));
        let device_lost = Arc::new(Mutex::new(None));
        let lost = Arc::clone(&device_lost);
        device.set_device_lost_callback(move |reason, message| {
            *lock(&lost) = Some(format!("{reason:?}: {message}"));
        });

        let pipelines = Pipelines::new(&device);
        let slot_bytes = PARAMS_BINDING_BYTES.next_multiple_of(u64::from(
            device.limits().min_uniform_buffer_offset_alignment,
        ));
        let params = ParamsRing::new(&device, slot_bytes, 16);
        let mut compositor = Self {
            device,
            queue,
            identity_on_cpu: options.identity_on_cpu.unwrap_or(summary.is_software),
            adapter: summary,
            pipelines,
            overlays: HashMap::new(),
            next_overlay_id: 0,
            source: None,
            params,
            last_frame_scales: 0,
            pool: BufferPool::default(),
            gpu_errors,
            device_lost,
            colour: VideoColour::default(),
        };
        let built_ms = started.elapsed().as_secs_f64() * 1e3;
        let warm_ms = compositor.warm_up()?;
        tracing::info!(
            adapter = %compositor.adapter.name,
            backend = ?compositor.adapter.backend,
            device_type = ?compositor.adapter.device_type,
            driver = %compositor.adapter.driver,
            software = compositor.adapter.is_software,
            built_ms,
            warm_ms,
            "compositor ready"
        );
        Ok(compositor)
    }

    pub fn adapter(&self) -> &AdapterSummary {
        &self.adapter
    }

    /// The source's colour description, which overlays are converted into. Set it from the
    /// decoder (edge-media's `VideoFormat::colour`) before loading overlays; a change converts
    /// every loaded overlay again (a few ms for a screenful, once per change). A source frame
    /// that carries its colour (`I420Frame::colour`) sets it when composed.
    pub fn set_source_colour(&mut self, colour: VideoColour) -> Result<(), ComposeError> {
        if colour == self.colour {
            return Ok(());
        }
        tracing::info!(from = ?self.colour, to = ?colour, "source colour description");
        self.colour = colour;
        let ids: Vec<OverlayId> = self.overlays.keys().copied().collect();
        for id in ids {
            let overlay = &self.overlays[&id];
            let image = YuvaImage::from_rgba(
                overlay.image.width(),
                overlay.image.height(),
                &overlay.rgba,
                colour,
            )?;
            let rgba = overlay.rgba.clone();
            let fresh = self.upload_overlay(image, rgba);
            self.overlays.insert(id, fresh);
        }
        Ok(())
    }

    pub fn source_colour(&self) -> VideoColour {
        self.colour
    }

    /// Decodes a PNG (any colour type) and uploads it as an overlay.
    pub fn load_overlay_png(&mut self, png_bytes: &[u8]) -> Result<OverlayId, ComposeError> {
        let (width, height, rgba) = crate::overlay::decode_png_rgba(png_bytes)?;
        self.load_overlay_rgba(width, height, &rgba)
    }

    /// Uploads straight-alpha RGBA8 (row-major, no padding) as an overlay.
    pub fn load_overlay_rgba(
        &mut self,
        width: u32,
        height: u32,
        rgba: &[u8],
    ) -> Result<OverlayId, ComposeError> {
        let image = YuvaImage::from_rgba(width, height, rgba, self.colour)?;
        self.storage_size_limit(image.texels().len() as u64 * 4)
            .map_err(ComposeError::InvalidOverlay)?;
        Ok(self.insert_overlay(image, rgba.to_vec()))
    }

    /// Replaces an overlay's pixels (a countdown, an updated price). Same size: written in
    /// place; another size: a new buffer.
    pub fn replace_overlay_rgba(
        &mut self,
        id: OverlayId,
        width: u32,
        height: u32,
        rgba: &[u8],
    ) -> Result<(), ComposeError> {
        if !self.overlays.contains_key(&id) {
            return Err(ComposeError::UnknownOverlay(id));
        }
        let image = YuvaImage::from_rgba(width, height, rgba, self.colour)?;
        self.storage_size_limit(image.texels().len() as u64 * 4)
            .map_err(ComposeError::InvalidOverlay)?;
        match self.overlays.get_mut(&id) {
            Some(existing)
                if existing.image.width() == width && existing.image.height() == height =>
            {
                self.queue
                    .write_buffer(&existing.buffer, 0, bytemuck::cast_slice(image.texels()));
                existing.image = image;
                existing.rgba.clear();
                existing.rgba.extend_from_slice(rgba);
                existing.cpu = None;
            }
            _ => {
                let overlay = self.upload_overlay(image, rgba.to_vec());
                self.overlays.insert(id, overlay);
            }
        }
        Ok(())
    }

    pub fn remove_overlay(&mut self, id: OverlayId) -> Result<(), ComposeError> {
        self.overlays
            .remove(&id)
            .map(|_| ())
            .ok_or(ComposeError::UnknownOverlay(id))
    }

    /// The CPU copy of an uploaded overlay, exactly the texels the GPU blends.
    pub fn overlay_image(&self, id: OverlayId) -> Option<&YuvaImage> {
        self.overlays.get(&id).map(|o| &o.image)
    }

    /// GPU buffers allocated for job frames since start; flat in steady state.
    pub fn pooled_buffers_created(&self) -> u64 {
        self.pool.created_total()
    }

    /// Scales the last `compose` ran on the device: one per distinct (ROI, output size) among
    /// its scaled jobs, however many jobs share it.
    pub fn last_frame_scales(&self) -> usize {
        self.last_frame_scales
    }

    /// Renders every job from one source frame. Results are in job order.
    pub fn compose(
        &mut self,
        source: &I420Frame,
        jobs: &[RenderJob],
    ) -> Result<Vec<ComposedFrame>, ComposeError> {
        let mut frames: Vec<Option<ComposedFrame>> = vec![None; jobs.len()];
        self.compose_each(source, jobs, |index, frame| frames[index] = Some(frame))?;
        Ok(frames
            .into_iter()
            .map(|frame| frame.expect("compose_each hands out every job once it returns Ok"))
            .collect())
    }

    /// Renders every job from one source frame and hands each result to `ready` (job index,
    /// frame) the moment it exists, so its encoder can start while the rest are composed.
    /// The device's jobs are submitted first (one upload, one submission); jobs that need no
    /// device (passthrough, and identity jobs when the adapter is the CPU) are done while it
    /// works, in job order; then the device's results after one wait, in job order. On `Err`
    /// some jobs may already have been handed out.
    pub fn compose_each(
        &mut self,
        source: &I420Frame,
        jobs: &[RenderJob],
        mut ready: impl FnMut(usize, ComposedFrame),
    ) -> Result<(), ComposeError> {
        self.take_gpu_error()?;
        // An upstream that changes its colour description mid-stream: overlays follow it.
        if let Some(colour) = source.colour {
            self.set_source_colour(colour)?;
        }
        let source_layout = checked_layout(source.layout)
            .map_err(|reason| ComposeError::InvalidSource(reason.to_owned()))?;
        if source.data.len() != source_layout.total_len() {
            return Err(ComposeError::InvalidSource(format!(
                "I420 {}x{} needs {} bytes, got {}",
                source_layout.width,
                source_layout.height,
                source_layout.total_len(),
                source.data.len()
            )));
        }
        let plans = jobs
            .iter()
            .map(|job| {
                plan_job(source_layout, job, |id| {
                    self.overlays
                        .get(&id)
                        .map(|o| (o.image.width(), o.image.height()))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let on_cpu = |plan: &JobPlan| match plan.path {
            JobPath::Passthrough => true,
            JobPath::CopyThenBlend => self.identity_on_cpu,
            JobPath::ScaleThenBlend => false,
        };
        let (cpu_jobs, gpu_jobs): (Vec<usize>, Vec<usize>) =
            (0..plans.len()).partition(|&i| on_cpu(&plans[i]));
        for &i in &gpu_jobs {
            let output = plans[i].output;
            self.storage_size_limit(WordLayout::new(output).size_bytes())
                .map_err(|_| ComposeError::InvalidOutput {
                    width: output.width,
                    height: output.height,
                    reason: "larger than the device can bind as one buffer",
                })?;
        }
        self.last_frame_scales = 0;
        let gpu_frame = if gpu_jobs.is_empty() {
            None
        } else {
            Some(self.submit_on_gpu(source_layout, &source.data, &plans, &gpu_jobs)?)
        };

        for i in cpu_jobs {
            let plan = &plans[i];
            let data = match plan.path {
                // Passthrough jobs share the source's bytes: no copy at all.
                JobPath::Passthrough => source.data.clone(),
                _ => {
                    let mut frame = source.data.to_vec();
                    for blend in &plan.blends {
                        let GpuOverlay { image, cpu, .. } =
                            self.overlays
                                .get_mut(&blend.overlay)
                                .ok_or(ComposeError::UnknownOverlay(blend.overlay))?;
                        crate::cpu_blend::blend(
                            &mut frame,
                            plan.output,
                            image,
                            cpu,
                            blend,
                            self.colour.chroma_site,
                        );
                    }
                    Bytes::from(frame)
                }
            };
            ready(
                i,
                ComposedFrame {
                    layout: plan.output,
                    data,
                    meta: source.meta,
                },
            );
        }

        if let Some(gpu_frame) = gpu_frame {
            for (i, data) in self.finish_on_gpu(gpu_frame)? {
                ready(
                    i,
                    ComposedFrame {
                        layout: plans[i].output,
                        data,
                        meta: source.meta,
                    },
                );
            }
        }
        self.pool.end_frame();
        Ok(())
    }

    /// Uploads the source, records and submits `gpu_jobs`' work and starts mapping their
    /// readbacks; [`Self::finish_on_gpu`] waits for it.
    ///
    /// Scaled jobs with the same ROI and output size share one scale (`plan::scale_groups`):
    /// the scale writes into the group's base job; jobs with overlays start from a copy of it,
    /// jobs without take the base's picture as it is. The frame runs as: source copies for
    /// identity jobs, one compute pass of scales, copies of shared scales, one compute pass of
    /// overlay blends, readback copies; one submission.
    fn submit_on_gpu(
        &mut self,
        source_layout: PlaneLayout,
        source_data: &[u8],
        plans: &[JobPlan],
        gpu_jobs: &[usize],
    ) -> Result<GpuFrame, ComposeError> {
        let needs = |path| gpu_jobs.iter().any(|&i| plans[i].path == path);
        let source_words = self.upload_source(
            source_layout,
            source_data,
            needs(JobPath::CopyThenBlend),
            needs(JobPath::ScaleThenBlend),
        )?;
        let groups = scale_groups(plans, gpu_jobs);
        let shares: Vec<(usize, usize)> = groups
            .iter()
            .flat_map(|g| g.shares.iter().map(|&job| (job, g.base)))
            .collect();
        // Device jobs with buffers of their own: all but those sharing another's picture.
        let own: Vec<usize> = gpu_jobs
            .iter()
            .copied()
            .filter(|i| !shares.iter().any(|(job, _)| job == i))
            .collect();
        let (params_bytes, slots) = self.write_params(&source_words, plans, &groups, &own);
        self.params
            .ensure_slots(&self.device, params_bytes.len() as u64);
        self.queue
            .write_buffer(&self.params.buffer, 0, &params_bytes);

        let targets: Vec<JobTarget> = own
            .iter()
            .map(|&i| {
                let layout = WordLayout::new(plans[i].output);
                JobTarget {
                    layout,
                    work: self
                        .pool
                        .take(&self.device, BufferKind::Work, layout.size_bytes()),
                    readback: self.pool.take(
                        &self.device,
                        BufferKind::Readback,
                        layout.size_bytes(),
                    ),
                }
            })
            .collect();
        let target_of = |job: usize| {
            own.iter()
                .position(|&i| i == job)
                .expect("every job but the shares has a target")
        };
        let source = self
            .source
            .as_ref()
            .expect("upload_source just stored the source");

        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("compose frame"),
            });
        // Identity jobs start from a plain copy of the source: no resampling at all.
        for (&i, target) in own.iter().zip(&targets) {
            if plans[i].path == JobPath::CopyThenBlend {
                encoder.copy_buffer_to_buffer(
                    &source.buffer,
                    0,
                    &target.work,
                    0,
                    source_words.size_bytes(),
                );
            }
        }
        if !groups.is_empty() {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("compose scales"),
                timestamp_writes: None,
            });
            pass.set_bind_group(1, &source.textures_bind_group, &[]);
            for (group, (slot, params)) in groups.iter().zip(&slots.scales) {
                let work = &targets[target_of(group.base)].work;
                pass.set_bind_group(0, &self.output_bind_group(work), &[*slot]);
                let [luma, chroma, _] = params.dst;
                let [_, _, roi_width, roi_height] = params.roi[0];
                let kind = ScaleKind::of(roi_width, roi_height, luma.width, luma.height);
                let pipelines = &self.pipelines.scale[kind as usize];
                pass.set_pipeline(&pipelines.luma);
                pass.dispatch_workgroups(
                    luma.stride_words.div_ceil(WORKGROUP_WORDS_X),
                    luma.height.div_ceil(WORKGROUP_ROWS_Y),
                    1,
                );
                pass.set_pipeline(&pipelines.chroma);
                pass.dispatch_workgroups(
                    chroma.stride_words.div_ceil(WORKGROUP_WORDS_X),
                    chroma.height.div_ceil(WORKGROUP_ROWS_Y),
                    1,
                );
            }
        }
        self.last_frame_scales = groups.len();
        for group in &groups {
            let base = &targets[target_of(group.base)];
            for &job in &group.copies {
                encoder.copy_buffer_to_buffer(
                    &base.work,
                    0,
                    &targets[target_of(job)].work,
                    0,
                    base.layout.size_bytes(),
                );
            }
        }
        if slots.blends.iter().any(|b| !b.is_empty()) {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("compose overlays"),
                timestamp_writes: None,
            });
            for ((&i, target), blend_slots) in own.iter().zip(&targets).zip(&slots.blends) {
                if blend_slots.is_empty() {
                    continue;
                }
                let bind_group = self.output_bind_group(&target.work);
                for (blend, &slot) in plans[i].blends.iter().zip(blend_slots) {
                    let overlay = self
                        .overlays
                        .get(&blend.overlay)
                        .ok_or(ComposeError::UnknownOverlay(blend.overlay))?;
                    pass.set_bind_group(0, &bind_group, &[slot]);
                    pass.set_bind_group(1, &overlay.bind_group, &[]);
                    let [luma_words, luma_rows, chroma_words, chroma_rows] = blend_extent(blend);
                    pass.set_pipeline(&self.pipelines.blend_luma);
                    pass.dispatch_workgroups(
                        luma_words.div_ceil(WORKGROUP_WORDS_X),
                        luma_rows.div_ceil(WORKGROUP_ROWS_Y),
                        1,
                    );
                    pass.set_pipeline(&self.pipelines.blend_chroma);
                    pass.dispatch_workgroups(
                        chroma_words.div_ceil(WORKGROUP_WORDS_X),
                        chroma_rows.div_ceil(WORKGROUP_ROWS_Y),
                        1,
                    );
                }
            }
        }
        for target in &targets {
            encoder.copy_buffer_to_buffer(
                &target.work,
                0,
                &target.readback,
                0,
                target.layout.size_bytes(),
            );
        }
        let submission = self.queue.submit([encoder.finish()]);

        // Map every readback, then wait once: N jobs, one round trip.
        let (sender, mapped) = std::sync::mpsc::channel();
        for (index, target) in targets.iter().enumerate() {
            let sender = sender.clone();
            target
                .readback
                .map_async(wgpu::MapMode::Read, .., move |result| {
                    // The receiver lives until the frame is finished; a failed send only means
                    // the frame already failed and nobody waits for the result.
                    let _ = sender.send((index, result));
                });
        }
        Ok(GpuFrame {
            submission,
            targets: own.into_iter().zip(targets).collect(),
            shares,
            mapped,
        })
    }

    /// Waits for a submitted frame and unpacks each job's output: (job index, tight I420).
    fn finish_on_gpu(&mut self, frame: GpuFrame) -> Result<Vec<(usize, Bytes)>, ComposeError> {
        let GpuFrame {
            submission,
            targets,
            shares,
            mapped: receiver,
        } = frame;
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(submission),
                timeout: Some(FRAME_TIMEOUT),
            })
            .map_err(|e| ComposeError::Gpu(format!("waiting for the frame: {e}")))?;
        self.take_gpu_error()?;
        let mut mapped = vec![false; targets.len()];
        for (index, result) in receiver.try_iter() {
            result.map_err(|e| ComposeError::Readback(e.to_string()))?;
            mapped[index] = true;
        }
        if let Some(missing) = mapped.iter().position(|m| !m) {
            return Err(ComposeError::Readback(format!(
                "job {missing} was not mapped after the frame completed"
            )));
        }

        let mut frames = Vec::with_capacity(targets.len());
        for (job, target) in targets {
            let tight = {
                let view = target
                    .readback
                    .get_mapped_range(..)
                    .map_err(|e| ComposeError::Readback(e.to_string()))?;
                target.layout.unpack(&view)
            };
            target.readback.unmap();
            frames.push((job, Bytes::from(tight)));
            self.pool.give_back(BufferKind::Work, target.work);
            self.pool.give_back(BufferKind::Readback, target.readback);
        }
        for (job, base) in shares {
            let picture = frames
                .iter()
                .find(|(i, _)| *i == base)
                .map(|(_, data)| data.clone())
                .expect("a share's base has a target");
            frames.push((job, picture));
        }
        frames.sort_by_key(|(job, _)| *job);
        Ok(frames)
    }

    /// Group 0 of every dispatch: the params ring and the frame it writes.
    fn output_bind_group(&self, output: &wgpu::Buffer) -> wgpu::BindGroup {
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("compose output"),
            layout: &self.pipelines.frame_layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: self.params_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: output.as_entire_binding(),
                },
            ],
        })
    }

    fn params_binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.params.buffer,
            offset: 0,
            size: NonZeroU64::new(PARAMS_BINDING_BYTES),
        })
    }

    /// Every dispatch's parameters of this frame, slot after slot, and where each is: one
    /// slot per scale group, one per blend of each job in `own`.
    fn write_params(
        &self,
        source: &WordLayout,
        plans: &[JobPlan],
        groups: &[ScaleGroup],
        own: &[usize],
    ) -> (Vec<u8>, FrameSlots) {
        let slot_bytes = self.params.slot_bytes as usize;
        let mut bytes = Vec::new();
        let mut push = |block: &[u8]| {
            let offset = bytes.len();
            bytes.extend_from_slice(block);
            bytes.resize(offset + slot_bytes, 0);
            // Slots are at most a few hundred per frame: far inside u32.
            offset as u32
        };
        let scales = groups
            .iter()
            .map(|group| {
                let plan = &plans[group.base];
                let params = scale_params(
                    source,
                    &WordLayout::new(plan.output),
                    plan.roi,
                    self.colour.chroma_site,
                );
                (push(bytemuck::bytes_of(&params)), params)
            })
            .collect();
        let [taps_x, taps_y] = crate::overlay::chroma_taps(self.colour.chroma_site)
            .map(|[a, b, c]| [a, b, c].map(|q| q as f32 / 4.0))
            .map(|[a, b, c]| [a, b, c, 0.0]);
        let blends = own
            .iter()
            .map(|&i| {
                let plan = &plans[i];
                let output = WordLayout::new(plan.output);
                plan.blends
                    .iter()
                    .map(|blend| {
                        let params = BlendParams {
                            dst: output.planes,
                            overlay_size: [blend.overlay_width, blend.overlay_height],
                            overlay_origin: [blend.origin_x, blend.origin_y],
                            clip: blend.clip,
                            opacity: blend.opacity,
                            _pad: [0.0; 3],
                            taps_x,
                            taps_y,
                        };
                        push(bytemuck::bytes_of(&params))
                    })
                    .collect()
            })
            .collect();
        (bytes, FrameSlots { scales, blends })
    }

    /// Writes the source into the forms this frame's jobs read, reallocating when the
    /// resolution changed.
    fn upload_source(
        &mut self,
        layout: PlaneLayout,
        data: &[u8],
        to_buffer: bool,
        to_textures: bool,
    ) -> Result<WordLayout, ComposeError> {
        let words = WordLayout::new(layout);
        self.storage_size_limit(words.size_bytes())
            .map_err(ComposeError::InvalidSource)?;
        if self.source.as_ref().map(|s| s.layout) != Some(words) {
            if let Some(old) = &self.source {
                tracing::info!(
                    from = %format!("{}x{}", old.layout.frame.width, old.layout.frame.height),
                    to = %format!("{}x{}", layout.width, layout.height),
                    "source resolution changed"
                );
            }
            self.source = Some(self.allocate_source(words)?);
        }
        let source = self
            .source
            .as_ref()
            .expect("stored just above when missing");
        // The textures take rows of whole texels (words): tight rows that are not must be
        // padded first, and the buffer then takes the same padded copy.
        let padded = (to_textures && !words.is_tight()).then(|| {
            let mut padded = vec![0; words.size_bytes() as usize];
            words.for_each_row(|range, padded_offset| {
                let len = range.len();
                padded[padded_offset..padded_offset + len].copy_from_slice(&data[range]);
            });
            padded
        });
        let words_data = padded.as_deref().unwrap_or(data);
        if to_buffer {
            if words.is_tight() || padded.is_some() {
                self.queue.write_buffer(&source.buffer, 0, words_data);
            } else {
                let size = NonZeroU64::new(words.size_bytes())
                    .expect("a checked layout is at least 2x2 pixels");
                let mut staging = self
                    .queue
                    .write_buffer_with(&source.buffer, 0, size)
                    .ok_or_else(|| ComposeError::Gpu("no staging memory for the source".into()))?;
                words.for_each_row(|range, padded_offset| {
                    let len = range.len();
                    staging
                        .slice(padded_offset..padded_offset + len)
                        .copy_from_slice(&data[range]);
                });
            }
        }
        if to_textures {
            for (texture, plane) in source.textures.iter().zip(words.planes) {
                let offset = plane.offset_words as usize * 4;
                let row_bytes = plane.stride_words * 4;
                let len = row_bytes as usize * plane.height as usize;
                self.queue.write_texture(
                    wgpu::TexelCopyTextureInfo {
                        texture,
                        mip_level: 0,
                        origin: wgpu::Origin3d::ZERO,
                        aspect: wgpu::TextureAspect::All,
                    },
                    &words_data[offset..offset + len],
                    wgpu::TexelCopyBufferLayout {
                        offset: 0,
                        bytes_per_row: Some(row_bytes),
                        rows_per_image: Some(plane.height),
                    },
                    texture.size(),
                );
            }
        }
        Ok(words)
    }

    fn allocate_source(&self, words: WordLayout) -> Result<SourceSlot, ComposeError> {
        let max_side = self.device.limits().max_texture_dimension_2d;
        let [luma, ..] = words.planes;
        if luma.stride_words.max(luma.height) > max_side {
            return Err(ComposeError::InvalidSource(format!(
                "{}x{} needs textures larger than the device's {max_side}",
                words.frame.width, words.frame.height
            )));
        }
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("compose source frame"),
            size: words.size_bytes(),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let textures = words.planes.map(|plane| {
            self.device.create_texture(&wgpu::TextureDescriptor {
                label: Some("compose source plane"),
                size: wgpu::Extent3d {
                    width: plane.stride_words,
                    height: plane.height,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: SOURCE_FORMAT,
                usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
                view_formats: &[],
            })
        });
        let views = textures
            .each_ref()
            .map(|t| t.create_view(&wgpu::TextureViewDescriptor::default()));
        let entries: Vec<wgpu::BindGroupEntry> = views
            .iter()
            .zip(0..)
            .map(|(view, binding)| wgpu::BindGroupEntry {
                binding,
                resource: wgpu::BindingResource::TextureView(view),
            })
            .collect();
        let textures_bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("compose source textures"),
            layout: &self.pipelines.source_layout,
            entries: &entries,
        });
        Ok(SourceSlot {
            layout: words,
            buffer,
            textures,
            textures_bind_group,
        })
    }

    fn insert_overlay(&mut self, image: YuvaImage, rgba: Vec<u8>) -> OverlayId {
        let id = OverlayId(self.next_overlay_id);
        self.next_overlay_id += 1;
        let overlay = self.upload_overlay(image, rgba);
        self.overlays.insert(id, overlay);
        id
    }

    fn upload_overlay(&self, image: YuvaImage, rgba: Vec<u8>) -> GpuOverlay {
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("compose overlay"),
            size: image.texels().len() as u64 * 4,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.queue
            .write_buffer(&buffer, 0, bytemuck::cast_slice(image.texels()));
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("compose overlay"),
            layout: &self.pipelines.overlay_layout,
            entries: &[wgpu::BindGroupEntry {
                binding: 0,
                resource: buffer.as_entire_binding(),
            }],
        });
        GpuOverlay {
            rgba,
            image,
            buffer,
            bind_group,
            cpu: None,
        }
    }

    /// `Err(reason)` when a buffer of `bytes` cannot be bound as one storage buffer.
    fn storage_size_limit(&self, bytes: u64) -> Result<(), String> {
        let limit = self.device.limits().max_storage_buffer_binding_size;
        if bytes > limit {
            return Err(format!(
                "needs {bytes} bytes on the GPU, the device binds at most {limit}"
            ));
        }
        Ok(())
    }

    fn take_gpu_error(&self) -> Result<(), ComposeError> {
        if let Some(reason) = lock(&self.device_lost).clone() {
            return Err(ComposeError::DeviceLost(reason));
        }
        let mut errors = lock(&self.gpu_errors);
        if errors.is_empty() {
            return Ok(());
        }
        let message = errors.join("; ");
        errors.clear();
        Err(ComposeError::Gpu(message))
    }

    /// One small frame through every pipeline (copy, both scales, both blends, readback).
    fn warm_up(&mut self) -> Result<f64, ComposeError> {
        let started = Instant::now();
        let layout = PlaneLayout::new(16, 16).expect("16x16 is a valid I420 size");
        let data: Vec<u8> = (0..layout.total_len()).map(|i| (i % 251) as u8).collect();
        let meta = FrameMeta {
            seq: 0,
            pts_ns: 0,
            received_unix_us: 0,
        };
        let source = I420Frame::new(layout, Bytes::from(data), meta)
            .expect("the data was sized from the layout");
        let rgba: Vec<u8> = (0..5 * 5)
            .flat_map(|i| [200, 40, 40, (i * 10) as u8])
            .collect();
        let overlay = self.load_overlay_rgba(5, 5, &rgba)?;
        let placement = OverlayPlacement {
            overlay,
            x: 3,
            y: 3,
            opacity: 0.8,
        };
        let jobs = [
            RenderJob::identity(layout, vec![placement]),
            RenderJob {
                output: PlaneLayout::new(8, 8).expect("8x8 is a valid I420 size"),
                roi: Roi {
                    x: 2.0,
                    y: 2.0,
                    width: 10.0,
                    height: 10.0,
                },
                overlays: vec![placement],
            },
            // An enlargement: the scale's other build.
            RenderJob {
                output: PlaneLayout::new(8, 8).expect("8x8 is a valid I420 size"),
                roi: Roi {
                    x: 3.0,
                    y: 3.0,
                    width: 6.0,
                    height: 6.0,
                },
                overlays: vec![],
            },
        ];
        let result = self.compose(&source, &jobs);
        self.remove_overlay(overlay)?;
        result?;
        Ok(started.elapsed().as_secs_f64() * 1e3)
    }
}

impl ParamsRing {
    fn new(device: &wgpu::Device, slot_bytes: u64, capacity_slots: u64) -> Self {
        let buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("compose params"),
            size: slot_bytes * capacity_slots,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Self {
            buffer,
            slot_bytes,
            capacity_slots,
        }
    }

    /// Grows (doubling) to hold `bytes` of slots.
    fn ensure_slots(&mut self, device: &wgpu::Device, bytes: u64) {
        let needed = bytes.div_ceil(self.slot_bytes);
        if needed > self.capacity_slots {
            *self = Self::new(device, self.slot_bytes, needed.next_power_of_two());
        }
    }
}

/// Words and rows a blend may touch: luma words, luma rows, chroma words, chroma rows. Mirrors
/// the index math at the top of `blend_luma` and `blend_chroma`; chroma is bounded for any
/// site (a cosited sample past the overlay's last column reaches back into it), the shader
/// skips what its site does not reach.
fn blend_extent(blend: &BlendPlan) -> [u32; 4] {
    let [x0, y0, x1, y1] = blend.clip;
    let luma_words = x1.div_ceil(4) - x0 / 4;
    let chroma_words = (x1 / 2 + 1).div_ceil(4) - (x0 / 2) / 4;
    [luma_words, y1 - y0, chroma_words, y1 / 2 + 1 - y0 / 2]
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The error list stays consistent even if a holder panicked: it is only pushed to.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
