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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use edge_core::annexb;
use edge_core::EncodedFrame;
use moq_net::{broadcast, group, origin, track, Timestamp};

use crate::feed::{Feed, FeedFrame};
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
    keyframe_requested: AtomicBool,
    published: AtomicBool,
    /// Feeds this rendering writes every frame into.
    members: Mutex<Vec<Arc<Feed>>>,
    /// Feeds waiting for this rendering's next keyframe to join it.
    incoming: Mutex<Vec<Arc<Feed>>>,
}

impl RenderingState {
    fn viewers(&self, rendering: &str) -> usize {
        let members = lock(&self.members).len();
        let incoming = lock(&self.incoming)
            .iter()
            .filter(|f| f.pending().as_deref() == Some(rendering))
            .count();
        members + incoming
    }

    fn forget(&self, feed: &Arc<Feed>) {
        lock(&self.members).retain(|f| !Arc::ptr_eq(f, feed));
        lock(&self.incoming).retain(|f| !Arc::ptr_eq(f, feed));
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Critical sections are single updates of plain collections; a panic elsewhere leaves them
    // consistent, so keep serving.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Every rendering known to the server (published ones and ones viewers wait for) and every
/// viewer's feed. Entries live while either side holds them.
#[derive(Default)]
pub(crate) struct Renderings {
    by_name: Mutex<HashMap<String, Arc<RenderingState>>>,
    feeds: Mutex<HashMap<u64, Arc<Feed>>>,
    closed: AtomicBool,
}

impl Renderings {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<RenderingState>>> {
        lock(&self.by_name)
    }

    fn state(&self, rendering: &str) -> Arc<RenderingState> {
        self.lock()
            .entry(rendering.to_string())
            .or_default()
            .clone()
    }

    /// Registers a viewer's feed and starts its move into `rendering`, asking that rendering's
    /// encoder for an IDR so the viewer starts on a fresh group instead of waiting out a GOP.
    pub fn viewer_joined(self: &Arc<Self>, feed: Arc<Feed>, rendering: &str) -> ViewerGuard {
        lock(&self.feeds).insert(feed.session_id, feed.clone());
        self.move_feed(&feed, rendering);
        ViewerGuard {
            renderings: self.clone(),
            feed,
        }
    }

    /// Moves a viewer to another rendering at that rendering's next keyframe (requested now).
    /// Returns false for an unknown session or when the viewer is already there.
    pub fn move_viewer(&self, session_id: u64, rendering: &str) -> bool {
        let Some(feed) = lock(&self.feeds).get(&session_id).cloned() else {
            return false;
        };
        self.move_feed(&feed, rendering)
    }

    fn move_feed(&self, feed: &Arc<Feed>, rendering: &str) -> bool {
        if let Some(previous) = feed.pending() {
            if let Some(state) = self.lock().get(&previous) {
                lock(&state.incoming).retain(|f| !Arc::ptr_eq(f, feed));
            }
        }
        if !feed.request_move(rendering) {
            return false;
        }
        let state = self.state(rendering);
        lock(&state.incoming).push(feed.clone());
        state.keyframe_requested.store(true, Ordering::Relaxed);
        true
    }

    /// Sends a metadata message to every viewer; returns how many feeds took it.
    pub fn publish_metadata(&self, message: &Bytes, timestamp_us: u64) -> usize {
        let feeds: Vec<Arc<Feed>> = lock(&self.feeds).values().cloned().collect();
        feeds
            .iter()
            .filter(|feed| match feed.write_metadata(message, timestamp_us) {
                Ok(()) => true,
                Err(e) => {
                    tracing::debug!(session = feed.session_id, error = %e, "metadata write failed");
                    false
                }
            })
            .count()
    }

    /// The rendering a session is in, and the one it is moving to.
    pub fn viewer_rendering(&self, session_id: u64) -> Option<(Option<String>, Option<String>)> {
        let feed = lock(&self.feeds).get(&session_id).cloned()?;
        Some((feed.current(), feed.pending()))
    }

    pub fn viewers(&self, rendering: &str) -> usize {
        let state = self.lock().get(rendering).cloned();
        state.map(|s| s.viewers(rendering)).unwrap_or(0)
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
        let state = self.state(rendering);
        if state.published.swap(true, Ordering::Relaxed) {
            return Err(DeliverError::DuplicateRendering(rendering.to_string()));
        }
        Ok(state)
    }

    fn release(&self, rendering: &str) {
        let mut map = self.lock();
        if let Some(state) = map.get(rendering) {
            state.published.store(false, Ordering::Relaxed);
            if state.viewers(rendering) == 0 {
                map.remove(rendering);
            }
        }
    }

    /// Takes a feed out of the rendering it is leaving.
    fn leave(&self, rendering: &str, feed: &Arc<Feed>) {
        if let Some(state) = self.lock().get(rendering).cloned() {
            lock(&state.members).retain(|f| !Arc::ptr_eq(f, feed));
        }
    }

    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

/// Holds one viewer's feed in its rendering until the session ends.
pub(crate) struct ViewerGuard {
    renderings: Arc<Renderings>,
    feed: Arc<Feed>,
}

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        self.feed.close();
        lock(&self.renderings.feeds).remove(&self.feed.session_id);
        let mut map = self.renderings.lock();
        map.retain(|name, state| {
            state.forget(&self.feed);
            // Unpublished and unwatched: forgotten, so routing junk names cannot grow the map.
            state.published.load(Ordering::Relaxed) || state.viewers(name) > 0
        });
    }
}

/// Keeps a track's timestamps strictly increasing. The node gives every rendering the same
/// media clock (one per upstream, continuous across reconnects), so the presentation time is
/// used as is: that is what lets a viewer move between renderings on one timeline. A repeated
/// or backwards time (never expected) is nudged one microsecond past the last.
#[derive(Debug, Default)]
struct MediaClock {
    last_us: Option<u64>,
}

impl MediaClock {
    fn track_time_us(&mut self, pts_ns: u64) -> u64 {
        let time = pts_ns / 1_000;
        let time = match self.last_us {
            Some(last) if time <= last => last + 1,
            _ => time,
        };
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
    /// The catalog as published, handed to feeds joining at a keyframe.
    catalog_json: Bytes,
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
            catalog_json: Bytes::new(),
            clock: MediaClock::default(),
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
        let timestamp_us = self.clock.track_time_us(frame.meta.pts_ns);
        let timestamp = Timestamp::from_micros(timestamp_us).map_err(hang::Error::from)?;
        hang::container::Frame {
            timestamp,
            payload: frame.data.clone(),
        }
        .write_to(group)?;
        self.stats.frames_written += 1;
        self.stats.bytes_written += frame.data.len() as u64;
        self.fan_out(&FeedFrame {
            keyframe: frame.keyframe,
            timestamp_us,
            payload: &frame.data,
            catalog: &self.catalog_json,
        });
        Ok(())
    }

