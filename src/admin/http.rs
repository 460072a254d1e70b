//! The HTTP admin API (behaviour.md section 14, B-ADM): thread "admin-http".
//!
//! One small mio loop serves every admin connection: HTTP/1.1 with keep-alive, request heads
//! parsed with `httparse` (at most 64 headers, head at most 16 KiB), bodies by `Content-Length`
//! (at most 1 MiB, else 413; chunked bodies are refused with 400). A request whose head or body
//! does not arrive within 5 s is dropped with the connection, so a slow client costs the others
//! nothing but its own sockets. Requests are authenticated (`Authorization: Bearer <AdminToken>`,
//! compared in constant time) before anything else; then [`api::Api`] answers them.
//!
//! Changes go through the single storage writer ([`crate::msg::outlet::WriteKind::Admin`]); this
//! thread blocks on its own reply channel until the commit, then updates the caches and pushes
//! to clients (B-ADM-4). Reads use this thread's own read-only SQLite connection.

pub mod api;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::msg::state::State;
use api::{Api, Response};

const LISTENER: Token = Token(0);
const WAKE: Token = Token(1);
const MAX_HEADERS: usize = 64;
const MAX_HEAD: usize = 16 * 1024;
pub const MAX_BODY: usize = 1024 * 1024;
/// A started request (the first one: counted from the accept) must be complete within this
/// time.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// An idle keep-alive connection is closed after this time.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// More simultaneous admin connections are accepted and closed at once.
const MAX_CONNS: usize = 256;

/// The running admin thread.
pub struct AdminHttp {
    thread: Option<JoinHandle<()>>,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
}

impl AdminHttp {
    /// Starts thread "admin-http" on an already bound listener.
    pub fn spawn(listener: std::net::TcpListener, st: Arc<State>) -> io::Result<AdminHttp> {
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let stop = Arc::new(AtomicBool::new(false));
        let db = crate::store::open_reader(&st.cfg.db_path(), st.cfg.store.db_sync)
            .map_err(|e| io::Error::other(format!("admin reader: {e}")))?;
        let api = Api::new(st, db);
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("admin-http".into())
            .spawn(move || {
                let mut lp = Loop {
                    poll,
                    listener,
                    api,
                    conns: HashMap::new(),
                    next: 2,
                };
                lp.run(&stop2);
            })?;
        Ok(AdminHttp {
            thread: Some(thread),
            waker,
            stop,
        })
    }

    /// Stops the thread and waits for it (open admin connections are dropped).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct HttpConn {
    stream: TcpStream,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    /// Close once `out` is flushed.
    close_after: bool,
    /// `100 Continue` was sent for the pending request.
    continued: bool,
    /// When the first byte of the pending (incomplete) request arrived.
    started: Option<Instant>,
    last: Instant,
}

struct Loop {
    poll: Poll,
    listener: TcpListener,
    api: Api,
    conns: HashMap<Token, HttpConn>,
    next: usize,
}

