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
//!   [`MAX_CONNS`]) cannot fill up.
//! - `msfs-io` stores an upload as `tmp/<name>.part`, fsync, rename to `g0/NNN/MMM/<name>`,
//!   fsync of the directory; only then is the success reply sent (B-MSFS-1). GET reads the file
//!   into memory (files are at most `MsfsMaxFileSize`).
//!
//! Limits: at most [`MAX_CONNS`] connections (more are accepted and closed at once,
//! `conn_cap_rejects`); an idle connection is closed after [`IDLE_TIMEOUT`] (B-MSFS-8), a
//! request must be complete within [`REQUEST_DEADLINE`]. An upload body is buffered in memory,
//! at most `MsfsMaxFileSize` + [`BODY_SLACK`] per connection, so memory for uploads is bounded
//! by that times [`MAX_CONNS`]. A connection reads no further than the request being received
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

mod io;
mod multipart;
mod names;

use std::collections::VecDeque;
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::net::timer::{DeadlineHeap, TimerKey};
use crate::state::State;
use crate::stats::bump;
use io::{Done, Job, ReadResult};

const LISTENER: Token = Token(0);
const WAKE: Token = Token(1);
/// Connection slot `s` polls as `Token(s + FIRST_CONN)`.
const FIRST_CONN: usize = 2;
/// More simultaneous connections are accepted and closed at once.
pub const MAX_CONNS: usize = 256;
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
        let (job_tx, job_rx) = crossbeam_channel::bounded(MAX_CONNS);
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let io = io::spawn(
            st.cfg.data_dir.join("msfs"),
            st.cfg.msfs_max_file_size,
            job_rx,
            done_tx,
            Arc::clone(&waker),
        )?;
        let max_file = usize::try_from(st.cfg.msfs_max_file_size).unwrap_or(usize::MAX);
        let ctx = Ctx {
            base_url: st.cfg.msfs_base_url_for(port),
            require_token: st.cfg.msfs_require_token,
            max_file,
            body_limit: max_file.saturating_add(BODY_SLACK),
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Get,
    Head,
    Post,
    Other,
}

/// A parsed request head.
#[derive(Debug)]
struct Head {
    /// Bytes of the head, up to and including the empty line.
    len: usize,
    method: Method,
    target: String,
    /// `Content-Length` (0 without one; `usize::MAX` when too large to represent).
    body_len: usize,
    close: bool,
    expect_continue: bool,
    /// Any `Transfer-Encoding`: not supported.
    chunked: bool,
    content_type: Option<Vec<u8>>,
    /// `X-TT-Token`.
    token: Option<Vec<u8>>,
}

#[derive(Debug)]
enum HeadParse {
    Incomplete,
    Bad(&'static str),
    Done(Head),
}

fn parse_head(buf: &[u8]) -> HeadParse {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return HeadParse::Bad("request head too large")
        }
        Ok(httparse::Status::Partial) => return HeadParse::Incomplete,
        Ok(httparse::Status::Complete(n)) if n > MAX_HEAD => {
            return HeadParse::Bad("request head too large")
        }
        Ok(httparse::Status::Complete(n)) => n,
        Err(httparse::Error::TooManyHeaders) => return HeadParse::Bad("too many headers"),
        Err(_) => return HeadParse::Bad("malformed request"),
    };
    let http10 = req.version == Some(0);
    let mut head = Head {
        len,
        method: match req.method.unwrap_or("") {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            _ => Method::Other,
        },
        target: req.path.unwrap_or("").to_string(),
        body_len: 0,
        close: http10,
        expect_continue: false,
        chunked: false,
        content_type: None,
        token: None,
    };
    let mut content_length = None;
    for h in req.headers.iter() {
        let (name, v) = (h.name, h.value);
        if name.eq_ignore_ascii_case("content-length") {
            let v = v.trim_ascii();
            if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
                return HeadParse::Bad("bad Content-Length");
            }
            // All digits: only overflow can fail, which is "too large".
            let n = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
                .unwrap_or(usize::MAX);
            if content_length.is_some_and(|old| old != n) {
                return HeadParse::Bad("conflicting Content-Length");
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = true;
        } else if name.eq_ignore_ascii_case("expect") {
            head.expect_continue = v.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case("content-type") {
            head.content_type = Some(v.to_vec());
        } else if name.eq_ignore_ascii_case("x-tt-token") {
            head.token = Some(v.trim_ascii().to_vec());
        } else if name.eq_ignore_ascii_case("connection") {
            for t in v.split(|&c| c == b',').map(<[u8]>::trim_ascii) {
                if t.eq_ignore_ascii_case(b"close") {
                    head.close = true;
                } else if http10 && t.eq_ignore_ascii_case(b"keep-alive") {
                    head.close = false;
                }
            }
        }
    }
    head.body_len = content_length.unwrap_or(0);
    HeadParse::Done(head)
}

