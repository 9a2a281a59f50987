//! A viewer's WebSocket (qmux) session as moq-net drives it, and what a viewer whose TCP
//! connection backs up may hold.
//!
//! moq-net 0.3 steps transports through web-transport-trait's poll interface; qmux 0.5 offers
//! only the async one. Each pending operation here is a boxed future that borrows the stream
//! for as long as it runs and can be *recalled* at once (a oneshot raced first in the future),
//! so a watch for the peer's STOP_SENDING never stands in the way of the next write, a reset
//! or a priority change.
//!
//! Slow viewers: over WebSocket everything rides one TCP connection, in order, so there is no
//! congestion window to follow as `pacing` does for QUIC. What a backed-up viewer holds is
//! bounded instead: qmux queues at most 8 records (16 KiB each) per session before writers
//! wait, each stream lends at most [`MAX_WRITE_CHUNK`] bytes to a pending write, and at most
//! [`MAX_OPEN_GROUPS`] group streams are open at once: opening one more gives up the oldest
//! unfinished one with moq-lite's `Old` code (what moq-net sends for a group that aged out),
//! which also drops what qmux still queued of it. The viewer then skips to the newest group,
//! as it does over QUIC. Nothing of one session waits on another's socket.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};
use moq_net::web_transport_trait::{self as wt, poll as transport};
use tokio::sync::oneshot;

use crate::pacing::DeliveryStats;

/// Bytes of one write lent to qmux at a time: a keyframe is handed over in pieces, so a
/// stalled stream pins at most this much beside what qmux itself queues.
pub(crate) const MAX_WRITE_CHUNK: usize = 64 * 1024;

/// Group (unidirectional) streams a WebSocket viewer may have open at once. A viewer keeping up
/// has one per track (video, catalog, detections, overlays); more means groups are piling up
/// behind a link that cannot take them.
pub(crate) const MAX_OPEN_GROUPS: usize = 8;

/// What qmux 0.5 queues per session before its writers wait: 8 records of at most 16 KiB.
const QMUX_QUEUED_BYTES: u64 = 8 * 16 * 1024;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A stream lent to one pending operation, or at home.
enum Lent<S, T> {
    Home(S),
    Out {
        /// Resolves to the stream and the operation's outcome (`None`: recalled first). Never
        /// contended (reached through `&mut`); the Mutex only makes the stream Sync.
        op: Mutex<BoxFuture<'static, (S, Option<T>)>>,
        recall: Option<oneshot::Sender<()>>,
    },
    /// Only between taking the stream out and putting it back.
    Gone,
}

impl<S: Send + 'static, T: Send + 'static> Lent<S, T> {
    fn lend(
        stream: S,
        op: impl for<'a> FnOnce(&'a mut S) -> BoxFuture<'a, T> + Send + 'static,
    ) -> Self {
        let (recall, recalled) = oneshot::channel::<()>();
        let future = async move {
            let mut stream = stream;
            let outcome = {
                let work = op(&mut stream);
                tokio::select! {
                    biased;
                    // Only an explicit recall counts; a dropped sender leaves the work running.
                    Ok(()) = recalled => None,
                    outcome = work => Some(outcome),
                }
            };
            (stream, outcome)
        };
        Self::Out {
            op: Mutex::new(Box::pin(future)),
            recall: Some(recall),
        }
    }

    /// Polls the pending operation; once it is over the stream is home again and its outcome
    /// is returned (`Some(None)`: it was recalled).
    fn poll_back(&mut self, cx: &mut Context<'_>) -> Poll<Option<Option<T>>> {
        let Self::Out { op, .. } = self else {
            return Poll::Ready(None);
        };
        let op = op.get_mut().unwrap_or_else(|p| p.into_inner());
        let (stream, outcome) = std::task::ready!(op.as_mut().poll(cx));
        *self = Self::Home(stream);
        Poll::Ready(Some(outcome))
    }

    /// Tells the pending operation to give the stream back on its next poll.
    fn signal_recall(&mut self) {
        if let Self::Out { recall, .. } = self {
            if let Some(recall) = recall.take() {
                let _ = recall.send(());
            }
        }
    }

    /// Calls the pending operation back and takes the stream home (a recalled operation
    /// finishes on its next poll; outside tokio's task budget, so it is not told to yield).
    /// Returns the outcome if there was one.
    fn recall(&mut self) -> Option<Option<T>> {
        self.signal_recall();
        let Self::Out { op, .. } = self else {
            return None;
        };
        let op = op.get_mut().unwrap_or_else(|p| p.into_inner());
        let mut unconstrained = tokio::task::unconstrained(op.as_mut());
        match Pin::new(&mut unconstrained).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready((stream, outcome)) => {
                *self = Self::Home(stream);
                Some(outcome)
            }
            Poll::Pending => None,
        }
    }

    fn home(&mut self) -> Option<&mut S> {
        match self {
            Self::Home(stream) => Some(stream),
            _ => None,
        }
    }
}

