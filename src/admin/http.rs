//! The HTTP admin API (behaviour.md section 14, B-ADM): one event loop, thread "admin-http".
//!
//! HTTP/1.1 with keep-alive, framed by `frame`. A request whose head or body does not arrive
//! within 5 s is dropped with the connection, so a slow client costs the others nothing but its
//! own sockets; at most 256 connections are open (more are accepted and closed at once).
//! Requests are authenticated (`Authorization: Bearer <AdminToken>`, compared in constant time)
//! before anything else; then [`api::Api`] answers them, the loop thread never waiting on the
//! database (`service`, `job`).
//!
//! Changes go through the single storage writer ([`crate::msg::outlet::WriteKind::Admin`]); after
//! the commit the caches are updated and clients pushed to (B-ADM-4), then the answer is sent.
//! Reads run on the reader pool.

pub mod api;
mod frame;
mod job;
mod service;

use std::io;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::msg::state::State;
use crate::net::event_loop::{EventLoop, ListenerSpec, LoopConfig, WAKER};
use crate::net::{WorkerHandle, Workers};
use api::Api;
use job::AdminMsg;
use service::{AdminService, CHANNEL_SLACK, LOOP_ID};

pub use frame::MAX_BODY;

/// More simultaneous admin connections are accepted and closed at once.
const MAX_CONNS: usize = 256;
const READ_CHUNK: usize = 16 * 1024;
/// Bytes read from one connection per turn.
const READ_BUDGET: usize = 64 * 1024;

/// The running admin thread and its commit relay.
pub struct AdminHttp {
    thread: Option<JoinHandle<()>>,
    relay: Option<JoinHandle<()>>,
    handle: WorkerHandle<AdminMsg>,
}

impl AdminHttp {
    /// Starts thread "admin-http" on an already bound listener.
    pub fn spawn(listener: std::net::TcpListener, st: Arc<State>) -> io::Result<AdminHttp> {
        listener.set_nonblocking(true)?;
        let listener = mio::net::TcpListener::from_std(listener);
        let poll = mio::Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER)?);
        // Room for one message per job in flight (a job has one step outstanding at a time) and
        // the stop: the pool threads and the relay never wait on it.
        let (tx, rx) = crossbeam_channel::bounded(st.cfg.admin.admin_max_jobs + CHANNEL_SLACK);
        let handle = WorkerHandle { tx, waker };
        // Unbounded, but it holds writes the writer accepted, at most one per job in flight.
        let (relay_tx, relay_rx) = crossbeam_channel::unbounded();
        let to_loop = handle.clone();
        let relay = std::thread::Builder::new()
            .name("admin-commit".into())
            .spawn(move || job::relay(relay_rx, to_loop))?;
        let cfg = LoopConfig {
            id: LOOP_ID,
            name: "admin-http",
            read_chunk: READ_CHUNK,
            read_budget: READ_BUDGET,
            out_cap: st.cfg.net.out_buf_cap,
            input_budget: Arc::clone(&st.input_budget),
            counters: Arc::clone(&st.counters),
        };
        let spec = ListenerSpec {
            listener,
            name: "admin",
            open: Arc::new(AtomicUsize::new(0)),
            max_conns: MAX_CONNS,
            max_per_ip: 0,
        };
        let svc = AdminService::new(Api::new(st), handle.clone(), relay_tx);
        let peers = Workers::new(vec![handle.clone()]);
        let lp = EventLoop::new(cfg, poll, rx, peers, svc, vec![spec])?;
        let thread = std::thread::Builder::new()
            .name("admin-http".into())
            .spawn(move || lp.run())?;
        Ok(AdminHttp {
            thread: Some(thread),
            relay: Some(relay),
            handle,
        })
    }

    /// Stops the loop and waits for it (open admin connections are dropped), then for the
    /// relay, which ends once the writes it waits for are answered.
    pub fn stop(mut self) {
        self.handle.send(AdminMsg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(t) = self.relay.take() {
            let _ = t.join();
        }
    }
}

/// Constant-time comparison of `Authorization` with `Bearer <token>` (B-ADM-2): the time
/// depends on the lengths only.
pub fn token_matches(header: Option<&[u8]>, token: &str) -> bool {
    let Some(h) = header else {
        return false;
    };
    !token.is_empty() && crate::auth::secret_eq(h, format!("Bearer {token}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(token_matches(Some(b"Bearer abc"), "abc"));
        assert!(!token_matches(Some(b"Bearer abd"), "abc"));
        assert!(!token_matches(Some(b"Bearer abcd"), "abc"));
        assert!(!token_matches(Some(b"Bearer ab"), "abc"));
        assert!(!token_matches(Some(b"Bearer "), ""));
        assert!(!token_matches(None, "abc"));
    }
}
