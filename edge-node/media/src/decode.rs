//! Viewer-side decode for `edge-node view`: Annex B access units in, tight I420 frames out.
//!
//! `appsrc` (H.264 byte-stream, one access unit per buffer) -> `h264parse` -> the first H.264
//! decoder present ([`DECODER_PREFERENCE`]; `avdec_h264` with slice threads only, since frame
//! threads add a frame of latency) -> `videoconvert` (passthrough for I420; NV12 from hardware
//! decoders) -> `appsink`.

use crate::gst_util::{self, make, set_prop, BusWatch};
use crate::repack::tight_i420;
use crate::MediaError;
use bytes::Bytes;
use edge_core::sei::unix_now_us;
use edge_core::stats::LatencySamples;
use edge_core::PlaneLayout;
use gst::prelude::*;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Decoders in order of preference: FFmpeg's where installed (the reference the tests were
/// written against), else a GPU's, so a machine with NVDEC but no gstreamer1.0-libav decodes.
const DECODER_PREFERENCE: &[&str] = &["avdec_h264", "nvh264dec", "vah264dec", "qsvh264dec"];

/// One decoded picture, tightly packed I420 (stride == width).
#[derive(Clone, Debug)]
pub struct DecodedFrame {
    pub width: u32,
    pub height: u32,
    pub data: Bytes,
    /// The `pts_us` passed to [`ViewDecoder::push`] with its access unit.
    pub pts_us: u64,
    /// Wall-clock time the decoded picture came out, microseconds since the Unix epoch.
    pub decoded_unix_us: u64,
}

impl DecodedFrame {
    pub fn layout(&self) -> PlaneLayout {
        PlaneLayout {
            width: self.width,
            height: self.height,
        }
    }
}

/// Access units remembered for decode timing; a decoder holds at most a few.
const MAX_INFLIGHT: usize = 64;

#[derive(Default)]
struct Timing {
    inflight: VecDeque<(u64, Instant)>,
    samples: LatencySamples,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poisoning only means a callback panicked; the timing data stays consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct ViewDecoder {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    timing: Arc<Mutex<Timing>>,
    bus: Arc<BusWatch>,
}

impl ViewDecoder {
    /// Starts the decoder. `on_decoded` runs on GStreamer's streaming thread.
    pub fn new(
        on_decoded: impl FnMut(DecodedFrame) + Send + 'static,
    ) -> Result<ViewDecoder, MediaError> {
        gst_util::init()?;
        let stage = "viewer decoder";
        let pipeline = gst::Pipeline::with_name("view-decoder");
        let appsrc = gst_app::AppSrc::builder()
            .name("access-units")
            .caps(
                &gst::Caps::builder("video/x-h264")
                    .field("stream-format", "byte-stream")
                    .field("alignment", "au")
                    .build(),
            )
            .is_live(true)
            .format(gst::Format::Time)
            .do_timestamp(false)
            // Never drop an access unit: a missing reference frame corrupts the whole GOP.
            // The viewer decodes in a few ms, so the queue stays short.
            .block(false)
            .max_bytes(0)
            .build();
        let parse = make("h264parse", "parse")?;
        let factory =
            gst_util::first_installed(DECODER_PREFERENCE).unwrap_or(DECODER_PREFERENCE[0]);
        // Absent everywhere: `make` names avdec_h264's package.
        let decoder = make(factory, "decode")?;
        if factory == "avdec_h264" {
            set_prop(&decoder, "thread-type", "slice");
        }
        let convert = make("videoconvert", "convert")?;
        let appsink = gst_app::AppSink::builder()
            .name("pictures")
            .caps(
                &gst::Caps::builder("video/x-raw")
                    .field("format", "I420")
                    .build(),
            )
            .sync(false)
            .enable_last_sample(false)
            .build();
        let chain = [
            appsrc.upcast_ref(),
            &parse,
            &decoder,
            &convert,
            appsink.upcast_ref(),
        ];
        crate::gst_util::add_linked_chain(&pipeline, &chain, stage)?;

        let timing: Arc<Mutex<Timing>> = Arc::default();
        install_output(&appsink, timing.clone(), on_decoded);
        let bus = BusWatch::start(&pipeline, stage, || "decoder refused to start".into())?;
        Ok(ViewDecoder {
            pipeline,
            appsrc,
            timing,
            bus,
        })
    }

    /// Queues one Annex B access unit (copied) and returns at once.
    pub fn push(&self, access_unit: &[u8], pts_us: u64) -> Result<(), MediaError> {
        if let Some(reason) = self.bus.error() {
            return Err(MediaError::PipelineFailed {
                stage: "viewer decoder",
                reason,
            });
        }
        let mut buffer = gst::Buffer::from_slice(access_unit.to_vec());
        buffer
            .get_mut()
            .expect("a freshly wrapped buffer has one owner and is writable")
            .set_pts(gst::ClockTime::from_useconds(pts_us));
        {
            let mut t = lock(&self.timing);
            if t.inflight.len() >= MAX_INFLIGHT {
                t.inflight.pop_front();
            }
            t.inflight.push_back((pts_us, Instant::now()));
        }
        self.appsrc
            .push_buffer(buffer)
            .map_err(|flow| MediaError::PipelineFailed {
                stage: "viewer decoder",
                reason: format!("input refused ({flow:?})"),
            })?;
        Ok(())
    }

    /// Takes the decode latencies (push -> picture out) since the last call.
    pub fn take_decode_latency(&self) -> LatencySamples {
        std::mem::take(&mut lock(&self.timing).samples)
    }

    /// Ends the stream and waits until every pushed access unit has been decoded.
    pub fn finish(self, timeout: Duration) -> Result<(), MediaError> {
        let _ = self.appsrc.end_of_stream();
        match self.bus.wait_eos(timeout) {
            Ok(true) => Ok(()),
            Ok(false) => Err(MediaError::DrainTimeout {
                stage: "viewer decoder",
                waited_ms: timeout.as_millis() as u64,
            }),
            Err(reason) => Err(MediaError::PipelineFailed {
                stage: "viewer decoder",
                reason,
            }),
        }
    }
}

impl Drop for ViewDecoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn install_output(
    appsink: &gst_app::AppSink,
    timing: Arc<Mutex<Timing>>,
    mut on_decoded: impl FnMut(DecodedFrame) + Send + 'static,
) {
    let mut cached: Option<(gst::Caps, gst_video::VideoInfo)> = None;
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let decoded_unix_us = unix_now_us();
                let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                if cached.as_ref().map(|(c, _)| c.as_ref()) != Some(caps) {
                    cached = gst_video::VideoInfo::from_caps(caps)
                        .ok()
                        .map(|info| (caps.to_owned(), info));
                }
                let Some((_, info)) = cached.as_ref() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let pts_us = buffer.pts().map(|t| t.useconds()).unwrap_or(0);
                let Some((layout, data)) =
                    gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info)
                        .ok()
                        .and_then(|frame| tight_i420(&frame))
                else {
                    tracing::warn!("undecodable picture layout; skipped");
                    return Ok(gst::FlowSuccess::Ok);
                };
                {
                    let mut t = lock(&timing);
                    if let Some(i) = t.inflight.iter().position(|(p, _)| *p == pts_us) {
                        if let Some((_, at)) = t.inflight.remove(i) {
                            t.samples.record(at.elapsed());
                        }
                    }
                }
                on_decoded(DecodedFrame {
                    width: layout.width,
                    height: layout.height,
                    data,
                    pts_us,
                    decoded_unix_us,
                });
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
}