/// The group streams of one session still open, oldest first, for [`MAX_OPEN_GROUPS`].
#[derive(Default)]
pub(crate) struct GroupLimit {
    open: Mutex<VecDeque<Arc<Eviction>>>,
    superseded: AtomicU64,
}

/// Set when a stream is given up for a newer one; its task is woken to apply it.
#[derive(Default)]
struct Eviction {
    evicted: AtomicBool,
    done: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Eviction {
    fn waker(&self) -> MutexGuard<'_, Option<Waker>> {
        self.waker.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl GroupLimit {
    fn open(&self) -> MutexGuard<'_, VecDeque<Arc<Eviction>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new group stream, evicting the oldest unfinished ones beyond the limit.
    fn opened(&self) -> Arc<Eviction> {
        let eviction = Arc::new(Eviction::default());
        let mut evicted = Vec::new();
        {
            let mut open = self.open();
            open.retain(|e| !e.done.load(Ordering::Acquire));
            open.push_back(eviction.clone());
            while open.len() > MAX_OPEN_GROUPS {
                if let Some(oldest) = open.pop_front() {
                    oldest.evicted.store(true, Ordering::Release);
                    evicted.push(oldest);
                }
            }
        }
        for oldest in evicted {
            self.superseded.fetch_add(1, Ordering::Relaxed);
            if let Some(waker) = oldest.waker().take() {
                waker.wake();
            }
        }
        eviction
    }

    pub(crate) fn stats(&self) -> DeliveryStats {
        DeliveryStats {
            groups_superseded: self.superseded.load(Ordering::Relaxed),
            send_window: QMUX_QUEUED_BYTES,
        }
    }
}

/// A pending session-level operation.
type Pending<T> = Mutex<Option<BoxFuture<'static, T>>>;

fn poll_pending<T>(
    slot: &mut Pending<T>,
    cx: &mut Context<'_>,
    start: impl FnOnce() -> BoxFuture<'static, T>,
) -> Poll<T> {
    // Never contended: `get_mut` on an exclusive borrow. The Mutex only makes the session Sync.
    let slot = slot.get_mut().unwrap_or_else(|p| p.into_inner());
    let future = slot.get_or_insert_with(start);
    let outcome = std::task::ready!(future.as_mut().poll(cx));
    *slot = None;
    Poll::Ready(outcome)
}

type Streams = (qmux::SendStream, qmux::RecvStream);

/// A viewer's qmux session, seen through the poll interface. Each clone has its own pending
/// operations and shares the session and its group limit.
pub(crate) struct QmuxSession {
    inner: qmux::Session,
    limit: Arc<GroupLimit>,
    accept_uni: Pending<Result<qmux::RecvStream, qmux::Error>>,
    accept_bi: Pending<Result<Streams, qmux::Error>>,
    open_uni: Pending<Result<qmux::SendStream, qmux::Error>>,
    open_bi: Pending<Result<Streams, qmux::Error>>,
    recv_datagram: Pending<Result<Bytes, qmux::Error>>,
    closed: Pending<qmux::Error>,
}

impl QmuxSession {
    pub fn new(inner: qmux::Session) -> Self {
        Self::with_limit(inner, Arc::default())
    }

    fn with_limit(inner: qmux::Session, limit: Arc<GroupLimit>) -> Self {
        Self {
            inner,
            limit,
            accept_uni: Mutex::default(),
            accept_bi: Mutex::default(),
            open_uni: Mutex::default(),
            open_bi: Mutex::default(),
            recv_datagram: Mutex::default(),
            closed: Mutex::default(),
        }
    }

    pub fn group_limit(&self) -> Arc<GroupLimit> {
        self.limit.clone()
    }
}

impl Clone for QmuxSession {
    fn clone(&self) -> Self {
        Self::with_limit(self.inner.clone(), self.limit.clone())
    }
}

impl transport::Session for QmuxSession {
    type SendStream = QmuxSend;
    type RecvStream = QmuxRecv;
    type Error = qmux::Error;

    fn poll_accept_uni(&mut self, cx: &mut Context<'_>) -> Poll<Result<QmuxRecv, qmux::Error>> {
        let session = self.inner.clone();
        poll_pending(&mut self.accept_uni, cx, || {
            Box::pin(async move { wt::Session::accept_uni(&session).await })
        })
        .map(|r| r.map(QmuxRecv::new))
    }

    fn poll_accept_bi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(QmuxSend, QmuxRecv), qmux::Error>> {
        let session = self.inner.clone();
        poll_pending(&mut self.accept_bi, cx, || {
            Box::pin(async move { wt::Session::accept_bi(&session).await })
        })
        .map(|r| r.map(|(send, recv)| (QmuxSend::new(send, None), QmuxRecv::new(recv))))
    }

    fn poll_open_uni(&mut self, cx: &mut Context<'_>) -> Poll<Result<QmuxSend, qmux::Error>> {
        let session = self.inner.clone();
        let opened = std::task::ready!(poll_pending(&mut self.open_uni, cx, || {
            Box::pin(async move { wt::Session::open_uni(&session).await })
        }));
        // Only moq-lite's groups travel on unidirectional streams from the server.
        Poll::Ready(opened.map(|send| QmuxSend::new(send, Some(self.limit.opened()))))
    }

    fn poll_open_bi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(QmuxSend, QmuxRecv), qmux::Error>> {
        let session = self.inner.clone();
        poll_pending(&mut self.open_bi, cx, || {
            Box::pin(async move { wt::Session::open_bi(&session).await })
        })
        .map(|r| r.map(|(send, recv)| (QmuxSend::new(send, None), QmuxRecv::new(recv))))
    }

    fn poll_send_datagram(
        &mut self,
        _cx: &mut Context<'_>,
        payload: &[u8],
    ) -> Poll<Result<(), qmux::Error>> {
        // qmux queues or sheds datagrams itself; it never waits.
        Poll::Ready(wt::Session::send_datagram(
            &self.inner,
            Bytes::copy_from_slice(payload),
        ))
    }

    fn poll_recv_datagram(&mut self, cx: &mut Context<'_>) -> Poll<Result<Bytes, qmux::Error>> {
        let session = self.inner.clone();
        poll_pending(&mut self.recv_datagram, cx, || {
            Box::pin(async move { wt::Session::recv_datagram(&session).await })
        })
    }

    fn max_datagram_size(&self) -> usize {
        wt::Session::max_datagram_size(&self.inner)
    }

    fn protocol(&self) -> Option<&str> {
        wt::Session::protocol(&self.inner)
    }

    fn close(&mut self, code: u32, reason: &str) {
        // qmux records a local close over the peer's: closing a session the peer already
        // closed would replace the peer's code and reason with ours.
        let closed = wt::Session::closed(&self.inner);
        let already = std::pin::pin!(closed)
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_ready();
        if !already {
            wt::Session::close(&self.inner, code, reason);
        }
    }

    fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<qmux::Error> {
        let session = self.inner.clone();
        poll_pending(&mut self.closed, cx, || {
            Box::pin(async move { wt::Session::closed(&session).await })
        })
    }

    fn stats(&self) -> impl wt::Stats {
        wt::Session::stats(&self.inner)
    }
}

/// One outgoing stream.
pub(crate) struct QmuxSend {
    stream: Lent<qmux::SendStream, Result<(), qmux::Error>>,
    /// The bytes of the pending write (reported once it is done).
    writing: Bytes,
    /// Bytes a finished write took that the caller has not been told of yet.
    written: Bytes,
    /// Set while recalled work is out: applied when the stream is home.
    priority: Option<u8>,
    reset_code: Option<u32>,
    finished: bool,
    ended: bool,
    /// Group streams only: the session's limit may give this one up.
    eviction: Option<Arc<Eviction>>,
}

impl QmuxSend {
    fn new(stream: qmux::SendStream, eviction: Option<Arc<Eviction>>) -> Self {
        Self {
            stream: Lent::Home(stream),
            writing: Bytes::new(),
            written: Bytes::new(),
            priority: None,
            reset_code: None,
            finished: false,
            ended: false,
            eviction,
        }
    }

    /// Takes a finished operation's outcome, then applies what waited for the stream.
    fn settle(
        &mut self,
        outcome: Option<Result<(), qmux::Error>>,
        was_write: bool,
    ) -> Result<(), qmux::Error> {
        if was_write {
            let writing = std::mem::take(&mut self.writing);
            if matches!(outcome, Some(Ok(()))) {
                self.written = writing;
            }
        }
        self.apply_deferred();
        match outcome {
            Some(Err(e)) => {
                self.ended = true;
                Err(e)
            }
            _ => Ok(()),
        }
    }

    /// Applies a priority or reset that came while the stream was lent out, once it is home.
    fn apply_deferred(&mut self) {
        let Some(stream) = self.stream.home() else {
            return;
        };
        if let Some(order) = self.priority.take() {
            wt::SendStream::set_priority(stream, order);
        }
        if let Some(code) = self.reset_code.take() {
            wt::SendStream::reset(stream, code);
            self.ended = true;
        }
    }

    /// Brings the stream home now if it can come.
    fn recall(&mut self) {
        let was_write = !self.writing.is_empty();
        if let Some(outcome) = self.stream.recall() {
            let _ = self.settle(outcome, was_write);
        }
    }

    /// Gives the stream up if the session's limit asked for it. Returns whether it did.
    fn apply_eviction(&mut self, cx: &Context<'_>) -> bool {
        let Some(eviction) = &self.eviction else {
            return false;
        };
        if !eviction.evicted.load(Ordering::Acquire) {
            *eviction.waker() = Some(cx.waker().clone());
            // Evicted between the check and parking: look once more.
            if !eviction.evicted.load(Ordering::Acquire) {
                return false;
            }
        }
        if !self.ended && !self.finished {
            transport::SendStream::reset(self, moq_net::StreamError::Old.to_code());
        }
        true
    }
}

impl Drop for QmuxSend {
    fn drop(&mut self) {
        // qmux resets an unfinished stream it drops with code 0: a reset asked for while the
        // stream was lent out says why instead.
        self.recall();
        if let Some(eviction) = &self.eviction {
            eviction.done.store(true, Ordering::Release);
        }
    }
}

impl transport::SendStream for QmuxSend {
    type Error = qmux::Error;

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize, qmux::Error>> {
        loop {
            if !self.written.is_empty() && !buf.is_empty() {
                // A finished write is reported against the bytes presented now (a retry may
                // be shorter); they must be the bytes it sent.
                let n = buf.len().min(self.written.len());
                if buf[..n] != self.written[..n] {
                    self.written.clear();
                    return Poll::Ready(Err(qmux::Error::ProtocolViolation));
                }
                self.written.advance(n);
                return Poll::Ready(Ok(n));
            }
            if self.apply_eviction(cx) {
                return Poll::Ready(Err(qmux::Error::StreamClosed));
            }
            match &mut self.stream {
                Lent::Home(_) if buf.is_empty() => return Poll::Ready(Ok(0)),
                Lent::Home(_) => {
                    let Lent::Home(stream) = std::mem::replace(&mut self.stream, Lent::Gone) else {
                        unreachable!("matched Home above")
                    };
                    let chunk = Bytes::copy_from_slice(&buf[..buf.len().min(MAX_WRITE_CHUNK)]);
                    self.writing = chunk.clone();
                    self.stream = Lent::lend(stream, move |stream| {
                        Box::pin(async move {
                            let mut chunk = chunk;
                            wt::SendStream::write_buf(stream, &mut chunk)
                                .await
                                .map(|_| ())
                        })
                    });
                }
                Lent::Out { .. } => {
                    let was_write = !self.writing.is_empty();
                    if !was_write {
                        // A watch for the peer's STOP_SENDING: the write comes first.
                        self.stream.signal_recall();
                        let Some(outcome) = std::task::ready!(self.stream.poll_back(cx)) else {
                            continue;
                        };
                        self.settle(outcome, false)?;
                        continue;
                    }
                    let Some(outcome) = std::task::ready!(self.stream.poll_back(cx)) else {
                        continue;
                    };
                    self.settle(outcome, true)?;
                    if self.written.is_empty() {
                        // Recalled (by a reset): the stream is over.
                        return Poll::Ready(Err(qmux::Error::StreamClosed));
                    }
                }
                Lent::Gone => return Poll::Ready(Err(qmux::Error::StreamClosed)),
            }
        }
    }

    fn set_priority(&mut self, order: u8) {
        self.priority = Some(order);
        if matches!(self.stream, Lent::Out { .. }) && self.writing.is_empty() {
            self.recall();
        }
        self.apply_deferred();
    }

    fn finish(&mut self) -> Result<(), qmux::Error> {
        if self.ended {
            return Err(qmux::Error::StreamClosed);
        }
        if matches!(self.stream, Lent::Out { .. }) && self.writing.is_empty() {
            self.recall();
        }
        let Some(stream) = self.stream.home() else {
            // moq finishes only after its writes are through.
            return Err(qmux::Error::StreamClosed);
        };
        wt::SendStream::finish(stream)?;
        self.finished = true;
        if let Some(eviction) = &self.eviction {
            eviction.done.store(true, Ordering::Release);
        }
        Ok(())
    }

    fn reset(&mut self, code: u32) {
        if self.ended || self.finished {
            return;
        }
        self.reset_code = Some(code);
        self.recall();
        self.apply_deferred();
        self.ended = true;
        if let Some(eviction) = &self.eviction {
            eviction.done.store(true, Ordering::Release);
        }
    }

    fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), qmux::Error>> {
        loop {
            // TCP delivers in order and acknowledges nothing per stream: once the FIN or reset
            // is queued, the stream is as closed as it will get.
            if self.finished || (self.ended && matches!(self.stream, Lent::Home(_))) {
                return Poll::Ready(Ok(()));
            }
            if self.apply_eviction(cx) {
                return Poll::Ready(Ok(()));
            }
            match &mut self.stream {
                Lent::Home(_) => {
                    let Lent::Home(stream) = std::mem::replace(&mut self.stream, Lent::Gone) else {
                        unreachable!("matched Home above")
                    };
                    self.stream =
                        Lent::lend(stream, |stream| Box::pin(wt::SendStream::closed(stream)));
                }
                Lent::Out { .. } => {
                    let was_write = !self.writing.is_empty();
                    let Some(outcome) = std::task::ready!(self.stream.poll_back(cx)) else {
                        continue;
                    };
                    match (was_write, outcome) {
                        (_, Some(Err(e))) => {
                            self.ended = true;
                            return Poll::Ready(Err(e));
                        }
                        (false, Some(Ok(()))) => return Poll::Ready(Ok(())),
                        (was_write, outcome) => self.settle(outcome, was_write)?,
                    }
                }
                Lent::Gone => return Poll::Ready(Err(qmux::Error::StreamClosed)),
            }
        }
    }
}

/// Bytes a receive stream reads ahead while only its end is awaited: beyond this the watch
/// waits for the caller to read.
const MAX_READ_AHEAD: usize = 64 * 1024;

/// One incoming stream.
pub(crate) struct QmuxRecv {
    stream: Lent<qmux::RecvStream, Result<Option<Bytes>, qmux::Error>>,
    /// Read from the stream, not yet handed to the caller.
    buffered: Bytes,
    /// The peer finished the stream (after `buffered`).
    fin: bool,
    stop_code: Option<u32>,
}

impl QmuxRecv {
    fn new(stream: qmux::RecvStream) -> Self {
        Self {
            stream: Lent::Home(stream),
            buffered: Bytes::new(),
            fin: false,
            stop_code: None,
        }
    }

