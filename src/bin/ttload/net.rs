//! One thread's event loop: a mio `Poll`, a slab of non-blocking TCP connections, TT framing on
//! input (`ttserver::proto::frame::check`) and buffered output flushed on WRITABLE.
//!
//! Every socket is registered once for READABLE | WRITABLE (edge-triggered): input is read until
//! `WouldBlock`; output is appended to the connection's buffer by `send*` and written at the end of
//! each `poll_once` (and again whenever the socket reports WRITABLE).

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;
use socket2::{Domain, Protocol, Socket, Type};
use ttserver::proto::frame::{self, Header, HEADER_LEN};
use ttserver::proto::Pdu;

/// Token of the (optional) listening socket.
pub const LISTENER: Token = Token(usize::MAX - 1);
/// Token of the (optional) cross-thread waker.
pub const WAKER: Token = Token(usize::MAX - 2);
/// Largest PDU accepted from the peer (well above the server's MaxOutPduSize).
pub const MAX_PDU: u32 = 16 << 20;

/// What the scenario code does with connection events. `tok` is the slab key of the connection;
/// its `tag` is whatever the code set at connect/accept time.
pub trait Handler {
    /// A non-blocking connect completed.
    fn connected(&mut self, _net: &mut Net, _tok: usize) {}
    /// An accepted connection (listener only).
    fn accepted(&mut self, _net: &mut Net, _tok: usize) {}
    /// One whole PDU. The handler may send, close this or other connections, or connect.
    fn frame(&mut self, net: &mut Net, tok: usize, h: &Header, body: &[u8]);
    /// The connection is gone (peer close, I/O or protocol error, failed connect); it has
    /// already been removed from the slab. Not called for `Net::close`.
    fn closed(&mut self, net: &mut Net, tok: usize, tag: u64, why: &str);
    /// The waker fired.
    fn woken(&mut self, _net: &mut Net) {}
}

struct Conn {
    stream: TcpStream,
    tag: u64,
    gen: u64,
    connected: bool,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    wpos: usize,
    dirty: bool,
    close_after_flush: bool,
}

pub struct Net {
    poll: Poll,
    events: Events,
    conns: Slab<Conn>,
    dirty: Vec<(usize, u64)>,
    evbuf: Vec<(Token, bool, bool)>,
    sources: Vec<IpAddr>,
    next_src: usize,
    next_gen: u64,
    scratch: Vec<u8>,
    listener: Option<TcpListener>,
    /// Malformed frames received (each closes its connection).
    pub proto_errors: u64,
    /// Connections lost to an I/O error or a failed connect.
    pub io_errors: u64,
}

impl Net {
    /// `sources`: local addresses to bind outgoing sockets to, round robin (empty = let the
    /// kernel choose); `first_src` staggers the round robin between threads.
    pub fn new(sources: Vec<IpAddr>, first_src: usize) -> io::Result<Net> {
        Ok(Net {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            conns: Slab::new(),
            dirty: Vec::new(),
            evbuf: Vec::new(),
            sources,
            next_src: first_src,
            next_gen: 1,
            scratch: vec![0; 64 * 1024],
            listener: None,
            proto_errors: 0,
            io_errors: 0,
        })
    }

    pub fn registry(&self) -> &Registry {
        self.poll.registry()
    }

    pub fn listen(&mut self, mut l: TcpListener) -> io::Result<()> {
        self.poll
            .registry()
            .register(&mut l, LISTENER, Interest::READABLE)?;
        self.listener = Some(l);
        Ok(())
    }

    pub fn tag(&self, tok: usize) -> Option<u64> {
        self.conns.get(tok).map(|c| c.tag)
    }

    pub fn set_tag(&mut self, tok: usize, tag: u64) {
        if let Some(c) = self.conns.get_mut(tok) {
            c.tag = tag;
        }
    }

