//! The frame path: ingest → latest-wins slot → compose (wgpu) → encode (one per rendering)
//! → deliver. Each stage only moves data; decisions come from `edge-core`.
//!
//! Threads: GStreamer's streaming threads decode and encode; one `frame-path` thread owns the
//! compositor and feeds the encoders. The ingest never waits for compose: a frame that arrives
//! while the previous one is still being composed replaces it (newest wins, counted as a drop).

use crate::config::NodeConfig;
use crate::telemetry::{unix_now_us, Stage, Telemetry};
use anyhow::{bail, Context, Result};
use edge_compose::{Compositor, OverlayId, OverlayPlacement, RenderJob, Roi};
use edge_core::latest::{LatestSlot, Taken};
use edge_core::{placement, EncodedFrame, I420Frame, PlaneLayout};
use edge_deliver::{DeliveryServer, RenderingPublisher, VideoTrackInfo};
use edge_media::{Encoder, EncoderConfig, Ingest, IngestConfig, UpstreamEvent, VideoFormat};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The one rendering of this pipeline: every viewer is routed here.
pub const DEFAULT_RENDERING: &str = "default";

/// An overlay loaded on the GPU with its configured placement.
struct PlacedOverlay {
    id: OverlayId,
    size: (u32, u32),
    anchor: placement::Anchor,
    margin: (i32, i32),
    opacity: f32,
}

/// Everything the frame-path thread owns.
struct FramePath {
    compositor: Compositor,
    overlays: Vec<PlacedOverlay>,
    config: NodeConfig,
    server: Arc<DeliveryServer>,
    telemetry: Arc<Telemetry>,
    rendering: Option<Rendering>,
}

/// One distinct rendering: one composite, one encoder and one broadcast, shared by every
/// viewer routed to it.
struct Rendering {
    job: RenderJob,
    encoder: Encoder,
    publisher: Arc<Mutex<RenderingPublisher>>,
    /// When each frame was pushed into the encoder, to measure the encode stage.
    pushed_at: Arc<Mutex<HashMap<u64, Instant>>>,
}

pub struct Pipeline {
    ingest: Option<Ingest>,
    slot: Arc<LatestSlot<I420Frame>>,
    frame_path: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    pub source_format: VideoFormat,
}

impl Pipeline {
    /// Starts ingest and the frame path, and waits for the first decoded frame: an unreachable
    /// upstream or an unsupported codec is an error here, not a silent black stream.
    pub fn start(
        config: NodeConfig,
        mut compositor: Compositor,
        server: Arc<DeliveryServer>,
        telemetry: Arc<Telemetry>,
        first_frame_timeout: Duration,
    ) -> Result<Self> {
        let mut overlays = Vec::new();
        for o in &config.overlays {
            let png = crate::assets::overlay_png(&o.image)?;
            let id = compositor
                .load_overlay_png(&png)
                .with_context(|| format!("overlay {:?} ({})", o.name, o.image))?;
            let image = compositor
                .overlay_image(id)
                .context("overlay just loaded")?;
            overlays.push(PlacedOverlay {
                id,
                size: (image.width(), image.height()),
                anchor: o.anchor,
                margin: (o.margin[0], o.margin[1]),
                opacity: o.opacity,
            });
        }

        let slot = Arc::new(LatestSlot::<I420Frame>::new());
        let stop = Arc::new(AtomicBool::new(false));
        let ingest = start_ingest(&config, slot.clone(), telemetry.clone())?;
        // The media error names the upstream and what went wrong.
        let source_format = ingest.wait_first_frame(first_frame_timeout)?;
        tracing::info!(
            width = source_format.width,
            height = source_format.height,
            fps = source_format.fps,
            "upstream delivering"
        );

        let mut path = FramePath {
            compositor,
            overlays,
            config,
            server,
            telemetry,
            rendering: None,
        };
        let (slot2, stop2) = (slot.clone(), stop.clone());
        let frame_path = std::thread::Builder::new()
            .name("frame-path".into())
            .spawn(move || path.run(&slot2, &stop2))
            .context("spawning the frame-path thread")?;
        Ok(Self {
            ingest: Some(ingest),
            slot,
            frame_path: Some(frame_path),
            stop,
            source_format,
        })
    }