    /// Reads the next chunk into `buffered` (or notes the end).
    fn poll_fill(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<Result<(), qmux::Error>> {
        loop {
            match &mut self.stream {
                Lent::Home(_) => {
                    let Lent::Home(stream) = std::mem::replace(&mut self.stream, Lent::Gone) else {
                        unreachable!("matched Home above")
                    };
                    self.stream = Lent::lend(stream, move |stream| {
                        Box::pin(wt::RecvStream::read_chunk(stream, max))
                    });
                }
                Lent::Out { .. } => {
                    let Some(outcome) = std::task::ready!(self.stream.poll_back(cx)) else {
                        continue;
                    };
                    return Poll::Ready(match outcome {
                        Some(Ok(Some(chunk))) => {
                            self.buffered = chunk;
                            Ok(())
                        }
                        Some(Ok(None)) => {
                            self.fin = true;
                            Ok(())
                        }
                        Some(Err(e)) => Err(e),
                        None => Err(qmux::Error::StreamClosed),
                    });
                }
                Lent::Gone => return Poll::Ready(Err(qmux::Error::StreamClosed)),
            }
        }
    }
}

impl Drop for QmuxRecv {
    fn drop(&mut self) {
        self.stream.recall();
        if let (Some(code), Some(stream)) = (self.stop_code.take(), self.stream.home()) {
            wt::RecvStream::stop(stream, code);
        }
    }
}

impl transport::RecvStream for QmuxRecv {
    type Error = qmux::Error;

    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        dst: &mut [u8],
    ) -> Poll<Result<Option<usize>, qmux::Error>> {
        let Some(chunk) = std::task::ready!(self.poll_read_chunk(cx, dst.len()))? else {
            return Poll::Ready(Ok(None));
        };
        dst[..chunk.len()].copy_from_slice(&chunk);
        Poll::Ready(Ok(Some(chunk.len())))
    }

