//! Writes into a viewer's feed (its own broadcast: video, catalog, overlay and metadata
//! tracks) that failed, by reason. A failed write is a frame or message that viewer does not
//! get; the counters are per process, like the other counts of what peers cause.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a write into a viewer's feed failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedWriteFailure {
    /// The viewer's track was already finished, or nobody reads it any more (the session is
    /// going away).
    Closed,
    /// Larger than the track's frame or group limit.
    TooLarge,
    /// The group was already superseded or timed out.
    Expired,
    /// A media time the container cannot carry.
    BadTimestamp,
    /// Anything else the transport refused.
    Other,
}

impl FeedWriteFailure {
    pub const ALL: [FeedWriteFailure; 5] = [
        Self::Closed,
        Self::TooLarge,
        Self::Expired,
        Self::BadTimestamp,
        Self::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::TooLarge => "too_large",
            Self::Expired => "expired",
            Self::BadTimestamp => "bad_timestamp",
            Self::Other => "other",
        }
    }
}

static FAILURES: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];

pub fn feed_write_failed(reason: FeedWriteFailure) {
    FAILURES[reason as usize].fetch_add(1, Ordering::Relaxed);
}

pub fn feed_write_failures(reason: FeedWriteFailure) -> u64 {
    FAILURES[reason as usize].load(Ordering::Relaxed)
}
