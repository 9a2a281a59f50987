//! The pure core of edge-node.
//!
//! Everything here is plain data in, plain data out: no tokio, GStreamer, wgpu, ort or quinn.
//! Time is passed in as an argument, never read from a clock, so every decision that depends
//! on time or order is testable on simulated time. The IO crates (`edge-media`,
//! `edge-compose`, `edge-deliver`) only move data between these types.

pub mod admission;
pub mod annexb;
pub mod backoff;
pub mod colour;
pub mod connection_gate;
pub mod frame;
pub mod frame_window;
pub mod geometry;
pub mod groups;
pub mod keyframes;
pub mod latest;
pub mod log_budget;
pub mod measured_latency;
pub mod media_clock;
pub mod placement;
pub mod rendering;
pub mod resample;
pub mod sei;
pub mod slate;
pub mod smoothing;
pub mod stats;
pub mod taps;
pub mod token_bucket;
pub mod zoom;

pub use colour::{ChromaSite, ColourMatrix, ColourRange, VideoColour};
pub use frame::{EncodedFrame, FrameMeta, I420Frame, PlaneLayout};
