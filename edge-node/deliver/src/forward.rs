//! A viewer's forwarder: reads the rendering the viewer is in, as a consumer of that rendering's
//! track, and writes each frame into the viewer's feed; moves the viewer to another rendering
//! at that rendering's keyframe.
//!
//! The encoder's thread writes an access unit once, into its rendering's track, and returns. The
//! per-viewer work (one feed write per viewer and frame) runs here, one task per viewer on the
//! runtime's workers, so it neither delays the next encode nor waits behind other viewers. A
//! forwarder reads the rendering from its live edge: when it has fallen behind by a whole group
//! it skips to the newest one, as any MoQ subscriber does.
//!
//! A move never shows a moment twice and never skips one. Renderings encode the same source
//! frames but a little out of step, so the target's keyframe may carry a time the viewer has
//! already seen (the target runs behind) or one it has not reached yet (the target runs ahead).
//! Behind: the keyframe is passed over and another one asked for. Ahead: the viewer keeps
//! reading its old rendering up to the keyframe's time and switches there, or after 100 ms if
//! the old rendering stopped short of it (the engine stops drawing what nobody watches). Since
//! both encode the same moment within a few milliseconds of each other, a frame of the old
//! rendering that arrives while the target's keyframe is due is held back briefly: whichever of
//! the two shows that moment first, the viewer gets it once.

use std::future::pending;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moq_net::{group, track};
use tokio::sync::watch;

use crate::feed::{Feed, FeedFrame, MoveRequest};
use crate::overlay_log::OverlayReader;
use crate::publisher::{RenderingSource, Renderings};

/// How many of the target's keyframes a move passes over because they show a moment the viewer
/// has already seen, before it takes the next one anyway (with its time nudged forward). Two
/// renderings are at most a frame or two apart, so the first or second fresh keyframe fits.
const MAX_STALE_KEYFRAMES: u32 = 3;

/// How long a frame of the old rendering waits for the target's keyframe of the same moment.
/// Renderings of one source frame finish within an encode of each other.
const HOLD: Duration = Duration::from_millis(15);

/// The same wait while the target is still starting (a rendering made for this move, such as
/// a tapped card's): its first keyframe also waits for the group's start and publication.
const HOLD_FOR_NEW: Duration = Duration::from_millis(40);

/// How many frames of the old rendering one move may hold back, so a target slow to send its
/// keyframe costs the viewer at most this many delayed frames.
const MAX_HELD_FRAMES: u32 = 2;

/// How long a move waits for the old rendering to reach the target keyframe's moment. The old
/// one may never get there: once the viewer is counted in the target, nobody else may watch
/// the old rendering, and the engine stops drawing it.
const WAIT_FOR_OLD: Duration = Duration::from_millis(100);

/// One frame as read from a rendering's track.
struct TrackFrame {
    keyframe: bool,
    timestamp_us: u64,
    payload: Bytes,
}

impl TrackFrame {
    fn decode(frame: moq_net::frame::Frame, keyframe: bool) -> Option<Self> {
        // Written by our own publisher; a frame that does not parse is skipped, not fatal.
        let frame = hang::container::Frame::decode(frame.payload).ok()?;
        Some(Self {
            keyframe,
            timestamp_us: u64::try_from(frame.timestamp.as_micros()).unwrap_or(u64::MAX),
            payload: frame.payload,
        })
    }
}

/// A rendering's track read from a chosen group on, in order.
struct Reading {
    rendering: String,
    sources: watch::Receiver<Option<RenderingSource>>,
    subscriber: track::Subscriber,
    catalog: Bytes,
    group: Option<group::Consumer>,
    overlays: OverlayReader,
}

