//! H.264 encode: tight I420 frames in, Annex B access units out, each carrying the frame-clock
//! SEI of the source frame it was rendered from.
//!
//! `appsrc` (live, never blocks, newest wins) -> encoder -> `h264parse config-interval=-1`
//! (SPS/PPS in band on every IDR) -> `appsink`. Output is matched back to its input by running
//! time, because encoders rewrite timestamps (x264enc offsets them by 1000 hours).

mod pending;

use crate::gst_util::{self, make, set_prop, BusWatch};
use crate::MediaError;
use bytes::Bytes;
use edge_core::stats::LatencySamples;
use edge_core::{annexb, sei, EncodedFrame, FrameMeta, PlaneLayout};
use gst::prelude::*;
use pending::{PendingFrames, RunningClock};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Encoders in order of preference: hardware first, x264 as the always-available fallback.
const ENCODER_PREFERENCE: &[&str] = &["nvh264enc", "vah264enc", "qsvh264enc", "x264enc"];

/// Frames queued in front of the encoder before the oldest is dropped. Two absorbs one slow
/// frame without adding a frame of latency in steady state.
const INPUT_QUEUE_FRAMES: u64 = 2;

/// Picks the best installed H.264 encoder.
pub fn best_h264_encoder() -> Result<&'static str, MediaError> {
    gst_util::init()?;
    let name = gst_util::first_installed(ENCODER_PREFERENCE).ok_or(MediaError::NoH264Encoder)?;
    tracing::info!(encoder = name, "selected H.264 encoder");
    Ok(name)
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EncoderConfig {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
    /// Distance between IDRs; one MoQ group per GOP.
    pub gop_frames: u32,
    /// A GStreamer element name; `None` picks [`best_h264_encoder`].
    pub encoder: Option<String>,
    /// Worker threads of a software encoder; 0 lets the encoder size itself to the machine.
    /// A node running many encoders gives each a share of the cores: x264's sliced threads
    /// only pay off while cores would otherwise idle.
    pub threads: u32,
    /// The colour description of the frames fed in (the source's: compose keeps the source's
    /// matrix, range and chroma site), written into the stream's VUI so that a player decodes
    /// it the same way: a 720p rendering of a BT.601 source, or a 360p one of an unsigned HD
    /// source, would otherwise be decoded with the matrix its size suggests.
    pub colour: edge_core::VideoColour,
}

impl EncoderConfig {
    /// Defaults for a rendition: 2 s GOP (DESIGN: 1-2 s), about 0.1 bit per pixel.
    pub fn for_format(width: u32, height: u32, fps: u32) -> Self {
        let fps = fps.max(1);
        let bitrate_kbps = ((width as u64 * height as u64 * fps as u64) / 10_000).max(300) as u32;
        Self {
            width,
            height,
            fps,
            bitrate_kbps,
            gop_frames: fps * 2,
            encoder: None,
            threads: 0,
            colour: edge_core::VideoColour::default(),
        }
    }
}

/// Counters of one encoder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncoderStats {
    pub frames_in: u64,
    pub frames_out: u64,
    /// Frames pushed that never came out: dropped by the newest-wins input queue because the
    /// encoder fell behind, or by the encoder itself.
    pub frames_dropped: u64,
}

#[derive(Default)]
struct Counters {
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    frames_dropped: AtomicU64,
}

