//! What one viewer's connection may hold, and which of its groups are still worth sending.
//!
//! moq-lite maps each group (one GOP) to its own QUIC stream, ranks the streams newest group
//! first, and gives a group up once a newer one has superseded it while it still waits on the
//! transport: a viewer that cannot keep up gets the newest group instead of a growing backlog.
//! moq-net 0.3.18 cannot take that last step for what this server publishes. Every broadcast a
//! session serves from an origin is route-fed, so its tracks are spliced, and a spliced group
//! carries no expiry of its own (`group::Consumer::into_spliced`): the publisher's check "is
//! this group stale while the transport holds it?" always answers no, and no group stream of a
//! node was ever reset. With quinn's 8 MiB send window each GOP was handed to quinn whole and
//! sent, newest first, in every gap the live group left, long after the viewer had skipped it;
//! and its stream stayed open until then, so a slow viewer's uni-stream credit (100 streams)
//! filled with dead groups and new groups could not even be opened: stalls of many seconds.
//!
//! [`PacedSession`] wraps each viewer's transport and takes that step at the one place that
//! sees both the groups and the transport, without changing anything on the wire:
//!
//! * **The transport holds about half a congestion window more than is in flight**: the send
//!   window follows quinn's congestion window, so what the link cannot carry yet waits in moq,
//!   where it is still a group that can be given up, not in quinn, where it can only be sent.
//! * **A group that is behind when a newer group of its track exists is superseded**. Behind:
//!   its last write found the transport full, or it is still waiting (before its first byte)
//!   for an older group. Inside its first frame, the keyframe the rest depends on, it is
//!   completed and then ended with a FIN; anywhere else it is reset with moq-lite's `Old` code
//!   (what moq-net sends for a group that aged out), and quinn drops whatever of it is unsent.
//!   Either way its stream ends at once and returns its credit, and the viewer keeps every
//!   frame that crossed the link.
//! * **A newer group never overtakes what its older siblings gave the transport**: its stream
//!   ranks below theirs until they are acknowledged or reset, and after a completed keyframe it
//!   waits for that acknowledgement before sending anything. A viewer reading with moq-lite's
//!   `max_age = 0`, as this crate's client and hang's player do, gives an older group up the
//!   moment a newer one shows a frame, so older bytes arriving with or after newer ones are
//!   bytes spent for nothing. (quinn applies a changed priority only when a stream is next
//!   queued, so the rank is set before the newer group's first byte.)
//!
//! A group that is not behind is never touched: a viewer that keeps up receives every frame.
//! Only moq-lite group streams are recognised (a unidirectional stream that starts with the
//! lite `Group` header); every other stream, and every stream of a moq-transport session,
//! passes through.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use moq_net::web_transport_trait::poll as transport;
use web_transport_quinn::{RecvStream, SendStream, Session, SessionError, WriteError};

/// The send window never goes below this: a few full-size packets beyond a small congestion
/// window, so a write always has room to make progress.
pub(crate) const MIN_SEND_WINDOW: u64 = 24 * 1024;

/// The send window never goes above this: what one viewer may pin in quinn's buffers.
pub(crate) const MAX_SEND_WINDOW: u64 = 8 * 1024 * 1024;

/// How often the send window follows the congestion window (only while the session writes).
const TUNE_INTERVAL_US: u64 = 50_000;

/// How far below moq's own rank a newer group's stream is sent while older groups of its
/// track still have bytes in the transport (moq's send orders are 0..=255).
const BEHIND_OLDER: i32 = 1024;

/// The lite-wire code of a group dropped because a newer one superseded it.
fn old_code() -> u32 {
    moq_net::StreamError::Old.to_code()
}

/// What one viewer's transport did, for operators and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    /// Groups (GOPs) given up part-way because a newer group of their track superseded them
    /// while the viewer's link could not take them: the viewer skipped ahead.
    pub groups_superseded: u64,
    /// The send window in force (bytes the connection may hold unacknowledged or unsent).
    pub send_window: u64,
}

/// How the session encodes moq-lite integers, once known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wire {
    /// Not (or not yet known to be) moq-lite: nothing is recognised.
    Opaque,
    /// lite-01..06: QUIC varints.
    Quic,
    /// lite-07: leading-ones varints.
    LeadingOnes,
}