impl Reading {
    /// The next frame; `None` once the track has ended (the rendering was unpublished).
    /// Cancel-safe: all progress lives in `self`.
    async fn next_frame(&mut self) -> Option<TrackFrame> {
        loop {
            let group = match self.group.as_mut() {
                Some(group) => group,
                None => match self.subscriber.recv_group().await {
                    Ok(Some(group)) => self.group.insert(group),
                    Ok(None) | Err(_) => return None,
                },
            };
            // Every group the publisher opens starts with its keyframe.
            let keyframe = group.index() == 0;
            match group.read_frame().await {
                Ok(Some(frame)) => {
                    if let Some(frame) = TrackFrame::decode(frame, keyframe) {
                        return Some(frame);
                    }
                }
                // Finished, or abandoned because a newer group exists: go on with the newest.
                Ok(None) | Err(_) => self.group = None,
            }
        }
    }

    /// Takes the catalog the rendering last published (a feed writes it only at keyframes).
    fn refresh_catalog(&mut self) {
        if let Some(source) = self.sources.borrow().as_ref() {
            if source.catalog != self.catalog {
                self.catalog = source.catalog.clone();
            }
        }
    }
}

/// A move under way: waiting for the target's first keyframe that opens a group after the move
/// was asked for.
struct Joining {
    request: MoveRequest,
    /// Back into the rendering the viewer already is in, whose track ended and restarted: no
    /// move to commit.
    resume: bool,
    sources: watch::Receiver<Option<RenderingSource>>,
    overlays: watch::Receiver<crate::overlay_log::OverlayLog>,
    subscriber: Option<(track::Subscriber, Bytes)>,
    /// A group opened after the request, whose keyframe is being read.
    group: Option<group::Consumer>,
    stale_keyframes: u32,
}

/// The target's keyframe, read and waiting for its moment.
struct Candidate {
    reading: Reading,
    keyframe: TrackFrame,
    sequence: u64,
    resume: bool,
    stale_keyframes: u32,
    request: MoveRequest,
}

impl Joining {
    fn new(renderings: &Renderings, request: MoveRequest, resume: bool) -> Self {
        Self {
            sources: renderings.sources(&request.rendering),
            overlays: renderings.overlays(&request.rendering),
            request,
            resume,
            subscriber: None,
            group: None,
            stale_keyframes: 0,
        }
    }

    /// Whether the target is published and being read, so its keyframe is due.
    fn subscribed(&self) -> bool {
        self.subscriber.is_some()
    }

    /// Passes over a candidate whose keyframe came too early and waits for a later one.
    fn after(candidate: Candidate) -> Self {
        let Candidate {
            reading,
            sequence,
            resume,
            stale_keyframes,
            mut request,
            ..
        } = candidate;
        request.after_group = Some(sequence);
        Self {
            request,
            resume,
            overlays: reading.overlays.into_log(),
            sources: reading.sources,
            subscriber: Some((reading.subscriber, reading.catalog)),
            group: None,
            stale_keyframes: stale_keyframes + 1,
        }
    }

    /// The first keyframe of a group opened after the request. Cancel-safe: the subscription
    /// and the group being read live in `self`.
    async fn next_candidate(&mut self) -> Candidate {
        loop {
            if self.subscriber.is_none() {
                let source = loop {
                    if let Some(source) = self.sources.borrow_and_update().clone() {
                        break source;
                    }
                    if self.sources.changed().await.is_err() {
                        return pending().await;
                    }
                };
                self.subscriber = Some((source.video.subscribe(None), source.catalog));
            }
            let group = match self.group.as_mut() {
                Some(group) => group,
                None => {
                    let (subscriber, _) = self.subscriber.as_mut().expect("subscribed above");
                    let group = match subscriber.recv_group().await {
                        Ok(Some(group)) => group,
                        Ok(None) | Err(_) => {
                            // The track ended: the next publication numbers its groups afresh.
                            self.subscriber = None;
                            self.request.after_group = None;
                            continue;
                        }
                    };
                    if self
                        .request
                        .after_group
                        .is_some_and(|after| group.sequence <= after)
                    {
                        continue; // opened before the move was asked for
                    }
                    self.group.insert(group)
                }
            };
            let first = group.read_frame().await;
            let group = self.group.take().expect("read above");
            let Some(keyframe) = first
                .ok()
                .flatten()
                .and_then(|f| TrackFrame::decode(f, true))
            else {
                continue;
            };
            let sequence = group.sequence;
            let (subscriber, catalog) = self.subscriber.take().expect("subscribed above");
            return Candidate {
                reading: Reading {
                    rendering: self.request.rendering.clone(),
                    sources: self.sources.clone(),
                    subscriber,
                    catalog,
                    group: Some(group),
                    overlays: OverlayReader::new(self.overlays.clone()),
                },
                keyframe,
                sequence,
                resume: self.resume,
                stale_keyframes: self.stale_keyframes,
                request: self.request.clone(),
            };
        }
    }
}

