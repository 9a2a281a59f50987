//! Latest-wins hand-off between two threads: a single slot where a new value replaces an unread
//! one. The producer (decoder, encoder) never blocks on the consumer; the consumer always gets
//! the newest value; every overwritten value is counted so drops are visible in metrics.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

pub struct LatestSlot<T> {
    state: Mutex<SlotState<T>>,
    ready: Condvar,
}

struct SlotState<T> {
    value: Option<T>,
    replaced: u64,
    closed: bool,
}

/// What `take` returned besides a value.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken<T> {
    Value(T),
    TimedOut,
    Closed,
}

impl<T> Default for LatestSlot<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> LatestSlot<T> {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(SlotState {
                value: None,
                replaced: 0,
                closed: false,
            }),
            ready: Condvar::new(),
        }
    }

    /// Stores `value`, replacing (and counting) any value not yet taken. Returns true when a
    /// value was replaced.
    pub fn put(&self, value: T) -> bool {
        let mut s = self.lock();
        let replaced = s.value.replace(value).is_some();
        if replaced {
            s.replaced += 1;
        }
        drop(s);
        self.ready.notify_one();
        replaced
    }

    /// Takes the newest value, waiting up to `timeout` for one.
    pub fn take(&self, timeout: Duration) -> Taken<T> {
        let s = self.lock();
        let (mut s, _) = self
            .ready
            .wait_timeout_while(s, timeout, |s| s.value.is_none() && !s.closed)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match s.value.take() {
            Some(v) => Taken::Value(v),
            None if s.closed => Taken::Closed,
            None => Taken::TimedOut,
        }
    }

    pub fn try_take(&self) -> Option<T> {
        self.lock().value.take()
    }

    /// Values overwritten before anyone took them.
    pub fn replaced(&self) -> u64 {
        self.lock().replaced
    }

    /// Wakes the consumer for good; later `take`s return what is left, then `Closed`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState<T>> {
        // A panic while holding this lock cannot leave the slot inconsistent: every critical
        // section is a single field update.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn newest_value_wins_and_drops_are_counted() {
        let slot = LatestSlot::new();
        assert!(!slot.put(1));
        assert!(slot.put(2));
        assert!(slot.put(3));
        assert_eq!(slot.take(Duration::ZERO), Taken::Value(3));
        assert_eq!(slot.replaced(), 2);
        assert_eq!(slot.take(Duration::from_millis(1)), Taken::TimedOut);
    }

    #[test]
    fn close_wakes_a_waiting_consumer() {
        let slot = Arc::new(LatestSlot::<u32>::new());
        let s2 = slot.clone();
        let waiter = std::thread::spawn(move || s2.take(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        slot.close();
        assert_eq!(waiter.join().unwrap(), Taken::Closed);
    }
}
