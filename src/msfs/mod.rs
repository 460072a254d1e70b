//! The msfs image store (behaviour.md section 13, B-MSFS): HTTP uploads and downloads of images,
//! avatars and audio under `DataDir/msfs`.
//!
//! ```text
//!   clients --HTTP/1.1--> msfs-http (one mio Poll, all connections)
//!                            |   ^  bounded channel of jobs; answers on an unbounded channel
//!                            v   |  + one Waker wake per answer
//!                          msfs-io (one thread: every fsync, rename and file read)
//! ```
//!
//! - `msfs-http` never touches the disk: it parses request heads (`httparse`, at most
//!   [`MAX_HEADERS`] headers and [`MAX_HEAD`] bytes), buffers bodies, checks tokens and
//!   multipart structure, and validates download paths against the exact pattern of stored
//!   names (`names`) before a job is sent. A connection has at most one job in flight and
//!   reads nothing more meanwhile, so answers keep request order and the job queue (capacity
//!   `MsfsMaxConns`) cannot fill up.
//! - `msfs-io` stores an upload as `tmp/<name>.part`, fsync, rename to `g0/NNN/MMM/<name>`,
//!   fsync of the directory; only then is the success reply sent (B-MSFS-1). GET reads the file
//!   into memory (files are at most `MsfsMaxFileSize`).
//!
//! Limits: at most `MsfsMaxConns` connections (more are accepted and closed at once,
//! `conn_cap_rejects`); an idle connection is closed after [`IDLE_TIMEOUT`] (B-MSFS-8), a
//! request must be complete within [`REQUEST_DEADLINE`]. An upload body is buffered in memory,
//! at most `MsfsMaxFileSize` + [`BODY_SLACK`] per connection, so memory for uploads is bounded
//! by that times `MsfsMaxConns`. A connection reads no further than the request being received
//! (pipelined requests wait in the kernel), and handles the next request only once the
//! previous reply has been written out.
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
//! - `event_loop`: thread `msfs-http`, the mio loop, and driving one connection from reading to
//!   handling to writing.
//! - `head`: request-head parsing.
//! - `conn`: a connection, the responses it queues, its socket reads and writes.
//! - `requests`: what each request does: head checks, uploads, downloads, io-thread answers.
//! - `io`: thread `msfs-io`, every disk access.
//! - `multipart`: the file part of an upload body.
//! - `names`: stored names and download paths.

mod conn;
mod event_loop;
mod head;
mod io;
mod multipart;
mod names;
mod requests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use mio::net::TcpListener;
use mio::{Interest, Poll, Token, Waker};
use slab::Slab;

use crate::msg::state::State;
use crate::net::timer::DeadlineHeap;
use event_loop::Loop;
use requests::{Ctx, Pace};

const LISTENER: Token = Token(0);
const WAKE: Token = Token(1);
/// Connection slot `s` polls as `Token(s + FIRST_CONN)`.
const FIRST_CONN: usize = 2;
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
const READ_CHUNK: usize = 64 * 1024;

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
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
}

impl Msfs {
    /// Prepares `DataDir/msfs` and starts threads "msfs-http" and "msfs-io" on an already bound
    /// listener. URLs in replies use `MsfsBaseUrl`, or the listener's bound port.
    pub fn spawn(listener: std::net::TcpListener, st: Arc<State>) -> std::io::Result<Msfs> {
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let (job_tx, job_rx) = crossbeam_channel::bounded(st.cfg.msfs.msfs_max_conns);
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let io = io::spawn(
            st.cfg.store.data_dir.join("msfs"),
            st.cfg.msfs.msfs_max_file_size,
            job_rx,
            done_tx,
            Arc::clone(&waker),
        )?;
        let max_file = usize::try_from(st.cfg.msfs.msfs_max_file_size).unwrap_or(usize::MAX);
        let ctx = Ctx {
            base_url: st.cfg.msfs_base_url_for(port),
            require_token: st.cfg.msfs.msfs_require_token,
            max_file,
            body_limit: max_file.saturating_add(BODY_SLACK),
            pace: Pace {
                head: st.cfg.msfs.msfs_head_timeout,
                min_body_rate: st.cfg.msfs.msfs_min_body_rate,
            },
            st,
            jobs: job_tx,
            timers: DeadlineHeap::default(),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let http = std::thread::Builder::new()
            .name("msfs-http".into())
            .spawn(move || {
                let mut lp = Loop {
                    poll,
                    listener,
                    conns: Slab::new(),
                    per_ip: std::collections::HashMap::new(),
                    next_gen: 0,
                    ctx,
                    done: done_rx,
                    scratch: vec![0; READ_CHUNK],
                };
                lp.run(&stop2);
            })?;
        Ok(Msfs {
            http: Some(http),
            io: Some(io),
            waker,
            stop,
        })
    }

    /// Stops both threads and waits for them: open connections are dropped, a store in
    /// progress finishes first.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
        if let Some(t) = self.http.take() {
            let _ = t.join();
        }
        // The loop has dropped its job sender: the io thread ends after its current job.
        if let Some(t) = self.io.take() {
            let _ = t.join();
        }
    }
}