/// Runs one viewer's forwarder until the viewer leaves (the task is aborted then).
pub(crate) async fn run(
    feed: Arc<Feed>,
    renderings: Arc<Renderings>,
    mut requests: watch::Receiver<Option<MoveRequest>>,
) {
    let mut forwarder = Forwarder {
        feed,
        renderings,
        current: None,
        last_timestamp_us: None,
    };
    let mut joining = requests
        .borrow_and_update()
        .clone()
        .map(|request| Joining::new(&forwarder.renderings, request, false));
    let mut ready: Option<Candidate> = None;
    let mut ready_until = tokio::time::Instant::now();
    // A frame of the old rendering held while the target's keyframe is due.
    let mut held: Option<TrackFrame> = None;
    let mut hold_until = tokio::time::Instant::now();
    let mut holds_left = MAX_HELD_FRAMES;
    loop {
        tokio::select! {
            biased;
            changed = requests.changed() => {
                if changed.is_err() {
                    return;
                }
                let request = requests.borrow_and_update().clone();
                ready = None;
                holds_left = MAX_HELD_FRAMES;
                joining = request.map(|r| Joining::new(&forwarder.renderings, r, false));
            }
            candidate = next_candidate(&mut joining), if ready.is_none() => {
                joining = None;
                tracing::debug!(
                    session = forwarder.feed.session_id,
                    rendering = %candidate.reading.rendering,
                    group = candidate.sequence,
                    keyframe_us = candidate.keyframe.timestamp_us,
                    last_us = ?forwarder.last_timestamp_us,
                    held = held.is_some(),
                    "target keyframe"
                );
                let judged = match held.take() {
                    // The target shows the held moment: the viewer sees it from there.
                    Some(frame)
                        if candidate.keyframe.timestamp_us <= frame.timestamp_us
                            && forwarder.is_news(&candidate.keyframe) =>
                    {
                        Judged::Switch(candidate)
                    }
                    Some(frame) => {
                        forwarder.write_current(frame);
                        forwarder.judge(candidate)
                    }
                    None => forwarder.judge(candidate),
                };
                match judged {
                    Judged::Switch(candidate) => forwarder.switch(candidate),
                    Judged::WaitForOld(candidate) => {
                        ready_until = tokio::time::Instant::now() + WAIT_FOR_OLD;
                        ready = Some(candidate);
                    }
                    Judged::TooEarly(next) => joining = Some(next),
                }
            }
            _ = tokio::time::sleep_until(ready_until), if ready.is_some() && held.is_none() => {
                tracing::debug!(
                    session = forwarder.feed.session_id,
                    "old rendering stopped short of the target's keyframe; moving now"
                );
                forwarder.switch(ready.take().expect("checked"));
            }
            _ = tokio::time::sleep_until(hold_until), if held.is_some() => {
                forwarder.write_current(held.take().expect("checked"));
            }
            frame = next_frame(&mut forwarder.current), if held.is_none() => match frame {
                Some(frame) => {
                    if ready.as_ref().is_some_and(|c| frame.timestamp_us >= c.keyframe.timestamp_us) {
                        forwarder.switch(ready.take().expect("checked"));
                    } else if let (true, Some(target)) = (holds_left > 0, &joining) {
                        holds_left -= 1;
                        let hold = if target.subscribed() { HOLD } else { HOLD_FOR_NEW };
                        hold_until = tokio::time::Instant::now() + hold;
                        held = Some(frame);
                    } else {
                        forwarder.write_current(frame);
                    }
                }
                None => {
                    let ended = forwarder.current.take().map(|r| r.rendering);
                    if let Some(candidate) = ready.take() {
                        forwarder.switch(candidate);
                    } else if let (Some(rendering), None) = (ended, &joining) {
                        // Unpublished while watched: wait for it to come back.
                        let request = MoveRequest { rendering, after_group: None };
                        joining = Some(Joining::new(&forwarder.renderings, request, true));
                    }
                }
            },
        }
    }
}

