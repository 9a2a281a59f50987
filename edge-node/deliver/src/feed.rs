//! One viewer's own broadcast, fed by whichever rendering the viewer is in.
//!
//! Every session is served a broadcast of its own (`~viewer/<session>/live` on the origin, seen by
//! the viewer as `live`). The feed's forwarder ([`crate::forward`]) reads the rendering the viewer
//! belongs to as a consumer of that rendering's track and writes each frame into the feed,
//! sharing the payload bytes, so viewers of one rendering receive byte-identical frames for one
//! encode. Moving a viewer to another rendering is a pending move that completes on the target's
//! next keyframe: the feed finishes the old GOP and starts a new group on the target's IDR, so
//! the viewer's decoder never sees a gap or a frame it cannot decode, and nothing on the viewer's
//! side needs to know that renderings exist.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use moq_net::{broadcast, group, origin, track, Timestamp};
use tokio::sync::watch;

use edge_telemetry::feed_writes::{feed_write_failed, FeedWriteFailure};

use crate::{DeliverError, BROADCAST_NAME, VIDEO_TRACK_NAME};

/// Root of the feeds on the shared origin. `~` never appears in a rendering name (see
/// [`crate::router::validate_rendering_name`]), so a feed can never shadow a rendering.
pub(crate) const FEED_ROOT: &str = "~viewer";

/// Where a session's feed lives on the origin; the session's publisher is scoped to it.
pub(crate) fn feed_scope(session_id: u64) -> String {
    format!("{FEED_ROOT}/{session_id}")
}

pub(crate) struct Feed {
    pub session_id: u64,
    inner: Mutex<FeedState>,
    /// The move pending, if any: the rendering this feed moves to at that rendering's next
    /// keyframe. Its forwarder watches it; `None` cancels a move. Changed under `inner`'s lock.
    requests: watch::Sender<Option<MoveRequest>>,
}

/// A move into `rendering`, asked for when that rendering's newest group was `after_group`:
/// the viewer joins at a group opened later (by the keyframe the move asks for), never at one
/// already under way, which would replay the past.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MoveRequest {
    pub rendering: String,
    pub after_group: Option<u64>,
}

struct FeedState {
    broadcast: broadcast::Producer,
    catalog_track: track::Producer,
    video_track: track::Producer,
    /// What the node understood in the picture (see [`crate::METADATA_TRACK_NAME`]).
    metadata_track: track::Producer,
    /// Which overlays the rendering drew where (see [`crate::OVERLAYS_TRACK_NAME`]).
    overlays_track: track::Producer,
    /// The open GOP; `None` until the first keyframe of the first rendering.
    group: Option<group::Producer>,
    /// The catalog last written, so a move between renderings of the same shape writes none.
    catalog: Option<Bytes>,
    announced: bool,
    last_timestamp_us: Option<u64>,
    /// The rendering currently writing into this feed.
    current: Option<String>,
    closed: bool,
}

/// One frame as a rendering hands it to its members' feeds.
pub(crate) struct FeedFrame<'a> {
    pub keyframe: bool,
    pub timestamp_us: u64,
    pub payload: &'a Bytes,
    pub catalog: &'a Bytes,
    /// The overlay layout that holds from this frame on, when it is news for this feed.
    pub overlays: Option<Bytes>,
}