struct Shared {
    pending: Mutex<PendingFrames>,
    counters: Counters,
    latency: Mutex<LatencySamples>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poisoning only means a callback panicked; every guarded value stays consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One running H.264 encoder. Dropping it stops the pipeline.
pub struct Encoder {
    name: String,
    config: EncoderConfig,
    layout: PlaneLayout,
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    clock: Mutex<RunningClock>,
    shared: Arc<Shared>,
    bus: Arc<BusWatch>,
    /// Shared with the pipeline's output; a rebuilt pipeline hands its frames to the same one.
    on_encoded: OutputSink,
}

/// Where access units go, on GStreamer's streaming thread.
type OutputSink = Arc<Mutex<Box<dyn FnMut(EncodedFrame) + Send>>>;

/// How long a colour change waits for the previous stream's last frames.
const REBUILD_DRAIN: Duration = Duration::from_millis(200);

impl Encoder {
    /// Builds and starts the pipeline. `on_encoded` runs on GStreamer's streaming thread for
    /// each access unit, in order, and must return quickly.
    pub fn new(
        config: EncoderConfig,
        on_encoded: impl FnMut(EncodedFrame) + Send + 'static,
    ) -> Result<Encoder, MediaError> {
        gst_util::init()?;
        let layout = PlaneLayout::new(config.width, config.height).map_err(|e| {
            MediaError::InvalidConfig {
                what: "encoder size",
                reason: e.to_string(),
            }
        })?;
        if config.fps == 0 || config.gop_frames == 0 || config.bitrate_kbps == 0 {
            return Err(MediaError::InvalidConfig {
                what: "encoder settings",
                reason: format!(
                    "fps ({}), gop_frames ({}) and bitrate_kbps ({}) must be positive",
                    config.fps, config.gop_frames, config.bitrate_kbps
                ),
            });
        }
        let name = match &config.encoder {
            Some(name) => {
                gst_util::require(name)?;
                name.clone()
            }
            None => best_h264_encoder()?.to_owned(),
        };

        let shared = Arc::new(Shared {
            pending: Mutex::new(PendingFrames::default()),
            counters: Counters::default(),
            latency: Mutex::new(LatencySamples::default()),
        });
        let on_encoded: OutputSink = Arc::new(Mutex::new(Box::new(on_encoded)));
        let (pipeline, appsrc, bus) =
            start_pipeline(&name, &config, shared.clone(), on_encoded.clone())?;
        tracing::debug!(encoder = %name, width = config.width, height = config.height, fps = config.fps, "encoder started");
        Ok(Encoder {
            name,
            layout,
            pipeline,
            appsrc,
            clock: Mutex::new(RunningClock::new(1_000_000_000 / config.fps as u64)),
            shared,
            bus,
            config,
            on_encoded,
        })
    }

    /// Queues one frame for encoding and returns at once. `data` is tight I420 of the
    /// configured size; it is wrapped, not copied. With `force_idr` this frame becomes an IDR
    /// (with SPS/PPS), e.g. because a viewer joined.
    pub fn push(&self, data: Bytes, meta: FrameMeta, force_idr: bool) -> Result<(), MediaError> {
        if let Some(reason) = self.bus.error() {
            return Err(MediaError::PipelineFailed {
                stage: "encoder",
                reason,
            });
        }
        if data.len() != self.layout.total_len() {
            return Err(MediaError::WrongFrameSize {
                width: self.layout.width,
                height: self.layout.height,
                expected: self.layout.total_len(),
                actual: data.len(),
            });
        }
        let running = lock(&self.clock).next(meta.pts_ns);
        let evicted = lock(&self.shared.pending).push(running, meta, Instant::now());
        self.count_dropped(evicted);
        if force_idr {
            // Serialized with the buffers in appsrc's queue, so "as soon as possible" is this
            // very frame (or, if the queue drops it, the next). Requests timed by running
            // time were honoured only until the first one (x264enc shifts its timeline by
            // 1000 hours): every later one waited for the next natural keyframe.
            let event = gst_video::DownstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .build();
            if !self.appsrc.send_event(event) {
                tracing::warn!(encoder = %self.name, "force-key-unit event refused");
            }
        }
        let mut buffer = gst::Buffer::from_slice(data);
        {
            let buffer = buffer
                .get_mut()
                .expect("a freshly wrapped buffer has one owner and is writable");
            buffer.set_pts(gst::ClockTime::from_nseconds(running));
            buffer.set_duration(gst::ClockTime::from_nseconds(lock(&self.clock).frame_ns()));
        }
        self.shared
            .counters
            .frames_in
            .fetch_add(1, Ordering::Relaxed);
        self.appsrc
            .push_buffer(buffer)
            .map_err(|flow| MediaError::PipelineFailed {
                stage: "encoder",
                reason: format!("input refused ({flow:?})"),
            })?;
        Ok(())
    }

