//! Render groups on the frame path: viewers whose rendering would be identical share one
//! composite, one encoder and one broadcast.
//!
//! Each frame, every viewer's wishes (zone, coupon, zoom, tapped card, rendition) become a
//! [`RenderKey`]. `edge_core::groups::GroupTable` maps keys to groups and decides moves; this
//! module carries them out: it starts a group's encoder and broadcast on demand, forces the IDR
//! a move waits for, tells the delivery server to switch the viewer's feed on that keyframe,
//! and stops groups nobody has watched for the grace period.

use crate::encoder_pool::EncoderPool;
use crate::overlay_cache::{CachedOverlay, OverlayCache, OverlayVariant};
use crate::overlay_layout::{LayoutState, PlacedOverlay};
use anyhow::{Context, Result};
use edge_campaign::Avoid;
use edge_campaign::{Campaigns, OverlayContent, OverlaySpec, TapAction};
use edge_compose::{Compositor, OverlayPlacement, RenderJob, Roi};
use edge_control::admission_gate::AdmissionGate;
use edge_control::viewer_control::NormalizedRect;
use edge_control::viewers::{render_key, Viewer, ViewerChanges};
use edge_core::frame_window::FrameWindow;
use edge_core::geometry::Rect;
use edge_core::groups::{render_order, GroupId, GroupTable, ViewerId};
use edge_core::keyframes::KeyframePacer;
use edge_core::log_budget::LogBudget;
pub use edge_core::rendering::{group_name, Obstacles, RenderKey};
use edge_core::sei::unix_now_us;
use edge_core::smoothing::{PlacementSmoother, SmoothingConfig};
use edge_core::taps::TapTracker;
use edge_core::zoom::{
    project_to_output, roi_for, Face, FaceFollower, FollowConfig, RoiGeometry, ZoomCommand,
};
use edge_core::{placement, EncodedFrame, PlaneLayout};
use edge_deliver::{DeliveryServer, RenderingPublisher, VideoTrackInfo};
use edge_media::{Encoder, EncoderConfig};
use edge_telemetry::{Stage, Telemetry};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Lines about undrawable overlays: a few at once, then one a minute with the count passed over.
const OVERLAY_WARNING_BURST: u32 = 4;
const OVERLAY_WARNINGS_PER_SECOND: f64 = 1.0 / 60.0;

/// What the encoders are configured with.
#[derive(Clone, Debug)]
pub struct EncodeSettings {
    pub fps: u32,
    pub bitrate_kbps: u32,
    pub gop_frames: u32,
    pub encoder: Option<String>,
}

/// One live group: its composite job, encoder and broadcast.
struct GroupRendering {
    name: String,
    output: PlaneLayout,
    encoder: Encoder,
    publisher: Arc<Mutex<RenderingPublisher>>,
    pushed_at: Arc<Mutex<HashMap<u64, Instant>>>,
    /// Overlays drawn in the last frame, for tap hit-testing: (overlay id, rectangle).
    placed: Vec<(String, Rect)>,
    /// The layout last handed to the viewers' clients (the overlays track).
    layout: LayoutState,
    /// Keyframes asked for by joining and moving viewers, merged to one per interval.
    keyframes: KeyframePacer,
    /// Overlays that keep clear of faces or text, by (overlay id, size): where each is drawn.
    smoothers: HashMap<(String, (u32, u32)), PlacementSmoother>,
    /// Keeps the host's face framed, for follow-face groups.
    follower: Option<FaceFollower>,
    /// The detections version last fed to the smoothers and follower.
    seen_version: u64,
}

/// Renders every group of one source frame.
pub struct RenderGroups {
    table: GroupTable<RenderKey>,
    /// The engine's copy of the viewers, kept up to date from the directory's changes.
    viewers: HashMap<u64, Viewer>,
    /// Viewers whose feed does not carry the group the table has them in yet: the delivery
    /// server is told once their session is established (which may be after they are seated).
    unrouted: HashSet<u64>,
    groups: HashMap<GroupId, GroupRendering>,
    /// Groups waiting for an encoder of their own being started (their viewers stay where
    /// they are until it is ready).
    starting: HashSet<GroupId>,
    taps: TapTracker<String>,
    overlays: OverlayCache,
    site_overlays: Vec<OverlaySpec>,
    /// Drawn over every rendering while the upstream is away (see `edge_core::slate`).
    slate_card: Option<OverlaySpec>,
    encode: EncodeSettings,
    server: Arc<DeliveryServer>,
    telemetry: Arc<Telemetry>,
    /// Measured costs go to the admission model, so its predictions follow this machine.
    admission: Arc<AdmissionGate>,
    /// Started encoders waiting for a group, so a new group never stalls the frame path.
    encoders: EncoderPool,
    /// Groups rendered in the last frame, read by the encoder sinks.
    live_groups: Arc<std::sync::atomic::AtomicUsize>,
    /// When each frame's encodes are all out, for work that waits for the idle window.
    frame_window: Arc<FrameWindow>,
    /// Cores this process may use (the container's CPU limit included).
    cores: usize,
    started: Instant,
    /// Lines about overlays that cannot be drawn (skipped every frame they are due).
    overlay_warnings: LogBudget,
    /// The source's colour description, which every encoder writes into its stream's VUI.
    colour: edge_core::VideoColour,
}

