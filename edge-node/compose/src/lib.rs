//! edge-compose: the render stage of edge-node.
//!
//! Sits between decode and encode. Per decoded source frame it uploads the planar I420 frame
//! to the GPU once, then produces one rendering per render group (a job): crop/scale the
//! viewer-chosen region of interest into the group's output size and blend the group's
//! overlays (ads, product cards, coupons), reading back tight I420 for that group's encoder.
//!
//! The video never leaves planar YUV: converting to RGBA and back costs more than the whole
//! composite (see DESIGN.md). Overlays are converted once, on the CPU, to premultiplied
//! BT.601 YUVA when they are loaded.
//!
//! Frames live in storage buffers of u32 words rather than R8 textures: on lavapipe a
//! storage-buffer load is a plain memory read while a texture fetch goes through the software
//! sampler; buffers upload and read back without the 256-byte row alignment of texture copies
//! (1080p chroma rows are 960 bytes, 322-wide test frames 161); and the identity fast path is a
//! single `copy_buffer_to_buffer`.
//!
//! `cpu_reference` is a CPU port of the same math, used by the golden tests.

mod compositor;
pub mod cpu_reference;
mod error;
mod gpu;
mod job;
mod overlay;
mod plan;

pub use compositor::{Compositor, CompositorOptions};
pub use error::ComposeError;
pub use gpu::adapter::AdapterSummary;
pub use job::{ComposedFrame, OverlayId, OverlayPlacement, RenderJob, Roi};
pub use overlay::{decode_png_rgba, YuvaImage};
pub use plan::MAX_FRAME_SIDE_PX;
/// The wgpu this crate is built against, for `AdapterSummary`'s and `CompositorOptions`' types.
pub use wgpu;
