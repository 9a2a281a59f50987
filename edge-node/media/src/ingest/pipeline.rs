//! Builds one ingest attempt's pipeline and turns its decoded samples into [`I420Frame`]s.

use super::continuity::PtsContinuity;
use super::source::Source;
use super::{decoder, lock, remember_decode_latency, testshow, Note, Shared, VideoFormat};
use crate::gst_util::{make, pipeline_error, set_prop};
use crate::repack::tight_i420;
use crate::MediaError;
use edge_core::sei::unix_now_us;
use edge_core::{FrameMeta, I420Frame};
use gst::prelude::*;
use std::collections::VecDeque;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Elements of the shared decode tail, checked before the first attempt.
pub(crate) const TAIL_ELEMENTS: &[&str] = &["videoconvert", "appsink"];

/// RTSP's default 2 s jitter buffer would dwarf the whole edge budget.
const RTSP_LATENCY_MS: &str = "200";

/// Frame delivery state, shared by every attempt's appsink so that `seq` and `pts_ns` run on
/// across reconnects.
pub(crate) struct FrameSide {
    sink: Box<dyn FnMut(I420Frame) + Send>,
    next_seq: u64,
    pts: PtsContinuity,
    format: Option<VideoFormat>,
    /// The attempt whose first frame has been seen.
    attempt_seen: u64,
    caps: Option<gst::Caps>,
    info: Option<gst_video::VideoInfo>,
    /// Read from `caps` when they change.
    colour: edge_core::VideoColour,
}

impl FrameSide {
    pub(crate) fn new(sink: Box<dyn FnMut(I420Frame) + Send>) -> Self {
        Self {
            sink,
            next_seq: 0,
            pts: PtsContinuity::new(),
            format: None,
            attempt_seen: 0,
            caps: None,
            info: None,
            colour: edge_core::VideoColour::default(),
        }
    }
}

pub(crate) fn build(
    source: &Source,
    attempt: u64,
    shared: &Arc<Shared>,
    notes: Sender<Note>,
) -> Result<gst::Pipeline, MediaError> {
    let stage = "ingest";
    let pipeline = gst::Pipeline::with_name(&format!("ingest-{attempt}"));
    // videoconvert is a passthrough when the decoder already gives I420, so it costs nothing
    // then, and converts only for decoders that output NV12 or similar.
    let convert = make("videoconvert", "convert")?;
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .build();
    let appsink = gst_app::AppSink::builder()
        .name("frames")
        .caps(&caps)
        // Live upstreams are already paced; files are paced by the sink clock so that they
        // behave like a live upstream.
        .sync(!source.is_live())
        .max_buffers(1)
        .drop(true)
        .enable_last_sample(false)
        .build();
    pipeline
        .add_many([&convert, appsink.upcast_ref()])
        .map_err(|e| pipeline_error(stage, e))?;
    convert
        .link(&appsink)
        .map_err(|e| pipeline_error(stage, e))?;

    let decoder = match source {
        Source::TestShow(show) => testshow::add_origin(&pipeline, show)?,
        Source::File { uri, .. } | Source::Network { uri, .. } => {
            // decodebin3 links each stream as it appears. Classic uridecodebin waits for
            // flvdemux's no-more-pads, which an RTMP origin announcing audio+video but sending
            // video only turns into a ~7 s join (measured against nginx-rtmp); decodebin3
            // joins in ~0.6 s.
            let decoder = make(source.decodebin_factory(), "upstream")?;
            decoder.set_property("uri", uri);
            decoder.connect("source-setup", false, |values| {
                if let Ok(src) = values[1].get::<gst::Element>() {
                    if src.factory().is_some_and(|f| f.name() == "rtspsrc") {
                        set_prop(&src, "latency", RTSP_LATENCY_MS);
                    }
                }
                None
            });
            pipeline
                .add(&decoder)
                .map_err(|e| pipeline_error(stage, e))?;
            decoder
        }
    };
    link_first_video_pad(&decoder, &convert)?;
    watch_decoder_latency(&pipeline, shared.clone());

    let shared = shared.clone();
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                deliver(&shared, attempt, &sample, &notes);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(pipeline)
}

/// Links the decoder's first raw video pad to the converter; audio and further video streams
/// stay unlinked (decodebin drops their data without failing).
fn link_first_video_pad(decoder: &gst::Element, convert: &gst::Element) -> Result<(), MediaError> {
    let sink_pad = convert
        .static_pad("sink")
        .ok_or_else(|| pipeline_error("ingest", "videoconvert has no sink pad"))?;
    // An upstream with no video at all (an audio-only stream, say) would otherwise just never
    // deliver a frame; say so, as a WrongType error the supervisor treats as not retryable.
    let video_linked = sink_pad.clone();
    decoder.connect_no_more_pads(move |decoder| {
        if !video_linked.is_linked() {
            gst::element_error!(
                decoder,
                gst::StreamError::WrongType,
                ["the upstream has no video stream"]
            );
        }
    });
    decoder.connect_pad_added(move |_, pad| {
        if sink_pad.is_linked() {
            return;
        }
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let is_video = caps
            .structure(0)
            .is_some_and(|s| s.name().starts_with("video/"));
        if is_video {
            if let Err(e) = pad.link(&sink_pad) {
                tracing::warn!(error = ?e, "could not link the decoded video stream");
            }
        }
    });
    Ok(())
}

/// In-flight buffers remembered per decoder; more than a GOP of reorder never happens in
/// practice, and a bounded list keeps a decoder that drops input from growing it.
const DECODE_INFLIGHT_MAX: usize = 64;