impl RenderGroups {
    pub fn new(
        encode: EncodeSettings,
        grace: Duration,
        site_overlays: Vec<OverlaySpec>,
        server: Arc<DeliveryServer>,
        telemetry: Arc<Telemetry>,
        admission: Arc<AdmissionGate>,
    ) -> Self {
        Self {
            table: GroupTable::new(grace),
            viewers: HashMap::new(),
            unrouted: HashSet::new(),
            groups: HashMap::new(),
            starting: HashSet::new(),
            taps: TapTracker::new(edge_core::taps::DEFAULT_EXPAND_FOR),
            overlays: OverlayCache::new(),
            site_overlays,
            slate_card: crate::overlay_spec::slate_card()
                .map_err(|e| tracing::warn!(error = %format!("{e:#}"), "slate card unavailable"))
                .ok(),
            encode,
            server,
            telemetry,
            admission,
            encoders: EncoderPool::default(),
            live_groups: Arc::default(),
            frame_window: Arc::default(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            started: Instant::now(),
            overlay_warnings: LogBudget::new(OVERLAY_WARNING_BURST, OVERLAY_WARNINGS_PER_SECOND),
            colour: edge_core::VideoColour::default(),
        }
    }

    /// Says when each frame's encodes are all out: inference waits for that.
    pub fn frame_window(&self) -> Arc<FrameWindow> {
        self.frame_window.clone()
    }

    /// Each group's output size, for admission's load model.
    pub fn group_outputs(&self) -> Vec<(GroupId, PlaneLayout, usize)> {
        self.groups
            .iter()
            .map(|(id, g)| (*id, g.output, self.table.members(*id).len()))
            .collect()
    }

    /// Every live group by the key it renders.
    pub fn keys(&self) -> HashMap<RenderKey, GroupId> {
        self.groups
            .keys()
            .filter_map(|id| Some((self.table.key_of(*id)?.clone(), *id)))
            .collect()
    }

    /// Brings the groups in line with what changed (joins, leaves, moves, taps, campaigns,
    /// expiry), then composes every watched group from `frame` and hands each result to its
    /// encoder.
    pub fn render(
        &mut self,
        compositor: &mut Compositor,
        frame: &edge_core::I420Frame,
        changes: ViewerChanges,
        campaigns: &Campaigns,
        obstacles: &Obstacles,
        slate: bool,
    ) -> Result<()> {
        let now = self.started.elapsed();
        let now_unix = (unix_now_us() / 1_000_000) as i64;
        // An upstream may change its colour mid-stream (the compositor follows the frame).
        if let Some(colour) = frame.colour {
            self.set_source_colour(colour);
        }
        self.overlays.next_frame(compositor);
        self.sync_viewers(frame.layout, changes, campaigns, now, now_unix)?;

        // Only watched groups are drawn: a group in its grace period keeps its encoder warm
        // for a returning viewer but costs no compose and no encode.
        let mut watched: Vec<(GroupId, usize)> = self
            .groups
            .keys()
            .map(|&id| {
                (
                    id,
                    self.table.members(id).len() + self.table.incoming(id).len(),
                )
            })
            .filter(|&(_, viewers)| viewers > 0)
            .collect();
        render_order(&mut watched, frame.meta.seq);
        let mut jobs = Vec::with_capacity(watched.len());
        let mut order = Vec::with_capacity(watched.len());
        for (id, _) in watched {
            let Some(group) = self.groups.get_mut(&id) else {
                continue;
            };
            let Some(key) = self.table.key_of(id).cloned() else {
                continue;
            };
            let zoom = key
                .zoom_of
                .and_then(|s| self.viewers.get(&s))
                .and_then(|v| v.zoom);
            let fresh = obstacles.version != group.seen_version;
            group.seen_version = obstacles.version;
            let roi = if key.follow_face {
                follow_face_roi(group, frame.layout, obstacles, fresh, campaigns, now)
            } else {
                roi_of(
                    frame.layout,
                    group.output,
                    zoom,
                    campaigns.settings.max_zoom,
                )
            };
            let roi_rect = Rect::new(
                roi.x as i32,
                roi.y as i32,
                roi.width as u32,
                roi.height as u32,
            );
            let out_size = (group.output.width, group.output.height);
            // A face keeps moving between detections (every ~200 ms) and while an overlay
            // dwells and travels to a free spot: keep a face-sized berth around it.
            let faces: Vec<Rect> = obstacles
                .faces
                .iter()
                .filter_map(|(r, _)| project_to_output(*r, roi_rect, out_size))
                .map(|r| grow(r, r.w.max(r.h) as i32))
                .collect();
            let text: Vec<Rect> = obstacles
                .text
                .iter()
                .filter_map(|r| project_to_output(*r, roi_rect, out_size))
                .collect();
            group.placed.clear();
            let slate_card = self.slate_card.as_ref().filter(|_| slate);
            // First every overlay's picture and, for those at a fixed anchor, its place; then
            // the ones that move out of the way, which keep clear of faces or text and of
            // every other overlay (the site's badge included).
            let mut drawn: Vec<DrawnOverlay> = Vec::new();
            for spec in
                shown_overlays(campaigns, &self.site_overlays, &key, now_unix).chain(slate_card)
            {
                let variant = variant_of(spec, &key, group.output, now_unix);
                let cached = match self.overlays.get(compositor, spec, &variant) {
                    Ok(Some(found)) => found,
                    // Its picture is being painted: drawn from a later frame.
                    Ok(None) => continue,
                    Err(e) => {
                        // One broken overlay costs that overlay only, and a broken config a few
                        // lines, not one per frame, group and overlay.
                        if let Some(allowed) = self.overlay_warnings.allow(now) {
                            tracing::warn!(
                                overlay = %spec.id,
                                error = %format!("{e:#}"),
                                suppressed = allowed.suppressed,
                                "overlay skipped"
                            );
                        }
                        continue;
                    }
                };
                let fixed = (spec.placement.avoid == Avoid::None).then(|| {
                    let margin = margin_at(spec, lines_of(group.output));
                    placement::resolve(spec.placement.anchor, margin, cached.size, out_size)
                });
                drawn.push((spec, cached, fixed));
            }
            let mut taken: Vec<Rect> = drawn
                .iter()
                .filter_map(|(_, cached, fixed)| {
                    fixed.map(|(x, y)| Rect::new(x, y, cached.size.0, cached.size.1))
                })
                .collect();
            let mut overlays = Vec::with_capacity(drawn.len());
            let mut layout = Vec::with_capacity(drawn.len());
            for (spec, cached, fixed) in drawn {
                let size = cached.size;
                let (x, y) = match fixed {
                    Some(place) => place,
                    None => {
                        let margin = margin_at(spec, lines_of(group.output));
                        let slot = (spec.id.clone(), size);
                        if !group.smoothers.contains_key(&slot) {
                            let smoother = PlacementSmoother::new(
                                placement_smoothing(),
                                size,
                                out_size,
                                &PlacementSmoother::all_anchors(spec.placement.anchor, margin),
                            )?;
                            group.smoothers.insert(slot.clone(), smoother);
                        }
                        let smoother = group
                            .smoothers
                            .get_mut(&slot)
                            .context("smoother just inserted")?;
                        if fresh {
                            let avoided = match spec.placement.avoid {
                                Avoid::Text => &text,
                                _ => &faces,
                            };
                            let boxes: Vec<Rect> =
                                avoided.iter().chain(taken.iter()).copied().collect();
                            smoother.observe(&boxes, now);
                        }
                        let (x, y) = smoother.step(now);
                        taken.push(Rect::new(x, y, size.0, size.1));
                        (x, y)
                    }
                };
                let rect = Rect::new(x, y, size.0, size.1);
                group.placed.push((spec.id.clone(), rect));
                layout.push(PlacedOverlay {
                    spec,
                    rect,
                    expanded: cached.expanded,
                    button: cached.button,
                    coupon_text: key.coupon.as_deref().filter(|_| spec.is_personal()),
                });
                overlays.push(OverlayPlacement {
                    overlay: cached.id,
                    x,
                    y,
                    opacity: spec.opacity,
                });
            }
            // Handed over before this frame is encoded: it reaches viewers beside that frame.
            if let Some(message) = group.layout.changed(
                group.output.width,
                group.output.height,
                &layout,
                self.overlays.call_to_action(),
            ) {
                lock(&group.publisher).set_overlays(frame.meta.pts_ns, message.into());
            }
            jobs.push(RenderJob {
                output: group.output,
                roi,
                overlays,
            });
            order.push(id);
        }
        self.live_groups
            .store(jobs.len(), std::sync::atomic::Ordering::Relaxed);
        let viewers_total: usize = self
            .groups
            .values()
            .map(|g| lock(&g.publisher).viewers())
            .sum();
        // Renderings being encoded: a group kept through its grace period for a returning viewer
        // costs no encode and is not counted, so the gauge drops as the last viewer leaves.
        self.telemetry.set_delivery(viewers_total, jobs.len());
        let (seq, arrived) = (frame.meta.seq, frame.meta.received_unix_us);
        if jobs.is_empty() {
            self.frame_window.rendered(seq, arrived, 0);
            return Ok(());
        }

        let started = Instant::now();
        let (groups, table, telemetry) = (&mut self.groups, &mut self.table, &self.telemetry);
        let mut encodes = 0;
        // Each composite goes to its encoder the moment it exists: encoders run on their own
        // threads, so the first groups encode while the rest are still being composed.
        compositor.compose_each(frame, &jobs, |index, out| {
            let id = order[index];
            let Some(group) = groups.get_mut(&id) else {
                return;
            };
            if lock(&group.publisher).take_keyframe_request() {
                group.keyframes.request();
            }
            let force_idr = group.keyframes.take_due(out.meta.seq, now);
            lock(&group.pushed_at).insert(out.meta.seq, Instant::now());
            if let Err(e) = group.encoder.push(out.data, out.meta, force_idr) {
                tracing::warn!(group = %group.name, error = %e, "encoder refused a frame");
                telemetry.dropped(Stage::Encode, "error", 1);
                return;
            }
            encodes += 1;
            if force_idr {
                tracing::debug!(group = %group.name, seq = out.meta.seq, "keyframe forced");
                // The delivery server switches waiting viewers on this very keyframe.
                table.on_keyframe(id, now);
            }
        })?;
        self.frame_window.rendered(seq, arrived, encodes);
        let took = started.elapsed();
        self.telemetry.stage(Stage::Compose, arrived, took);
        let pixels: u64 = jobs
            .iter()
            .map(|j| u64::from(j.output.width) * u64::from(j.output.height))
            .sum();
        self.admission
            .observe(|model| model.observe_compose(pixels, took));
        Ok(())
    }

    /// Applies the viewers' changes to the group table. A frame costs what changed plus one
    /// look at each live group, never a pass over every viewer: a viewer is re-keyed when it
    /// joins or changes, when its expanded card times out, or when its zone's campaign overlays
    /// change (a reload or a schedule boundary).
    fn sync_viewers(
        &mut self,
        source: PlaneLayout,
        changes: ViewerChanges,
        campaigns: &Campaigns,
        now: Duration,
        now_unix: i64,
    ) -> Result<()> {
        for gone in changes.removed {
            self.viewers.remove(&gone);
            self.unrouted.remove(&gone);
            let _ = self.table.leave(ViewerId(gone), now);
            self.taps.forget(ViewerId(gone));
        }
        let mut rekey: HashSet<u64> = HashSet::new();
        for mut viewer in changes.updated {
            self.apply_taps(&viewer, campaigns, now);
            viewer.taps.clear();
            rekey.insert(viewer.session_id);
            self.viewers.insert(viewer.session_id, viewer);
        }
        rekey.extend(self.taps.expire(now).into_iter().map(|(id, _)| id.0));
        for group in self.table.groups() {
            let Some(key) = self.table.key_of(group) else {
                continue;
            };
            if campaigns.render_key_part(&key.zone, now_unix) != key.campaign {
                let members = self.table.members(group).into_iter();
                rekey.extend(members.chain(self.table.incoming(group)).map(|v| v.0));
            }
        }

        for session_id in rekey {
            let Some(viewer) = self.viewers.get(&session_id) else {
                continue;
            };
            let id = ViewerId(session_id);
            let key = render_key(
                viewer,
                campaigns,
                self.taps.expanded(id, now).cloned(),
                now_unix,
            );
            // The group it joins or moves to is started (once its encoder is ready) when the
            // viewer is routed there, below.
            match self.table.group_of(id) {
                None => {
                    self.table.join(id, key)?;
                }
                Some(_) => {
                    self.table.request_key(id, key, now)?;
                }
            }
            self.unrouted.insert(session_id);
        }
        let unrouted: Vec<u64> = self.unrouted.iter().copied().collect();
        for session_id in unrouted {
            let frame = FrameContext {
                source,
                campaigns,
                now_unix,
            };
            if self.deliver_to_group(session_id, frame)? {
                self.unrouted.remove(&session_id);
            }
        }

        for expired in self.table.expire(now) {
            if let Some(group) = self.groups.remove(&expired) {
                tracing::info!(group = %group.name, "render group stopped (unwatched for the grace period)");
            }
        }
        let table = &self.table;
        self.starting.retain(|g| table.key_of(*g).is_some());
        Ok(())
    }

    /// Makes the delivery server feed the viewer from the group the table has it in (or is
    /// moving it to), starting that group first. True once the feed carries that group or is
    /// switching to it; false while the group's encoder is still starting or the viewer's
    /// session is not established yet (asked again next frame).
    fn deliver_to_group(&mut self, session_id: u64, frame: FrameContext) -> Result<bool> {
        let id = ViewerId(session_id);
        let Some(group) = self.table.pending_of(id).or(self.table.group_of(id)) else {
            return Ok(true);
        };
        let Some(key) = self.table.key_of(group).cloned() else {
            return Ok(true);
        };
        if !self.ensure_group(group, &key, frame)? {
            return Ok(false);
        }
        let key = &key;
        let rendering = group_name(group, key);
        let Some((current, pending)) = self.server.viewer_rendering(session_id) else {
            return Ok(false);
        };
        if current.as_deref() == Some(rendering.as_str())
            || pending.as_deref() == Some(rendering.as_str())
        {
            return Ok(true);
        }
        if self.server.move_viewer(session_id, &rendering)? {
            tracing::info!(session = session_id, group = %rendering, zone = %key.zone, "viewer routed to group");
        }
        if let Some(g) = self.groups.get_mut(&group) {
            g.keyframes.request();
        }
        Ok(true)
    }

    /// Taps hit-test the overlays the viewer saw in its last frame; a hit on a card that
    /// expands opens it for that viewer (a personal item, so it needs admission's leave).
    fn apply_taps(&mut self, viewer: &Viewer, campaigns: &Campaigns, now: Duration) {
        if viewer.taps.is_empty() {
            return;
        }
        let id = ViewerId(viewer.session_id);
        let Some(group) = self.table.group_of(id).and_then(|g| self.groups.get(&g)) else {
            return;
        };
        let tappable: Vec<(String, Rect)> = group
            .placed
            .iter()
            .filter(|(overlay, _)| {
                campaigns
                    .overlay(overlay)
                    .is_some_and(|s| s.tap == Some(TapAction::Expand))
            })
            .cloned()
            .collect();
        for &(x, y) in &viewer.taps {
            if !viewer.personal_allowed {
                tracing::info!(
                    session = viewer.session_id,
                    "tap ignored: personal items not admitted"
                );
                continue;
            }
            let px = (x * f64::from(group.output.width)) as i32;
            let py = (y * f64::from(group.output.height)) as i32;
            let outcome = self.taps.tap(id, px, py, &tappable, now);
            tracing::info!(session = viewer.session_id, x = px, y = py, ?outcome, "tap");
        }
    }

    /// The encoder of a group that will be one of `encoding` groups: each gets an equal share
    /// of the cores, so N encoders together run about as many threads as there are cores
    /// (x264's slices only pay off while cores would otherwise idle).
    fn encoder_config(&self, output: PlaneLayout, encoding: usize) -> EncoderConfig {
        EncoderConfig {
            width: output.width,
            height: output.height,
            fps: self.encode.fps,
            bitrate_kbps: self.encode.bitrate_kbps,
            // The node places keyframes itself, phased per group (`KeyframePacer`); the
            // encoder's own interval is only a backstop should frames go missing.
            gop_frames: self.encode.gop_frames * 2,
            encoder: self.encode.encoder.clone(),
            threads: (self.cores / encoding.max(1)).max(1) as u32,
            colour: self.colour,
        }
    }

    /// The source's colour description (from the decoder): encoders started from now on tag
    /// their streams with it, and running ones start a new stream that does.
    pub fn set_source_colour(&mut self, colour: edge_core::VideoColour) {
        if colour == self.colour {
            return;
        }
        self.colour = colour;
        for group in self.groups.values_mut() {
            if let Err(e) = group.encoder.set_colour(colour) {
                tracing::warn!(error = %e, "encoder kept its previous colour description");
            }
        }
    }

    /// Starts a spare encoder for the size most groups use, before anyone asks.
    pub fn warm_up(&self, source: PlaneLayout, rendition_height: u32) {
        if let Ok(output) = output_layout(source, rendition_height) {
            self.encoders
                .warm(self.encoder_config(output, self.groups.len() + 1));
        }
    }

    /// Starts group `id` rendering `key` once an encoder is ready for it and its text
    /// overlays are painted, so that its first picture is whole; until then false, and what
    /// it waits for is being made.
    fn ensure_group(&mut self, id: GroupId, key: &RenderKey, frame: FrameContext) -> Result<bool> {
        if self.groups.contains_key(&id) {
            return Ok(true);
        }
        let output = output_layout(frame.source, key.height)?;
        let mut painted = true;
        for spec in shown_overlays(frame.campaigns, &self.site_overlays, key, frame.now_unix) {
            let variant = variant_of(spec, key, output, frame.now_unix);
            painted &= self.overlays.prepare(spec, &variant);
        }
        let encoding = self.groups.len() + 1;
        let config = self.encoder_config(output, encoding);
        if !self.encoders.is_ready(&config) {
            // One started for each waiting group, and another whenever none is coming (a
            // failed start, or another group took this one's).
            if self.starting.insert(id) || !self.encoders.is_warming(&config) {
                self.encoders.warm_another(config);
            }
            return Ok(false);
        }
        if !painted {
            return Ok(false);
        }
        self.starting.remove(&id);
        let name = group_name(id, key);
        let publisher = self.server.publish_rendering(
            &name,
            VideoTrackInfo {
                width: output.width,
                height: output.height,
                fps: f64::from(self.encode.fps),
            },
        )?;
        let publisher = Arc::new(Mutex::new(publisher));
        let pushed_at: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
        let encoder = self
            .encoders
            .take(
                config,
                encoded_sink(
                    name.clone(),
                    publisher.clone(),
                    pushed_at.clone(),
                    u64::from(output.width) * u64::from(output.height),
                    SinkShared {
                        telemetry: self.telemetry.clone(),
                        admission: self.admission.clone(),
                        live_groups: self.live_groups.clone(),
                        frame_window: self.frame_window.clone(),
                    },
                ),
            )
            .with_context(|| format!("starting the encoder of group {name}"))?;
        // The next group of this size will find its encoder started.
        self.encoders
            .warm(self.encoder_config(output, encoding + 1));
        tracing::info!(group = %name, zone = %key.zone, width = output.width, height = output.height, coupon = key.coupon.is_some(), zoom = key.zoom_of.is_some(), expanded = ?key.expanded, encoder = encoder.name(), "render group started");
        self.groups.insert(
            id,
            GroupRendering {
                name,
                output,
                encoder,
                publisher,
                pushed_at,
                placed: Vec::new(),
                layout: LayoutState::default(),
                // Group ids count the groups started: each takes the next phase of the GOP.
                keyframes: KeyframePacer::new(self.encode.gop_frames, id.0),
                smoothers: HashMap::new(),
                follower: None,
                seen_version: 0,
            },
        );
        Ok(true)
    }
}

/// What starting a group needs to know of the frame being rendered.
#[derive(Clone, Copy)]
struct FrameContext<'a> {
    source: PlaneLayout,
    campaigns: &'a Campaigns,
    now_unix: i64,
}