    fn poll_read_chunk(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<Result<Option<Bytes>, qmux::Error>> {
        if max == 0 {
            return Poll::Ready(Ok(Some(Bytes::new())));
        }
        loop {
            if !self.buffered.is_empty() {
                let n = max.min(self.buffered.len());
                return Poll::Ready(Ok(Some(self.buffered.split_to(n))));
            }
            if self.fin {
                return Poll::Ready(Ok(None));
            }
            std::task::ready!(self.poll_fill(cx, max))?;
        }
    }

    fn stop(&mut self, code: u32) {
        self.stop_code = Some(code);
        self.stream.recall();
        if let Some(stream) = self.stream.home() {
            wt::RecvStream::stop(stream, code);
            self.stop_code = None;
        }
    }

    fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), qmux::Error>> {
        // Watched by reading ahead (bounded): the end is seen after the data before it.
        loop {
            if self.fin && self.buffered.is_empty() {
                return Poll::Ready(Ok(()));
            }
            if self.buffered.len() >= MAX_READ_AHEAD || self.fin {
                // Waits for the caller to read what is here.
                return Poll::Pending;
            }
            let before = std::mem::take(&mut self.buffered);
            let filled = self.poll_fill(cx, MAX_READ_AHEAD - before.len());
            let more = std::mem::replace(&mut self.buffered, Bytes::new());
            self.buffered = if before.is_empty() {
                more
            } else {
                [before, more].concat().into()
            };
            std::task::ready!(filled)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qmux::ws::tokio_tungstenite::{tungstenite::protocol::Role, WebSocketStream};
    use std::future::poll_fn;
    use std::time::Duration;
    use transport::{RecvStream as _, SendStream as _, Session as _};

    /// A server session (through the adapter) and its client (qmux's own API), on a pipe
    /// holding `pipe_bytes` in flight.
    async fn pair(pipe_bytes: usize) -> (QmuxSession, qmux::Session) {
        let (server, client) = tokio::io::duplex(pipe_bytes);
        let protocol = "qmux-01.moq-lite-05";
        let server = WebSocketStream::from_raw_socket(server, Role::Server, None).await;
        let client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        let server = qmux::ws::Upgraded::new(server).with_alpn(protocol).accept();
        let client = qmux::ws::Upgraded::new(client)
            .with_alpn(protocol)
            .connect();
        (QmuxSession::new(server), client)
    }

    async fn write_all(stream: &mut QmuxSend, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let n = poll_fn(|cx| stream.poll_write(cx, bytes)).await.unwrap();
            bytes = &bytes[n..];
        }
    }

    fn now<T>(poll: impl FnOnce(&mut Context<'_>) -> Poll<T>) -> Poll<T> {
        poll(&mut Context::from_waker(Waker::noop()))
    }

    #[tokio::test]
    async fn bytes_cross_both_ways_and_a_watch_never_blocks_a_write() {
        let (mut server, client) = pair(1 << 20).await;
        let mut send = poll_fn(|cx| server.poll_open_uni(cx)).await.unwrap();
        // moq watches for the peer's STOP_SENDING between writes.
        assert!(now(|cx| send.poll_closed(cx)).is_pending());
        let payload: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        write_all(&mut send, &payload).await;
        assert!(
            now(|cx| send.poll_closed(cx)).is_pending(),
            "watching again"
        );
        send.finish().unwrap();
        assert!(
            now(|cx| send.poll_closed(cx)).is_ready(),
            "over TCP, queued is done"
        );
        let mut recv = wt::Session::accept_uni(&client).await.unwrap();
        let received = wt::RecvStream::read_all(&mut recv).await.unwrap();
        assert_eq!(
            received.as_ref(),
            payload.as_slice(),
            "every byte, in order"
        );

        let (mut client_send, _client_recv) = wt::Session::open_bi(&client).await.unwrap();
        wt::SendStream::write(&mut client_send, b"subscribe")
            .await
            .unwrap();
        wt::SendStream::finish(&mut client_send).unwrap();
        let (_send, mut recv) = poll_fn(|cx| server.poll_accept_bi(cx)).await.unwrap();
        // Its end is watched by reading ahead: the data stays for the reader, and the stream
        // is closed once that is read.
        assert!(now(|cx| recv.poll_closed(cx)).is_pending());
        let mut read = Vec::new();
        while let Some(chunk) = poll_fn(|cx| recv.poll_read_chunk(cx, 4)).await.unwrap() {
            assert!(chunk.len() <= 4);
            read.extend_from_slice(&chunk);
        }
        assert_eq!(read, b"subscribe");
        assert!(matches!(
            now(|cx| recv.poll_closed(cx)),
            Poll::Ready(Ok(()))
        ));
    }

    #[tokio::test]
    async fn a_reset_during_a_blocked_write_ends_the_stream_at_once_with_its_code() {
        let (mut server, client) = pair(16 * 1024).await;
        let mut send = poll_fn(|cx| server.poll_open_uni(cx)).await.unwrap();
        // Nobody reads: the pipe, then qmux's queue fill and the write waits.
        let big = vec![7u8; 1 << 20];
        let mut written = 0;
        while let Ok(accepted) = tokio::time::timeout(
            Duration::from_millis(200),
            poll_fn(|cx| send.poll_write(cx, &big[written..])),
        )
        .await
        {
            written += accepted.unwrap();
        }
        assert!(written < big.len(), "the write blocked");
        send.reset(moq_net::StreamError::Old.to_code());
        assert!(now(|cx| send.poll_closed(cx)).is_ready());
        assert!(matches!(
            now(|cx| send.poll_write(cx, b"more")),
            Poll::Ready(Err(_))
        ));
        let mut recv = wt::Session::accept_uni(&client).await.unwrap();
        let end = tokio::time::timeout(Duration::from_secs(5), wt::RecvStream::read_all(&mut recv))
            .await
            .expect("the reset arrives");
        use moq_net::web_transport_trait::Error as _;
        assert_eq!(
            end.unwrap_err().stream_error(),
            Some(moq_net::StreamError::Old.to_code())
        );
    }

    #[tokio::test]
    async fn beyond_the_limit_the_oldest_open_group_is_given_up() {
        let (mut server, _client) = pair(16 * 1024).await;
        let limit = server.group_limit();
        let mut groups = Vec::new();
        for _ in 0..MAX_OPEN_GROUPS {
            groups.push(poll_fn(|cx| server.poll_open_uni(cx)).await.unwrap());
        }
        // Each has bytes out that the stalled viewer does not take.
        for group in &mut groups {
            let _ = now(|cx| group.poll_write(cx, &[1u8; 100_000]));
        }
        assert_eq!(limit.stats().groups_superseded, 0);
        let _newest = poll_fn(|cx| server.poll_open_uni(cx)).await.unwrap();
        assert_eq!(limit.stats().groups_superseded, 1);
        assert!(
            matches!(
                now(|cx| groups[0].poll_write(cx, b"x")),
                Poll::Ready(Err(_))
            ),
            "the oldest group is over"
        );
        assert!(now(|cx| groups[0].poll_closed(cx)).is_ready());
        assert!(
            now(|cx| groups[1].poll_closed(cx)).is_pending(),
            "the others stay"
        );
        // A finished group does not count: finishing one leaves room for the next.
        groups[1].finish().unwrap();
        let _next = poll_fn(|cx| server.poll_open_uni(cx)).await.unwrap();
        assert_eq!(limit.stats().groups_superseded, 1);
    }
}