    /// Frames pushed from now on are described as `colour` (the source changed its matrix,
    /// range or chroma site). Encoders write the VUI once, when they start (x264enc keeps its
    /// sequence when only the colorimetry of its input changes), so the pipeline is rebuilt:
    /// the previous one's last frames come out first, then the new stream starts with an IDR
    /// whose SPS says so. Waits up to [`REBUILD_DRAIN`]; a rare event (a new upstream SPS).
    pub fn set_colour(&mut self, colour: edge_core::VideoColour) -> Result<(), MediaError> {
        if colour == self.config.colour {
            return Ok(());
        }
        let mut config = self.config.clone();
        config.colour = colour;
        let (pipeline, appsrc, bus) = start_pipeline(
            &self.name,
            &config,
            self.shared.clone(),
            self.on_encoded.clone(),
        )?;
        let previous = std::mem::replace(&mut self.pipeline, pipeline);
        let previous_src = std::mem::replace(&mut self.appsrc, appsrc);
        let previous_bus = std::mem::replace(&mut self.bus, bus);
        self.config = config;
        let _ = previous_src.end_of_stream();
        if !matches!(previous_bus.wait_eos(REBUILD_DRAIN), Ok(true)) {
            tracing::warn!(encoder = %self.name, "previous stream not drained before the colour change");
        }
        let _ = previous.set_state(gst::State::Null);
        tracing::info!(encoder = %self.name, ?colour, "encoder restarted for the source's new colour");
        Ok(())
    }

    /// The GStreamer element doing the work (`x264enc`, `nvh264enc`, ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    pub fn stats(&self) -> EncoderStats {
        let c = &self.shared.counters;
        EncoderStats {
            frames_in: c.frames_in.load(Ordering::Relaxed),
            frames_out: c.frames_out.load(Ordering::Relaxed),
            frames_dropped: c.frames_dropped.load(Ordering::Relaxed),
        }
    }

    /// Takes the per-frame encode latencies (push -> access unit out) since the last call.
    pub fn take_encode_latency(&self) -> LatencySamples {
        std::mem::take(&mut *lock(&self.shared.latency))
    }

    /// Ends the stream and waits until every queued frame has come out.
    pub fn finish(self, timeout: Duration) -> Result<EncoderStats, MediaError> {
        // Err only when the pipeline is already flushing or at EOS; the wait reports either.
        let _ = self.appsrc.end_of_stream();
        match self.bus.wait_eos(timeout) {
            Ok(true) => Ok(self.stats()),
            Ok(false) => Err(MediaError::DrainTimeout {
                stage: "encoder",
                waited_ms: timeout.as_millis() as u64,
            }),
            Err(reason) => Err(MediaError::PipelineFailed {
                stage: "encoder",
                reason,
            }),
        }
    }

