//! The built-in test show: a live origin that gives the encoder and the face detector real
//! work. Moving SMPTE bars plus the astronaut photo (one real face) gliding on a slow Lissajous
//! path, encoded with x264 like a real origin, then decoded by the same `decodebin` path as
//! every other upstream.

use super::source::TestShow;
use crate::gst_util::{make, pipeline_error, set_prop};
use crate::MediaError;
use gst::prelude::*;
use std::f64::consts::TAU;

/// The face image is scaled to this fraction of the frame height.
const FACE_HEIGHT_FRACTION: f64 = 0.4;
/// Periods of the Lissajous path; coprime so the path takes long to repeat.
const PATH_PERIOD_X_S: f64 = 11.0;
const PATH_PERIOD_Y_S: f64 = 7.0;
/// Horizontal scroll of the bars, pixels per frame.
const BARS_SPEED_PX: &str = "2";
/// Origin bitrate: about 0.08 bit per pixel, what a real contribution stream spends.
const ORIGIN_BITS_PER_PIXEL: f64 = 0.08;

/// Adds the origin (source, overlay, encoder, parser) and a `decodebin` to `pipeline`; returns
/// the `decodebin`, whose video pad the caller links.
pub(crate) fn add_origin(
    pipeline: &gst::Pipeline,
    show: &TestShow,
) -> Result<gst::Element, MediaError> {
    let stage = "test show";
    let src = make("videotestsrc", "show-bars")?;
    set_prop(&src, "is-live", "true");
    set_prop(&src, "pattern", "smpte");
    set_prop(&src, "horizontal-speed", BARS_SPEED_PX);
    let raw_caps = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", show.width as i32)
        .field("height", show.height as i32)
        .field("framerate", gst::Fraction::new(show.fps as i32, 1))
        .build();
    let filter = make("capsfilter", "show-caps")?;
    filter.set_property("caps", &raw_caps);

    let face = make("gdkpixbufoverlay", "show-face")?;
    let face_px = ((show.height as f64 * FACE_HEIGHT_FRACTION) as u32) & !1;
    face.set_property("location", show.face_png.to_string_lossy().as_ref());
    set_prop(&face, "overlay-width", &face_px.to_string());
    set_prop(&face, "overlay-height", &face_px.to_string());

    let encoder = make("x264enc", "show-encoder")?;
    set_prop(&encoder, "tune", "zerolatency");
    set_prop(&encoder, "speed-preset", "ultrafast");
    set_prop(&encoder, "bframes", "0");
    set_prop(&encoder, "key-int-max", &(show.fps * 2).to_string());
    let bitrate_kbps =
        (show.width as f64 * show.height as f64 * show.fps as f64 * ORIGIN_BITS_PER_PIXEL / 1000.0)
            as u32;
    set_prop(&encoder, "bitrate", &bitrate_kbps.max(200).to_string());
    let parse = make("h264parse", "show-parse")?;
    let decoder = make("decodebin", "upstream")?;

    let chain = [&src, &filter, &face, &encoder, &parse, &decoder];
    crate::gst_util::add_linked_chain(pipeline, &chain, stage)?;

    move_face(&face, show, face_px)?;
    Ok(decoder)
}

/// Moves the face before each frame reaches the overlay, from the frame's own timestamp, so
/// the motion is smooth and independent of wall-clock jitter.
fn move_face(face: &gst::Element, show: &TestShow, face_px: u32) -> Result<(), MediaError> {
    let pad = face
        .static_pad("sink")
        .ok_or_else(|| pipeline_error("test show", "overlay has no sink pad"))?;
    let span_x = show.width.saturating_sub(face_px) as f64;
    let span_y = show.height.saturating_sub(face_px) as f64;
    let weak = face.downgrade();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let (Some(face), Some(pts)) = (weak.upgrade(), info.buffer().and_then(|b| b.pts())) else {
            return gst::PadProbeReturn::Ok;
        };
        let (x, y) = lissajous(pts.nseconds() as f64 / 1e9, span_x, span_y);
        face.set_property("offset-x", x);
        face.set_property("offset-y", y);
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// Top-left corner of the face at `t_s` seconds, inside `[0, span]` on each axis.
fn lissajous(t_s: f64, span_x: f64, span_y: f64) -> (i32, i32) {
    let x = span_x * (0.5 + 0.5 * (TAU * t_s / PATH_PERIOD_X_S).sin());
    let y = span_y * (0.5 + 0.5 * (TAU * t_s / PATH_PERIOD_Y_S + 1.0).sin());
    (x.round() as i32, y.round() as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_stays_inside_the_frame_and_moves() {
        let mut last = lissajous(0.0, 992.0, 432.0);
        let mut moved = 0;
        for frame in 1..600 {
            let p = lissajous(frame as f64 / 30.0, 992.0, 432.0);
            assert!((0..=992).contains(&p.0) && (0..=432).contains(&p.1));
            // Smooth: never more than a few pixels per frame.
            assert!((p.0 - last.0).abs() <= 10 && (p.1 - last.1).abs() <= 10);
            moved += usize::from(p != last);
            last = p;
        }
        assert!(moved > 500);
    }
}