impl Loop {
    fn run(&mut self, stop: &AtomicBool) {
        let mut events = Events::with_capacity(128);
        while !stop.load(Ordering::SeqCst) {
            if let Err(e) = self
                .poll
                .poll(&mut events, Some(Duration::from_millis(500)))
            {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!(target: "admin", "poll failed: {e}");
                return;
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    WAKE => {}
                    t => self.service(t),
                }
            }
            self.expire();
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    if self.conns.len() >= MAX_CONNS {
                        continue;
                    }
                    let t = Token(self.next);
                    self.next += 1;
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, t, Interest::READABLE | Interest::WRITABLE)
                        .is_err()
                    {
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    self.conns.insert(
                        t,
                        HttpConn {
                            stream,
                            inbuf: Vec::new(),
                            out: Vec::new(),
                            close_after: false,
                            continued: false,
                            // The first request is due REQUEST_DEADLINE after the accept, so
                            // a connection that sends nothing does not hold a slot for
                            // IDLE_TIMEOUT.
                            started: Some(Instant::now()),
                            last: Instant::now(),
                        },
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!(target: "admin", "accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// Reads what is there, answers every complete request, writes what it can.
    fn service(&mut self, t: Token) {
        let Some(mut c) = self.conns.remove(&t) else {
            return;
        };
        let mut eof = false;
        if !c.close_after {
            let mut buf = [0u8; 16 * 1024];
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => {
                        if c.inbuf.is_empty() {
                            c.started = Some(Instant::now());
                        }
                        c.inbuf.extend_from_slice(buf.get(..n).unwrap_or_default());
                        c.last = Instant::now();
                        // Never buffer much more than one maximal request.
                        if c.inbuf.len() > MAX_HEAD + MAX_BODY {
                            self.process(&mut c);
                            if c.close_after {
                                break;
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        eof = true;
                        break;
                    }
                }
            }
            self.process(&mut c);
        }
        let flushed = flush(&mut c);
        match flushed {
            Err(_) => return self.drop_conn(c),
            Ok(true) if c.close_after || eof => return self.drop_conn(c),
            Ok(_) if eof && c.out.is_empty() => return self.drop_conn(c),
            Ok(_) => {}
        }
        self.conns.insert(t, c);
    }

    fn process(&mut self, c: &mut HttpConn) {
        while !c.close_after && !c.inbuf.is_empty() {
            match parse(&c.inbuf) {
                Parsed::Incomplete => return,
                Parsed::NeedBody => {
                    if !c.continued {
                        c.continued = true;
                        c.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                    }
                    return;
                }
                Parsed::Bad(resp) => {
                    c.out.extend_from_slice(&resp.encode(true));
                    c.close_after = true;
                    c.inbuf.clear();
                }
                Parsed::Request(req) => {
                    c.continued = false;
                    c.inbuf.drain(..req.consumed);
                    c.started = if c.inbuf.is_empty() {
                        None
                    } else {
                        Some(Instant::now())
                    };
                    let resp = if self.api.authorized(req.auth.as_deref()) {
                        self.api.handle(&req.method, &req.target, &req.body)
                    } else {
                        Response::error(401, "unauthorized", "missing or wrong bearer token")
                    };
                    if req.close {
                        c.close_after = true;
                    }
                    c.out.extend_from_slice(&resp.encode(c.close_after));
                }
            }
        }
    }

    fn expire(&mut self) {
        let now = Instant::now();
        let dead: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.started
                    .is_some_and(|s| now.duration_since(s) > REQUEST_DEADLINE)
                    || now.duration_since(c.last) > IDLE_TIMEOUT
            })
            .map(|(t, _)| *t)
            .collect();
        for t in dead {
            if let Some(c) = self.conns.remove(&t) {
                self.drop_conn(c);
            }
        }
    }

    fn drop_conn(&mut self, mut c: HttpConn) {
        let _ = self.poll.registry().deregister(&mut c.stream);
    }
}

/// Writes pending output; true when all of it is out.
fn flush(c: &mut HttpConn) -> io::Result<bool> {
    let mut done = 0;
    let res = loop {
        if done == c.out.len() {
            break Ok(true);
        }
        match c.stream.write(c.out.get(done..).unwrap_or_default()) {
            Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    c.out.drain(..done);
    if done > 0 {
        c.last = Instant::now();
    }
    res
}

/// One complete request.
#[derive(Debug)]
struct Request {
    method: String,
    target: String,
    auth: Option<Vec<u8>>,
    close: bool,
    body: Vec<u8>,
    consumed: usize,
}

#[derive(Debug)]
enum Parsed {
    Incomplete,
    /// The head is complete and announces `Expect: 100-continue`; the body is still missing.
    NeedBody,
    Bad(Response),
    Request(Request),
}

fn bad(msg: &str) -> Parsed {
    Parsed::Bad(Response::error(400, "bad_request", msg))
}

fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Partial) => {
            if buf.len() > MAX_HEAD {
                return bad("request head larger than 16 KiB");
            }
            return Parsed::Incomplete;
        }
        Ok(httparse::Status::Complete(n)) => n,
        Err(httparse::Error::TooManyHeaders) => return bad("more than 64 headers"),
        Err(e) => return bad(&format!("malformed request: {e}")),
    };
    if head_len > MAX_HEAD {
        return bad("request head larger than 16 KiB");
    }
    let mut content_length: Option<usize> = None;
    let mut auth = None;
    let mut expect_continue = false;
    let http10 = req.version == Some(0);
    let mut close = http10;
    for h in req.headers.iter() {
        let v = h.value;
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok());
            match (n, content_length) {
                (None, _) => return bad("bad Content-Length"),
                (Some(n), Some(old)) if n != old => return bad("conflicting Content-Length"),
                (Some(n), _) => content_length = Some(n),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return bad("Transfer-Encoding is not supported; send a Content-Length");
        } else if h.name.eq_ignore_ascii_case("expect") {
            expect_continue = v.eq_ignore_ascii_case(b"100-continue");
        } else if h.name.eq_ignore_ascii_case("authorization") {
            auth = Some(v.to_vec());
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = String::from_utf8_lossy(v).to_ascii_lowercase();
            if v.split(',').any(|t| t.trim() == "close") {
                close = true;
            } else if http10 && v.split(',').any(|t| t.trim() == "keep-alive") {
                close = false;
            }
        }
    }
    let len = content_length.unwrap_or(0);
    if len > MAX_BODY {
        return Parsed::Bad(Response::error(413, "too_large", "body larger than 1 MiB"));
    }
    let Some(body) = buf.get(head_len..head_len + len) else {
        return if expect_continue && buf.len() == head_len {
            Parsed::NeedBody
        } else {
            Parsed::Incomplete
        };
    };
    Parsed::Request(Request {
        method: req.method.unwrap_or("").to_string(),
        target: req.path.unwrap_or("").to_string(),
        auth,
        close,
        body: body.to_vec(),
        consumed: head_len + len,
    })
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
    fn parse_requests() {
        let r = b"POST /v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Length: 2\r\n\r\n{}GET";
        let Parsed::Request(req) = parse(r) else {
            panic!()
        };
        assert_eq!(req.method, "POST");
        assert_eq!(req.target, "/v1/users");
        assert_eq!(req.body, b"{}");
        assert_eq!(req.auth.as_deref(), Some(&b"Bearer t"[..]));
        assert!(!req.close);
        assert_eq!(req.consumed, r.len() - 3);
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost"),
            Parsed::Incomplete
        ));
        assert!(matches!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"),
            Parsed::Incomplete
        ));
        let Parsed::Bad(b) = parse(b"POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n") else {
            panic!()
        };
        assert_eq!(b.status, 413);
        let Parsed::Bad(b) = parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n") else {
            panic!()
        };
        assert_eq!(b.status, 400);
        assert!(matches!(
            parse(b"\x01\x02 / HTTP/1.1\r\n\r\n"),
            Parsed::Bad(_)
        ));
        let Parsed::Request(req) = parse(b"GET / HTTP/1.0\r\n\r\n") else {
            panic!()
        };
        assert!(req.close);
        let Parsed::Request(req) = parse(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n") else {
            panic!()
        };
        assert!(req.close);
        let many: String = (0..70).map(|i| format!("X-{i}: 1\r\n")).collect();
        let r = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert!(matches!(parse(r.as_bytes()), Parsed::Bad(_)));
        let big = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD + 1));
        assert!(matches!(parse(big.as_bytes()), Parsed::Bad(_)));
    }

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