/// Where a stream is, read from the bytes the transport accepted.
#[derive(Clone, Debug)]
struct Parser {
    wire: Wire,
    /// Frames carry a timestamp delta before their size (lite-05 on).
    timed: bool,
    stage: Stage,
    /// Bytes of the varint (or header body) being read.
    partial: Vec<u8>,
    group: Option<(u64, u64)>,
    /// Whole frames written.
    frames: u64,
    /// Some payload of the first frame has been written.
    started: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Type,
    HeaderSize,
    HeaderBody(u64),
    Timing,
    Size,
    Payload(u64),
    /// Not a lite group stream, or not understood: no policy applies.
    Opaque,
}

/// The largest group header body read: subscribe id, sequence and frame start.
const MAX_HEADER_BODY: u64 = 3 * 9;

impl Parser {
    fn new(wire: Wire, timed: bool) -> Self {
        Self {
            wire,
            timed,
            stage: if wire == Wire::Opaque {
                Stage::Opaque
            } else {
                Stage::Type
            },
            partial: Vec::new(),
            group: None,
            frames: 0,
            started: false,
        }
    }

    fn frame_start(&self) -> Stage {
        if self.timed {
            Stage::Timing
        } else {
            Stage::Size
        }
    }

    /// Between two frames (or before the first), with the group header read.
    fn at_boundary(&self) -> bool {
        self.group.is_some() && self.stage == self.frame_start() && self.partial.is_empty()
    }

    fn varint(&self, bytes: &[u8]) -> Option<(u64, usize)> {
        match self.wire {
            Wire::Quic => quic_varint(bytes),
            Wire::LeadingOnes => leading_ones_varint(bytes),
            Wire::Opaque => None,
        }
    }

    /// Reads `bytes`; with `stop_at_boundary`, stops right after a frame ends. Returns how
    /// many bytes were read.
    fn feed(&mut self, bytes: &[u8], stop_at_boundary: bool) -> usize {
        let mut used = 0;
        while used < bytes.len() {
            match self.stage {
                Stage::Opaque => return bytes.len(),
                Stage::Payload(remaining) => {
                    let take =
                        (bytes.len() - used).min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    used += take;
                    self.started = true;
                    let remaining = remaining - take as u64;
                    if remaining > 0 {
                        self.stage = Stage::Payload(remaining);
                    } else {
                        self.frames += 1;
                        self.stage = self.frame_start();
                        if stop_at_boundary {
                            return used;
                        }
                    }
                }
                Stage::HeaderBody(size) => {
                    self.partial.push(bytes[used]);
                    used += 1;
                    if self.partial.len() as u64 == size {
                        let body = std::mem::take(&mut self.partial);
                        let subscribe = self.varint(&body);
                        let sequence = subscribe.and_then(|(_, at)| self.varint(&body[at..]));
                        match (subscribe, sequence) {
                            (Some((subscribe, _)), Some((sequence, _))) => {
                                self.group = Some((subscribe, sequence));
                                self.stage = self.frame_start();
                            }
                            _ => self.stage = Stage::Opaque,
                        }
                    }
                }
                Stage::Type | Stage::HeaderSize | Stage::Timing | Stage::Size => {
                    self.partial.push(bytes[used]);
                    used += 1;
                    let Some((value, _)) = self.varint(&self.partial) else {
                        if self.partial.len() > 9 {
                            self.stage = Stage::Opaque;
                        }
                        continue;
                    };
                    self.partial.clear();
                    self.stage = match self.stage {
                        Stage::Type if value == 0 => Stage::HeaderSize,
                        Stage::HeaderSize if (1..=MAX_HEADER_BODY).contains(&value) => {
                            Stage::HeaderBody(value)
                        }
                        Stage::Timing => Stage::Size,
                        Stage::Size if value > 0 => Stage::Payload(value),
                        Stage::Size => {
                            self.frames += 1;
                            let next = self.frame_start();
                            if stop_at_boundary {
                                self.stage = next;
                                return used;
                            }
                            next
                        }
                        _ => Stage::Opaque,
                    };
                }
            }
        }
        used
    }
}

/// Where a group stream is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Sending as moq asks.
    Live,
    /// Superseded inside its keyframe: writes only up to that frame's end, then ends there.
    Completing,
    /// Its FIN is sent (by moq, or here after a completed keyframe); the transport still
    /// delivers what it holds.
    Draining,
    /// Acknowledged, reset, or abandoned by moq.
    Done,
}

