//! Per-worker deadline heap: login timeouts, idle timeouts, close-after-flush limits.
//!
//! Each connection keeps its current deadline in its own state and has at most one live entry
//! here (`armed_at`). Extending a deadline (every received byte) touches only the connection;
//! when the entry comes due the worker re-checks the connection and re-arms it if the deadline
//! moved. Shortening a deadline arms a new, earlier entry; the later one is then stale and
//! discarded when it pops. Nothing ever scans all connections.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// A due entry: which slab slot and generation it was armed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerKey {
    pub slot: usize,
    pub generation: u32,
}

#[derive(Default)]
pub struct DeadlineHeap {
    heap: BinaryHeap<Reverse<(Instant, TimerKey)>>,
}

impl DeadlineHeap {
    pub fn arm(&mut self, at: Instant, key: TimerKey) {
        self.heap.push(Reverse((at, key)));
    }

    /// The earliest armed deadline, for the poll timeout.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Pops one entry that is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, TimerKey)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_in_deadline_order_and_only_when_due() {
        let mut h = DeadlineHeap::default();
        let t0 = Instant::now();
        let k = |slot| TimerKey {
            slot,
            generation: 0,
        };
        h.arm(t0 + Duration::from_secs(3), k(3));
        h.arm(t0 + Duration::from_secs(1), k(1));
        h.arm(t0 + Duration::from_secs(2), k(2));
        assert_eq!(h.next(), Some(t0 + Duration::from_secs(1)));
        assert!(h.pop_due(t0).is_none());
        let due: Vec<usize> = std::iter::from_fn(|| h.pop_due(t0 + Duration::from_secs(2)))
            .map(|(_, k)| k.slot)
            .collect();
        assert_eq!(due, vec![1, 2]);
        assert_eq!(h.len(), 1);
    }
}