impl Feed {
    pub fn create(origin: &origin::Producer, session_id: u64) -> Result<Arc<Self>, DeliverError> {
        let broadcast =
            origin.create_broadcast(format!("{}/{BROADCAST_NAME}", feed_scope(session_id)))?;
        let catalog_track = broadcast.create_track(
            hang::Catalog::DEFAULT_NAME,
            hang::Catalog::default_track_info(),
        )?;
        let video_track = broadcast.create_track(
            VIDEO_TRACK_NAME,
            hang::container::track_info(hang::catalog::PRIORITY.video),
        )?;
        // Microsecond timescale: a message's time equals its video frame's time exactly.
        let metadata_track = broadcast.create_track(
            crate::METADATA_TRACK_NAME,
            track::Info::default().with_timescale(moq_net::Timescale::MICRO),
        )?;
        let overlays_track = broadcast.create_track(
            crate::OVERLAYS_TRACK_NAME,
            track::Info::default().with_timescale(moq_net::Timescale::MICRO),
        )?;
        Ok(Arc::new(Self {
            session_id,
            inner: Mutex::new(FeedState {
                broadcast,
                catalog_track,
                video_track,
                metadata_track,
                overlays_track,
                group: None,
                catalog: None,
                announced: false,
                last_timestamp_us: None,
                current: None,
                closed: false,
            }),
            requests: watch::Sender::new(None),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, FeedState> {
        // Only plain fields and moq producers behind it; a panic elsewhere leaves them usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn current(&self) -> Option<String> {
        self.lock().current.clone()
    }

    pub fn pending(&self) -> Option<String> {
        self.requests.borrow().as_ref().map(|r| r.rendering.clone())
    }

    /// Forgets the pending move without waking the forwarder: it completed, or the feed ended.
    fn clear_pending(&self) {
        self.requests.send_if_modified(|request| {
            *request = None;
            false
        });
    }

    /// Records a move; the latest request wins. Returns false when the feed already is there
    /// (and cancels a move pending elsewhere).
    pub fn request_move(&self, rendering: &str, after_group: Option<u64>) -> bool {
        let state = self.lock();
        if state.current.as_deref() == Some(rendering) {
            self.requests
                .send_if_modified(|request| request.take().is_some());
            return false;
        }
        self.requests.send_replace(Some(MoveRequest {
            rendering: rendering.to_string(),
            after_group,
        }));
        true
    }

    /// The move requests, for the feed's forwarder.
    pub fn move_requests(&self) -> watch::Receiver<Option<MoveRequest>> {
        self.requests.subscribe()
    }

    /// Completes a move: `rendering` is now the one writing into this feed. Returns the
    /// rendering left, or `None` when the move was superseded (or the viewer left) meanwhile.
    pub fn commit_move(&self, rendering: &str) -> Option<Option<String>> {
        let mut state = self.lock();
        if state.closed || self.pending().as_deref() != Some(rendering) {
            return None;
        }
        self.clear_pending();
        Some(state.current.replace(rendering.to_string()))
    }

    /// Writes one frame of the feed's current rendering. A keyframe closes the open GOP and
    /// starts a new MoQ group; frames before the feed's first keyframe are skipped. A failure is
    /// counted by its reason.
    pub fn write(&self, frame: &FeedFrame<'_>) -> Result<(), DeliverError> {
        counted(self.write_frame(frame))
    }

    fn write_frame(&self, frame: &FeedFrame<'_>) -> Result<(), DeliverError> {
        let mut state = self.lock();
        if state.closed {
            return Ok(());
        }
        if frame.keyframe {
            if state.catalog.as_ref() != Some(frame.catalog) {
                let mut group = state.catalog_track.append_group()?;
                group.write_frame(Timestamp::now(), frame.catalog.clone())?;
                group.finish()?;
                state.catalog = Some(frame.catalog.clone());
            }
            if !state.announced {
                state
                    .broadcast
                    .announce(moq_net::origin::Route::default())?;
                state.announced = true;
            }
            if let Some(previous) = state.group.take() {
                previous.finish()?;
            }
            state.group = Some(state.video_track.append_group()?);
        }
        // Renderings share the node's media clock; only a move can bring a time that is not
        // newer than the last (a target a frame behind): nudge it past the last.
        let timestamp_us = state
            .last_timestamp_us
            .map_or(frame.timestamp_us, |last| frame.timestamp_us.max(last + 1));
        let state = &mut *state;
        let Some(group) = state.group.as_mut() else {
            return Ok(());
        };
        let timestamp = Timestamp::from_micros(timestamp_us).map_err(hang::Error::from)?;
        if let Some(overlays) = &frame.overlays {
            // Its own group, stamped exactly as the frame it describes, written first.
            let mut message = state.overlays_track.append_group()?;
            message.write_frame(timestamp, overlays.clone())?;
            message.finish()?;
        }
        hang::container::Frame {
            timestamp,
            payload: frame.payload.clone(),
        }
        .write_to(group)?;
        state.last_timestamp_us = Some(timestamp_us);
        Ok(())
    }

    /// One metadata message (a group of one frame, so a late one never delays a newer one),
    /// stamped with the media time of the video frame it describes. A failure is counted.
    pub fn write_metadata(&self, message: &Bytes, timestamp_us: u64) -> Result<(), DeliverError> {
        counted(self.write_message(message, timestamp_us))
    }

    fn write_message(&self, message: &Bytes, timestamp_us: u64) -> Result<(), DeliverError> {
        let state = self.lock();
        if state.closed || !state.announced {
            return Ok(());
        }
        let mut group = state.metadata_track.append_group()?;
        let timestamp = Timestamp::from_micros(timestamp_us).map_err(hang::Error::from)?;
        group.write_frame(timestamp, message.clone())?;
        group.finish()?;
        Ok(())
    }

    /// Ends the feed: the viewer's broadcast finishes and no rendering writes into it again.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        self.clear_pending();
        // The origin may already be torn down at shutdown; nothing to recover then.
        if let Some(group) = state.group.take() {
            let _ = group.finish();
        }
        let _ = state.video_track.finish();
        let _ = state.metadata_track.finish();
        let _ = state.overlays_track.finish();
        let _ = state.catalog_track.finish();
    }
}

/// Counts a failed write in `edge_feed_write_failures_total`, by its reason.
fn counted(written: Result<(), DeliverError>) -> Result<(), DeliverError> {
    if let Err(e) = &written {
        feed_write_failed(failure_reason(e));
    }
    written
}

fn failure_reason(error: &DeliverError) -> FeedWriteFailure {
    let moq = match error {
        DeliverError::Moq(e) | DeliverError::Hang(hang::Error::Moq(e)) => e,
        DeliverError::Hang(hang::Error::TimestampOverflow(_)) => {
            return FeedWriteFailure::BadTimestamp
        }
        _ => return FeedWriteFailure::Other,
    };
    match moq {
        moq_net::Error::Closed | moq_net::Error::Cancel | moq_net::Error::Dropped => {
            FeedWriteFailure::Closed
        }
        moq_net::Error::FrameTooLarge | moq_net::Error::GroupTooLarge => FeedWriteFailure::TooLarge,
        moq_net::Error::Old | moq_net::Error::Lagged | moq_net::Error::Timeout => {
            FeedWriteFailure::Expired
        }
        _ => FeedWriteFailure::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_telemetry::feed_writes::feed_write_failures;

    fn keyframe_at<'a>(timestamp_us: u64, payload: &'a Bytes, catalog: &'a Bytes) -> FeedFrame<'a> {
        FeedFrame {
            keyframe: true,
            timestamp_us,
            payload,
            catalog,
            overlays: None,
        }
    }

    #[tokio::test]
    async fn failed_writes_are_counted_by_reason() {
        let (origin, _driver) = origin::Producer::new(origin::Config::default());
        let feed = Feed::create(&origin, 7).expect("feed");
        let (payload, catalog) = (
            Bytes::from_static(&[0, 0, 1, 0x65]),
            Bytes::from_static(b"{}"),
        );
        feed.write(&keyframe_at(1_000, &payload, &catalog))
            .expect("a good frame is written");

        let bad_time = feed_write_failures(FeedWriteFailure::BadTimestamp);
        assert!(feed
            .write(&keyframe_at(u64::MAX, &payload, &catalog))
            .is_err());
        assert_eq!(
            feed_write_failures(FeedWriteFailure::BadTimestamp),
            bad_time + 1
        );

        // The viewer's video track ended underneath the feed (its session is going away).
        feed.lock().video_track.finish().expect("finish");
        let closed = feed_write_failures(FeedWriteFailure::Closed);
        assert!(feed.write(&keyframe_at(2_000, &payload, &catalog)).is_err());
        assert_eq!(feed_write_failures(FeedWriteFailure::Closed), closed + 1);

        // A closed feed is not a failure: the viewer left and nothing is owed to it.
        feed.close();
        feed.write(&keyframe_at(3_000, &payload, &catalog))
            .expect("writes into a closed feed are dropped quietly");
        assert_eq!(feed_write_failures(FeedWriteFailure::Closed), closed + 1);
    }
}