/// One open stream, shared between the task writing it and the policy acting on it.
struct Slot {
    state: Mutex<SlotState>,
}

struct SlotState {
    /// `None` once reset here or released.
    stream: Option<SendStream>,
    parser: Parser,
    phase: Phase,
    /// The FIN has been sent.
    finished: bool,
    /// Ended here at a frame boundary: moq's later writes fail and its reset is ignored, so
    /// the frames already handed over still arrive.
    truncated: bool,
    /// Newer groups of its track wait until the transport is done with it: a superseded
    /// group's first frame, completed and ended here, must reach the viewer before anything
    /// newer does, or the viewer gives it up on sight of the newer group.
    protect: bool,
    /// The last write found the transport full.
    blocked: bool,
    /// Waiting (before its first byte) for an older group of its track.
    held: bool,
    /// moq no longer holds the stream (the slot stays until the transport is done with it).
    orphaned: bool,
    /// The send order moq asked for.
    priority: i32,
    /// Ranked below moq's order while older groups of its track are in the transport.
    behind: bool,
    /// The task that last found this stream unwritable (or held), woken when that changes.
    waker: Option<Waker>,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SlotState {
    fn park(&mut self, cx: &Context<'_>) {
        match &self.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => self.waker = Some(cx.waker().clone()),
        }
    }

    fn apply_priority(&mut self) {
        if let Some(stream) = &self.stream {
            let order = if self.behind {
                self.priority - BEHIND_OLDER
            } else {
                self.priority
            };
            let _ = stream.set_priority(order);
        }
    }

    /// Ends the stream with a FIN where it stands (a frame boundary).
    fn truncate(&mut self) {
        if let Some(stream) = self.stream.as_mut() {
            if !self.finished {
                let _ = stream.finish();
            }
        }
        self.finished = true;
        self.truncated = true;
        self.protect = true;
        self.phase = Phase::Draining;
    }

    /// Gives the group up: called when a newer group of its track exists and this one is
    /// behind. Returns whether the group was cut short.
    fn supersede(&mut self) -> bool {
        if self.phase != Phase::Live {
            return false;
        }
        if self.finished {
            // Every frame is in the transport already: let it arrive.
            self.phase = Phase::Draining;
            return false;
        }
        if self.parser.frames == 0 && self.parser.started {
            // Inside its first frame, the keyframe: everything after it depends on it, so it
            // is completed rather than thrown away, and the group ends there.
            self.phase = Phase::Completing;
        } else {
            // Before its first frame (nothing of value sent), or among the frames after the
            // keyframe: what the transport has not sent yet is dropped with the stream.
            if let Some(mut stream) = self.stream.take() {
                let _ = stream.reset(old_code());
            }
            self.phase = Phase::Done;
        }
        true
    }
}

/// The group streams of one subscription still in the transport, by group sequence.
#[derive(Default)]
struct Track {
    open: BTreeMap<u64, Arc<Slot>>,
}

/// Per-session state shared by every clone of the session and every stream it opened.
struct Pacing {
    connection: quinn::Connection,
    wire: Mutex<(Wire, bool)>,
    enabled: AtomicBool,
    tracks: Mutex<HashMap<u64, Track>>,
    epoch: Instant,
    next_tune_us: AtomicU64,
    send_window: AtomicU64,
    superseded: AtomicU64,
}

/// What a group stream may do before writing.
enum Gate {
    Go,
    /// An older group of its track is completing its keyframe, or delivering it: wait.
    Hold,
}

impl Pacing {
    fn tracks(&self) -> MutexGuard<'_, HashMap<u64, Track>> {
        self.tracks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn parser(&self) -> Parser {
        if !self.enabled.load(Ordering::Acquire) {
            return Parser::new(Wire::Opaque, false);
        }
        let (wire, timed) = *self.wire.lock().unwrap_or_else(|p| p.into_inner());
        Parser::new(wire, timed)
    }