    fn count_dropped(&self, n: usize) {
        if n > 0 {
            self.shared
                .counters
                .frames_dropped
                .fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Builds and starts `appsrc -> encoder -> h264parse -> appsink` for `config`.
fn start_pipeline(
    name: &str,
    config: &EncoderConfig,
    shared: Arc<Shared>,
    on_encoded: OutputSink,
) -> Result<(gst::Pipeline, gst_app::AppSrc, Arc<BusWatch>), MediaError> {
    let stage = "encoder";
    let pipeline = gst::Pipeline::with_name("encoder");
    let raw_caps = input_caps(config);
    let appsrc = gst_app::AppSrc::builder()
        .name("frames")
        .caps(&raw_caps)
        .is_live(true)
        .format(gst::Format::Time)
        .do_timestamp(false)
        .block(false)
        .max_buffers(INPUT_QUEUE_FRAMES)
        .max_bytes(0)
        .max_time(gst::ClockTime::ZERO)
        .leaky_type(gst_app::AppLeakyType::Downstream)
        .build();
    let encoder = make(name, "h264")?;
    configure(&encoder, name, config);
    let byte_stream = make("capsfilter", "byte-stream")?;
    byte_stream.set_property(
        "caps",
        gst::Caps::builder("video/x-h264")
            .field("stream-format", "byte-stream")
            .build(),
    );
    let parse = make("h264parse", "parse")?;
    set_prop(&parse, "config-interval", "-1");
    let au_caps = gst::Caps::builder("video/x-h264")
        .field("stream-format", "byte-stream")
        .field("alignment", "au")
        .build();
    let appsink = gst_app::AppSink::builder()
        .name("access-units")
        .caps(&au_caps)
        .sync(false)
        .enable_last_sample(false)
        .build();
    let chain = [
        appsrc.upcast_ref(),
        &encoder,
        &byte_stream,
        &parse,
        appsink.upcast_ref(),
    ];
    crate::gst_util::add_linked_chain(&pipeline, &chain, stage)?;
    encode_with_frame_path_precedence(&appsrc);

    install_output(&appsink, shared, on_encoded);
    let bus = BusWatch::start(&pipeline, stage, || format!("{name} refused to start"))?;
    Ok((pipeline, appsrc, bus))
}

/// The encoder runs in appsrc's streaming thread (no queue follows it). Its first event,
/// stream-start, is pushed from that thread before the caps that make x264 start its own
/// threads, so raising the thread there gives them the same precedence (threads inherit it).
fn encode_with_frame_path_precedence(appsrc: &gst_app::AppSrc) {
    let Some(pad) = appsrc.static_pad("src") else {
        return;
    };
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, |_, _| {
        crate::priority::enter_frame_path("encoder");
        gst::PadProbeReturn::Remove
    });
}

/// The raw frames' caps: size, rate and the colour description the encoder writes into the
/// stream's VUI.
fn input_caps(config: &EncoderConfig) -> gst::Caps {
    let (colorimetry, chroma_site) = crate::colour::caps_fields(config.colour);
    gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", config.width as i32)
        .field("height", config.height as i32)
        .field("framerate", gst::Fraction::new(config.fps as i32, 1))
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .field("colorimetry", colorimetry)
        .field("chroma-site", chroma_site)
        .build()
}

/// Low-latency settings per encoder family. Properties an element lacks are skipped, so an
/// operator-chosen encoder still runs with what it offers.
fn configure(encoder: &gst::Element, name: &str, config: &EncoderConfig) {
    let gop = config.gop_frames.to_string();
    let bitrate = config.bitrate_kbps.to_string();
    set_prop(encoder, "bitrate", &bitrate);
    match name {
        "x264enc" => {
            // sliced-threads stays unset: zerolatency already slices, and frame threading
            // would add a whole frame of delay.
            set_prop(encoder, "tune", "zerolatency");
            if config.threads > 0 {
                set_prop(encoder, "threads", &config.threads.to_string());
            }
            set_prop(encoder, "speed-preset", "ultrafast");
            // x264enc applies its own property defaults over the preset, and its trellis
            // default is on: a quarter of each encode's CPU, which `ultrafast` never meant to
            // spend (with it off the settings match ffmpeg's `-preset ultrafast` exactly).
            set_prop(encoder, "trellis", "false");
            set_prop(encoder, "bframes", "0");
            set_prop(encoder, "key-int-max", &gop);
        }
        "nvh264enc" => {
            set_prop(encoder, "preset", "low-latency-hq");
            set_prop(encoder, "rc-mode", "cbr");
            set_prop(encoder, "zerolatency", "true");
            set_prop(encoder, "bframes", "0");
            set_prop(encoder, "gop-size", &gop);
        }
        "vah264enc" => {
            set_prop(encoder, "rate-control", "cbr");
            set_prop(encoder, "b-frames", "0");
            set_prop(encoder, "key-int-max", &gop);
        }
        "qsvh264enc" => {
            set_prop(encoder, "rate-control", "cbr");
            set_prop(encoder, "b-frames", "0");
            set_prop(encoder, "gop-size", &gop);
        }
        _ => {
            for (prop, value) in [("key-int-max", &gop), ("gop-size", &gop)] {
                set_prop(encoder, prop, value);
            }
            for prop in ["bframes", "b-frames"] {
                set_prop(encoder, prop, "0");
            }
        }
    }
}

fn install_output(appsink: &gst_app::AppSink, shared: Arc<Shared>, on_encoded: OutputSink) {
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let encoded_unix_us = sei::unix_now_us();
                let Some(buffer) = sample.buffer() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let running = sample
                    .segment()
                    .and_then(|s| s.downcast_ref::<gst::ClockTime>())
                    .zip(buffer.pts())
                    .and_then(|(segment, pts)| segment.to_running_time(pts))
                    .map(|t| t.nseconds());
                let (matched, dropped) = lock(&shared.pending).take(running);
                let counters = &shared.counters;
                counters
                    .frames_dropped
                    .fetch_add(dropped as u64, Ordering::Relaxed);
                let Some(source) = matched else {
                    tracing::warn!("encoded frame with no known source frame; skipped");
                    return Ok(gst::FlowSuccess::Ok);
                };
                let Ok(map) = buffer.map_readable() else {
                    return Err(gst::FlowError::Error);
                };
                let mut on_encoded = lock(&on_encoded);
                for access_unit in annexb::split_access_units(&map) {
                    let data = sei::stamp_access_unit(&access_unit, source.meta.received_unix_us);
                    on_encoded(EncodedFrame {
                        meta: source.meta,
                        keyframe: annexb::is_idr(&access_unit),
                        data: Bytes::from(data),
                        encoded_unix_us,
                    });
                }
                counters.frames_out.fetch_add(1, Ordering::Relaxed);
                lock(&shared.latency).record(source.pushed_at.elapsed());
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
}
