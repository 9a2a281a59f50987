//! Publishing one rendering: encoded access units in, a `hang` broadcast out.
//!
//! A rendering is published on the shared origin at `<rendering>/live` with three tracks: the
//! hang catalog (`catalog.json`), the video track (`avc3`, legacy container, microsecond
//! timestamps) and the overlays drawn ([`crate::OVERLAYS_TRACK_NAME`]). Each IDR opens a new MoQ group and finishes the previous one, so a group is
//! exactly one GOP and a viewer that joins or falls behind starts at a group boundary, on a
//! frame it can decode.
//!
//! Everything here is synchronous: moq-net's model is shared state plus wakers, so a write only
//! appends to the group in memory and wakes the tasks that read it (each viewer's forwarder, the
//! relay uplink). That is what lets the encoder's callback thread call
//! [`RenderingPublisher::write`] without an async runtime, once per access unit however many
//! viewers watch, and without ever waiting on the network.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use edge_core::annexb;
use edge_core::EncodedFrame;
use moq_net::{broadcast, group, origin, track, Timestamp};
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::feed::Feed;
use crate::overlay_log::{OverlayLog, OverlayPending};
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

/// What a published rendering offers the forwarders that read it.
#[derive(Clone)]
pub(crate) struct RenderingSource {
    pub video: track::Producer,
    /// The catalog describing `video`, written into a feed when it joins.
    pub catalog: Bytes,
}

/// Per-rendering state shared between its publisher and the sessions routed to it.
pub(crate) struct RenderingState {
    keyframe_requested: AtomicBool,
    published: AtomicBool,
    /// Feeds reading this rendering.
    members: Mutex<Vec<Arc<Feed>>>,
    /// Feeds waiting for this rendering's next keyframe to join it.
    incoming: Mutex<Vec<Arc<Feed>>>,
    /// The track to read, once the rendering is playable; `None` before and after.
    source: watch::Sender<Option<RenderingSource>>,
    /// Which overlays the rendering drew where (see [`crate::overlay_log`]).
    overlays: watch::Sender<OverlayLog>,
}

impl Default for RenderingState {
    fn default() -> Self {
        Self {
            keyframe_requested: AtomicBool::new(false),
            published: AtomicBool::new(false),
            members: Mutex::default(),
            incoming: Mutex::default(),
            source: watch::Sender::new(None),
            overlays: watch::Sender::new(OverlayLog::default()),
        }
    }
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