/// The overlays drawn for `key`: the zone's active campaign overlays (a coupon only with a
/// text), then the site's own.
fn shown_overlays<'a>(
    campaigns: &'a Campaigns,
    site: &'a [OverlaySpec],
    key: &RenderKey,
    now_unix: i64,
) -> impl Iterator<Item = &'a OverlaySpec> {
    let coupon = key.coupon.is_some();
    campaigns
        .active_overlays(&key.zone, now_unix)
        .into_iter()
        .filter(move |o| coupon || !o.is_personal())
        .chain(site.iter())
}

/// An overlay of one frame: its spec, its picture on the GPU and that picture's size, and its
/// place when it has a fixed anchor (the others are placed after, around everything else).
type DrawnOverlay<'a> = (&'a OverlaySpec, CachedOverlay, Option<(i32, i32)>);

/// An overlay's margin from its anchored edges in a rendition of `lines` lines (margins are
/// given for the reference height, like the artwork).
fn margin_at(spec: &OverlaySpec, lines: u32) -> (i32, i32) {
    let [x, y] = spec.placement.margin;
    (
        crate::overlay_cache::scaled_margin(x, lines),
        crate::overlay_cache::scaled_margin(y, lines),
    )
}

/// A picture's lines, as renditions are named: its short side (720 for 1280x720 and for a
/// vertical 720x1280).
/// How `spec` is drawn in the rendering of `key` at `output`, at `now_unix`.
fn variant_of(
    spec: &OverlaySpec,
    key: &RenderKey,
    output: PlaneLayout,
    now_unix: i64,
) -> OverlayVariant {
    OverlayVariant {
        lines: lines_of(output),
        expanded: key.expanded.as_deref() == Some(spec.id.as_str()),
        coupon_text: match &spec.content {
            OverlayContent::Coupon(_) => key.coupon.clone(),
            _ => None,
        },
        countdown_secs: match &spec.content {
            OverlayContent::Card(card) => card
                .countdown_to_unix_secs
                .map(|to| (to - now_unix).max(0) as u64),
            _ => None,
        },
    }
}

