//! The msfs image store (behaviour.md section 13, B-MSFS): HTTP uploads and downloads of images,
//! avatars and audio under `DataDir/msfs`.
//!
//! ```text
//!   clients --HTTP/1.1--> msfs-http (net::event_loop::EventLoop running service::Ctx)
//!                            |   ^  jobs: bounded channel (MsfsIoQueueCap); answers: the loop's
//!                            v   |  bounded channel + one wake per answer
//!                          msfs-io (one thread: every fsync, rename and file read)
//! ```
//!
//! - `msfs-http` never touches the disk: it parses request heads (`httparse`, at most
//!   [`MAX_HEADERS`] headers and [`MAX_HEAD`] bytes), buffers bodies, checks tokens and
//!   multipart structure, and validates download paths against the exact pattern of stored
//!   names (`names`) before a job is sent. A connection has at most one job in flight and
//!   processes no further input meanwhile, nor until its response is written, so answers keep
//!   request order and a connection's output is one response at most.
//! - `msfs-io` stores an upload as `tmp/<name>.part`, fsync, rename to `g0/NNN/MMM/<name>`,
//!   fsync of the directory; only then is the success reply sent (B-MSFS-1). GET reads the file
//!   into memory (files are at most `MsfsMaxFileSize`).
//!
//! Limits: at most `MsfsMaxConns` connections, `MsfsMaxConnsPerIp` from one address (more are
//! accepted and closed at once, `conn_cap_rejects`); an idle connection is closed after
//! [`IDLE_TIMEOUT`] (B-MSFS-8), a request head must be complete within `MsfsHeadTimeout`, a body
//! keep up `MsfsMinBodyRate`, a request be complete within [`REQUEST_DEADLINE`]. An upload body
//! is buffered in memory, at most `MsfsMaxFileSize` + [`BODY_SLACK`] per connection (checked
//! from the head), and the input buffered by all connections is bounded by the loop's
//! process-wide `InputBudget` (`MaxBufferedInput`; over it the connection that read is closed,
//! `input_budget_closes`). Uploads handed to the io thread are at most `MsfsIoQueueCap` + 1 files.
//!
//! Upload checks, in order (B-MSFS-5): the token (`X-TT-Token` or `?token=`, when
//! `MsfsRequireToken`), the size (`Content-Length` over the body limit: answered from the head,
//! the body is never read; a file part over `MsfsMaxFileSize`), the format (`multipart/form-data`
//! with a file part). A rejection decided from the head, or a size rejection, closes the
//! connection after the reply; the server then discards input for up to [`LINGER`] so that
//! the client reads the reply instead of a reset. Every upload reply is HTTP 200 with the JSON
//! body of B-MSFS-1/-6; `error_code` 4 means the server could not store the file.
//!
//! Files:
//! - `mod.rs`: [`Msfs`] (start and stop) and the limits and reply codes used throughout.
//! - `service`: thread `msfs-http`, msfs as a `net::service::Service` of the shared event loop:
//!   the HTTP framer, holding and resuming a connection around its request, timeouts.
//! - `head`: request-head parsing.
//! - `conn`: a connection's state and deadline, the responses it queues.
//! - `requests`: what each request does: head checks, uploads, downloads, io-thread answers.
//! - `io`: thread `msfs-io`, every disk access.
//! - `multipart`: the file part of an upload body.
//! - `names`: stored names and download paths.

mod conn;
mod head;
mod io;
mod multipart;
mod names;
mod requests;
mod service;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use mio::net::TcpListener;
use mio::{Poll, Waker};

use crate::msg::state::State;
use crate::net::event_loop::{EventLoop, ListenerSpec, LoopConfig, WAKER};
use crate::net::{WorkerHandle, Workers};
use requests::{Ctx, Pace};
use service::Msg;