    /// Keeps the send window about one congestion window beyond what is in flight.
    fn tune(&self) {
        let now_us = self.epoch.elapsed().as_micros() as u64;
        let due = self.next_tune_us.load(Ordering::Relaxed);
        if now_us < due
            || self
                .next_tune_us
                .compare_exchange(
                    due,
                    now_us + TUNE_INTERVAL_US,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        let window = send_window_for(self.connection.stats().path.cwnd);
        if self.send_window.swap(window, Ordering::Relaxed) != window {
            self.connection.set_send_window(window);
        }
    }

    /// Records a new group stream before its first byte reaches the transport: older groups
    /// of its track that are behind are superseded, and the new one ranks below those still
    /// in the transport.
    fn opened(&self, subscribe: u64, sequence: u64, slot: &Arc<Slot>) {
        let mut wake = Vec::new();
        let mut behind = false;
        {
            let mut tracks = self.tracks();
            let track = tracks.entry(subscribe).or_default();
            for (&older_sequence, older) in track.open.range(..sequence) {
                let mut state = older.lock();
                // Behind: the transport could not take its bytes, or it is still waiting for
                // an older group's keyframe and has sent nothing.
                if (state.blocked || state.held) && state.supersede() {
                    self.superseded.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(subscribe, sequence = older_sequence, frames = state.parser.frames, phase = ?state.phase, "group superseded");
                    wake.extend(state.waker.take());
                }
                behind |= state.phase != Phase::Done;
            }
            track.open.insert(sequence, slot.clone());
            let mut state = slot.lock();
            state.behind = behind;
            state.apply_priority();
        }
        wake.into_iter().for_each(Waker::wake);
    }

    /// Before a group stream writes: whether it must wait for an older group of its track (one
    /// completing its keyframe, or one whose completed keyframe is still in the transport),
    /// and whether it still ranks below older groups (lifted once they are done). A held
    /// stream is woken when that changes.
    fn gate(&self, subscribe: u64, sequence: u64, slot: &Arc<Slot>, cx: &Context<'_>) -> Gate {
        let mut tracks = self.tracks();
        let Some(track) = tracks.get_mut(&subscribe) else {
            return Gate::Go;
        };
        let mut hold = false;
        let mut done = Vec::new();
        for (&older_sequence, older) in track.open.range(..sequence) {
            let mut state = older.lock();
            if state.phase == Phase::Draining && state.orphaned {
                // moq no longer polls it: ask the transport whether it is through, waking
                // this stream's task when it is if this stream waits for it.
                let noop = Context::from_waker(Waker::noop());
                let mut poll_cx = Context::from_waker(if state.protect {
                    cx.waker()
                } else {
                    noop.waker()
                });
                let closed = match state.stream.as_mut() {
                    Some(stream) => transport::SendStream::poll_closed(stream, &mut poll_cx),
                    None => Poll::Ready(Ok(())),
                };
                if closed.is_ready() {
                    state.phase = Phase::Done;
                    state.stream = None;
                }
            }
            match state.phase {
                Phase::Done => done.push(older_sequence),
                Phase::Completing => hold = true,
                Phase::Draining if state.protect => hold = true,
                Phase::Live | Phase::Draining => {}
            }
        }
        for older_sequence in &done {
            track.open.remove(older_sequence);
        }
        let older_left = track.open.range(..sequence).next().is_some();
        let mut state = slot.lock();
        if state.behind && !older_left {
            state.behind = false;
            state.apply_priority();
        }
        state.held = hold;
        if hold {
            // Parked under the track lock, so a change after this check finds the waker.
            state.park(cx);
            Gate::Hold
        } else {
            Gate::Go
        }
    }

    /// A group that found the transport full: superseded if a newer group of its track exists.
    /// Returns whether it was.
    fn blocked(&self, subscribe: u64, sequence: u64, slot: &Arc<Slot>) -> bool {
        let newer = self
            .tracks()
            .get(&subscribe)
            .is_some_and(|track| track.open.range(sequence + 1..).next().is_some());
        if !newer {
            return false;
        }
        let superseded = {
            let mut state = slot.lock();
            let superseded = state.supersede();
            if superseded {
                tracing::debug!(subscribe, sequence, frames = state.parser.frames, phase = ?state.phase, "group superseded");
            }
            superseded
        };
        if superseded {
            self.superseded.fetch_add(1, Ordering::Relaxed);
            self.settled(subscribe, sequence);
        }
        superseded
    }

    /// An older group changed phase: wake its track's newer groups (one may be held).
    fn settled(&self, subscribe: u64, sequence: u64) {
        let wake: Vec<Waker> = self
            .tracks()
            .get(&subscribe)
            .map(|track| {
                track
                    .open
                    .range(sequence + 1..)
                    .filter_map(|(_, slot)| slot.lock().waker.take())
                    .collect()
            })
            .unwrap_or_default();
        wake.into_iter().for_each(Waker::wake);
    }

    fn release(&self, subscribe: u64, sequence: u64) {
        {
            let mut tracks = self.tracks();
            if let Some(track) = tracks.get_mut(&subscribe) {
                track.open.remove(&sequence);
                if track.open.is_empty() {
                    tracks.remove(&subscribe);
                }
            }
        }
        self.settled(subscribe, sequence);
    }
}

/// The send window for a congestion window: half a window of headroom beyond it, so the
/// acknowledgements of one round trip free room for the next writes before quinn runs dry
/// (and quinn, never short of data to send, keeps growing the window), within bounds.
pub(crate) fn send_window_for(cwnd: u64) -> u64 {
    (cwnd + cwnd / 2).clamp(MIN_SEND_WINDOW, MAX_SEND_WINDOW)
}

/// A viewer's WebTransport (or raw QUIC) session as its moq session sees it. Cheap to clone;
/// every clone shares the policy state.
#[derive(Clone)]
pub(crate) struct PacedSession {
    inner: Session,
    pacing: Arc<Pacing>,
}

impl PacedSession {
    pub fn new(inner: Session) -> Self {
        let connection: quinn::Connection = (*inner).clone();
        connection.set_send_window(MIN_SEND_WINDOW);
        Self {
            pacing: Arc::new(Pacing {
                connection,
                wire: Mutex::new((Wire::Opaque, false)),
                enabled: AtomicBool::new(false),
                tracks: Mutex::default(),
                epoch: Instant::now(),
                next_tune_us: AtomicU64::new(0),
                send_window: AtomicU64::new(MIN_SEND_WINDOW),
                superseded: AtomicU64::new(0),
            }),
            inner,
        }
    }