    pub fn shutdown(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        if let Some(ingest) = self.ingest.take() {
            ingest.stop();
        }
        self.stop.store(true, Ordering::Relaxed);
        self.slot.close();
        if let Some(t) = self.frame_path.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn start_ingest(
    config: &NodeConfig,
    slot: Arc<LatestSlot<I420Frame>>,
    telemetry: Arc<Telemetry>,
) -> Result<Ingest> {
    let ingest_config = IngestConfig {
        stall_timeout: Duration::from_millis(config.upstream.stall_timeout_ms),
        reconnect_initial: Duration::from_millis(config.upstream.reconnect_initial_ms),
        reconnect_max: Duration::from_millis(config.upstream.reconnect_max_ms),
        ..IngestConfig::new(config.upstream.uri.clone())
    };
    let frames_telemetry = telemetry.clone();
    let on_frame = move |frame: I420Frame| {
        frames_telemetry.frame_in();
        if let Some(decode) = edge_media::decode_latency(&frame.meta) {
            frames_telemetry.stage(Stage::Decode, frame.meta.received_unix_us, decode);
        }
        if slot.put(frame) {
            frames_telemetry.dropped(Stage::Compose, "behind", 1);
        }
    };
    let on_event = move |event: UpstreamEvent| {
        match &event {
            UpstreamEvent::Connected { .. } => telemetry.set_upstream_up(true),
            UpstreamEvent::Lost { .. } => telemetry.set_upstream_up(false),
            _ => {}
        }
        tracing::info!(?event, "upstream");
    };
    Ok(Ingest::start(ingest_config, on_frame, on_event)?)
}

impl FramePath {
    fn run(&mut self, slot: &LatestSlot<I420Frame>, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            let frame = match slot.take(Duration::from_millis(100)) {
                Taken::Value(frame) => frame,
                Taken::TimedOut => continue,
                Taken::Closed => break,
            };
            if let Err(e) = self.render(&frame) {
                // A bad frame costs that frame only; the next one is tried afresh.
                tracing::warn!(seq = frame.meta.seq, error = %format!("{e:#}"), "frame dropped");
                self.telemetry.dropped(Stage::Compose, "error", 1);
            }
        }
    }

    fn render(&mut self, frame: &I420Frame) -> Result<()> {
        if self.rendering.is_none() {
            self.rendering = Some(self.open_rendering(frame.layout)?);
        }
        let rendering = self.rendering.as_mut().context("rendering opened above")?;
        rendering.job.roi = Roi::full(frame.layout);

        let started = Instant::now();
        let span = tracing::trace_span!("compose", seq = frame.meta.seq).entered();
        let mut composed = self
            .compositor
            .compose(frame, std::slice::from_ref(&rendering.job))?;
        drop(span);
        self.telemetry.stage(
            Stage::Compose,
            frame.meta.received_unix_us,
            started.elapsed(),
        );
        let Some(out) = composed.pop() else {
            bail!("compositor returned no frame")
        };

        let force_idr = {
            let publisher = lock(&rendering.publisher);
            self.telemetry.set_delivery(publisher.viewers(), 1);
            publisher.take_keyframe_request()
        };
        lock(&rendering.pushed_at).insert(out.meta.seq, Instant::now());
        let _span = tracing::trace_span!("encode_push", seq = out.meta.seq, force_idr).entered();
        rendering.encoder.push(out.data, out.meta, force_idr)?;
        Ok(())
    }

    fn open_rendering(&mut self, source: PlaneLayout) -> Result<Rendering> {
        let output = match (self.config.output.width, self.config.output.height) {
            (0, 0) => source,
            (w, h) => PlaneLayout::new(w, h)?,
        };
        let overlays = self
            .overlays
            .iter()
            .map(|o| {
                let (x, y) =
                    placement::resolve(o.anchor, o.margin, o.size, (output.width, output.height));
                OverlayPlacement {
                    overlay: o.id,
                    x,
                    y,
                    opacity: o.opacity,
                }
            })
            .collect();
        let job = RenderJob {
            output,
            roi: Roi::full(source),
            overlays,
        };

        let publisher = self.server.publish_rendering(
            DEFAULT_RENDERING,
            VideoTrackInfo {
                width: output.width,
                height: output.height,
                fps: self.config.output.fps as f64,
            },
        )?;
        let publisher = Arc::new(Mutex::new(publisher));
        let pushed_at: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
        let encoder_config = EncoderConfig {
            width: output.width,
            height: output.height,
            fps: self.config.output.fps,
            bitrate_kbps: self.config.encode.bitrate_kbps,
            gop_frames: self.config.gop_frames(),
            encoder: (self.config.encode.encoder != "auto")
                .then(|| self.config.encode.encoder.clone()),
        };
        let on_encoded = encoded_sink(publisher.clone(), pushed_at.clone(), self.telemetry.clone());
        let encoder = Encoder::new(encoder_config, on_encoded)?;
        tracing::info!(
            rendering = DEFAULT_RENDERING,
            encoder = encoder.name(),
            width = output.width,
            height = output.height,
            "rendering opened"
        );
        Ok(Rendering {
            job,
            encoder,
            publisher,
            pushed_at,
        })
    }
}

/// Runs on the encoder's thread for every access unit: hands it to the QUIC send path and
/// records the encode, send and node latencies.
fn encoded_sink(
    publisher: Arc<Mutex<RenderingPublisher>>,
    pushed_at: Arc<Mutex<HashMap<u64, Instant>>>,
    telemetry: Arc<Telemetry>,
) -> impl FnMut(EncodedFrame) + Send + 'static {
    move |frame: EncodedFrame| {
        let received = frame.meta.received_unix_us;
        {
            let mut pushed = lock(&pushed_at);
            if let Some(t) = pushed.remove(&frame.meta.seq) {
                telemetry.stage(Stage::Encode, received, t.elapsed());
            }
            // Frames the encoder dropped never come back: forget them so the map stays small.
            let seq = frame.meta.seq;
            pushed.retain(|s, _| *s > seq);
        }
        let span =
            tracing::trace_span!("send", seq = frame.meta.seq, keyframe = frame.keyframe).entered();
        let started = Instant::now();
        let written = lock(&publisher).write(&frame);
        drop(span);
        match written {
            Ok(()) => {
                telemetry.stage(Stage::Send, received, started.elapsed());
                let node_latency_us = unix_now_us().saturating_sub(received);
                telemetry.node_latency(received, Duration::from_micros(node_latency_us));
            }
            Err(e) => {
                telemetry.dropped(Stage::Send, "publish-error", 1);
                tracing::warn!(seq = frame.meta.seq, error = %e, "publish failed");
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Critical sections are single calls on the guarded value; poisoning leaves it consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}
