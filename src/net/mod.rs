//! The event loop: fixed mio worker threads, each owning a slab of connections.
//!
//! A connection is addressed by [`ConnId`] (worker, slab slot, generation). Other threads reach a
//! connection only through its worker's channel ([`WorkerHandle`]) and Waker; a message whose
//! generation no longer matches the slot is dropped, so a reused slot never receives another
//! client's data.

pub mod event_loop;
pub mod listener;
pub mod outq;
pub mod rate;
pub mod service;
pub mod timer;

use std::sync::Arc;

use crossbeam_channel::Sender;

/// Address of one connection in the whole process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub worker: u16,
    pub slot: u32,
    pub generation: u32,
}

/// Encoded PDU bytes shared by every connection they are queued on (encode once, send many).
pub type Shared = Arc<[u8]>;

/// The way into a loop from any thread: its bounded channel and its waker.
pub struct WorkerHandle<M> {
    pub tx: Sender<M>,
    pub waker: Arc<mio::Waker>,
}

impl<M> Clone for WorkerHandle<M> {
    fn clone(&self) -> Self {
        WorkerHandle {
            tx: self.tx.clone(),
            waker: Arc::clone(&self.waker),
        }
    }
}

impl<M> WorkerHandle<M> {
    /// Sends and wakes; waits while the channel is full (for pool threads, never for a
    /// loop: a loop posts through its outbox). Use [`WorkerHandle::send_quiet`] + one `wake`
    /// when sending many.
    pub fn send(&self, msg: M) {
        if self.tx.send(msg).is_ok() {
            self.wake();
        }
    }

    /// Sends without waking; the caller wakes once after a batch.
    pub fn send_quiet(&self, msg: M) {
        let _ = self.tx.send(msg);
    }

    pub fn wake(&self) {
        if let Err(e) = self.waker.wake() {
            log::warn!(target: "net", "waker failed: {e}");
        }
    }
}

/// Slab slots with output to flush at the end of a loop iteration (each flushed once, in slot
/// order, however often it was marked). Used by the msg and the file workers.
#[derive(Default)]
pub struct DirtySlots {
    slots: Vec<usize>,
}

impl DirtySlots {
    pub fn mark(&mut self, slot: usize) {
        self.slots.push(slot);
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The marked slots, each once; hand the vector back with [`DirtySlots::reuse`].
    pub fn take(&mut self) -> Vec<usize> {
        let mut v = std::mem::take(&mut self.slots);
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Keeps `v`'s allocation for the next iteration (unless slots were marked meanwhile).
    pub fn reuse(&mut self, mut v: Vec<usize>) {
        if self.slots.is_empty() {
            v.clear();
            self.slots = v;
        }
    }
}

/// Handles of every loop of one service, indexed by `ConnId::worker`.
pub struct Workers<M> {
    handles: Arc<Vec<WorkerHandle<M>>>,
}

impl<M> Clone for Workers<M> {
    fn clone(&self) -> Self {
        Workers {
            handles: Arc::clone(&self.handles),
        }
    }
}

impl<M> Default for Workers<M> {
    fn default() -> Self {
        Workers {
            handles: Arc::new(Vec::new()),
        }
    }
}

impl<M> Workers<M> {
    pub fn new(handles: Vec<WorkerHandle<M>>) -> Self {
        Workers {
            handles: Arc::new(handles),
        }
    }

    pub fn get(&self, worker: u16) -> Option<&WorkerHandle<M>> {
        self.handles.get(usize::from(worker))
    }

    pub fn all(&self) -> &[WorkerHandle<M>] {
        &self.handles
    }
}
