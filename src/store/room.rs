//! The storage queues' "room again" bell. A loop whose job did not fit a full queue (the
//! writer's or the readers') parks the connection and calls [`Room::wait`]; the storage
//! threads call [`Room::ring`] whenever they take jobs off a queue, which marks every waiting
//! loop and runs its wake function once. Nothing polls: a parked connection costs nothing
//! until a job has left a queue.
//!
//! Loops are numbered (their `ConnId::worker`); with more than 64, numbers share bits and a
//! ring may wake a loop that was not waiting, which then finds nothing to do.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// A function that wakes one loop (its `mio::Waker`).
pub type WakeFn = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
pub struct Room {
    /// Loops waiting for room (bit `id % 64`).
    waiting: AtomicU64,
    /// Loops rung since they last looked.
    rung: AtomicU64,
    /// Wake functions by loop number; locked only when a ring finds a loop waiting.
    wakers: Mutex<Vec<WakeFn>>,
}

fn bit(id: u16) -> u64 {
    1u64 << (id % 64)
}

impl Room {
    /// Adds a loop's wake function; returns its number for [`Room::wait`] and [`Room::rang`]
    /// (numbers are given in order from 0, so the msg workers, added first, keep theirs).
    pub fn add(&self, wake: WakeFn) -> u16 {
        let mut w = self.wakers.lock();
        w.push(wake);
        u16::try_from(w.len() - 1).unwrap_or(u16::MAX)
    }

    /// Loop `id` waits for room. Call before looking at the queues again, so that a job taken
    /// in between rings.
    pub fn wait(&self, id: u16) {
        self.waiting.fetch_or(bit(id), Ordering::SeqCst);
    }

    /// A storage thread took jobs: every waiting loop is marked and woken. One atomic load
    /// when nobody waits.
    pub fn ring(&self) {
        if self.waiting.load(Ordering::Relaxed) == 0 {
            return;
        }
        let bits = self.waiting.swap(0, Ordering::SeqCst);
        if bits == 0 {
            return;
        }
        self.rung.fetch_or(bits, Ordering::SeqCst);
        for (i, wake) in self.wakers.lock().iter().enumerate() {
            if bits & (1u64 << (i % 64)) != 0 {
                wake();
            }
        }
    }

    /// Whether loop `id` was rung since it last asked (clears it).
    pub fn rang(&self, id: u16) -> bool {
        self.rung.fetch_and(!bit(id), Ordering::SeqCst) & bit(id) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    #[test]
    fn a_ring_wakes_only_waiting_loops_once() {
        let room = Room::default();
        let woken: Arc<Vec<AtomicUsize>> = Arc::new((0..3).map(|_| AtomicUsize::new(0)).collect());
        for i in 0..3 {
            let w = Arc::clone(&woken);
            let id = room.add(Box::new(move || {
                if let Some(c) = w.get(i) {
                    c.fetch_add(1, Ordering::SeqCst);
                }
            }));
            assert_eq!(usize::from(id), i);
        }
        room.ring();
        assert!(!room.rang(1), "nobody waited");
        room.wait(1);
        room.ring();
        room.ring();
        let counts: Vec<usize> = woken.iter().map(|c| c.load(Ordering::SeqCst)).collect();
        assert_eq!(counts, vec![0, 1, 0]);
        assert!(room.rang(1));
        assert!(!room.rang(1), "cleared once seen");
        assert!(!room.rang(0));
    }
}
