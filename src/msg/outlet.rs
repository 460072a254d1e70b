//! Bridges storage threads and workers: submitting jobs for a connection, and turning finished
//! jobs into effects on that connection's worker.

use std::sync::Arc;

use crossbeam_channel::TrySendError;
use rusqlite::Connection;

use super::{Ctx, Effect, MsgConn, Step};
use crate::net::{ConnId, WorkerMsg, Workers};
use crate::state::State;
use crate::stats::{bump, Counters};
use crate::store::writer::{Outlet, WriteJob, WriteOp, WriteOut};
use crate::store::StoreError;

/// What the worker needs to answer a write once it committed.
pub enum WriteKind {
    /// 3/1: the sender's ack, and the delivery with `create_time` still to be filled in at
    /// byte offset `time_at` (encoded once on the worker, patched here, shared by every session).
    P2p {
        ack: Vec<u8>,
        delivery: Vec<u8>,
        time_at: usize,
        from: u32,
        to: u32,
    },
    /// A write whose success reply was encoded up front (or none, if empty); `on_error` replaces
    /// it when the write fails (B-GEN-5).
    Plain { ok: Vec<u8>, on_error: Vec<u8> },
}

pub struct WriteTag {
    pub conn: ConnId,
    pub seq: u64,
    pub kind: WriteKind,
}

/// Submits a write job for this connection (pending slot + writer queue).
pub fn submit_write(cx: &Ctx<'_>, mc: &mut MsgConn, op: WriteOp, kind: WriteKind) -> Step {
    let seq = mc.begin_job(true);
    let tag = WriteTag {
        conn: cx.conn,
        seq,
        kind,
    };
    match cx.st.writer.try_send(WriteJob { op, tag }) {
        Ok(()) => Step::Queued,
        Err(TrySendError::Full(_)) => {
            // Back-pressure: hold this PDU until the queue drains.
            mc.abort_job(seq);
            Step::Wait
        }
        Err(TrySendError::Disconnected(_)) => {
            mc.abort_job(seq);
            bump(&cx.st.counters.store_failures);
            Step::Now(Vec::new())
        }
    }
}

/// Submits a read job; `f` runs on a reader thread and returns the effects for this connection.
pub fn submit_read(
    cx: &Ctx<'_>,
    mc: &mut MsgConn,
    f: impl FnOnce(&Connection, &State) -> Vec<Effect> + Send + 'static,
) -> Step {
    let seq = mc.begin_job(false);
    let conn = cx.conn;
    let st = Arc::clone(cx.st);
    let job = Box::new(move |db: &Connection| {
        let done = f(db, &st);
        if let Some(h) = st.workers().get(conn.worker) {
            h.send(WorkerMsg::Done { conn, seq, done });
        }
    });
    match cx.st.readers.submit(job) {
        Ok(()) => Step::Queued,
        Err(_) => {
            mc.abort_job(seq);
            Step::Wait
        }
    }
}

/// The writer's outlet: results go to the owning worker's channel; each touched worker is woken
/// once per batch.
/// It holds the counters, not the whole state: the state owns the writer's channel, and the
/// writer must see that channel close at shutdown.
pub struct WorkerOutlet {
    pub workers: Workers,
    pub counters: Arc<Counters>,
    touched: Vec<bool>,
}

impl WorkerOutlet {
    pub fn new(workers: Workers, counters: Arc<Counters>) -> Self {
        let n = workers.all().len();
        WorkerOutlet {
            workers,
            counters,
            touched: vec![false; n],
        }
    }
}

impl Outlet for WorkerOutlet {
    type Tag = WriteTag;

    fn reply(&mut self, tag: WriteTag, result: Result<WriteOut, StoreError>) {
        let done = match (tag.kind, result) {
            (
                WriteKind::P2p {
                    ack,
                    mut delivery,
                    time_at,
                    from,
                    to,
                },
                Ok(WriteOut::Stored { create_time, .. }),
            ) => {
                bump(&self.counters.msgs_p2p);
                if let Some(t) = delivery.get_mut(time_at..time_at + 4) {
                    t.copy_from_slice(&create_time.to_be_bytes());
                }
                let bytes: crate::net::Shared = delivery.into();
                let mut e = vec![
                    Effect::Reply(ack),
                    Effect::Deliver {
                        user: to,
                        bytes: bytes.clone(),
                        skip: Some(tag.conn),
                    },
                ];
                if from != to {
                    e.push(Effect::Deliver {
                        user: from,
                        bytes,
                        skip: Some(tag.conn),
                    });
                }
                e
            }
            (WriteKind::Plain { ok, .. }, Ok(_)) => vec![Effect::Reply(ok)],
            (kind, result) => {
                bump(&self.counters.store_failures);
                if let Err(e) = result {
                    log::error!(target: "store", "conn={:?} write failed: {e}", tag.conn);
                }
                match kind {
                    WriteKind::Plain { on_error, .. } => vec![Effect::Reply(on_error)],
                    WriteKind::P2p { .. } => Vec::new(),
                }
            }
        };
        if let Some(h) = self.workers.get(tag.conn.worker) {
            h.send_quiet(WorkerMsg::Done {
                conn: tag.conn,
                seq: tag.seq,
                done,
            });
            if let Some(t) = self.touched.get_mut(usize::from(tag.conn.worker)) {
                *t = true;
            }
        }
    }

    fn flush(&mut self) {
        for (i, t) in self.touched.iter_mut().enumerate() {
            if std::mem::take(t) {
                if let Some(h) = self.workers.all().get(i) {
                    h.wake();
                }
            }
        }
    }
}
