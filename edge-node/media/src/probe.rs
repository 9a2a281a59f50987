//! What a media file holds, read by GStreamer's own discoverer: the same demuxers and parsers
//! the ingest will use, so a machine with no FFmpeg tools (a GPU box with NVDEC only) probes too.

use crate::gst_util;
use crate::MediaError;
use gst_pbutils::prelude::*;
use std::path::Path;
use std::time::Duration;

/// How long the discoverer may take over one file before giving up.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// The first video stream of a file.
#[derive(Clone, Debug, PartialEq)]
pub struct FileInfo {
    /// The stream's media type without its prefix: `h264`, `h265`, `vp9`, ...
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// Frames per second as the container says (0 when it says nothing).
    pub fps: f64,
    /// The file's length, when the container knows it.
    pub duration: Option<Duration>,
}

/// Reads `path`'s first video stream. Errors say what GStreamer could not do with the file.
pub fn probe_file(path: &Path) -> Result<FileInfo, MediaError> {
    gst_util::init()?;
    let failed = |reason: String| MediaError::PipelineFailed {
        stage: "file probe",
        reason,
    };
    let uri = gst::glib::filename_to_uri(path, None)
        .map_err(|e| failed(format!("{}: {e}", path.display())))?;
    let discoverer = gst_pbutils::Discoverer::new(gst::ClockTime::from_nseconds(
        PROBE_TIMEOUT.as_nanos() as u64,
    ))
    .map_err(|e| failed(e.to_string()))?;
    let info = discoverer
        .discover_uri(&uri)
        .map_err(|e| failed(format!("{}: {e}", path.display())))?;
    let video = info
        .video_streams()
        .into_iter()
        .next()
        .ok_or_else(|| failed(format!("{}: no video stream", path.display())))?;
    let codec = video
        .caps()
        .and_then(|caps| caps.structure(0).map(|s| s.name().to_string()))
        .map(|name| name.trim_start_matches("video/x-").to_string())
        .unwrap_or_else(|| "unknown".into());
    let rate = video.framerate();
    let fps = if rate.denom() > 0 {
        f64::from(rate.numer()) / f64::from(rate.denom())
    } else {
        0.0
    };
    Ok(FileInfo {
        codec,
        width: video.width(),
        height: video.height(),
        fps,
        duration: info
            .duration()
            .map(|d| Duration::from_nanos(d.nseconds()))
            .filter(|d| !d.is_zero()),
    })
}
