//! Every place the admin API reaches msg workers: pushes to clients and session closes after a
//! commit (B-ADM-4, B-ADM-6). They run on the commit relay's thread, never on the admin loop: a
//! send may wait for room in a worker's channel.

use std::collections::HashSet;
use std::sync::Arc;

use crate::msg::service::WorkerMsg;
use crate::msg::state::State;
use crate::net::Shared;

/// Queues `bytes` once on every session of `users` (each session once), one wake per worker.
pub fn to_users(st: &State, users: impl IntoIterator<Item = u32>, bytes: &Shared) {
    let mut conns = HashSet::new();
    for u in users {
        for s in st.presence.sessions(u) {
            conns.insert(s.conn);
        }
    }
    let workers = st.workers();
    let mut touched = HashSet::new();
    for conn in conns {
        if let Some(h) = workers.get(conn.worker) {
            h.send_quiet(WorkerMsg::Push {
                conn,
                bytes: Arc::clone(bytes),
            });
            touched.insert(conn.worker);
        }
    }
    for w in touched {
        if let Some(h) = workers.get(w) {
            h.wake();
        }
    }
}

/// Closes every session of `user` at once, without 1/7 (B-ADM-6).
pub fn close_sessions(st: &State, user: u32) {
    for s in st.presence.sessions(user) {
        if let Some(h) = st.workers().get(s.conn.worker) {
            h.send(WorkerMsg::Close { conn: s.conn });
        }
    }
}