/// The `token` query parameter of a request target.
fn query_token(target: &str) -> Option<&[u8]> {
    let (_, query) = target.split_once('?')?;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .map(str::as_bytes)
}

struct Conn {
    stream: TcpStream,
    generation: u32,
    /// The request being received (and, after its head, nothing beyond its body).
    inbuf: Vec<u8>,
    /// Its head, once parsed and accepted.
    head: Option<Head>,
    out: VecDeque<Vec<u8>>,
    /// Bytes of `out.front()` already written.
    out_pos: usize,
    /// A job for this connection is with the io thread.
    busy: bool,
    /// Close once `out` is written (no more requests are read).
    close_after: bool,
    /// The request being answered is a HEAD: responses carry no body.
    no_body: bool,
    /// The final reply is out and the write side shut: input is discarded until EOF or this
    /// time.
    lingering: Option<Instant>,
    peer_eof: bool,
    /// Last byte read or written.
    last: Instant,
    /// First byte of the request being received.
    started: Option<Instant>,
    /// The deadline of this connection's live timer entry.
    armed: Instant,
}

impl Conn {
    /// Bytes to read at most now: up to the end of the request being received.
    fn want(&self) -> usize {
        let need = match &self.head {
            None => MAX_HEAD + 1,
            Some(h) => h.len.saturating_add(h.body_len),
        };
        need.saturating_sub(self.inbuf.len())
    }

    /// When the connection is closed, `None` while a job is in flight.
    fn deadline(&self) -> Option<Instant> {
        if let Some(t) = self.lingering {
            return Some(t);
        }
        if self.busy {
            return None;
        }
        let idle = self.last + IDLE_TIMEOUT;
        Some(match self.started {
            Some(s) => idle.min(s + REQUEST_DEADLINE),
            None => idle,
        })
    }

    /// Queues a complete response (`body` is moved, not copied).
    fn respond(&mut self, status: u16, content_type: &str, body: Vec<u8>) {
        let len = body.len() as u64;
        self.respond_head(status, content_type, len, "");
        if !body.is_empty() && !self.no_body {
            self.out.push_back(body);
        }
    }

    /// Queues a response head announcing `len` body bytes.
    fn respond_head(&mut self, status: u16, content_type: &str, len: u64, extra: &str) {
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            503 => "Service Unavailable",
            _ => "Internal Server Error",
        };
        let close = if self.close_after {
            "Connection: close\r\n"
        } else {
            ""
        };
        self.out.push_back(
            format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n\
                 Content-Length: {len}\r\n{extra}{close}\r\n"
            )
            .into_bytes(),
        );
    }

    fn respond_text(&mut self, status: u16, text: &str) {
        self.respond(
            status,
            "text/plain; charset=utf-8",
            format!("{text}\n").into_bytes(),
        );
    }

    /// An upload reply (B-MSFS-6): always 200 with the JSON body.
    fn upload_reply(&mut self, code: u32, msg: &str, path: &str, url: &str) {
        #[derive(serde::Serialize)]
        struct Reply<'a> {
            error_code: u32,
            error_msg: &'a str,
            path: &'a str,
            url: &'a str,
        }
        let body = serde_json::to_vec(&Reply {
            error_code: code,
            error_msg: msg,
            path,
            url,
        })
        .unwrap_or_default();
        self.respond(200, "application/json; charset=utf-8", body);
    }

    fn upload_error(&mut self, code: u32) {
        let msg = match code {
            TOO_LARGE => "file too large",
            BAD_REQUEST => "bad request",
            UNAUTHORIZED => "unauthorized",
            _ => "server error",
        };
        self.upload_reply(code, msg, "", "");
    }
}

