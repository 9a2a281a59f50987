//! The frame path: ingest → latest-wins slot → compose (wgpu) → encode (one per rendering)
//! → deliver. Each stage only moves data; decisions come from `edge-core`.
//!
//! Threads: GStreamer's streaming threads decode and encode; one `frame-path` thread owns the
//! compositor and feeds the encoders; a `model-loader` thread sets up content understanding
//! beside it and hands the worker over when ready. The ingest never waits for compose: a frame
//! that arrives while the previous one is still being composed replaces it (newest wins,
//! counted as a drop).

use crate::render_groups::{EncodeSettings, RenderGroups};
use crate::understanding::{NodeUnderstanding, UnderstandingConfig};
use anyhow::{Context, Result};
use edge_campaign::{CampaignStore, OverlaySpec};
use edge_compose::Compositor;
use edge_control::admission_gate::AdmissionGate;
use edge_control::viewers::ViewerDirectory;
use edge_core::admission::GroupLoad;
use edge_core::frame_window::FrameWindow;
use edge_core::latest::{LatestSlot, Taken};
use edge_core::media_clock::MediaClock;
use edge_core::sei::unix_now_us;
use edge_core::slate::{self, SlateClock};
use edge_core::FrameMeta;
use edge_core::I420Frame;
use edge_deliver::DeliveryServer;
use edge_media::{Ingest, IngestConfig, UpstreamEvent, VideoFormat};
use edge_telemetry::{InferencePacing, ModelsState, Stage, Telemetry};
use edge_understand::UnderstandingStats;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the engine is told by the node's configuration.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub upstream: IngestConfig,
    pub encode: EncodeSettings,
    /// How long a render group nobody watches is kept (not drawn) before it stops.
    pub group_grace: Duration,
    pub understanding: UnderstandingConfig,
    /// Overlays drawn for every viewer, whatever its zone.
    pub site_overlays: Vec<OverlaySpec>,
}

/// How long without a source frame before viewers see the slate: a live source that misses
/// this much has paused, and a frozen picture would only make players look broken.
const SLATE_AFTER: Duration = Duration::from_secs(1);

/// Everything the frame-path thread owns.
struct FramePath {
    compositor: Compositor,
    groups: RenderGroups,
    understanding: Option<NodeUnderstanding>,
    /// Where the model loader hands the worker over once it is ready.
    understanding_ready: mpsc::Receiver<NodeUnderstanding>,
    shared: Shared,
    clock: MediaClock,
    slate: SlateClock,
    /// The last source frame, dimmed once an outage starts.
    last_picture: Option<LastPicture>,
    /// Frames made by the node (the slate) so far: added to the ingest's sequence numbers, so
    /// numbers stay unique and increasing, and a gap still means a dropped source frame.
    made_frames: u64,
    started: Instant,
}

enum LastPicture {
    Source(Arc<I420Frame>),
    Dimmed(I420Frame),
}

/// What the frame path shares with the rest of the node.
#[derive(Clone)]
pub struct Shared {
    pub campaigns: Arc<CampaignStore>,
    pub directory: Arc<ViewerDirectory>,
    pub admission: Arc<AdmissionGate>,
    pub server: Arc<DeliveryServer>,
    pub telemetry: Arc<Telemetry>,
    /// The understanding worker's per-model statistics, refreshed about once a second.
    pub understanding_stats: Arc<std::sync::Mutex<Option<UnderstandingStats>>>,
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
        config: EngineConfig,
        mut compositor: Compositor,
        shared: Shared,
        first_frame_timeout: Duration,
    ) -> Result<Self> {
        let mut groups = RenderGroups::new(
            config.encode,
            config.group_grace,
            config.site_overlays,
            shared.server.clone(),
            shared.telemetry.clone(),
            shared.admission.clone(),
        );
        let telemetry = shared.telemetry.clone();

        let slot = Arc::new(LatestSlot::<I420Frame>::new());
        let stop = Arc::new(AtomicBool::new(false));
        let ingest = start_ingest(config.upstream, slot.clone(), telemetry.clone())?;
        // The media error names the upstream and what went wrong.
        let source_format = ingest.wait_first_frame(first_frame_timeout)?;
        tracing::info!(
            width = source_format.width,
            height = source_format.height,
            fps = source_format.fps,
            colour = ?source_format.colour,
            "upstream delivering"
        );
        // Overlays are converted into the source's colour and encoders tag their streams with
        // it, so a brand's colour decodes as meant whatever the source's matrix and range.
        groups.set_source_colour(source_format.colour);
        compositor.set_source_colour(source_format.colour)?;

        let understanding_ready = load_understanding(
            config.understanding,
            (source_format.width, source_format.height),
            groups.frame_window(),
            &shared,
        )?;
        path_warm_up(&groups, &source_format, &shared);
        let mut path = FramePath {
            compositor,
            groups,
            understanding: None,
            understanding_ready,
            shared,
            clock: MediaClock::new(source_format.fps, 1_000_000_000),
            slate: SlateClock::new(source_format.fps, SLATE_AFTER),
            last_picture: None,
            made_frames: 0,
            started: Instant::now(),
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

/// Loads the runtime and models on a thread of their own, so frames flow while a GPU provider
/// sets itself up (seconds with CUDA); a missing library or model costs understanding only.
fn load_understanding(
    config: UnderstandingConfig,
    source: (u32, u32),
    frame_window: Arc<FrameWindow>,
    shared: &Shared,
) -> Result<mpsc::Receiver<NodeUnderstanding>> {
    let (ready, understanding_ready) = mpsc::sync_channel(1);
    let (server, telemetry) = (shared.server.clone(), shared.telemetry.clone());
    if config.wanted() {
        // Said before the loader runs, so whoever waits for the models sees them loading.
        telemetry.readiness.set_models(ModelsState::Loading);
    }
    std::thread::Builder::new()
        .name("model-loader".into())
        .spawn(move || {
            let started =
                NodeUnderstanding::start(&config, source, frame_window, server, telemetry.clone());
            match started {
                // The frame path is gone if the send fails: the worker stops with it.
                Ok(Some(understanding)) => drop(ready.send(understanding)),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "content understanding unavailable; serving video without it");
                    telemetry.readiness.set_models(ModelsState::Disabled);
                }
            }
        })
        .context("spawning the model loader")?;
    Ok(understanding_ready)
}

