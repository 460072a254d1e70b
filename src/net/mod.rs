//! The event loop: fixed mio worker threads, each owning a slab of connections.
//!
//! A connection is addressed by [`ConnId`] (worker, slab slot, generation). Other threads reach a
//! connection only through its worker's channel ([`WorkerHandle`]) and Waker; a message whose
//! generation no longer matches the slot is dropped, so a reused slot never receives another
//! client's data.

pub mod conn;
pub mod event_loop;
pub mod listener;
pub mod outq;
pub mod service;
pub mod timer;
pub mod worker;

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

/// Which listener a connection came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `ClientListen`: 1/1 -> 1/2, then close (B-LS).
    Login,
    /// `MsgListen`: client sessions.
    Msg,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Login => "login",
            Role::Msg => "msg",
        }
    }
}

/// Work handed to a worker by another thread.
pub enum WorkerMsg {
    /// A storage job of `conn` finished: `seq` is the connection's request sequence number.
    Done {
        conn: ConnId,
        seq: u64,
        done: crate::msg::Completion,
    },
    /// Queue these bytes on the connection (a push: delivery, presence, kick notice ...).
    Push { conn: ConnId, bytes: Shared },
    /// A committed group message: queue it on this worker's sessions of these users, except
    /// `skip`. Sent by the writer's outlet to every worker in commit order (B-GRP-9).
    Fanout {
        members: Arc<[u32]>,
        bytes: Shared,
        skip: Option<ConnId>,
    },
    /// Send 1/7 and close the connection once flushed (B-KICK-2).
    Kick { conn: ConnId, bytes: Shared },
    /// Close the connection at once (B-ADM-6).
    Close { conn: ConnId },
    /// Graceful stop, step 1: stop accepting and reading client input (no new request reaches
    /// storage from here on), then send the worker's id on `ack`. Storage replies, pushes and
    /// output go on as before. By `deadline` (`StopTimeout`) the worker closes and exits
    /// whatever is left.
    StopReading {
        ack: Sender<u16>,
        deadline: std::time::Instant,
    },
    /// Graceful stop, step 2: the writer has committed and answered every job queued before
    /// step 1, so those replies are in this channel ahead of this message. Once none of the
    /// worker's storage replies is outstanding, it sends its id on `quiet` (once).
    WriterDrained { quiet: Sender<u16> },
    /// Graceful stop, step 3 (every worker is quiet, so no more pushes come from other
    /// workers): flush what is queued, close every connection and exit.
    Shutdown,
}

/// The way into a loop from any thread: its bounded channel and its waker.
pub struct WorkerHandle<M = WorkerMsg> {
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
pub struct Workers<M = WorkerMsg> {
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

impl Workers<WorkerMsg> {
    /// Queue a push for one connection (wakes its worker).
    pub fn push(&self, conn: ConnId, bytes: Shared) {
        if let Some(h) = self.get(conn.worker) {
            h.send(WorkerMsg::Push { conn, bytes });
        }
    }
}
