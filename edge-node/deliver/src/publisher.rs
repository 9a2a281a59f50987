//! Publishing one rendering: encoded access units in, a `hang` broadcast out.
//!
//! A rendering is published on the shared origin at `<rendering>/live` with two tracks: the hang
//! catalog (`catalog.json`) and the video track (`avc3`, legacy container, microsecond
//! timestamps). Each IDR opens a new MoQ group and finishes the previous one, so a group is
//! exactly one GOP and a viewer that joins or falls behind starts at a group boundary, on a
//! frame it can decode.
//!
//! Everything here is synchronous: moq-net's model is shared state plus wakers, so a write only
//! appends to the group in memory and wakes the session tasks that forward it. That is what lets
//! the encoder's callback thread call [`RenderingPublisher::write`] without an async runtime and
//! without ever waiting on the network.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use edge_core::annexb;
use edge_core::EncodedFrame;
use moq_net::{broadcast, group, origin, track, Timestamp};

use crate::router::validate_rendering_name;
use crate::{DeliverError, BROADCAST_NAME, VIDEO_TRACK_NAME};

/// What the catalog says about a rendering's video.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VideoTrackInfo {
    pub width: u32,
    pub height: u32,
    pub fps: f64,
}

/// Counters of one rendering's publisher, for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublisherStats {
    pub frames_written: u64,
    pub bytes_written: u64,
    /// One per keyframe: each opens a MoQ group.
    pub groups_started: u64,
    /// Frames that arrived before the first keyframe (or after a failed group): undecodable for
    /// any viewer, so intentionally dropped.
    pub frames_dropped_before_keyframe: u64,
}

/// Per-rendering state shared between its publisher and the sessions routed to it.
#[derive(Default)]
pub(crate) struct RenderingState {
    viewers: AtomicUsize,
    keyframe_requested: AtomicBool,
    published: AtomicBool,
}

/// Every rendering known to the server: published ones and ones viewers were routed to before
/// the node published them. Entries live while either side holds them.
#[derive(Default)]
pub(crate) struct Renderings {
    by_name: Mutex<HashMap<String, Arc<RenderingState>>>,
    closed: AtomicBool,
}

impl Renderings {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<RenderingState>>> {
        // A poisoned map only means another thread panicked mid-update of plain counters;
        // the map itself is still consistent, so keep serving.
        self.by_name
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts a viewer in and asks the rendering's encoder for an IDR, so the viewer starts on
    /// a fresh group instead of catching up through the rest of the current GOP.
    pub fn viewer_joined(self: &Arc<Self>, rendering: &str) -> ViewerGuard {
        let state = self
            .lock()
            .entry(rendering.to_string())
            .or_default()
            .clone();
        state.viewers.fetch_add(1, Ordering::Relaxed);
        state.keyframe_requested.store(true, Ordering::Relaxed);
        ViewerGuard {
            renderings: self.clone(),
            rendering: rendering.to_string(),
        }
    }