pub const MAX_HEADERS: usize = 64;
/// Largest request head.
pub const MAX_HEAD: usize = 16 * 1024;
/// A request body may exceed `MsfsMaxFileSize` by this much (multipart framing, B-MSFS-3).
pub const BODY_SLACK: usize = 64 * 1024;
/// Largest body of a request that is not an upload (it is read and ignored).
const MAX_OTHER_BODY: usize = MAX_HEAD;
/// An idle connection (no byte in either direction) is closed after this time (B-MSFS-8).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A started request (head and body) must be complete within this time.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(300);
/// An upload body may start slowly: `MsfsMinBodyRate` is enforced from this long after its head.
pub const BODY_GRACE: Duration = Duration::from_secs(10);
/// After a closing reply, input is discarded for at most this long before the close.
pub const LINGER: Duration = Duration::from_secs(2);
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 64 * 1024;
/// Bytes read from one connection per turn before the others get theirs.
const READ_BUDGET: usize = 1 << 20;
// Jobs waiting for the io thread: `MsfsIoQueueCap`. Full: a complete request waits in its connection's input
// (held, its bytes counted against the input budget, no deadline) and is resumed, in arrival
// order, as soon as the io thread has taken a job (its answer wakes the loop). A client then
// just waits a little longer, which every HTTP client handles; a 503 would fail the upload
// (the TeamTalk apps show a failed picture and do not retry). The io thread does one fsync or
// file read at a time, so a deeper queue only adds latency; a small one bounds the uploads
// copied out of the input budget.
//
// Answers of the io thread (and the stop message) wait for the loop in its channel, of
// `MsfsIoQueueCap` + [`ANSWER_SLACK`]. Full: the io thread waits (the loop drains its channel
// every iteration and never waits for the io thread). At most `MsfsIoQueueCap` + 1 answers are
// ever outstanding, so it does not fill.
pub const ANSWER_SLACK: usize = 32;

/// `error_code` values of upload replies (B-MSFS-1 .. -5).
const OK: u32 = 0;
const TOO_LARGE: u32 = 1;
const BAD_REQUEST: u32 = 2;
const UNAUTHORIZED: u32 = 3;
/// The file could not be stored (disk error); not in B-MSFS, never a success.
const STORE_FAILED: u32 = 4;

/// The running msfs threads.
pub struct Msfs {
    http: Option<JoinHandle<()>>,
    io: Option<JoinHandle<()>>,
    /// The loop's channel and waker.
    handle: WorkerHandle<Msg>,
}

impl Msfs {
    /// Prepares `DataDir/msfs` and starts threads "msfs-http" and "msfs-io" on an already bound
    /// listener. URLs in replies use `MsfsBaseUrl`, or the listener's bound port.
    pub fn spawn(listener: std::net::TcpListener, st: Arc<State>) -> std::io::Result<Msfs> {
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener);
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) =
            crossbeam_channel::bounded(st.cfg.msfs.msfs_io_queue_cap.saturating_add(ANSWER_SLACK));
        let handle = WorkerHandle { tx, waker };
        let (job_tx, job_rx) = crossbeam_channel::bounded(st.cfg.msfs.msfs_io_queue_cap);
        let io = io::spawn(
            st.cfg.store.data_dir.join("msfs"),
            st.cfg.msfs.msfs_max_file_size,
            job_rx,
            handle.clone(),
        )?;
        let max_file = usize::try_from(st.cfg.msfs.msfs_max_file_size).unwrap_or(usize::MAX);
        let body_limit = max_file.saturating_add(BODY_SLACK);
        let cfg = LoopConfig {
            id: 0,
            name: "msfs",
            read_chunk: READ_CHUNK,
            read_budget: READ_BUDGET,
            // Checked on `Action::Send` only; msfs answers with `Action::Answer`, one response
            // per connection at a time (a file, at most `MsfsMaxFileSize`).
            out_cap: body_limit.saturating_add(MAX_HEAD),
            input_budget: Arc::clone(&st.input_budget),
            counters: Arc::clone(&st.counters),
        };
        let spec = ListenerSpec {
            listener,
            name: "msfs",
            open: Arc::new(AtomicUsize::new(0)),
            max_conns: st.cfg.msfs.msfs_max_conns,
            max_per_ip: st.cfg.msfs.msfs_max_conns_per_ip,
        };
        let ctx = Ctx {
            base_url: st.cfg.msfs_base_url_for(port),
            require_token: st.cfg.msfs.msfs_require_token,
            max_file,
            body_limit,
            pace: Pace {
                head: st.cfg.msfs.msfs_head_timeout,
                min_body_rate: st.cfg.msfs.msfs_min_body_rate,
            },
            counters: Arc::clone(&st.counters),
            tokens: Arc::clone(&st.tokens),
            jobs: job_tx,
            waiting: VecDeque::new(),
        };
        let peers = Workers::new(vec![handle.clone()]);
        let lp = EventLoop::new(cfg, poll, rx, peers, ctx, vec![spec])?;
        let http = std::thread::Builder::new()
            .name("msfs-http".into())
            .spawn(move || lp.run())?;
        Ok(Msfs {
            http: Some(http),
            io: Some(io),
            handle,
        })
    }

    /// Stops both threads and waits for them: open connections are dropped, a store in
    /// progress finishes first.
    pub fn stop(mut self) {
        self.handle.send(Msg::Stop);
        if let Some(t) = self.http.take() {
            let _ = t.join();
        }
        // The loop has dropped its job sender: the io thread ends after its current job.
        if let Some(t) = self.io.take() {
            let _ = t.join();
        }
    }
}