fn lines_of(layout: PlaneLayout) -> u32 {
    layout.width.min(layout.height)
}

/// The output picture for a rendition of `lines` lines (its short side, as "720p" names both
/// 1280x720 and a vertical 720x1280): the source's aspect ratio, even sides, and never larger
/// than the source (an upscale costs every stage and shows nothing new).
pub fn output_layout(source: PlaneLayout, lines: u32) -> Result<PlaneLayout> {
    let short = source.width.min(source.height).max(1);
    let lines = if lines == 0 { short } else { lines.min(short) };
    let scaled = |long: u32, by: u32| (u64::from(long) * u64::from(by) / u64::from(short)) as u32;
    // Rows are composed and encoded in whole 32-bit words of chroma: widths in multiples of 8,
    // and the other side from the width actually used, so the aspect holds.
    let (width, height) = if source.width >= source.height {
        let width = scaled(source.width, lines) & !7;
        (width, lines)
    } else {
        let width = lines & !7;
        (width, scaled(source.height, width))
    };
    Ok(PlaneLayout::new(width.max(8), (height & !1).max(2))?)
}

/// The source region a group shows: the viewer's zoom (kept to the output's shape and the
/// campaign's `max_zoom`), else the whole picture.
fn roi_of(
    source: PlaneLayout,
    output: PlaneLayout,
    zoom: Option<NormalizedRect>,
    max_zoom: f32,
) -> Roi {
    let Some(zoom) = zoom else {
        return Roi::full(source);
    };
    let geometry = RoiGeometry::new(
        (source.width, source.height),
        (output.width, output.height),
        f64::from(max_zoom).max(1.0),
    );
    let command = ZoomCommand::Region {
        x: zoom.x,
        y: zoom.y,
        w: zoom.w,
        h: zoom.h,
    };
    match geometry.and_then(|g| roi_for(command, &g)) {
        Ok(rect) => Roi {
            x: rect.x as f32,
            y: rect.y as f32,
            width: rect.w as f32,
            height: rect.h as f32,
        },
        Err(e) => {
            tracing::debug!(error = %e, "zoom not applicable; showing the whole picture");
            Roi::full(source)
        }
    }
}