fn start_ingest(
    ingest_config: IngestConfig,
    slot: Arc<LatestSlot<I420Frame>>,
    telemetry: Arc<Telemetry>,
) -> Result<Ingest> {
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
        edge_media::priority::enter_frame_path("frame-path");
        while !stop.load(Ordering::Relaxed) {
            let now = self.started.elapsed();
            let wait = self
                .slate
                .next_due()
                .map_or(Duration::from_millis(100), |due| due.saturating_sub(now))
                .min(Duration::from_millis(100));
            let mut frame = match slot.take(wait) {
                Taken::Value(frame) => frame,
                Taken::TimedOut => {
                    if self.slate.take_due(self.started.elapsed()) {
                        self.draw_slate();
                    }
                    continue;
                }
                Taken::Closed => break,
            };
            self.slate.source_frame(self.started.elapsed());
            frame.meta.seq += self.made_frames;
            // One media timeline for every group, continuous across upstream reconnects, so a
            // viewer moved between groups never sees time jump.
            frame.meta.pts_ns = self.clock.media_time_ns(frame.meta.pts_ns);
            let frame = Arc::new(frame);
            self.last_picture = Some(LastPicture::Source(frame.clone()));
            if let Err(e) = self.render(&frame, false) {
                // A bad frame costs that frame only; the next one is tried afresh.
                tracing::warn!(seq = frame.meta.seq, error = %format!("{e:#}"), "frame dropped");
                self.shared.telemetry.dropped(Stage::Compose, "error", 1);
            }
            // Offered only once the frame is out: inference then starts in the frame path's
            // idle window instead of competing with this frame's compose and encode for the
            // same cores (and, on SMT machines, the same execution units SCHED_IDLE can't guard).
            if self.understanding.is_none() {
                self.understanding = self.understanding_ready.try_recv().ok();
            }
            if let Some(understanding) = &self.understanding {
                understanding.offer(frame);
            }
        }
    }

    /// One slate frame: the last picture dimmed, on the node's clock, stamped now.
    fn draw_slate(&mut self) {
        let Some(last) = self.last_picture.take() else {
            return;
        };
        let mut picture = match last {
            LastPicture::Source(frame) => {
                tracing::info!(
                    after_ms = SLATE_AFTER.as_millis() as u64,
                    "no source frames: viewers see the slate until the upstream returns"
                );
                slate::dimmed(&frame, frame.meta)
            }
            LastPicture::Dimmed(frame) => frame,
        };
        self.made_frames += 1;
        picture.meta = FrameMeta {
            seq: picture.meta.seq + 1,
            pts_ns: self.clock.made_frame_ns(),
            received_unix_us: unix_now_us(),
        };
        if let Err(e) = self.render(&picture, true) {
            tracing::warn!(error = %format!("{e:#}"), "slate frame dropped");
        }
        self.shared.telemetry.slate_frame();
        self.last_picture = Some(LastPicture::Dimmed(picture));
    }

    fn render(&mut self, frame: &I420Frame, slate: bool) -> Result<()> {
        let (campaigns, generation) = self.shared.campaigns.snapshot();
        // A file-watch reload shows in the metrics here (the admin API reports its own).
        if generation != self.shared.telemetry.campaign_generation() {
            self.shared.telemetry.campaign_applied(generation);
        }
        let changes = self.shared.directory.take_changes();
        let _span = tracing::trace_span!("render", seq = frame.meta.seq).entered();
        let obstacles = self
            .understanding
            .as_ref()
            .map(|u| u.latest.obstacles())
            .unwrap_or_default();
        self.groups.render(
            &mut self.compositor,
            frame,
            changes,
            &campaigns,
            &obstacles,
            slate,
        )?;
        if let Some(understanding) = &self.understanding {
            if frame.meta.seq.is_multiple_of(30) {
                let stats = understanding.stats();
                for m in &stats.models {
                    self.shared.telemetry.set_inference_pacing(
                        &m.model,
                        InferencePacing {
                            deferred_frames: m.deferred,
                            late_runs: m.late,
                        },
                    );
                }
                *self
                    .shared
                    .understanding_stats
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(stats);
            }
        }
        self.report_load();
        Ok(())
    }

    /// Tells admission what runs now, and exports the budget utilisation.
    fn report_load(&self) {
        let load = self
            .groups
            .group_outputs()
            .iter()
            .map(|(id, layout, members)| GroupLoad {
                group: *id,
                pixels: u64::from(layout.width) * u64::from(layout.height),
                viewers: *members as u32,
            })
            .collect();
        let utilization = self.shared.admission.update(load, self.groups.keys());
        self.shared.telemetry.set_budget_utilization(utilization);
    }
}

/// Warms an encoder for the default rendition while the first viewer is still connecting.
fn path_warm_up(groups: &RenderGroups, source: &VideoFormat, shared: &Shared) {
    if let Ok(layout) = edge_core::PlaneLayout::new(source.width & !1, source.height & !1) {
        let height = shared.campaigns.current().settings.default_rendition.height;
        groups.warm_up(layout, height);
    }
}