    /// Registers a viewer's feed, starts its forwarder and its move into `rendering`, asking
    /// that rendering's encoder for an IDR so the viewer starts on a fresh group instead of
    /// waiting out a GOP. Must be called inside a tokio runtime.
    pub fn viewer_joined(self: &Arc<Self>, feed: Arc<Feed>, rendering: &str) -> ViewerGuard {
        lock(&self.feeds).insert(feed.session_id, feed.clone());
        let forwarder = tokio::spawn(crate::forward::run(
            feed.clone(),
            self.clone(),
            feed.move_requests(),
        ));
        self.move_feed(&feed, rendering);
        ViewerGuard {
            renderings: self.clone(),
            feed,
            forwarder: forwarder.abort_handle(),
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
        let state = self.state(rendering);
        // Read before the keyframe request, so the group that keyframe opens is newer.
        let after_group = state
            .source
            .borrow()
            .as_ref()
            .and_then(|s| s.video.latest());
        if !feed.request_move(rendering, after_group) {
            return false;
        }
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

    /// Where a forwarder finds the track of `rendering`, now and after every republication.
    pub(crate) fn sources(&self, rendering: &str) -> watch::Receiver<Option<RenderingSource>> {
        self.state(rendering).source.subscribe()
    }

    /// Where a forwarder finds which overlays `rendering` drew where.
    pub(crate) fn overlays(&self, rendering: &str) -> watch::Receiver<OverlayLog> {
        self.state(rendering).overlays.subscribe()
    }

    /// Records a completed move: the feed reads `joined` now, and no longer `left`.
    pub(crate) fn committed(&self, feed: &Arc<Feed>, left: Option<&str>, joined: &str) {
        let (left, joined) = {
            let map = self.lock();
            (
                left.and_then(|name| map.get(name).cloned()),
                map.get(joined).cloned(),
            )
        };
        if let Some(state) = left {
            lock(&state.members).retain(|f| !Arc::ptr_eq(f, feed));
        }
        if let Some(state) = joined {
            lock(&state.incoming).retain(|f| !Arc::ptr_eq(f, feed));
            lock(&state.members).push(feed.clone());
        }
    }

    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

/// Holds one viewer's feed and forwarder in its rendering until the session ends.
pub(crate) struct ViewerGuard {
    renderings: Arc<Renderings>,
    feed: Arc<Feed>,
    forwarder: AbortHandle,
}

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        self.forwarder.abort();
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
    /// The overlays drawn, for whoever reads the rendering itself (a relay's viewers); the
    /// node's own viewers get them through their feeds.
    overlays_track: track::Producer,
    /// The open group (current GOP); `None` until the first keyframe.
    group: Option<group::Producer>,
    /// What the published catalog says; `None` until the first keyframe, and also the marker
    /// that the broadcast has been announced.
    published_profile: Option<AvcProfile>,
    clock: MediaClock,
    /// Overlay layouts waiting for the first encoded frame drawn with them.
    overlays: OverlayPending,
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
        // A republication starts its own layouts; viewers still waiting keep the state.
        state.overlays.send_replace(OverlayLog::default());
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
            let overlays_track = broadcast.create_track(
                crate::OVERLAYS_TRACK_NAME,
                track::Info::default().with_timescale(moq_net::Timescale::MICRO),
            )?;
            Ok::<_, moq_net::Error>((broadcast, catalog_track, video_track, overlays_track))
        })();
        let (broadcast, catalog_track, video_track, overlays_track) = match tracks {
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
            overlays_track,
            group: None,
            published_profile: None,
            clock: MediaClock::default(),
            overlays: OverlayPending::default(),
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
        let timestamp_us = self.clock.track_time_us(frame.meta.pts_ns);
        // Logged before the frame is in the track, so a forwarder reading the frame finds it.
        let overlays = self.overlays.frame_written(
            frame.meta.pts_ns,
            timestamp_us,
            frame.keyframe,
            &self.state.overlays,
        );
        let Some(group) = self.group.as_mut() else {
            self.stats.frames_dropped_before_keyframe += 1;
            return Ok(());
        };
        let timestamp = Timestamp::from_micros(timestamp_us).map_err(hang::Error::from)?;
        if let Some(overlays) = overlays {
            let mut message = self.overlays_track.append_group()?;
            message.write_frame(timestamp, overlays)?;
            message.finish()?;
        }
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
        let json = Bytes::from(catalog_json(&self.video_info, profile)?);
        let mut group = self.catalog_track.append_group()?;
        group.write_frame(Timestamp::now(), json.clone())?;
        group.finish()?;
        self.state.source.send_replace(Some(RenderingSource {
            video: self.video_track.clone(),
            catalog: json,
        }));
        if self.published_profile.is_none() {
            self.broadcast.announce(moq_net::origin::Route::default())?;
            tracing::info!(rendering = %self.rendering, profile = ?profile, "rendering announced");
        }
        self.published_profile = Some(profile);
        Ok(())
    }

    /// The overlays drawn, as one [`crate::OVERLAYS_TRACK_NAME`] message (UTF-8 JSON), from the
    /// frame of presentation time `pts_ns` on: it reaches each viewer beside the first frame
    /// drawn that way, and again at every keyframe. Call it when the layout changes, before
    /// that frame is encoded; cheap and non-blocking (the message is only queued here).
    pub fn set_overlays(&mut self, pts_ns: u64, message: Bytes) {
        self.overlays.push(pts_ns, message);
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
        // Forwarders see the source go before the track ends, so none re-reads a dead track.
        self.state.source.send_replace(None);
        if let Some(group) = self.group.take() {
            // The group may already be gone with the origin at shutdown; nothing to recover.
            let _ = group.finish();
        }
        let _ = self.video_track.finish();
        let _ = self.overlays_track.finish();
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

    fn frame(seq: u64, keyframe: bool) -> EncodedFrame {
        EncodedFrame {
            meta: edge_core::FrameMeta {
                seq,
                pts_ns: seq * 33_333_333,
                received_unix_us: 0,
            },
            keyframe,
            // The second byte tells renderings apart in what the viewer receives.
            data: Bytes::from(vec![0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }, 0x88]),
            encoded_unix_us: 0,
        }
    }

