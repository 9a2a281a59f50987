//! edge-compose: the render stage of edge-node.
//!
//! Sits between decode and encode. Per decoded source frame it uploads the planar I420 frame
//! to the GPU once, then produces one rendering per render group (a job): crop/scale the
//! viewer-chosen region of interest into the group's output size and blend the group's
//! overlays (ads, product cards, coupons), reading back tight I420 for that group's encoder.
//!
//! Scaling does not alias: a reduction averages the exact area of the source under each output
//! pixel (fractional edge weights, any ratio), an enlargement interpolates bilinearly, each
//! axis on its own, Y and chroma each at their own resolution (`shaders/scale_i420.wgsl`).
//! Jobs that show the same region at the same size share one scale per frame, whatever their
//! overlays: a 4K source costs one reduction for every full-frame 720p rendering.
//!
//! The video never leaves planar YUV: converting to RGBA and back costs more than the whole
//! composite (see DESIGN.md). Overlays are converted once, on the CPU, to premultiplied YUVA
//! in the source's own matrix and range when they are loaded ([`Compositor::set_source_colour`],
//! from the decoder's caps), and their chroma is filtered at the source's chroma site
//! (left-sited for H.264 unless it says otherwise); scaled chroma is sampled at that site too,
//! so overlays keep their brand colours and chroma edges stay on their luma edges.
//!
//! Where frames live on the GPU, chosen by measurement on lavapipe (the software Vulkan this
//! node runs on when a site has no GPU):
//! - outputs, and the source for identity jobs, are storage buffers of u32 words. A buffer
//!   uploads and reads back without the 256-byte row alignment of texture copies (1080p
//!   chroma rows are 960 bytes, 322-wide frames 161), the identity fast path is a single
//!   `copy_buffer_to_buffer`, and the overlay blend touches only the overlay's rectangle;
//! - the source for scaled jobs is three Rgba8Unorm textures of 4 samples of a row per texel,
//!   because lavapipe fetches texels as SIMD gathers but loads storage buffers lane by lane
//!   (one bilinear sample was 2-3x faster than four storage-buffer gathers), and 4 samples per
//!   fetch beat 1 (R8) for a filter that reads every source sample. `write_texture` takes the
//!   tight planes as they are when their rows are whole words. Each frame uploads only the
//!   forms its jobs read.
//!
//! When the adapter is itself the CPU (lavapipe, llvmpipe), identity jobs skip the device:
//! one copy of the source and the overlay rectangles blended in place (`cpu_blend`), where
//! the device path would copy the whole frame four times. Scaled jobs still go to the device,
//! submitted first so they run while the CPU jobs are drawn. [`Compositor::compose_each`]
//! hands out each job's frame as soon as it is done, so its encoder can start at once.
//!
//! `cpu_reference` computes the ideal pictures the golden tests hold the GPU to: the exact
//! area average (f64) for scaling, written independently of the shader, and a port of the
//! blend shader's math.
//!
//! ```no_run
//! use edge_compose::{Compositor, CompositorOptions, OverlayPlacement, RenderJob, Roi};
//! # fn frame() -> edge_core::I420Frame {
//! #     let layout = edge_core::PlaneLayout::new(3840, 2160).expect("even 4K");
//! #     let meta = edge_core::FrameMeta { seq: 0, pts_ns: 0, received_unix_us: 0 };
//! #     let data = bytes::Bytes::from(vec![128u8; layout.total_len()]);
//! #     edge_core::I420Frame::new(layout, data, meta).expect("length matches layout")
//! # }
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Once at start: adapter, device, pipelines, warm-up.
//! let mut compositor = Compositor::new(CompositorOptions::default())?;
//! let card = compositor.load_overlay_png(&std::fs::read("card.png")?)?;
//!
//! // Per decoded frame: one job per render group, one upload, one GPU round trip.
//! let source = frame();
//! let jobs = [
//!     RenderJob::identity(
//!         source.layout,
//!         vec![OverlayPlacement { overlay: card, x: 40, y: 500, opacity: 1.0 }],
//!     ),
//!     RenderJob {
//!         output: edge_core::PlaneLayout::new(1280, 720)?,
//!         roi: Roi { x: 1440.0, y: 810.0, width: 960.0, height: 540.0 },
//!         overlays: vec![],
//!     },
//! ];
//! for rendered in compositor.compose(&source, &jobs)? {
//!     // hand rendered.data (tight I420) to that group's encoder
//! #   let _ = rendered;
//! }
//! # Ok(())
//! # }
//! ```

mod compositor;
mod cpu_blend;
pub mod cpu_reference;
mod error;
mod gpu;
mod job;
mod overlay;
mod plan;
pub mod quality;

pub use compositor::{Compositor, CompositorOptions};
pub use error::ComposeError;
pub use gpu::adapter::AdapterSummary;
pub use job::{ComposedFrame, OverlayId, OverlayPlacement, RenderJob, Roi};
pub use overlay::{decode_png_rgba, YuvaImage};
pub use plan::MAX_FRAME_SIDE_PX;
/// The wgpu this crate is built against, for `AdapterSummary`'s and `CompositorOptions`' types.
pub use wgpu;