/// Sets each video decoder for latency ([`decoder`]), remembers which one was plugged, and
/// measures its latency (buffer into its sink pad -> frame out of its src pad, matched by PTS)
/// with two pad probes. Cheap: one short lock per buffer on each side.
fn watch_decoder_latency(pipeline: &gst::Pipeline, shared: Arc<Shared>) {
    pipeline.connect_deep_element_added(move |_, _, element| {
        if !decoder::is_video_decoder(element) {
            return;
        }
        decoder::configure_for_latency(element);
        if let Some(factory) = element.factory() {
            shared.metrics.set_decoder(&factory.name());
        }
        let (Some(sink), Some(src)) = (element.static_pad("sink"), element.static_pad("src"))
        else {
            return;
        };
        let inflight: Arc<Mutex<VecDeque<(gst::ClockTime, Instant)>>> = Arc::default();
        let entering = inflight.clone();
        sink.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(pts) = info.buffer().and_then(|b| b.pts()) {
                let mut q = lock(&entering);
                if q.len() >= DECODE_INFLIGHT_MAX {
                    q.pop_front();
                }
                q.push_back((pts, Instant::now()));
            }
            gst::PadProbeReturn::Ok
        });
        let shared = shared.clone();
        src.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(pts) = info.buffer().and_then(|b| b.pts()) {
                let entered = {
                    let mut q = lock(&inflight);
                    q.iter()
                        .position(|(p, _)| *p == pts)
                        .and_then(|i| q.remove(i))
                };
                if let Some((_, at)) = entered {
                    let latency = at.elapsed();
                    shared.metrics.record_decode(latency);
                    *lock(&shared.last_decode) = Some((pts, latency));
                }
            }
            gst::PadProbeReturn::Ok
        });
    });
}

/// Fallback frame gap when the upstream declares no frame rate.
const DEFAULT_FRAME_NS: u64 = 33_333_333;

/// Runs on the appsink's streaming thread for every decoded sample.
fn deliver(shared: &Shared, attempt: u64, sample: &gst::Sample, notes: &Sender<Note>) {
    let received_unix_us = unix_now_us();
    let mut side = lock(&shared.frames);
    let Some(frame) = prepare(&mut side, sample) else {
        shared.metrics.count_unusable();
        return;
    };
    let (layout, data, running_ns, fps, pts) = frame;
    if let Some(position) = stream_position(sample) {
        shared.reached(position);
    }
    let format = VideoFormat {
        width: layout.width,
        height: layout.height,
        fps,
        colour: side.colour,
    };
    if side.attempt_seen != attempt {
        side.attempt_seen = attempt;
        shared.first_frame(format);
        // The supervisor may be gone during shutdown; nothing to report then.
        let _ = notes.send(Note::Connected {
            attempt,
            format,
            previous: side.format,
        });
    } else if let Some(from) = side.format.filter(|f| *f != format) {
        let _ = notes.send(Note::FormatChanged {
            attempt,
            from,
            to: format,
        });
    }
    side.format = Some(format);
    let frame_ns = if fps > 0.0 {
        (1e9 / fps) as u64
    } else {
        DEFAULT_FRAME_NS
    };
    let meta = FrameMeta {
        seq: side.next_seq,
        pts_ns: side.pts.map(running_ns, frame_ns),
        received_unix_us,
    };
    side.next_seq += 1;
    let decoded = lock(&shared.last_decode).take();
    if let Some((_, latency)) = decoded.filter(|(decoded_pts, _)| Some(*decoded_pts) == pts) {
        remember_decode_latency(&meta, latency);
    }
    match I420Frame::new(layout, data, meta).map(|frame| frame.with_colour(format.colour)) {
        Ok(frame) => {
            shared.touch_frame();
            shared.metrics.count_frame();
            (side.sink)(frame);
        }
        Err(e) => {
            tracing::warn!(error = %e, "dropping a decoded frame");
            shared.metrics.count_unusable();
        }
    }
}

/// Where in the upstream's own timeline (a file's position) a sample is.
fn stream_position(sample: &gst::Sample) -> Option<Duration> {
    let segment = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
    let position = segment.to_stream_time(sample.buffer()?.pts()?)?;
    Some(Duration::from_nanos(position.nseconds()))
}

type Prepared = (
    edge_core::PlaneLayout,
    bytes::Bytes,
    u64,
    f64,
    Option<gst::ClockTime>,
);

/// Maps the sample and copies it tight; `None` for a sample that cannot be used.
fn prepare(side: &mut FrameSide, sample: &gst::Sample) -> Option<Prepared> {
    let buffer = sample.buffer()?;
    let caps = sample.caps()?;
    if side.caps.as_ref().map(|c| c.as_ref()) != Some(caps) {
        side.info = gst_video::VideoInfo::from_caps(caps).ok();
        if let Some(info) = &side.info {
            side.colour = crate::colour::colour_from_caps(caps, info.width(), info.height());
        }
        side.caps = Some(caps.to_owned());
    }
    let info = side.info.as_ref()?;
    let fps = info.fps();
    let fps = if fps.denom() > 0 {
        fps.numer() as f64 / fps.denom() as f64
    } else {
        0.0
    };
    let running_ns = sample
        .segment()
        .and_then(|s| s.downcast_ref::<gst::ClockTime>())
        .zip(buffer.pts())
        .and_then(|(segment, pts)| segment.to_running_time(pts))
        .map(|t| t.nseconds())
        .unwrap_or(0);
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info).ok()?;
    let (layout, data) = tight_i420(&frame)?;
    Some((layout, data, running_ns, fps, buffer.pts()))
}

/// How long a teardown may take before we log it; a network source stuck in a socket call can
/// hold `set_state(Null)` for its timeout.
pub(crate) const SLOW_TEARDOWN: Duration = Duration::from_secs(1);