/// What the loop needs besides its connections.
struct Ctx {
    st: Arc<State>,
    base_url: String,
    require_token: bool,
    max_file: usize,
    body_limit: usize,
    jobs: Sender<Job>,
    timers: DeadlineHeap,
}

impl Ctx {
    /// Checks made as soon as a head is complete; `true` = rejected (reply queued, the
    /// connection closes after it).
    fn reject_head(&self, key: TimerKey, c: &mut Conn, h: &Head) -> bool {
        if h.method != Method::Post {
            if h.chunked || h.body_len > MAX_OTHER_BODY {
                c.close_after = true;
                c.respond_text(400, "bad request: request body too large");
                return true;
            }
            return false;
        }
        let code = if self.require_token && !self.token_ok(key, h) {
            UNAUTHORIZED
        } else if h.body_len > self.body_limit {
            TOO_LARGE
        } else if h.chunked
            || h.content_type
                .as_deref()
                .and_then(multipart::boundary)
                .is_none()
        {
            BAD_REQUEST
        } else {
            return false;
        };
        bump(&self.st.counters.msfs_rejects);
        log::debug!(target: "msfs", "conn={key:?} upload rejected from its head: {code}");
        c.close_after = true;
        c.upload_error(code);
        true
    }

    fn token_ok(&self, key: TimerKey, h: &Head) -> bool {
        let Some(token) = h.token.as_deref().or_else(|| query_token(&h.target)) else {
            return false;
        };
        let user = self.st.tokens.lock().owner_of(token, Instant::now());
        if let Some(u) = user {
            log::debug!(target: "msfs", "conn={key:?} user={u} upload");
        }
        user.is_some()
    }

    /// A complete request: answers it or hands it to the io thread.
    fn handle(&mut self, key: TimerKey, c: &mut Conn, h: &Head, bytes: Vec<u8>) {
        match h.method {
            Method::Post => self.upload(key, c, h, bytes),
            Method::Get | Method::Head => match names::parse_target(&h.target) {
                None => c.respond_text(404, "not found"),
                Some(path) => {
                    let job = Job::Read {
                        key,
                        path: path.to_string(),
                        head_only: h.method == Method::Head,
                    };
                    if self.send(job) {
                        c.busy = true;
                    } else {
                        c.respond_text(503, "busy");
                    }
                }
            },
            Method::Other => {
                const TEXT: &[u8] = b"method not allowed\n";
                c.respond_head(
                    405,
                    "text/plain; charset=utf-8",
                    TEXT.len() as u64,
                    "Allow: GET, HEAD, POST\r\n",
                );
                c.out.push_back(TEXT.to_vec());
            }
        }
    }

    fn upload(&mut self, key: TimerKey, c: &mut Conn, h: &Head, bytes: Vec<u8>) {
        let body = bytes.get(h.len..).unwrap_or_default();
        let part = h
            .content_type
            .as_deref()
            .and_then(multipart::boundary)
            .ok_or(multipart::MultipartError::Broken("no boundary"))
            .and_then(|b| multipart::file_part(body, &b));
        let part = match part {
            Ok(p) if p.content.len() > self.max_file => {
                bump(&self.st.counters.msfs_rejects);
                c.close_after = true;
                return c.upload_error(TOO_LARGE);
            }
            Ok(p) => p,
            Err(e) => {
                bump(&self.st.counters.msfs_rejects);
                log::debug!(target: "msfs", "conn={key:?} bad upload: {e:?}");
                return c.upload_error(BAD_REQUEST);
            }
        };
        let mut random = [0u8; 16];
        if let Err(e) = getrandom::fill(&mut random) {
            log::error!(target: "msfs", "no OS randomness: {e}");
            return c.upload_error(STORE_FAILED);
        }
        let path = names::new_path(&part.filename, &random);
        let range = part.content.start + h.len..part.content.end + h.len;
        let job = Job::Store {
            key,
            data: bytes,
            range,
            path,
        };
        if self.send(job) {
            c.busy = true;
        } else {
            c.upload_error(STORE_FAILED);
        }
    }

