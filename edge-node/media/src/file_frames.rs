//! Every frame of a media file, decoded as fast as the machine goes (not paced like the
//! ingest's `file://`), for offline checks such as the bench comparing what a viewer received
//! with the source. GStreamer only, so it runs where no FFmpeg tools are installed.
//!
//! `filesrc` -> `decodebin` -> `videoconvert` -> `appsink` (I420, pulled here, never dropped).

use crate::gst_util::{self, make, pipeline_error, BusWatch};
use crate::repack::tight_i420;
use crate::MediaError;
use edge_core::{FrameMeta, I420Frame};
use gst::prelude::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// Longest wait for the next frame before the decode counts as stuck.
const FRAME_WAIT: Duration = Duration::from_secs(20);
/// How often the wait looks at the bus (an unreadable file errors there, not at the sink).
const BUS_POLL: gst::ClockTime = gst::ClockTime::from_mseconds(100);

/// Decodes `path` and hands `each` every frame in order, numbered from 0 (`meta.seq`), as tight
/// I420. Returns the frames decoded. A file GStreamer cannot read, or a decode that stops
/// delivering, is an error naming the file.
pub fn decode_file_frames(
    path: &Path,
    mut each: impl FnMut(&I420Frame),
) -> Result<u64, MediaError> {
    gst_util::init()?;
    let stage = "file decode";
    let failed = |reason: String| pipeline_error(stage, format!("{}: {reason}", path.display()));
    if !path.is_file() {
        return Err(MediaError::FileNotFound {
            path: path.to_path_buf(),
        });
    }
    let pipeline = gst::Pipeline::with_name("file-frames");
    let src = make("filesrc", "file")?;
    src.set_property("location", path.to_string_lossy().as_ref());
    let decode = make("decodebin", "decode")?;
    let convert = make("videoconvert", "convert")?;
    let sink = gst_app::AppSink::builder()
        .name("frames")
        .caps(
            &gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .build(),
        )
        .sync(false)
        .max_buffers(2)
        .drop(false)
        .enable_last_sample(false)
        .build();
    pipeline
        .add_many([&src, &decode, &convert, sink.upcast_ref()])
        .map_err(|e| pipeline_error(stage, e))?;
    src.link(&decode).map_err(|e| pipeline_error(stage, e))?;
    convert.link(&sink).map_err(|e| pipeline_error(stage, e))?;
    let convert_sink = convert
        .static_pad("sink")
        .ok_or_else(|| pipeline_error(stage, "videoconvert has no sink pad"))?;
    decode.connect_pad_added(move |_, pad| {
        let is_video = pad
            .current_caps()
            .unwrap_or_else(|| pad.query_caps(None))
            .structure(0)
            .is_some_and(|s| s.name().starts_with("video/"));
        if is_video && !convert_sink.is_linked() {
            if let Err(e) = pad.link(&convert_sink) {
                tracing::warn!(error = ?e, "could not link the file's video stream");
            }
        }
    });
    let bus = BusWatch::start(&pipeline, stage, || {
        "the file decoder refused to start".into()
    })?;
    let mut frames = 0u64;
    let outcome = loop {
        let sample = match next_sample(&sink, &bus) {
            Ok(Some(sample)) => sample,
            Ok(None) => break Ok(frames),
            Err(reason) => break Err(failed(format!("{reason} (after frame {frames})"))),
        };
        let picture = sample
            .buffer()
            .zip(sample.caps())
            .and_then(|(buffer, caps)| {
                let info = gst_video::VideoInfo::from_caps(caps).ok()?;
                let frame =
                    gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).ok()?;
                tight_i420(&frame)
            });
        let Some((layout, data)) = picture else {
            break Err(failed(format!("frame {frames} could not be read")));
        };
        let meta = FrameMeta {
            seq: frames,
            ..FrameMeta::default()
        };
        match I420Frame::new(layout, data, meta) {
            Ok(frame) => each(&frame),
            Err(e) => break Err(failed(e.to_string())),
        }
        frames += 1;
    };
    let _ = pipeline.set_state(gst::State::Null);
    outcome
}

/// The next decoded sample; `None` at the end of the file.
fn next_sample(sink: &gst_app::AppSink, bus: &BusWatch) -> Result<Option<gst::Sample>, String> {
    let deadline = Instant::now() + FRAME_WAIT;
    loop {
        if let Some(sample) = sink.try_pull_sample(BUS_POLL) {
            return Ok(Some(sample));
        }
        if let Some(error) = bus.error() {
            return Err(error);
        }
        if sink.is_eos() {
            return Ok(None);
        }
        if Instant::now() >= deadline {
            return Err(format!("no frame for {FRAME_WAIT:?}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_media_is_an_error_naming_it() {
        let path =
            std::env::temp_dir().join(format!("edge-file-frames-{}.mp4", std::process::id()));
        std::fs::write(&path, b"no video here").unwrap();
        let err = decode_file_frames(&path, |_| {}).unwrap_err();
        assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
        std::fs::remove_file(&path).unwrap();
        let missing = decode_file_frames(Path::new("/nonexistent/clip.mp4"), |_| {});
        assert!(matches!(missing, Err(MediaError::FileNotFound { .. })));
    }
}