    /// What one viewer's feed delivers, read the way a session reads it.
    struct FeedReader {
        subscriber: track::Subscriber,
        group: Option<group::Consumer>,
    }

    /// (first frame of a group, source frame number, rendering tag) of one delivered frame.
    type Delivered = (bool, u64, u8);

    impl FeedReader {
        async fn open(origin: &origin::Producer, session_id: u64) -> Self {
            let path = format!("{}/{BROADCAST_NAME}", crate::feed::feed_scope(session_id));
            // The feed is announced once the forwarder has written its first keyframe.
            let mut broadcast = None;
            for _ in 0..50 {
                if let Ok(found) = origin.consume().request_broadcast(&path).await {
                    broadcast = Some(found);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let broadcast = broadcast.expect("the feed is announced");
            let subscription = track::Subscription::default().with_max_age(Duration::from_secs(30));
            let subscriber = broadcast
                .track(VIDEO_TRACK_NAME)
                .unwrap()
                .subscribe(subscription)
                .await
                .unwrap();
            Self {
                subscriber,
                group: None,
            }
        }

        /// The next delivered frame, or `None` when nothing comes within 300 ms.
        async fn next(&mut self) -> Option<Delivered> {
            let read = async {
                loop {
                    if self.group.is_none() {
                        self.group = Some(self.subscriber.recv_group().await.ok()??);
                    }
                    let group = self.group.as_mut()?;
                    let first = group.index() == 0;
                    match group.read_frame().await.ok()? {
                        Some(frame) => {
                            let frame = hang::container::Frame::decode(frame.payload).ok()?;
                            let seq = frame.timestamp.as_micros() as u64 / 33_333;
                            return Some((first, seq, frame.payload[5]));
                        }
                        None => self.group = None,
                    }
                }
            };
            tokio::time::timeout(Duration::from_millis(300), read)
                .await
                .ok()
                .flatten()
        }
    }

    /// Writes one rendering's frame, tagged by `tag` in its payload.
    fn write(publisher: &mut RenderingPublisher, seq: u64, keyframe: bool, tag: u8) {
        let mut frame = frame(seq, keyframe);
        let mut data = frame.data.to_vec();
        data[5] = tag;
        frame.data = Bytes::from(data);
        publisher.write(&frame).unwrap();
    }

    async fn settle() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    /// An origin with two published renderings, `a` and `b`.
    struct Fixture {
        origin: origin::Producer,
        driver: tokio::task::JoinHandle<moq_net::Error>,
        renderings: Arc<Renderings>,
        a: RenderingPublisher,
        b: RenderingPublisher,
    }

    impl Fixture {
        fn new() -> Self {
            let (origin, driver) = origin::Producer::new(origin::Config::default());
            let driver = tokio::spawn(moq_net::time::run(driver));
            let renderings = Arc::new(Renderings::default());
            let video = VideoTrackInfo {
                width: 320,
                height: 240,
                fps: 30.0,
            };
            let a = RenderingPublisher::new(&origin, renderings.clone(), "a", video).unwrap();
            let b = RenderingPublisher::new(&origin, renderings.clone(), "b", video).unwrap();
            Self {
                origin,
                driver,
                renderings,
                a,
                b,
            }
        }
    }

    #[tokio::test]
    async fn viewers_move_between_renderings_at_keyframes_without_repeating_a_moment() {
        let Fixture {
            origin,
            driver,
            renderings,
            mut a,
            mut b,
        } = Fixture::new();
        let (tag_a, tag_b) = (0xa0, 0xb0);
        // b is live before the viewer moves there.
        write(&mut b, 0, true, tag_b);

        let guard = renderings.viewer_joined(Feed::create(&origin, 7).unwrap(), "a");
        assert_eq!(renderings.viewers("a"), 1, "waiting viewers count");
        assert!(
            a.take_keyframe_request(),
            "a joining viewer asks for an IDR"
        );
        write(&mut a, 1, false, tag_a);
        settle().await;
        assert_eq!(
            renderings.viewer_rendering(7),
            Some((None, Some("a".into()))),
            "no frame before a keyframe"
        );
        write(&mut a, 2, true, tag_a);
        let mut viewer = FeedReader::open(&origin, 7).await;
        assert_eq!(viewer.next().await, Some((true, 2, tag_a)));
        assert_eq!(
            renderings.viewer_rendering(7),
            Some((Some("a".into()), None))
        );
        write(&mut a, 3, false, tag_a);
        assert_eq!(viewer.next().await, Some((false, 3, tag_a)));

        // The move: both renderings then encode frame 4, a first; b's is the keyframe asked for.
        assert!(renderings.move_viewer(7, "b"));
        assert!(b.take_keyframe_request());
        for seq in 1..4 {
            write(&mut b, seq, false, tag_b);
        }
        settle().await;
        write(&mut a, 4, false, tag_a);
        write(&mut b, 4, true, tag_b);
        write(&mut a, 5, false, tag_a);
        write(&mut b, 5, false, tag_b);
        assert_eq!(
            viewer.next().await,
            Some((true, 4, tag_b)),
            "moment 4 once, from b"
        );
        assert_eq!(viewer.next().await, Some((false, 5, tag_b)));
        assert_eq!(
            renderings.viewer_rendering(7),
            Some((Some("b".into()), None))
        );
        assert_eq!((renderings.viewers("a"), renderings.viewers("b")), (0, 1));

        // A target that runs behind: its keyframe shows a moment already seen, so the viewer
        // stays on b until a's keyframe comes at a moment it has not seen.
        assert!(renderings.move_viewer(7, "a"));
        assert!(a.take_keyframe_request());
        write(&mut b, 6, false, tag_b);
        write(&mut b, 7, false, tag_b);
        assert_eq!(viewer.next().await, Some((false, 6, tag_b)));
        assert_eq!(viewer.next().await, Some((false, 7, tag_b)));
        write(&mut a, 6, true, tag_a);
        settle().await;
        assert!(
            a.take_keyframe_request(),
            "a stale keyframe asks for another"
        );
        write(&mut a, 7, false, tag_a);
        write(&mut b, 8, false, tag_b);
        assert_eq!(viewer.next().await, Some((false, 8, tag_b)));
        write(&mut a, 8, false, tag_a);
        write(&mut a, 9, true, tag_a);
        write(&mut b, 9, false, tag_b);
        write(&mut a, 10, false, tag_a);
        assert_eq!(
            viewer.next().await,
            Some((true, 9, tag_a)),
            "moment 9 once, from a"
        );
        assert_eq!(viewer.next().await, Some((false, 10, tag_a)));

        drop(guard);
        assert_eq!(renderings.viewers("a"), 0);
        assert!(renderings.viewer_rendering(7).is_none());
        drop((a, b));
        // Unpublished and unwatched: forgotten, so routing junk names cannot grow the map.
        assert!(renderings.lock().is_empty());
        driver.abort();
    }

    /// The overlays track of the broadcast at `path` (a feed's or a rendering's).
    async fn overlays_of(origin: &origin::Producer, path: &str) -> track::Subscriber {
        let broadcast = origin.consume().request_broadcast(path).await.unwrap();
        broadcast
            .track(crate::OVERLAYS_TRACK_NAME)
            .unwrap()
            .subscribe(track::Subscription::default().with_max_age(Duration::from_secs(30)))
            .await
            .unwrap()
    }

    async fn next_overlays(track: &mut track::Subscriber) -> Option<(u64, String)> {
        let read = async {
            let mut group = track.recv_group().await.ok()??;
            let frame = group.read_frame().await.ok()??;
            let at = u64::try_from(frame.timestamp.as_micros()).ok()?;
            Some((at, String::from_utf8(frame.payload.to_vec()).ok()?))
        };
        tokio::time::timeout(Duration::from_millis(300), read)
            .await
            .ok()
            .flatten()
    }

    #[tokio::test]
    async fn overlay_layouts_travel_with_the_frame_they_describe_and_follow_a_move() {
        let mut f = Fixture::new();
        let (origin, renderings) = (f.origin.clone(), f.renderings.clone());
        let (a, b, tag_a, tag_b) = (&mut f.a, &mut f.b, 0xa0, 0xb0);
        b.set_overlays(0, Bytes::from_static(b"b-layout"));
        write(b, 0, true, tag_b);
        let guard = renderings.viewer_joined(Feed::create(&origin, 5).unwrap(), "a");
        a.set_overlays(frame(1, true).meta.pts_ns, Bytes::from_static(b"a-first"));
        write(a, 1, true, tag_a);
        let mut viewer = FeedReader::open(&origin, 5).await;
        let feed = format!("{}/{BROADCAST_NAME}", crate::feed::feed_scope(5));
        let mut overlays = overlays_of(&origin, &feed).await;
        assert_eq!(viewer.next().await, Some((true, 1, tag_a)));
        let at = |seq: u64| frame(seq, false).meta.pts_ns / 1_000;
        assert_eq!(
            next_overlays(&mut overlays).await,
            Some((at(1), "a-first".into())),
            "the layout in force at the joining keyframe"
        );
        // Drawn differently from frame 3 on, handed over before frame 2 is even encoded.
        a.set_overlays(
            frame(3, false).meta.pts_ns,
            Bytes::from_static(b"a-expanded"),
        );
        write(a, 2, false, tag_a);
        write(a, 3, false, tag_a);
        assert_eq!(viewer.next().await, Some((false, 2, tag_a)));
        assert_eq!(viewer.next().await, Some((false, 3, tag_a)));
        assert_eq!(
            next_overlays(&mut overlays).await,
            Some((at(3), "a-expanded".into())),
            "stamped with the first frame drawn that way, not with frame 2"
        );
        write(a, 4, false, tag_a);
        assert_eq!(viewer.next().await, Some((false, 4, tag_a)));
        assert_eq!(
            next_overlays(&mut overlays).await,
            None,
            "no change, no message"
        );

        // Whoever reads the rendering itself (a relay) gets the same layouts at the same times.
        let mut rendering_overlays = overlays_of(&origin, &format!("a/{BROADCAST_NAME}")).await;
        let mut on_rendering = Vec::new();
        while let Some(message) = next_overlays(&mut rendering_overlays).await {
            on_rendering.push(message);
        }
        assert_eq!(
            on_rendering,
            [(at(1), "a-first".into()), (at(3), "a-expanded".into())]
        );

        // Moved to b: b's layout arrives with b's keyframe, at its time.
        assert!(renderings.move_viewer(5, "b"));
        settle().await;
        write(b, 5, true, tag_b);
        assert_eq!(viewer.next().await, Some((true, 5, tag_b)));
        assert_eq!(
            next_overlays(&mut overlays).await,
            Some((at(5), "b-layout".into()))
        );
        drop(guard);
        f.driver.abort();
    }

    #[tokio::test]
    async fn a_move_completes_when_the_old_rendering_stops_short_of_the_keyframe() {
        let Fixture {
            origin,
            driver,
            renderings,
            mut a,
            mut b,
        } = Fixture::new();
        let (tag_a, tag_b) = (0xa0, 0xb0);
        write(&mut b, 0, true, tag_b);
        let guard = renderings.viewer_joined(Feed::create(&origin, 9).unwrap(), "a");
        write(&mut a, 1, true, tag_a);
        let mut viewer = FeedReader::open(&origin, 9).await;
        assert_eq!(viewer.next().await, Some((true, 1, tag_a)));

        // The viewer moves to b; a, now watched by nobody, is no longer drawn after frame 1.
        assert!(renderings.move_viewer(9, "b"));
        settle().await;
        write(&mut b, 3, true, tag_b);
        write(&mut b, 4, false, tag_b);
        assert_eq!(
            viewer.next().await,
            Some((true, 3, tag_b)),
            "no wait for a's frame 3"
        );
        assert_eq!(viewer.next().await, Some((false, 4, tag_b)));
        assert_eq!(
            renderings.viewer_rendering(9),
            Some((Some("b".into()), None))
        );
        drop((guard, a, b));
        driver.abort();
    }
}