    fn send(&self, job: Job) -> bool {
        match self.jobs.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                // Cannot happen (one job per connection, capacity MAX_CONNS); answered anyway.
                log::error!(target: "msfs", "io queue full");
                false
            }
            Err(TrySendError::Disconnected(_)) => {
                log::error!(target: "msfs", "io thread gone");
                false
            }
        }
    }

    /// An answer of the io thread for connection `c`.
    fn finish(&mut self, c: &mut Conn, d: Done) {
        c.busy = false;
        c.last = Instant::now();
        match d {
            Done::Stored {
                path,
                result: Ok(()),
                ..
            } => {
                bump(&self.st.counters.msfs_uploads);
                let url = format!("{}/{path}", self.base_url);
                c.upload_reply(OK, "ok", &path, &url);
            }
            Done::Stored {
                path,
                result: Err(e),
                ..
            } => {
                bump(&self.st.counters.msfs_store_failures);
                log::error!(target: "msfs", "storing {path} failed: {e}");
                c.upload_error(STORE_FAILED);
            }
            Done::Read { path, result, .. } => match result {
                ReadResult::Found { len, bytes } => {
                    bump(&self.st.counters.msfs_downloads);
                    let ctype = names::content_type(&path);
                    c.respond_head(200, ctype, len, "");
                    if !bytes.is_empty() {
                        c.out.push_back(bytes);
                    }
                }
                ReadResult::NotFound => c.respond_text(404, "not found"),
                ReadResult::Failed(e) => {
                    log::error!(target: "msfs", "reading {path} failed: {e}");
                    c.respond_text(500, "read failed");
                }
            },
        }
    }
}

struct Loop {
    poll: Poll,
    listener: TcpListener,
    conns: Slab<Conn>,
    next_gen: u32,
    ctx: Ctx,
    done: Receiver<Done>,
    scratch: Vec<u8>,
}