    /// Starts a non-blocking connect; the returned token is usable at once (output is buffered
    /// until the connection is established).
    pub fn connect(&mut self, addr: SocketAddr, tag: u64) -> io::Result<usize> {
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        sock.set_nonblocking(true)?;
        sock.set_tcp_nodelay(true)?;
        if !self.sources.is_empty() {
            let ip = self.sources[self.next_src % self.sources.len()];
            self.next_src = self.next_src.wrapping_add(1);
            // Let connect() pick the port per 4-tuple instead of reserving it at bind time, so
            // each source address gives a full ephemeral range per destination.
            let one: libc::c_int = 1;
            // SAFETY: a valid fd and a pointer to a c_int of the given size.
            unsafe {
                libc::setsockopt(
                    sock.as_raw_fd(),
                    libc::IPPROTO_IP,
                    libc::IP_BIND_ADDRESS_NO_PORT,
                    (&one as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
            sock.bind(&SocketAddr::new(ip, 0).into())?;
        }
        match sock.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        let std: std::net::TcpStream = sock.into();
        self.insert(TcpStream::from_std(std), tag, false)
    }

    fn insert(&mut self, mut stream: TcpStream, tag: u64, connected: bool) -> io::Result<usize> {
        let entry = self.conns.vacant_entry();
        let tok = entry.key();
        self.poll.registry().register(
            &mut stream,
            Token(tok),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let gen = self.next_gen;
        self.next_gen += 1;
        entry.insert(Conn {
            stream,
            tag,
            gen,
            connected,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            wpos: 0,
            dirty: false,
            close_after_flush: false,
        });
        Ok(tok)
    }

    /// Appends one encoded PDU to the connection's output.
    pub fn send(&mut self, tok: usize, pdu: &Pdu<'_>, reserved: u16) {
        if let Some(c) = self.conns.get_mut(tok) {
            pdu.encode(reserved, &mut c.wbuf);
            if !c.dirty {
                c.dirty = true;
                self.dirty.push((tok, c.gen));
            }
        }
    }

    /// Appends bytes as they are.
    pub fn send_raw(&mut self, tok: usize, bytes: &[u8]) {
        if let Some(c) = self.conns.get_mut(tok) {
            c.wbuf.extend_from_slice(bytes);
            if !c.dirty {
                c.dirty = true;
                self.dirty.push((tok, c.gen));
            }
        }
    }

    /// Closes at once (pending output is dropped). No `closed` callback.
    pub fn close(&mut self, tok: usize) {
        if self.conns.contains(tok) {
            let mut c = self.conns.remove(tok);
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
    }

    /// Closes once the pending output is written.
    pub fn close_after_flush(&mut self, tok: usize) {
        if let Some(c) = self.conns.get_mut(tok) {
            c.close_after_flush = true;
            if !c.dirty {
                c.dirty = true;
                self.dirty.push((tok, c.gen));
            }
        }
    }

    fn fail(&mut self, h: &mut impl Handler, tok: usize, why: &str) {
        if self.conns.contains(tok) {
            let mut c = self.conns.remove(tok);
            let _ = self.poll.registry().deregister(&mut c.stream);
            h.closed(self, tok, c.tag, why);
        }
    }

    /// Flushes pending output, waits up to `timeout` for events, handles them, flushes again.
    pub fn poll_once(&mut self, h: &mut impl Handler, timeout: Duration) -> io::Result<()> {
        self.flush_dirty(h);
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        let mut evs = std::mem::take(&mut self.evbuf);
        evs.clear();
        evs.extend(self.events.iter().map(|e| {
            (
                e.token(),
                e.is_readable() || e.is_read_closed() || e.is_error(),
                e.is_writable() || e.is_write_closed(),
            )
        }));
        for &(token, readable, writable) in &evs {
            match token {
                LISTENER => self.accept(h),
                WAKER => h.woken(self),
                Token(tok) => self.conn_event(h, tok, readable, writable),
            }
        }
        self.evbuf = evs;
        self.flush_dirty(h);
        Ok(())
    }

    fn accept(&mut self, h: &mut impl Handler) {
        loop {
            let Some(l) = self.listener.as_ref() else {
                return;
            };
            match l.accept() {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    match self.insert(stream, 0, true) {
                        Ok(tok) => h.accepted(self, tok),
                        Err(_) => self.io_errors += 1,
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // e.g. EMFILE: leave the rest in the backlog for now
                    self.io_errors += 1;
                    return;
                }
            }
        }
    }

    fn conn_event(&mut self, h: &mut impl Handler, tok: usize, readable: bool, writable: bool) {
        let Some(c) = self.conns.get_mut(tok) else {
            return;
        };
        if !c.connected {
            match c.stream.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => {
                    self.io_errors += 1;
                    self.fail(h, tok, &format!("connect: {e}"));
                    return;
                }
            }
            match c.stream.peer_addr() {
                Ok(_) => {
                    c.connected = true;
                    if !c.wbuf.is_empty() && !c.dirty {
                        c.dirty = true;
                        self.dirty.push((tok, c.gen));
                    }
                    h.connected(self, tok);
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => {
                    self.io_errors += 1;
                    self.fail(h, tok, &format!("connect: {e}"));
                    return;
                }
            }
        }
        if readable {
            self.read(h, tok);
        }
        if writable {
            if let Some(gen) = self.conns.get(tok).map(|c| c.gen) {
                self.flush(h, tok, gen);
            }
        }
    }

    fn read(&mut self, h: &mut impl Handler, tok: usize) {
        let Some(gen) = self.conns.get(tok).map(|c| c.gen) else {
            return;
        };
        loop {
            let Some(c) = self.conns.get_mut(tok).filter(|c| c.gen == gen) else {
                return;
            };
            match c.stream.read(&mut self.scratch) {
                Ok(0) => {
                    self.fail(h, tok, "closed by peer");
                    return;
                }
                Ok(n) => {
                    c.rbuf.extend_from_slice(&self.scratch[..n]);
                    if !self.frames(h, tok, gen) {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.io_errors += 1;
                    self.fail(h, tok, &format!("read: {e}"));
                    return;
                }
            }
        }
    }

    /// Hands every whole PDU in the input buffer to the handler. False if the connection is
    /// gone afterwards (closed by the handler or for a protocol error).
    fn frames(&mut self, h: &mut impl Handler, tok: usize, gen: u64) -> bool {
        let Some(c) = self.conns.get_mut(tok) else {
            return false;
        };
        let buf = std::mem::take(&mut c.rbuf);
        let mut pos = 0;
        let mut bad = None;
        loop {
            match frame::check(&buf[pos..], MAX_PDU) {
                Ok(Some(hd)) => {
                    let len = hd.length as usize;
                    h.frame(self, tok, &hd, &buf[pos + HEADER_LEN..pos + len]);
                    pos += len;
                    if !self.alive(tok, gen) {
                        return false;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    bad = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = bad {
            self.proto_errors += 1;
            self.fail(h, tok, &format!("protocol error: {e}"));
            return false;
        }
        let mut buf = buf;
        buf.drain(..pos);
        if let Some(c) = self.conns.get_mut(tok) {
            c.rbuf = buf;
        }
        true
    }

    fn alive(&self, tok: usize, gen: u64) -> bool {
        self.conns.get(tok).is_some_and(|c| c.gen == gen)
    }

    fn flush_dirty(&mut self, h: &mut impl Handler) {
        while !self.dirty.is_empty() {
            let list = std::mem::take(&mut self.dirty);
            for (tok, gen) in list {
                if let Some(c) = self.conns.get_mut(tok).filter(|c| c.gen == gen) {
                    c.dirty = false;
                    self.flush(h, tok, gen);
                }
            }
        }
    }

    fn flush(&mut self, h: &mut impl Handler, tok: usize, gen: u64) {
        let Some(c) = self.conns.get_mut(tok).filter(|c| c.gen == gen) else {
            return;
        };
        if !c.connected {
            return;
        }
        while c.wpos < c.wbuf.len() {
            match c.stream.write(&c.wbuf[c.wpos..]) {
                Ok(0) => {
                    self.io_errors += 1;
                    self.fail(h, tok, "write returned 0");
                    return;
                }
                Ok(n) => c.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.io_errors += 1;
                    self.fail(h, tok, &format!("write: {e}"));
                    return;
                }
            }
        }
        if c.wpos == c.wbuf.len() {
            c.wbuf.clear();
            c.wpos = 0;
            if c.close_after_flush {
                self.close(tok);
            }
        } else if c.wpos > 1 << 20 {
            c.wbuf.drain(..c.wpos);
            c.wpos = 0;
        }
    }
}
