//! What remote peers send that the node turns away, counted; and the log lines they can cause,
//! rationed.
//!
//! A peer decides how often it sends a malformed message or opens a connection, so every line
//! it can trigger passes two budgets: its own (a few lines, then one every few seconds) and the
//! whole node's (a flood from many peers at once). Lines turned away are counted in
//! `edge_log_lines_suppressed_total`, and the next line a peer may write says how many of its
//! own were held back. The counters are per process: every node in it shares them.

use edge_core::connection_gate::Verdict;
use edge_core::log_budget::LogBudget;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// One peer: 5 lines at once, then one every 5 s.
const PEER_BURST: u32 = 5;
const PEER_PER_SECOND: f64 = 0.2;
/// Everyone together: 20 lines at once, then 10 a second.
const GLOBAL_BURST: u32 = 20;
const GLOBAL_PER_SECOND: f64 = 10.0;

static SUPPRESSED: AtomicU64 = AtomicU64::new(0);

fn since_start() -> Duration {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

fn global_allows(now: Duration) -> bool {
    static GLOBAL: Mutex<Option<LogBudget>> = Mutex::new(None);
    let mut global = GLOBAL.lock().unwrap_or_else(|p| p.into_inner());
    global
        .get_or_insert_with(|| LogBudget::new(GLOBAL_BURST, GLOBAL_PER_SECOND))
        .allow(now)
        .is_some()
}

/// The log budget of one peer (a viewer's session, a connection).
#[derive(Debug)]
pub struct PeerLogs {
    own: LogBudget,
}

impl Default for PeerLogs {
    fn default() -> Self {
        Self {
            own: LogBudget::new(PEER_BURST, PEER_PER_SECOND),
        }
    }
}

impl PeerLogs {
    /// `Some(n)` when this peer may log a line now, `n` being how many of its lines were held
    /// back since its last one; `None` (and counted) when it may not.
    pub fn allow(&mut self) -> Option<u64> {
        let now = since_start();
        let allowed = self.own.allow(now).filter(|_| global_allows(now));
        if allowed.is_none() {
            SUPPRESSED.fetch_add(1, Ordering::Relaxed);
        }
        allowed.map(|a| a.suppressed)
    }
}

/// Whether a line caused by someone the node has no budget for yet (a connection attempt) may
/// be written: the whole node's budget only. Lines turned away are counted.
pub fn allow_unattributed() -> bool {
    let allowed = global_allows(since_start());
    if !allowed {
        SUPPRESSED.fetch_add(1, Ordering::Relaxed);
    }
    allowed
}

/// Log lines remote peers caused that were not written.
pub fn suppressed_log_lines() -> u64 {
    SUPPRESSED.load(Ordering::Relaxed)
}

/// Why a viewer's control message was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlDrop {
    /// Larger than the control channel's message limit: dropped unread.
    TooLarge,
    /// Beyond the viewer's messages-per-second budget.
    OverRate,
    /// Read and refused: not valid JSON, an unknown command, a value out of range, or a
    /// personal request admission did not allow.
    Rejected,
    /// Never read: a newer command arrived first (each command is a group of its own, and the
    /// node reads the newest, as a pinch gesture wants).
    Superseded,
}

impl ControlDrop {
    pub const ALL: [ControlDrop; 4] = [
        Self::TooLarge,
        Self::OverRate,
        Self::Rejected,
        Self::Superseded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::OverRate => "over_rate",
            Self::Rejected => "rejected",
            Self::Superseded => "superseded",
        }
    }
}

static CONTROL_DROPS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

pub fn control_dropped(reason: ControlDrop, count: u64) {
    CONTROL_DROPS[reason as usize].fetch_add(count, Ordering::Relaxed);
}

pub fn control_drops(reason: ControlDrop) -> u64 {
    CONTROL_DROPS[reason as usize].load(Ordering::Relaxed)
}

/// Where a viewer's connection came in: QUIC (WebTransport or raw moq), or a WebSocket
/// upgrade on the TCP port (browsers without WebTransport).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionTransport {
    Quic,
    WebSocket,
}

impl ConnectionTransport {
    pub const ALL: [ConnectionTransport; 2] = [Self::Quic, Self::WebSocket];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quic => "quic",
            Self::WebSocket => "websocket",
        }
    }
}

static CONNECTION_VERDICTS: [[AtomicU64; 4]; 2] = [const { [const { AtomicU64::new(0) }; 4] }; 2];

/// What the node did with one incoming viewer connection (see `edge_core::connection_gate`).
pub fn connection_verdict(transport: ConnectionTransport, verdict: Verdict) {
    CONNECTION_VERDICTS[transport as usize][verdict as usize].fetch_add(1, Ordering::Relaxed);
}

/// Connections that got `verdict`, over every transport.
pub fn connection_verdicts(verdict: Verdict) -> u64 {
    ConnectionTransport::ALL
        .iter()
        .map(|&transport| connection_verdicts_on(transport, verdict))
        .sum()
}

pub fn connection_verdicts_on(transport: ConnectionTransport, verdict: Verdict) -> u64 {
    CONNECTION_VERDICTS[transport as usize][verdict as usize].load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flooding_peer_writes_a_few_lines_and_the_rest_are_counted() {
        let before = suppressed_log_lines();
        let mut peer = PeerLogs::default();
        let written = (0..1000).filter(|_| peer.allow().is_some()).count();
        // At most its burst (fewer if other tests in this process spent the node's budget).
        assert!(written <= PEER_BURST as usize, "{written}");
        assert!(suppressed_log_lines() - before >= 1000 - PEER_BURST as u64);
    }

    #[test]
    fn many_peers_together_stay_within_the_node_budget() {
        let mut peers: Vec<PeerLogs> = (0..500).map(|_| PeerLogs::default()).collect();
        let written = peers.iter_mut().filter_map(PeerLogs::allow).count();
        // The global burst, plus what it refilled while the loop ran.
        assert!(written <= GLOBAL_BURST as usize + 10, "{written}");
    }
}
