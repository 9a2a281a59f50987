//! The GStreamer stages of edge-node: everything that touches a codec.
//!
//! Data flow position: `ingest` sits at the very start (upstream URI -> decoded, tightly packed
//! I420 frames with [`edge_core::FrameMeta`]), `encode` at the end of the per-group render path
//! (I420 -> Annex B access units carrying the frame-clock SEI), `decode` on the viewer side
//! (`edge-node view`) and `floor` is the bench baseline: the node minus compose and send.
//!
//! This crate only moves data. Decisions that depend on time or order (backoff, percentiles,
//! Annex B framing, the SEI layout) live in `edge-core`; the small stateful helpers here
//! (running-time continuity, pending-frame matching) are unit-tested next to their code.

// Short names as used throughout the gstreamer-rs ecosystem.
extern crate gstreamer as gst;
extern crate gstreamer_app as gst_app;
extern crate gstreamer_pbutils as gst_pbutils;
extern crate gstreamer_video as gst_video;

pub mod colour;
mod error;
mod gst_util;
mod repack;

pub mod decode;
pub mod encode;
pub mod file_frames;
pub mod floor;
pub mod ingest;
pub mod priority;
pub mod probe;
pub mod snapshot;

pub use decode::{DecodedFrame, ViewDecoder};
pub use encode::{best_h264_encoder, Encoder, EncoderConfig, EncoderStats};
pub use error::MediaError;
pub use file_frames::decode_file_frames;
pub use floor::{run_floor, run_floor_with, FloorReport};
pub use probe::{probe_file, FileInfo};
pub use snapshot::{i420_to_rgb, write_png_snapshot, I420Image};

pub use ingest::{decode_latency, Ingest, IngestConfig, IngestMetrics, UpstreamEvent, VideoFormat};

/// Initialises GStreamer once per process. Every public constructor calls it, so callers only
/// need it to inspect GStreamer before starting a stage.
pub fn init() -> Result<(), MediaError> {
    gst_util::init()
}