    /// Writes the frame into every member's feed; on a keyframe, first takes in the viewers
    /// waiting to join. One viewer's broken feed never costs the others their frame.
    fn fan_out(&self, frame: &FeedFrame<'_>) {
        if frame.keyframe {
            self.admit_incoming();
        }
        let mut members = lock(&self.state.members);
        members.retain(|feed| !feed.is_closed());
        for feed in members.iter() {
            if let Err(e) = feed.write(frame) {
                tracing::debug!(rendering = %self.rendering, session = feed.session_id, error = %e, "feed write failed");
            }
        }
    }

    fn admit_incoming(&self) {
        let incoming = std::mem::take(&mut *lock(&self.state.incoming));
        for feed in incoming {
            if !feed.ready_to_move(&self.rendering) {
                continue; // superseded by a later move, or the viewer left
            }
            if let Some(left) = feed.commit_move(&self.rendering) {
                self.renderings.leave(&left, &feed);
                tracing::debug!(session = feed.session_id, from = %left, to = %self.rendering, "viewer moved");
            }
            lock(&self.state.members).push(feed);
        }
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
        let json = Bytes::from(catalog_json(&self.video_info, profile)?);
        let mut group = self.catalog_track.append_group()?;
        group.write_frame(Timestamp::now(), json.clone())?;
        self.catalog_json = json;
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

    /// Viewers in this rendering or waiting for its next keyframe to join it.
    pub fn viewers(&self) -> usize {
        self.state.viewers(&self.rendering)
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
    fn media_clock_keeps_the_shared_timeline_and_never_goes_back() {
        let mut clock = MediaClock::default();
        assert_eq!(clock.track_time_us(3_600_000_000_000), 3_600_000_000);
        assert_eq!(clock.track_time_us(3_600_033_333_333), 3_600_033_333);
        assert_eq!(clock.track_time_us(3_600_033_333_333), 3_600_033_334);
        assert_eq!(clock.track_time_us(1_000_000), 3_600_033_335);
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

    #[tokio::test]
    async fn viewers_move_between_renderings_at_keyframes() {
        let (origin, driver) = origin::Producer::new(origin::Config::default());
        let driver = tokio::spawn(moq_net::time::run(driver));
        let renderings = Arc::new(Renderings::default());
        let video = VideoTrackInfo {
            width: 320,
            height: 240,
            fps: 30.0,
        };
        let mut a = RenderingPublisher::new(&origin, renderings.clone(), "a", video).unwrap();
        let mut b = RenderingPublisher::new(&origin, renderings.clone(), "b", video).unwrap();
        let guard = renderings.viewer_joined(Feed::create(&origin, 7).unwrap(), "a");
        assert_eq!(renderings.viewers("a"), 1, "waiting viewers count");
        assert!(
            a.take_keyframe_request(),
            "a joining viewer asks for an IDR"
        );

        let frame = |seq: u64, keyframe: bool| EncodedFrame {
            meta: edge_core::FrameMeta {
                seq,
                pts_ns: seq * 33_333_333,
                received_unix_us: 0,
            },
            keyframe,
            data: Bytes::from(vec![0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }, 0x88]),
            encoded_unix_us: 0,
        };
        a.write(&frame(1, false)).unwrap();
        assert_eq!(
            renderings.viewer_rendering(7),
            Some((None, Some("a".into())))
        );
        a.write(&frame(2, true)).unwrap();
        assert_eq!(
            renderings.viewer_rendering(7),
            Some((Some("a".into()), None))
        );

        assert!(renderings.move_viewer(7, "b"));
        assert!(b.take_keyframe_request());
        a.write(&frame(3, false)).unwrap();
        b.write(&frame(3, false)).unwrap();
        assert_eq!(
            renderings.viewer_rendering(7),
            Some((Some("a".into()), Some("b".into())))
        );
        // b runs a frame behind a: it still takes the viewer at its keyframe.
        b.write(&frame(3, true)).unwrap();
        assert_eq!(
            renderings.viewer_rendering(7),
            Some((Some("b".into()), None))
        );
        assert_eq!((renderings.viewers("a"), renderings.viewers("b")), (0, 1));

        drop(guard);
        assert_eq!(renderings.viewers("b"), 0);
        assert!(renderings.viewer_rendering(7).is_none());
        drop((a, b));
        // Unpublished and unwatched: forgotten, so routing junk names cannot grow the map.
        assert!(renderings.lock().is_empty());
        driver.abort();
    }
}
