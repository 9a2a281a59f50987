//! The engine: ingest → plan → compose → encode → publish. It owns the frame-path threads, the
//! render groups (one composite, encoder and broadcast per distinct rendering), the overlays on
//! the GPU, content understanding beside the frames, and the start-up calibration of its own
//! costs.
//!
//! It reads the control plane's viewer directory and campaigns once per frame and reports its
//! load to the admission gate; it never waits on a viewer's network task.

pub mod assets;
pub mod calibration;
mod encoder_pool;
mod overlay_cache;
mod overlay_layout;
pub mod overlay_spec;
pub mod pipeline;
pub mod render_groups;
pub mod understanding;