async fn next_candidate(joining: &mut Option<Joining>) -> Candidate {
    match joining {
        Some(joining) => joining.next_candidate().await,
        None => pending().await,
    }
}

async fn next_frame(current: &mut Option<Reading>) -> Option<TrackFrame> {
    match current {
        Some(reading) => reading.next_frame().await,
        None => pending().await,
    }
}

enum Judged {
    Switch(Candidate),
    WaitForOld(Candidate),
    TooEarly(Joining),
}

struct Forwarder {
    feed: Arc<Feed>,
    renderings: Arc<Renderings>,
    current: Option<Reading>,
    last_timestamp_us: Option<u64>,
}

impl Forwarder {
    /// Whether the viewer has not seen this frame's moment yet.
    fn is_news(&self, frame: &TrackFrame) -> bool {
        self.last_timestamp_us
            .is_none_or(|last| frame.timestamp_us > last)
    }

    fn judge(&self, candidate: Candidate) -> Judged {
        if self.current.is_none() {
            return Judged::Switch(candidate); // nothing showing that the viewer would miss
        }
        if self.is_news(&candidate.keyframe) {
            return Judged::WaitForOld(candidate);
        }
        if candidate.stale_keyframes >= MAX_STALE_KEYFRAMES {
            tracing::debug!(
                session = self.feed.session_id,
                rendering = %candidate.reading.rendering,
                "moving on a keyframe the viewer has already seen"
            );
            return Judged::Switch(candidate);
        }
        self.renderings
            .request_keyframe(&candidate.reading.rendering);
        Judged::TooEarly(Joining::after(candidate))
    }

    fn switch(&mut self, candidate: Candidate) {
        let rendering = candidate.reading.rendering.clone();
        if !candidate.resume {
            let Some(left) = self.feed.commit_move(&rendering) else {
                return; // superseded meanwhile; the newer request is on its way
            };
            self.renderings
                .committed(&self.feed, left.as_deref(), &rendering);
            if let Some(left) = left {
                tracing::debug!(session = self.feed.session_id, from = %left, to = %rendering, "viewer moved");
            }
        }
        self.current = Some(candidate.reading);
        self.write_current(candidate.keyframe);
    }

    fn write_current(&mut self, frame: TrackFrame) {
        let Some(reading) = self.current.as_mut() else {
            return;
        };
        if frame.keyframe {
            reading.refresh_catalog();
        }
        let overlays = reading
            .overlays
            .for_frame(frame.timestamp_us, frame.keyframe);
        let written = self.feed.write(&FeedFrame {
            keyframe: frame.keyframe,
            timestamp_us: frame.timestamp_us,
            payload: &frame.payload,
            catalog: &reading.catalog,
            overlays,
        });
        match written {
            Ok(()) => self.last_timestamp_us = Some(frame.timestamp_us),
            Err(e) => {
                tracing::debug!(rendering = %reading.rendering, session = self.feed.session_id, error = %e, "feed write failed");
            }
        }
    }
}