    pub fn viewers(&self, rendering: &str) -> usize {
        self.lock()
            .get(rendering)
            .map(|s| s.viewers.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// Returns false when no such rendering is published.
    pub fn request_keyframe(&self, rendering: &str) -> bool {
        match self.lock().get(rendering) {
            Some(state) if state.published.load(Ordering::Relaxed) => {
                state.keyframe_requested.store(true, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    fn claim(&self, rendering: &str) -> Result<Arc<RenderingState>, DeliverError> {
        let mut map = self.lock();
        let state = map.entry(rendering.to_string()).or_default().clone();
        if state.published.swap(true, Ordering::Relaxed) {
            return Err(DeliverError::DuplicateRendering(rendering.to_string()));
        }
        Ok(state)
    }

    fn release(&self, rendering: &str) {
        let mut map = self.lock();
        if let Some(state) = map.get(rendering) {
            state.published.store(false, Ordering::Relaxed);
            if state.viewers.load(Ordering::Relaxed) == 0 {
                map.remove(rendering);
            }
        }
    }

    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

/// Holds one viewer's place in a rendering's count until the session ends.
pub(crate) struct ViewerGuard {
    renderings: Arc<Renderings>,
    rendering: String,
}

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        let mut map = self.renderings.lock();
        if let Some(state) = map.get(&self.rendering) {
            let before = state.viewers.fetch_sub(1, Ordering::Relaxed);
            if before <= 1 && !state.published.load(Ordering::Relaxed) {
                map.remove(&self.rendering);
            }
        }
    }
}

/// Maps encoder presentation times onto the track's microsecond timeline: zero at the first
/// frame, strictly increasing. Track retention and players both assume monotonic time, while an
/// upstream may restart or jump back; a backwards step is rebased to continue one nominal frame
/// after the last timestamp.
#[derive(Debug)]
struct MediaClock {
    frame_us: u64,
    /// `pts_us - offset_us` is the track time, while the upstream clock is continuous.
    offset_us: Option<i128>,
    last_us: Option<u64>,
}

impl MediaClock {
    fn new(fps: f64) -> Self {
        let frame_us = if fps.is_finite() && fps > 0.0 {
            (1_000_000.0 / fps).round().max(1.0) as u64
        } else {
            33_333
        };
        Self {
            frame_us,
            offset_us: None,
            last_us: None,
        }
    }

    fn track_time_us(&mut self, pts_ns: u64) -> u64 {
        let pts_us = i128::from(pts_ns / 1_000);
        let offset = *self.offset_us.get_or_insert(pts_us);
        let mut time = pts_us - offset;
        if let Some(last) = self.last_us {
            if time <= i128::from(last) {
                let next = last + self.frame_us;
                self.offset_us = Some(pts_us - i128::from(next));
                time = i128::from(next);
            }
        }
        let time = u64::try_from(time).unwrap_or(0);
        self.last_us = Some(time);
        time
    }
}

/// The H.264 profile/constraints/level triple the catalog's `avc3.PPCCLL` codec string names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AvcProfile {
    profile: u8,
    constraints: u8,
    level: u8,
}

impl AvcProfile {
    /// Reads the triple from the first SPS of an access unit (bytes 1-3 of the SPS RBSP).
    fn from_access_unit(access_unit: &[u8]) -> Option<Self> {
        let sps =
            annexb::nal_units(access_unit).find(|n| annexb::nal_type(n) == annexb::NAL_SPS)?;
        let head = annexb::unescape_rbsp(&sps[..sps.len().min(8)]);
        let (profile, constraints, level) = (*head.get(1)?, *head.get(2)?, *head.get(3)?);
        (profile != 0 && level != 0).then_some(Self {
            profile,
            constraints,
            level,
        })
    }

    /// Used only when a keyframe carries no readable SPS: High profile at a level that fits the
    /// picture size, which any decoder that handles the real stream also accepts.
    fn fallback(video: &VideoTrackInfo) -> Self {
        let pixels = u64::from(video.width) * u64::from(video.height);
        let level = match pixels {
            0..=414_720 => 0x1e,         // 3.0: up to 720x576
            414_721..=921_600 => 0x1f,   // 3.1: 720p
            921_601..=2_097_152 => 0x28, // 4.0: 1080p
            _ => 0x33,                   // 5.1: 4K
        };
        Self {
            profile: 0x64,
            constraints: 0,
            level,
        }
    }
}

/// Publishes one rendering. Created by [`crate::DeliveryServer::publish_rendering`]; dropping it
/// ends the broadcast (viewers see it end and wait for a new one).
///
/// `Send`, synchronous and non-blocking: call it from the encoder's output thread.
pub struct RenderingPublisher {
    rendering: String,
    video_info: VideoTrackInfo,
    renderings: Arc<Renderings>,
    state: Arc<RenderingState>,
    broadcast: broadcast::Producer,
    catalog_track: track::Producer,
    video_track: track::Producer,
    /// The open group (current GOP); `None` until the first keyframe.
    group: Option<group::Producer>,
    /// What the published catalog says; `None` until the first keyframe, and also the marker
    /// that the broadcast has been announced.
    published_profile: Option<AvcProfile>,
    clock: MediaClock,
    stats: PublisherStats,
}

impl RenderingPublisher {
    pub(crate) fn new(
        origin: &origin::Producer,
        renderings: Arc<Renderings>,
        rendering: &str,
        video_info: VideoTrackInfo,
    ) -> Result<Self, DeliverError> {
        validate_rendering_name(rendering).map_err(|reason| DeliverError::InvalidRendering {
            name: rendering.to_string(),
            reason,
        })?;
        if renderings.is_closed() {
            return Err(DeliverError::ServerClosed);
        }
        let state = renderings.claim(rendering)?;
        let tracks = (|| {
            let broadcast = origin.create_broadcast(format!("{rendering}/{BROADCAST_NAME}"))?;
            let catalog_track = broadcast.create_track(
                hang::Catalog::DEFAULT_NAME,
                hang::Catalog::default_track_info(),
            )?;
            let video_track = broadcast.create_track(
                VIDEO_TRACK_NAME,
                hang::container::track_info(hang::catalog::PRIORITY.video),
            )?;
            Ok::<_, moq_net::Error>((broadcast, catalog_track, video_track))
        })();
        let (broadcast, catalog_track, video_track) = match tracks {
            Ok(tracks) => tracks,
            Err(e) => {
                renderings.release(rendering);
                return Err(e.into());
            }
        };
        Ok(Self {
            rendering: rendering.to_string(),
            video_info,
            renderings,
            state,
            broadcast,
            catalog_track,
            video_track,
            group: None,
            published_profile: None,
            clock: MediaClock::new(video_info.fps),
            stats: PublisherStats::default(),
        })
    }

    pub fn rendering(&self) -> &str {
        &self.rendering
    }

    /// Hands one access unit to every viewer of this rendering. A keyframe finishes the current
    /// group and opens a new one; frames before the first keyframe are dropped and counted.
    ///
    /// Returns as soon as the frame is in the track (the "handed to the QUIC send path" point of
    /// the latency vocabulary); the session tasks put it on the wire. On an error the open group
    /// is abandoned and an IDR requested, so the stream recovers at the next keyframe.
    pub fn write(&mut self, frame: &EncodedFrame) -> Result<(), DeliverError> {
        if self.renderings.is_closed() {
            return Err(DeliverError::ServerClosed);
        }
        let result = self.write_inner(frame);
        if result.is_err() {
            self.group = None;
            self.state.keyframe_requested.store(true, Ordering::Relaxed);
        }
        result
    }

    fn write_inner(&mut self, frame: &EncodedFrame) -> Result<(), DeliverError> {
        if frame.keyframe {
            self.publish_catalog_for(&frame.data)?;
            if let Some(previous) = self.group.take() {
                previous.finish()?;
            }
            self.group = Some(self.video_track.append_group()?);
            self.stats.groups_started += 1;
        }
        let Some(group) = self.group.as_mut() else {
            self.stats.frames_dropped_before_keyframe += 1;
            return Ok(());
        };
        let timestamp = Timestamp::from_micros(self.clock.track_time_us(frame.meta.pts_ns))
            .map_err(hang::Error::from)?;
        hang::container::Frame {
            timestamp,
            payload: frame.data.clone(),
        }
        .write_to(group)?;
        self.stats.frames_written += 1;
        self.stats.bytes_written += frame.data.len() as u64;
        Ok(())
    }

    /// Writes the catalog on the first keyframe (and again if the SPS profile or level changes),
    /// then announces the broadcast: announcing only once it is playable means a viewer never
    /// finds a broadcast whose catalog it has to wait for.
    fn publish_catalog_for(&mut self, keyframe: &[u8]) -> Result<(), DeliverError> {
        let profile = AvcProfile::from_access_unit(keyframe)
            .or(self.published_profile)
            .unwrap_or_else(|| AvcProfile::fallback(&self.video_info));
        if self.published_profile == Some(profile) {
            return Ok(());
        }
        let json = catalog_json(&self.video_info, profile)?;
        let mut group = self.catalog_track.append_group()?;
        group.write_frame(Timestamp::now(), Bytes::from(json))?;
        group.finish()?;
        if self.published_profile.is_none() {
            self.broadcast.announce(moq_net::origin::Route::default())?;
            tracing::info!(rendering = %self.rendering, profile = ?profile, "rendering announced");
        }
        self.published_profile = Some(profile);
        Ok(())
    }

    /// True once after a viewer joined this rendering (or someone asked for a keyframe): the
    /// encoder should make its next frame an IDR.
    pub fn take_keyframe_request(&self) -> bool {
        self.state.keyframe_requested.swap(false, Ordering::Relaxed)
    }

    /// Viewers currently routed to this rendering.
    pub fn viewers(&self) -> usize {
        self.state.viewers.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> PublisherStats {
        self.stats
    }
}

impl Drop for RenderingPublisher {
    fn drop(&mut self) {
        if let Some(group) = self.group.take() {
            // The group may already be gone with the origin at shutdown; nothing to recover.
            let _ = group.finish();
        }
        self.renderings.release(&self.rendering);
        tracing::info!(rendering = %self.rendering, stats = ?self.stats, "rendering unpublished");
    }
}

fn catalog_json(video: &VideoTrackInfo, profile: AvcProfile) -> Result<String, hang::Error> {
    let codec = hang::catalog::H264 {
        inline: true, // avc3: SPS/PPS travel in band on every IDR
        profile: profile.profile,
        constraints: profile.constraints,
        level: profile.level,
    };
    let mut config = hang::catalog::VideoConfig::new(codec);
    config.coded_width = Some(video.width);
    config.coded_height = Some(video.height);
    if video.fps.is_finite() && video.fps > 0.0 {
        config.framerate = Some(video.fps);
        // Each frame is flushed the moment it is encoded (no B-frames, no batching).
        config.jitter = Some(Duration::from_secs_f64(1.0 / video.fps));
    }
    config.optimize_for_latency = Some(true);
    config.container = hang::catalog::Container::Legacy;
    let mut catalog = hang::Catalog::<()>::default();
    catalog.video.insert(VIDEO_TRACK_NAME, config)?;
    catalog.to_json()
}

#[cfg(test)]
mod tests {
    use super::*;

    const _: fn() = || {
        fn assert_send<T: Send>() {}
        assert_send::<RenderingPublisher>();
    };

    #[test]
    fn media_clock_starts_at_zero_and_never_goes_back() {
        let mut clock = MediaClock::new(30.0);
        let base = 3_600_000_000_000u64; // one hour of running time
        assert_eq!(clock.track_time_us(base), 0);
        assert_eq!(clock.track_time_us(base + 33_333_333), 33_333);
        // The upstream restarts: continue one frame later, then follow the new clock.
        assert_eq!(clock.track_time_us(1_000_000), 66_666);
        assert_eq!(clock.track_time_us(1_000_000 + 33_333_000), 99_999);
        // A repeated timestamp still advances.
        assert_eq!(clock.track_time_us(1_000_000 + 33_333_000), 133_332);
    }

    #[test]
    fn profile_is_read_from_the_sps() {
        // SPS: High (0x64), constraints 0x00, level 3.1 (0x1f).
        let au = [
            0, 0, 0, 1, 0x67, 0x64, 0x00, 0x1f, 0xac, 0, 0, 0, 1, 0x65, 0x88,
        ];
        assert_eq!(
            AvcProfile::from_access_unit(&au),
            Some(AvcProfile {
                profile: 0x64,
                constraints: 0,
                level: 0x1f
            })
        );
        assert_eq!(AvcProfile::from_access_unit(&[0, 0, 1, 0x65, 0x88]), None);
        assert_eq!(AvcProfile::from_access_unit(&[0, 0, 1, 0x67]), None);
    }

    #[test]
    fn catalog_names_avc3_with_the_stream_profile() {
        let video = VideoTrackInfo {
            width: 1280,
            height: 720,
            fps: 30.0,
        };
        let json = catalog_json(&video, AvcProfile::fallback(&video)).unwrap();
        let catalog = hang::Catalog::<()>::from_str(&json).unwrap();
        let config = &catalog.video.renditions[VIDEO_TRACK_NAME];
        assert_eq!(config.codec.to_string(), "avc3.64001f");
        assert_eq!(config.coded_width, Some(1280));
        assert_eq!(config.container, hang::catalog::Container::Legacy);
    }

    #[test]
    fn viewer_counts_follow_guards_and_request_keyframes() {
        let renderings = Arc::new(Renderings::default());
        let first = renderings.viewer_joined("a");
        let second = renderings.viewer_joined("a");
        assert_eq!(renderings.viewers("a"), 2);
        assert!(renderings.lock()["a"]
            .keyframe_requested
            .load(Ordering::Relaxed));
        drop(first);
        drop(second);
        // Unpublished and unwatched: forgotten, so routing junk names cannot grow the map.
        assert!(renderings.lock().is_empty());
        assert!(!renderings.request_keyframe("a"));
    }
}