    /// Starts recognising group streams once the moq version is known: only moq-lite's are.
    pub fn set_version(&self, version: moq_net::Version) {
        let wire = match version.as_str() {
            "moq-lite-01" | "moq-lite-02" | "moq-lite-03" | "moq-lite-04" => (Wire::Quic, false),
            "moq-lite-05" | "moq-lite-06" => (Wire::Quic, true),
            name if name.starts_with("moq-lite") => (Wire::LeadingOnes, true),
            _ => (Wire::Opaque, false),
        };
        *self.pacing.wire.lock().unwrap_or_else(|p| p.into_inner()) = wire;
        self.pacing.enabled.store(true, Ordering::Release);
    }

    pub fn stats(&self) -> DeliveryStats {
        DeliveryStats {
            groups_superseded: self.pacing.superseded.load(Ordering::Relaxed),
            send_window: self.pacing.send_window.load(Ordering::Relaxed),
        }
    }

    /// Wraps a stream; only unidirectional ones can carry groups (a bidirectional stream is
    /// a control stream, whose first bytes are never read as a group header).
    fn wrap(&self, stream: SendStream, uni: bool) -> PacedSend {
        let parser = match uni {
            true => self.pacing.parser(),
            false => Parser::new(Wire::Opaque, false),
        };
        PacedSend {
            slot: Arc::new(Slot {
                state: Mutex::new(SlotState {
                    stream: Some(stream),
                    parser,
                    phase: Phase::Live,
                    finished: false,
                    truncated: false,
                    protect: false,
                    blocked: false,
                    held: false,
                    orphaned: false,
                    priority: 0,
                    behind: false,
                    waker: None,
                }),
            }),
            pacing: self.pacing.clone(),
            group: None,
        }
    }
}

impl transport::Session for PacedSession {
    type SendStream = PacedSend;
    type RecvStream = RecvStream;
    type Error = SessionError;

    fn poll_accept_uni(&mut self, cx: &mut Context<'_>) -> Poll<Result<RecvStream, SessionError>> {
        transport::Session::poll_accept_uni(&mut self.inner, cx)
    }

    fn poll_accept_bi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(PacedSend, RecvStream), SessionError>> {
        let (send, recv) =
            std::task::ready!(transport::Session::poll_accept_bi(&mut self.inner, cx))?;
        Poll::Ready(Ok((self.wrap(send, false), recv)))
    }

