//! The viewer → node control channel: a MoQ track the viewer publishes on its own session.
//!
//! A viewer that wants to zoom, pan or tap publishes the broadcast [`CONTROL_BROADCAST`] with
//! one track, [`CONTROL_TRACK`]. Each command is one frame of UTF-8 text (the node speaks JSON,
//! see README), at most [`MAX_CONTROL_MESSAGE_BYTES`]; a viewer should start a new group per
//! command so an old command never delays a newer one. The server hands every message to
//! [`crate::SessionRouter::control`] on the session's own task, so a slow or hostile viewer can
//! only flood itself: oversized messages and anything beyond [`MAX_MESSAGES_PER_SECOND`] are
//! dropped and counted, never queued.

use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_telemetry::peer_input::{control_dropped, ControlDrop, PeerLogs};
use moq_net::{origin, track};

use crate::router::bounded;
use crate::SessionRouter;

/// The broadcast a viewer publishes its commands in.
pub const CONTROL_BROADCAST: &str = "control";
/// The track inside [`CONTROL_BROADCAST`] carrying one command per frame.
pub const CONTROL_TRACK: &str = "commands";
/// Larger messages are dropped unread.
pub const MAX_CONTROL_MESSAGE_BYTES: usize = 4096;
/// A rejection's reason is logged up to this long.
const MAX_LOGGED_REASON_BYTES: usize = 256;
/// A viewer's budget of commands per second (a pinch gesture at 60 Hz fits).
pub const MAX_MESSAGES_PER_SECOND: u32 = 60;

/// Root of the viewers' published broadcasts on the shared origin (`~` never starts a
/// rendering name, so nothing a viewer publishes can shadow a rendering or another viewer).
pub(crate) fn control_scope(session_id: u64) -> String {
    format!("~control/{session_id}")
}

/// Reads one viewer's commands until its session ends (the caller aborts this task then).
pub(crate) async fn serve(
    origin: origin::Consumer,
    session_id: u64,
    router: Arc<dyn SessionRouter>,
) {
    let path = format!("{}/{CONTROL_BROADCAST}", control_scope(session_id));
    // Waits for the viewer to announce it; most viewers never do, and that is fine.
    let broadcast = match origin.routed_broadcast(path.as_str()).await {
        Ok(broadcast) => broadcast,
        Err(e) => return tracing::debug!(error = %e, "no control broadcast"),
    };
    let subscribed = match broadcast.track(CONTROL_TRACK) {
        Ok(track) => track.subscribe(track::Subscription::default()).await,
        Err(e) => return tracing::info!(error = %e, "control broadcast without a commands track"),
    };
    let mut commands = match subscribed {
        Ok(track) => track.ordered(),
        Err(e) => return tracing::info!(error = %e, "control track refused"),
    };
    tracing::debug!("control channel open");
    let mut limiter = RateLimiter::new(MAX_MESSAGES_PER_SECOND, Duration::from_secs(1));
    // The viewer chooses how often it misbehaves: its lines are rationed, every drop counted.
    let mut logs = PeerLogs::default();
    let mut dropped = 0u64;
    let mut next_sequence = 0u64;
    while let Ok(Some(mut group)) = commands.next_group().await {
        // Groups passed over for a newer one were never read: counted, not logged.
        let superseded = group.sequence.saturating_sub(next_sequence);
        if superseded > 0 {
            control_dropped(ControlDrop::Superseded, superseded);
        }
        next_sequence = next_sequence.max(group.sequence.saturating_add(1));
        while let Ok(Some(frame)) = group.read_frame().await {
            if frame.payload.len() > MAX_CONTROL_MESSAGE_BYTES {
                dropped += 1;
                control_dropped(ControlDrop::TooLarge, 1);
                if let Some(suppressed) = logs.allow() {
                    tracing::info!(
                        bytes = frame.payload.len(),
                        limit = MAX_CONTROL_MESSAGE_BYTES,
                        suppressed,
                        "control message too large, dropped"
                    );
                }
                continue;
            }
            if !limiter.allow(Instant::now()) {
                dropped += 1;
                control_dropped(ControlDrop::OverRate, 1);
                if let Some(suppressed) = logs.allow() {
                    tracing::info!(
                        dropped,
                        suppressed,
                        "viewer exceeds the control message rate, dropping"
                    );
                }
                continue;
            }
            if let Err(reason) = router.control(session_id, &frame.payload) {
                control_dropped(ControlDrop::Rejected, 1);
                if let Some(suppressed) = logs.allow() {
                    // The reason may quote the message (an unknown command's name).
                    let reason = bounded(reason, MAX_LOGGED_REASON_BYTES);
                    tracing::info!(%reason, suppressed, "control message rejected");
                }
            }
        }
    }
    tracing::debug!(dropped, "control channel closed");
}

/// At most `limit` events per `window`, fixed windows: simple, and enough to bound one viewer.
struct RateLimiter {
    limit: u32,
    window: Duration,
    started: Option<Instant>,
    used: u32,
}

impl RateLimiter {
    fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            started: None,
            used: 0,
        }
    }

    fn allow(&mut self, now: Instant) -> bool {
        match self.started {
            Some(start) if now.duration_since(start) < self.window => {}
            _ => {
                self.started = Some(now);
                self.used = 0;
            }
        }
        self.used += 1;
        self.used <= self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_allows_the_limit_per_window() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(3, Duration::from_secs(1));
        let allowed: Vec<bool> = (0..5).map(|_| limiter.allow(t0)).collect();
        assert_eq!(allowed, [true, true, true, false, false]);
        assert!(limiter.allow(t0 + Duration::from_millis(1001)));
    }
}