/// Hysteresis for overlays that avoid faces: a short dwell (the berth around faces already
/// absorbs detection jitter) and a quick glide, so a card leaves a face's way before the face
/// gets there even when the host moves towards it.
fn placement_smoothing() -> SmoothingConfig {
    SmoothingConfig {
        min_dwell: Duration::from_millis(100),
        ease: Duration::from_millis(100),
        // At most ~100 px a frame at 30 fps: a quick glide out of the way, never a jump.
        max_speed_px_per_s: 3_000.0,
        ..SmoothingConfig::default()
    }
}

/// `r` grown by `by` pixels on every side.
fn grow(r: Rect, by: i32) -> Rect {
    Rect::from_corners(
        r.x - by,
        r.y - by,
        (r.right() + i64::from(by)) as i32,
        (r.bottom() + i64::from(by)) as i32,
    )
}

/// The follow-face ROI of a group: the follower is fed new face detections and eased a step.
fn follow_face_roi(
    group: &mut GroupRendering,
    source: PlaneLayout,
    obstacles: &Obstacles,
    fresh: bool,
    campaigns: &Campaigns,
    now: Duration,
) -> Roi {
    if group.follower.is_none() {
        let geometry = RoiGeometry::new(
            (source.width, source.height),
            (group.output.width, group.output.height),
            f64::from(campaigns.settings.max_zoom).max(1.0),
        );
        match geometry.and_then(|g| FaceFollower::new(g, FollowConfig::default())) {
            Ok(follower) => group.follower = Some(follower),
            Err(e) => {
                tracing::warn!(group = %group.name, error = %e, "follow-face unavailable; whole picture");
                return Roi::full(source);
            }
        }
    }
    let Some(follower) = group.follower.as_mut() else {
        return Roi::full(source);
    };
    if fresh {
        let faces: Vec<Face> = obstacles
            .faces
            .iter()
            .map(|(rect, score)| Face {
                rect: *rect,
                score: *score,
            })
            .collect();
        follower.observe(&faces, now);
    }
    let rect = follower.step(now);
    Roi {
        x: rect.x as f32,
        y: rect.y as f32,
        width: rect.w as f32,
        height: rect.h as f32,
    }
}