    fn poll_open_uni(&mut self, cx: &mut Context<'_>) -> Poll<Result<PacedSend, SessionError>> {
        let send = std::task::ready!(transport::Session::poll_open_uni(&mut self.inner, cx))?;
        Poll::Ready(Ok(self.wrap(send, true)))
    }

    fn poll_open_bi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(PacedSend, RecvStream), SessionError>> {
        let (send, recv) =
            std::task::ready!(transport::Session::poll_open_bi(&mut self.inner, cx))?;
        Poll::Ready(Ok((self.wrap(send, false), recv)))
    }

    fn poll_send_datagram(
        &mut self,
        cx: &mut Context<'_>,
        payload: &[u8],
    ) -> Poll<Result<(), SessionError>> {
        transport::Session::poll_send_datagram(&mut self.inner, cx, payload)
    }

    fn poll_recv_datagram(&mut self, cx: &mut Context<'_>) -> Poll<Result<Bytes, SessionError>> {
        transport::Session::poll_recv_datagram(&mut self.inner, cx)
    }

    fn max_datagram_size(&self) -> usize {
        transport::Session::max_datagram_size(&self.inner)
    }

    fn protocol(&self) -> Option<&str> {
        transport::Session::protocol(&self.inner)
    }

    fn close(&mut self, code: u32, reason: &str) {
        transport::Session::close(&mut self.inner, code, reason)
    }

    fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<SessionError> {
        transport::Session::poll_closed(&mut self.inner, cx)
    }