impl Loop {
    fn run(&mut self, stop: &AtomicBool) {
        let mut events = Events::with_capacity(256);
        while !stop.load(Ordering::SeqCst) {
            let timeout = self
                .ctx
                .timers
                .next()
                .map(|at| at.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!(target: "msfs", "poll failed: {e}");
                return;
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    WAKE => {}
                    Token(t) => {
                        if let Some(slot) = t.checked_sub(FIRST_CONN) {
                            self.service(slot);
                        }
                    }
                }
            }
            self.answers();
            self.expire();
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, peer)) => {
                    if self.conns.len() >= MAX_CONNS {
                        bump(&self.ctx.st.counters.conn_cap_rejects);
                        log::warn!(target: "msfs", "connection cap reached, closing {peer}");
                        continue;
                    }
                    let entry = self.conns.vacant_entry();
                    let slot = entry.key();
                    if self
                        .poll
                        .registry()
                        .register(
                            &mut stream,
                            Token(slot + FIRST_CONN),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .is_err()
                    {
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let generation = self.next_gen;
                    self.next_gen = self.next_gen.wrapping_add(1);
                    let now = Instant::now();
                    let armed = now + IDLE_TIMEOUT;
                    self.ctx.timers.arm(armed, TimerKey { slot, generation });
                    entry.insert(Conn {
                        stream,
                        generation,
                        inbuf: Vec::new(),
                        head: None,
                        out: VecDeque::new(),
                        out_pos: 0,
                        busy: false,
                        no_body: false,
                        close_after: false,
                        lingering: None,
                        peer_eof: false,
                        last: now,
                        started: None,
                        armed,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!(target: "msfs", "accept failed: {e}");
                    return;
                }
            }
        }
    }

    fn service(&mut self, slot: usize) {
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        let key = TimerKey {
            slot,
            generation: c.generation,
        };
        if !drive(&mut self.ctx, key, c, &mut self.scratch) {
            self.close(slot);
        }
    }

    /// Answers from the io thread.
    fn answers(&mut self) {
        while let Ok(d) = self.done.try_recv() {
            let key = match &d {
                Done::Stored { key, .. } | Done::Read { key, .. } => *key,
            };
            let Some(c) = self
                .conns
                .get_mut(key.slot)
                .filter(|c| c.generation == key.generation)
            else {
                // The client left while its job ran (an upload is then stored but unanswered).
                bump(&self.ctx.st.counters.stale_replies);
                continue;
            };
            self.ctx.finish(c, d);
            if !drive(&mut self.ctx, key, c, &mut self.scratch) {
                self.close(key.slot);
            }
        }
    }

    /// Closes the connections whose deadline passed; re-arms the others that came due.
    fn expire(&mut self) {
        let now = Instant::now();
        while let Some((at, key)) = self.ctx.timers.pop_due(now) {
            let Some(c) = self.conns.get_mut(key.slot) else {
                continue;
            };
            if c.generation != key.generation || c.armed != at {
                continue;
            }
            let next = match c.deadline() {
                Some(d) if d <= now => {
                    log::debug!(target: "msfs", "conn={key:?} timed out");
                    self.close(key.slot);
                    continue;
                }
                Some(d) => d,
                None => now + IDLE_TIMEOUT,
            };
            c.armed = next;
            self.ctx.timers.arm(next, key);
        }
    }

    fn close(&mut self, slot: usize) {
        if self.conns.contains(slot) {
            let mut c = self.conns.remove(slot);
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
    }
}

/// Moves a connection as far as it can go without blocking: reads (up to the end of the request
/// being received), handles complete requests, writes. `false` = close it now.
fn drive(ctx: &mut Ctx, key: TimerKey, c: &mut Conn, scratch: &mut [u8]) -> bool {
    loop {
        if c.lingering.is_some() {
            return discard(c, scratch);
        }
        let mut progress = false;
        if !c.busy && !c.close_after && !c.peer_eof {
            match read_some(c, scratch) {
                Ok(n) => progress |= n > 0,
                Err(_) => return false,
            }
        }
        if !c.busy && !c.close_after && c.out.is_empty() {
            progress |= advance(ctx, key, c);
        }
        match flush(c) {
            Ok(n) => progress |= n > 0,
            Err(_) => return false,
        }
        if c.out.is_empty() && !c.busy {
            if c.close_after {
                // Lingering close: the client reads the reply rather than a reset.
                let _ = c.stream.shutdown(Shutdown::Write);
                let until = Instant::now() + LINGER;
                c.lingering = Some(until);
                c.armed = until;
                ctx.timers.arm(until, key);
                continue;
            }
            if c.peer_eof && !progress {
                return false;
            }
        }
        if !progress {
            return true;
        }
    }
}

/// Parses the head and handles a complete request; `true` if anything changed.
fn advance(ctx: &mut Ctx, key: TimerKey, c: &mut Conn) -> bool {
    let mut changed = false;
    if c.head.is_none() {
        match parse_head(&c.inbuf) {
            HeadParse::Incomplete => return false,
            HeadParse::Bad(msg) => {
                c.no_body = false;
                c.close_after = true;
                c.inbuf = Vec::new();
                c.respond_text(400, &format!("bad request: {msg}"));
                return true;
            }
            HeadParse::Done(h) => {
                c.no_body = h.method == Method::Head;
                if ctx.reject_head(key, c, &h) {
                    c.inbuf = Vec::new();
                    return true;
                }
                let need = h.len.saturating_add(h.body_len);
                if let Some(more) = need.checked_sub(c.inbuf.len()).filter(|&m| m > 0) {
                    c.inbuf.reserve(more);
                    if h.expect_continue && c.inbuf.len() == h.len {
                        c.out.push_back(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec());
                    }
                }
                c.head = Some(h);
                changed = true;
            }
        }
    }
    let Some(need) = c.head.as_ref().map(|h| h.len.saturating_add(h.body_len)) else {
        return changed;
    };
    if c.inbuf.len() < need {
        return changed;
    }
    let Some(h) = c.head.take() else {
        return changed;
    };
    let rest = c.inbuf.split_off(need);
    let bytes = std::mem::replace(&mut c.inbuf, rest);
    c.started = (!c.inbuf.is_empty()).then(Instant::now);
    if h.close {
        c.close_after = true;
    }
    ctx.handle(key, c, &h, bytes);
    true
}

/// Reads at most [`Conn::want`] bytes; the count read (0 at EOF, which sets `peer_eof`).
fn read_some(c: &mut Conn, scratch: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut total = 0;
    loop {
        let want = c.want().min(scratch.len());
        let Some(buf) = scratch.get_mut(..want).filter(|b| !b.is_empty()) else {
            return Ok(total);
        };
        match c.stream.read(buf) {
            Ok(0) => {
                c.peer_eof = true;
                return Ok(total);
            }
            Ok(n) => {
                let now = Instant::now();
                if c.inbuf.is_empty() {
                    c.started = Some(now);
                }
                c.inbuf.extend_from_slice(buf.get(..n).unwrap_or_default());
                c.last = now;
                total += n;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(total),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Lingering: reads and drops input; `false` once the peer closed (or the socket failed).
fn discard(c: &mut Conn, scratch: &mut [u8]) -> bool {
    use std::io::Read;
    loop {
        match c.stream.read(scratch) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// Writes queued output; the count written.
fn flush(c: &mut Conn) -> std::io::Result<usize> {
    use std::io::Write;
    let mut total = 0;
    while let Some(front) = c.out.front() {
        let rest = front.get(c.out_pos..).unwrap_or_default();
        if rest.is_empty() {
            c.out.pop_front();
            c.out_pos = 0;
            continue;
        }
        match c.stream.write(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                c.out_pos += n;
                total += n;
                c.last = Instant::now();
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(buf: &[u8]) -> Head {
        match parse_head(buf) {
            HeadParse::Done(h) => h,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn heads() {
        let r = b"POST /up?token=abc HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nX-TT-Token:  t1 \r\nContent-Length: 12\r\nExpect: 100-continue\r\n\r\nbody";
        let h = done(r);
        assert_eq!(h.method, Method::Post);
        assert_eq!(h.target, "/up?token=abc");
        assert_eq!(h.len, r.len() - 4);
        assert_eq!(h.body_len, 12);
        assert!(h.expect_continue && !h.close && !h.chunked);
        assert_eq!(h.token.as_deref(), Some(&b"t1"[..]));
        assert_eq!(
            h.content_type.as_deref(),
            Some(&b"multipart/form-data; boundary=b"[..])
        );
        let h = done(b"HEAD /x HTTP/1.0\r\n\r\n");
        assert_eq!((h.method, h.close, h.body_len), (Method::Head, true, 0));
        let h = done(b"GET /x HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(!h.close);
        let h = done(b"GET /x HTTP/1.1\r\nConnection: foo, close\r\n\r\n");
        assert!(h.close);
        let h = done(b"DELETE /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(h.method, Method::Other);
        assert!(h.chunked);
        let h = done(b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n");
        assert_eq!(h.body_len, usize::MAX);
        let h = done(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(h.body_len, 5);
    }

    #[test]
    fn bad_heads() {
        assert!(matches!(
            parse_head(b"GET / HTTP/1.1\r\nHost"),
            HeadParse::Incomplete
        ));
        assert!(matches!(parse_head(b""), HeadParse::Incomplete));
        for bad in [
            &b"\x01 / HTTP/1.1\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: \r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ] {
            assert!(
                matches!(parse_head(bad), HeadParse::Bad(_)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X-{i}: 1\r\n"))
            .collect();
        let r = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert!(matches!(parse_head(r.as_bytes()), HeadParse::Bad(_)));
        let big = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD));
        assert!(matches!(parse_head(big.as_bytes()), HeadParse::Bad(_)));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(matches!(parse_head(big.as_bytes()), HeadParse::Bad(_)));
    }

    #[test]
    fn query_tokens() {
        assert_eq!(query_token("/?token=abc"), Some(&b"abc"[..]));
        assert_eq!(query_token("/u?a=1&token=x-y&b"), Some(&b"x-y"[..]));
        assert_eq!(query_token("/u?tokens=1"), None);
        assert_eq!(query_token("/token=1"), None);
        assert_eq!(query_token("/u"), None);
    }
}