/// Frames an encoder outputs before admission learns from its encode times.
const ENCODE_OBSERVE_AFTER_FRAMES: u64 = 30;

/// What every group's encoder sink shares with the frame path.
struct SinkShared {
    telemetry: Arc<Telemetry>,
    admission: Arc<AdmissionGate>,
    /// Groups rendered in the last frame.
    live_groups: Arc<std::sync::atomic::AtomicUsize>,
    frame_window: Arc<FrameWindow>,
}

/// Runs on a group encoder's thread for every access unit: hands it to the QUIC send path and
/// records the encode, send and node latencies.
fn encoded_sink(
    group: String,
    publisher: Arc<Mutex<RenderingPublisher>>,
    pushed_at: Arc<Mutex<HashMap<u64, Instant>>>,
    pixels: u64,
    shared: SinkShared,
) -> impl FnMut(EncodedFrame) + Send + 'static {
    let SinkShared {
        telemetry,
        admission,
        live_groups,
        frame_window,
    } = shared;
    let mut frames_out = 0u64;
    move |frame: EncodedFrame| {
        let received = frame.meta.received_unix_us;
        frames_out += 1;
        {
            let mut pushed = lock(&pushed_at);
            if let Some(t) = pushed.remove(&frame.meta.seq) {
                let took = t.elapsed();
                telemetry.stage(Stage::Encode, received, took);
                // Push-to-output time is the encoder's own cost only while no other encoder
                // competes for the cores; the model adds the contention itself. An encoder's
                // first second (its IDR, cold caches, often the node's own start beside it)
                // says little about its steady cost: start-up calibration covers that time.
                if frames_out > ENCODE_OBSERVE_AFTER_FRAMES
                    && live_groups.load(std::sync::atomic::Ordering::Relaxed) <= 1
                {
                    admission.observe(|model| model.observe_encode(pixels, took));
                }
            }
            // Frames the encoder's input queue dropped (it keeps the newest) never come back:
            // count them, and forget them so the map stays small.
            let seq = frame.meta.seq;
            let before = pushed.len();
            pushed.retain(|s, _| *s > seq);
            let lost = (before - pushed.len()) as u64;
            if lost > 0 {
                telemetry.dropped(Stage::Encode, "queue-full", lost);
            }
        }
        if frame.keyframe {
            tracing::debug!(%group, seq = frame.meta.seq, "keyframe encoded");
        }
        let started = Instant::now();
        let (written, viewers, before_keyframe) = {
            let mut publisher = lock(&publisher);
            let skipped = publisher.stats().frames_dropped_before_keyframe;
            let written = publisher.write(&frame);
            let skipped = publisher.stats().frames_dropped_before_keyframe - skipped;
            (written, publisher.viewers(), skipped)
        };
        if before_keyframe > 0 {
            // A group's frames before its first keyframe cannot be decoded by anyone.
            telemetry.dropped(Stage::Send, "before-keyframe", before_keyframe);
        }
        match written {
            Ok(()) => {
                let took = started.elapsed();
                telemetry.stage(Stage::Send, received, took);
                // Delivery runs on the async runtime; its CPU per viewer-frame is measured
                // there (`delivery_cost`) against this count.
                admission.record_viewer_frames(viewers);
                let node_latency_us = unix_now_us().saturating_sub(received);
                let node_latency = Duration::from_micros(node_latency_us);
                telemetry.node_latency(received, node_latency);
                admission.record_node_latency(node_latency);
            }
            Err(e) => {
                telemetry.dropped(Stage::Send, "publish-error", 1);
                tracing::warn!(seq = frame.meta.seq, error = %e, "publish failed");
            }
        }
        frame_window.encoded(frame.meta.seq);
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Critical sections are single calls on the guarded value; poisoning leaves it consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_control::viewers::ViewerDirectory;
    use edge_telemetry::Telemetry;

    mod colour_change;
    mod live_show;

    fn viewer(session_id: u64, zone: &str) -> Viewer {
        Viewer::in_zone(session_id, "127.0.0.1".parse().unwrap(), zone)
    }

    #[test]
    fn keys_differ_exactly_where_renderings_would() {
        let campaigns = Campaigns::embedded();
        let now = 1_794_326_400;
        let a = render_key(&viewer(1, "yintai-mall"), &campaigns, None, now);
        let b = render_key(&viewer(2, "yintai-mall"), &campaigns, None, now);
        let c = render_key(&viewer(3, "default"), &campaigns, None, now);
        assert_eq!(a, b, "same zone, nothing personal: one group");
        assert_ne!(a, c, "zones differ");

        let mut named = viewer(4, "yintai-mall");
        named.name = Some("李雷".into());
        let d = render_key(&named, &campaigns, None, now);
        assert!(d.coupon.as_deref().unwrap().contains("李雷"));
        named.personal_allowed = false;
        assert_eq!(
            render_key(&named, &campaigns, None, now),
            a,
            "without personal items the viewer shares its zone's group"
        );

        let mut zoomed = viewer(5, "default");
        zoomed.zoom = Some(NormalizedRect::new(0.25, 0.25, 0.5, 0.5).unwrap());
        assert_eq!(render_key(&zoomed, &campaigns, None, now).zoom_of, Some(5));
    }

    #[test]
    fn output_keeps_the_source_aspect_with_even_sides() {
        let source = PlaneLayout::new(3840, 2160).unwrap();
        let out = output_layout(source, 720).unwrap();
        assert_eq!((out.width, out.height), (1280, 720));
        let out = output_layout(PlaneLayout::new(1280, 720).unwrap(), 360).unwrap();
        assert_eq!((out.width, out.height), (640, 360));
        let out = output_layout(PlaneLayout::new(640, 360).unwrap(), 1080).unwrap();
        assert_eq!((out.width, out.height), (640, 360), "never an upscale");
        // A vertical show: "720p" is 720 wide.
        let out = output_layout(PlaneLayout::new(1080, 1920).unwrap(), 720).unwrap();
        assert_eq!((out.width, out.height), (720, 1280));
        let out = output_layout(PlaneLayout::new(1080, 1920).unwrap(), 360).unwrap();
        assert_eq!((out.width, out.height), (360, 640));
        // Widths are whole chroma words (multiples of 8), the height follows the width used.
        let out = output_layout(PlaneLayout::new(540, 960).unwrap(), 720).unwrap();
        assert_eq!((out.width, out.height), (536, 952));
    }

    #[test]
    fn a_4x_zoom_on_4k_reads_native_pixels() {
        let source = PlaneLayout::new(3840, 2160).unwrap();
        let output = PlaneLayout::new(1280, 720).unwrap();
        let zoom = NormalizedRect::new(0.375, 0.375, 0.25, 0.25).unwrap();
        let roi = roi_of(source, output, Some(zoom), 8.0);
        // A quarter of 4K across is 960 source pixels for 1280 output pixels: every output
        // pixel comes from real 4K detail (no upscale of a downscaled picture).
        assert_eq!((roi.width, roi.height), (960.0, 540.0));
        assert!(roi.x >= 0.0 && roi.y >= 0.0);
    }

    /// A delivery server on loopback that routes every viewer to one rendering.
    fn lobby_server(rt: &tokio::runtime::Runtime) -> Arc<DeliveryServer> {
        struct Lobby;
        impl edge_deliver::SessionRouter for Lobby {
            fn route(
                &self,
                _: &edge_deliver::ViewerRequest,
            ) -> Result<String, edge_deliver::Refusal> {
                Ok("lobby".into())
            }
        }
        Arc::new(
            rt.block_on(DeliveryServer::bind(
                edge_deliver::ServerConfig {
                    listen: "127.0.0.1:0".parse().unwrap(),
                    ..edge_deliver::ServerConfig::default()
                },
                Arc::new(Lobby),
            ))
            .unwrap(),
        )
    }

    fn groups_for_test(server: Arc<DeliveryServer>) -> RenderGroups {
        RenderGroups::new(
            EncodeSettings {
                fps: 30,
                bitrate_kbps: 1000,
                gop_frames: 30,
                encoder: None,
            },
            Duration::from_secs(60),
            Vec::new(),
            server,
            Arc::new(Telemetry::new()),
            Arc::new(AdmissionGate::new(
                edge_core::admission::Admission::new(
                    Duration::from_millis(20),
                    2,
                    &[edge_core::admission::Rendition::new(320, 180)],
                    Default::default(),
                )
                .unwrap(),
            )),
        )
    }

    /// Waits until an encoder for a group of `lines` is ready, as a serving node
    /// has one before its first viewer: the first group then starts in the frame it is asked
    /// for.
    fn warmed(groups: &mut RenderGroups, source: PlaneLayout, lines: u32) {
        let output = output_layout(source, lines).unwrap();
        let config = groups.encoder_config(output, groups.groups.len() + 1);
        groups.encoders.warm(config.clone());
        let deadline = Instant::now() + Duration::from_secs(30);
        while !groups.encoders.is_ready(&config) {
            assert!(Instant::now() < deadline, "no encoder started in 30 s");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Render groups delivering to a lobby-only server, and a compositor; the runtime serves
    /// the server and is dropped last.
    fn lobby_groups() -> (tokio::runtime::Runtime, RenderGroups, Compositor) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let groups = groups_for_test(lobby_server(&rt));
        let compositor =
            Compositor::new(edge_compose::CompositorOptions::default()).expect("compositor");
        (rt, groups, compositor)
    }

    /// Renders `frame` for the directory's viewers, with the given campaigns and no obstacles.
    fn render_for(
        groups: &mut RenderGroups,
        compositor: &mut Compositor,
        directory: &ViewerDirectory,
        campaigns: &Campaigns,
        frame: &edge_core::I420Frame,
    ) {
        groups
            .render(
                compositor,
                frame,
                directory.take_changes(),
                campaigns,
                &Obstacles::default(),
                false,
            )
            .unwrap();
    }

    /// Source frame `seq` at 30 fps: mid grey, stamped now.
    fn grey_frame(layout: PlaneLayout, seq: u64) -> edge_core::I420Frame {
        let meta = edge_core::FrameMeta {
            seq,
            pts_ns: seq * 33_333_333,
            received_unix_us: unix_now_us(),
        };
        edge_core::I420Frame::new(layout, vec![96u8; layout.total_len()].into(), meta).unwrap()
    }

    /// A group whose encoder is not started yet waits for it, started on a thread of its own,
    /// while frames go on: the frame path never builds an encoder.
    #[test]
    fn a_group_waits_for_its_encoder_off_the_frame_path() {
        let (rt, mut groups, mut compositor) = lobby_groups();
        let campaigns = Campaigns::embedded();
        let layout = PlaneLayout::new(320, 180).unwrap();
        let mut watcher = viewer(1, "default");
        watcher.rendition_height = 180;
        let directory = ViewerDirectory::default();
        directory.insert(watcher);
        let mut render = |groups: &mut RenderGroups, seq: u64| {
            let frame = grey_frame(layout, seq);
            render_for(groups, &mut compositor, &directory, &campaigns, &frame);
        };
        render(&mut groups, 0);
        assert!(
            groups.groups.is_empty(),
            "no encoder was ready: none was built"
        );
        let config = groups.encoder_config(output_layout(layout, 180).unwrap(), 1);
        // A small encoder may already be up by now, on a thread of its own.
        assert!(
            groups.encoders.is_warming(&config) || groups.encoders.is_ready(&config),
            "one is being started"
        );

        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seq = 1;
        while groups.groups.is_empty() {
            assert!(Instant::now() < deadline, "the group never started");
            std::thread::sleep(Duration::from_millis(10));
            render(&mut groups, seq);
            seq += 1;
        }
        render(&mut groups, seq);
        let group = groups.groups.values().next().unwrap();
        assert_eq!(
            group.encoder.stats().frames_in,
            2,
            "encoding from the frame it started in"
        );
        drop(groups);
        drop(rt);
    }

    /// A group whose last viewer left stays (its encoder warm for a returning viewer) but is
    /// neither composed nor encoded until someone watches it again.
    #[test]
    fn a_group_in_its_grace_period_costs_no_encode() {
        let (rt, mut groups, mut compositor) = lobby_groups();
        let campaigns = Campaigns::embedded();
        let layout = PlaneLayout::new(320, 180).unwrap();
        warmed(&mut groups, layout, 180);
        let mut viewer = viewer(1, "default");
        viewer.rendition_height = 180;
        let directory = ViewerDirectory::default();
        let frames_in = |groups: &RenderGroups| -> Vec<u64> {
            groups
                .groups
                .values()
                .map(|g| g.encoder.stats().frames_in)
                .collect()
        };

        let mut render = |frames: std::ops::Range<u64>| {
            for seq in frames {
                let frame = grey_frame(layout, seq);
                render_for(&mut groups, &mut compositor, &directory, &campaigns, &frame);
            }
            frames_in(&groups)
        };
        directory.insert(viewer.clone());
        assert_eq!(render(0..5), vec![5], "one group, every frame encoded");
        directory.remove(1);
        assert_eq!(
            render(5..15),
            vec![5],
            "the group is kept for its grace period, and nothing more is encoded"
        );
        directory.insert(viewer);
        assert_eq!(
            render(15..18),
            vec![8],
            "the returning viewer finds the same group, encoding again"
        );
        drop(groups);
        drop(rt);
    }
}