    #[allow(refining_impl_trait)]
    fn stats(&self) -> web_transport_quinn::SessionStats {
        Session::stats(&self.inner)
    }
}

/// One outgoing stream of a paced session.
pub(crate) struct PacedSend {
    slot: Arc<Slot>,
    pacing: Arc<Pacing>,
    /// `(subscribe, sequence)` once the stream is known to be a lite group.
    group: Option<(u64, u64)>,
}

impl PacedSend {
    /// Recognises a group from the bytes about to be written, before they reach quinn, so its
    /// rank is set before it is first queued.
    fn identify(&mut self, buf: &[u8]) {
        if self.group.is_some() {
            return;
        }
        let group = {
            let state = self.slot.lock();
            if state.parser.stage == Stage::Opaque || state.parser.group.is_some() {
                return;
            }
            let mut peek = state.parser.clone();
            peek.feed(buf, false);
            peek.group
        };
        if let Some((subscribe, sequence)) = group {
            self.group = group;
            self.pacing.opened(subscribe, sequence, &self.slot);
        }
    }
}

impl Drop for PacedSend {
    fn drop(&mut self) {
        let keep = {
            let mut state = self.slot.lock();
            state.orphaned = true;
            if state.phase != Phase::Draining {
                state.phase = Phase::Done;
            }
            state.phase == Phase::Draining
        };
        if let Some((subscribe, sequence)) = self.group {
            match keep {
                // Still delivering: a newer group waiting for it now polls it itself.
                true => self.pacing.settled(subscribe, sequence),
                false => self.pacing.release(subscribe, sequence),
            }
        }
    }
}

impl transport::SendStream for PacedSend {
    type Error = WriteError;

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize, WriteError>> {
        {
            let state = self.slot.lock();
            if state.truncated || state.phase == Phase::Done {
                return Poll::Ready(Err(WriteError::ClosedStream));
            }
        }
        self.pacing.tune();
        self.identify(buf);
        if let Some((subscribe, sequence)) = self.group {
            if let Gate::Hold = self.pacing.gate(subscribe, sequence, &self.slot, cx) {
                return Poll::Pending;
            }
        }

        let mut state = self.slot.lock();
        if state.truncated || state.phase == Phase::Done {
            return Poll::Ready(Err(WriteError::ClosedStream));
        }
        let limit = if state.phase == Phase::Completing {
            if state.parser.at_boundary() {
                state.truncate();
                drop(state);
                if let Some((subscribe, sequence)) = self.group {
                    self.pacing.settled(subscribe, sequence);
                }
                return Poll::Ready(Err(WriteError::ClosedStream));
            }
            state.parser.clone().feed(buf, true)
        } else {
            buf.len()
        };
        let Some(stream) = state.stream.as_mut() else {
            return Poll::Ready(Err(WriteError::ClosedStream));
        };
        let written = transport::SendStream::poll_write(stream, cx, &buf[..limit]);
        match written {
            Poll::Ready(Ok(accepted)) => {
                state.blocked = false;
                state.parser.feed(&buf[..accepted], false);
                if state.phase == Phase::Completing && state.parser.at_boundary() {
                    state.truncate();
                    drop(state);
                    if let Some((subscribe, sequence)) = self.group {
                        self.pacing.settled(subscribe, sequence);
                    }
                }
                Poll::Ready(Ok(accepted))
            }
            Poll::Pending => {
                state.blocked = true;
                state.park(cx);
                drop(state);
                if let Some((subscribe, sequence)) = self.group {
                    if self.pacing.blocked(subscribe, sequence, &self.slot) {
                        let state = self.slot.lock();
                        if state.phase != Phase::Completing {
                            // Reset or ended at a frame boundary: moq stops here.
                            return Poll::Ready(Err(WriteError::ClosedStream));
                        }
                    }
                }
                Poll::Pending
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }

    fn set_priority(&mut self, order: u8) {
        let mut state = self.slot.lock();
        state.priority = i32::from(order);
        state.apply_priority();
    }

    fn finish(&mut self) -> Result<(), WriteError> {
        let mut state = self.slot.lock();
        if state.truncated {
            return Ok(());
        }
        let Some(stream) = state.stream.as_mut() else {
            return Err(WriteError::ClosedStream);
        };
        transport::SendStream::finish(stream)?;
        state.finished = true;
        if state.phase != Phase::Live {
            state.phase = Phase::Draining;
        }
        Ok(())
    }

    fn reset(&mut self, code: u32) {
        {
            let mut state = self.slot.lock();
            if state.truncated {
                // Ended here at a frame boundary: what was handed over still arrives.
                return;
            }
            if let Some(stream) = state.stream.as_mut() {
                transport::SendStream::reset(stream, code);
            }
            state.phase = Phase::Done;
        }
        if let Some((subscribe, sequence)) = self.group {
            self.pacing.settled(subscribe, sequence);
        }
    }

    fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WriteError>> {
        let closed = {
            let mut state = self.slot.lock();
            let closed = match state.stream.as_mut() {
                Some(stream) => transport::SendStream::poll_closed(stream, cx),
                None => Poll::Ready(Err(WriteError::ClosedStream)),
            };
            match &closed {
                Poll::Pending => state.park(cx),
                Poll::Ready(_) => state.phase = Phase::Done,
            }
            closed
        };
        if closed.is_ready() {
            if let Some((subscribe, sequence)) = self.group {
                self.pacing.settled(subscribe, sequence);
            }
        }
        closed
    }
}

/// A QUIC variable-length integer (RFC 9000 §16) and its length, if complete.
fn quic_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let first = *bytes.first()?;
    let len = 1usize << (first >> 6);
    let bytes = bytes.get(..len)?;
    let value = bytes[1..]
        .iter()
        .fold(u64::from(first & 0x3f), |v, b| (v << 8) | u64::from(*b));
    Some((value, len))
}

/// A leading-ones variable-length integer (moq-transport draft-17 §1.4.1, moq-lite-07).
fn leading_ones_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let first = *bytes.first()?;
    let extra = first.leading_ones() as usize;
    let bytes = bytes.get(..=extra)?;
    let head = if extra >= 7 {
        0
    } else {
        u64::from(first & (0xff >> (extra + 1)))
    };
    let value = bytes[1..]
        .iter()
        .fold(head, |v, b| (v << 8) | u64::from(*b));
    Some((value, extra + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quic(value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        moq_net::VarInt::try_from(value)
            .unwrap()
            .encode_quic(&mut out)
            .unwrap();
        out
    }

    /// A lite-06 group stream: header, then frames of the given sizes (timestamp deltas of 1).
    fn lite06_group(subscribe: u64, sequence: u64, frames: &[usize]) -> Vec<u8> {
        let mut body = quic(subscribe);
        body.extend(quic(sequence));
        body.extend(quic(0));
        let mut out = vec![0];
        out.extend(quic(body.len() as u64));
        out.extend(body);
        for &size in frames {
            out.extend(quic(2)); // zigzag(+1)
            out.extend(quic(size as u64));
            out.extend(std::iter::repeat_n(0xab, size));
        }
        out
    }

    #[test]
    fn quic_varints_round_trip() {
        for value in [
            0,
            1,
            63,
            64,
            16_383,
            16_384,
            1 << 29,
            (1 << 30) + 5,
            1 << 61,
        ] {
            let bytes = quic(value);
            assert_eq!(quic_varint(&bytes), Some((value, bytes.len())), "{value}");
            assert_eq!(quic_varint(&bytes[..bytes.len() - 1]), None);
        }
    }

    #[test]
    fn leading_ones_varints_decode() {
        assert_eq!(leading_ones_varint(&[0x25]), Some((0x25, 1)));
        assert_eq!(leading_ones_varint(&[0x81, 0x02]), Some((0x102, 2)));
        assert_eq!(leading_ones_varint(&[0xc1, 0x02, 0x03]), Some((0x10203, 3)));
        assert_eq!(
            leading_ones_varint(&[0xff, 1, 2, 3, 4, 5, 6, 7, 8]),
            Some((0x0102030405060708, 9))
        );
        assert_eq!(leading_ones_varint(&[0xc1, 0x02]), None);
    }

    #[test]
    fn group_streams_are_read_frame_by_frame_in_any_split() {
        let stream = lite06_group(1, 300, &[5000, 70, 0, 9]);
        for split in [1, 2, 3, 7, 100, stream.len()] {
            let mut parser = Parser::new(Wire::Quic, true);
            let mut boundaries = 0;
            for chunk in stream.chunks(split) {
                let mut at = 0;
                while at < chunk.len() {
                    at += parser.feed(&chunk[at..], true);
                    if parser.at_boundary() && parser.frames > 0 {
                        boundaries += 1;
                    }
                }
            }
            assert_eq!(parser.group, Some((1, 300)), "split {split}");
            assert_eq!(parser.frames, 4, "split {split}");
            assert!(parser.at_boundary());
            // Stops at each of the four frame ends (the empty frame ends right after its size).
            assert!(boundaries >= 4, "split {split}: {boundaries}");
        }
    }

    #[test]
    fn a_completing_group_writes_exactly_to_the_end_of_its_frame() {
        let stream = lite06_group(1, 7, &[100, 50]);
        let mut parser = Parser::new(Wire::Quic, true);
        parser.feed(&stream[..20], false);
        assert!(!parser.at_boundary(), "inside the first frame");
        assert!(parser.started);
        let to_end = parser.clone().feed(&stream[20..], true);
        parser.feed(&stream[20..20 + to_end], false);
        assert!(parser.at_boundary());
        assert_eq!(parser.frames, 1);
    }

    #[test]
    fn only_lite_group_streams_are_recognised() {
        // A lite SETUP stream (1), a moq-transport subgroup header (0x10), an oversized header.
        for bytes in [&[1u8, 0][..], &[0x10, 0], &[0, 0x40, 0x80]] {
            let mut parser = Parser::new(Wire::Quic, true);
            parser.feed(bytes, false);
            assert_eq!(parser.stage, Stage::Opaque, "{bytes:?}");
            assert_eq!(parser.group, None);
        }
        let mut parser = Parser::new(Wire::Opaque, false);
        parser.feed(&lite06_group(1, 2, &[3]), false);
        assert_eq!(
            parser.group, None,
            "not recognised before the version is known"
        );
        // lite-04: no timestamps; lite-07: leading-ones varints.
        let mut parser = Parser::new(Wire::Quic, false);
        parser.feed(&[0, 2, 4, 9, 3, 1, 2, 3], false);
        assert_eq!((parser.group, parser.frames), (Some((4, 9)), 1));
        let mut parser = Parser::new(Wire::LeadingOnes, true);
        parser.feed(&[0, 4, 2, 0x85, 0x01, 0, 2, 1, 7], false);
        assert_eq!((parser.group, parser.frames), (Some((2, 0x501)), 1));
    }

    #[test]
    fn the_send_window_follows_the_congestion_window_within_bounds() {
        assert_eq!(send_window_for(0), MIN_SEND_WINDOW);
        assert_eq!(send_window_for(14_720), MIN_SEND_WINDOW);
        assert_eq!(send_window_for(20_000), 30_000);
        assert_eq!(send_window_for(1_000_000), 1_500_000);
        assert_eq!(send_window_for(u64::MAX / 4), MAX_SEND_WINDOW);
    }
}
