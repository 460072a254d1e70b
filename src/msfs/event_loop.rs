//! Thread "msfs-http": the mio loop over the listener and all connections, and the driving of
//! one connection from reading to handling to writing.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Shutdown};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crossbeam_channel::Receiver;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::conn::{discard, flush, read_some, Conn};
use super::head::{parse_head, HeadParse, Method};
use super::io::Done;
use super::requests::Ctx;
use super::{FIRST_CONN, IDLE_TIMEOUT, LINGER, LISTENER, WAKE};
use crate::net::timer::TimerKey;
use crate::stats::bump;

pub(super) struct Loop {
    pub(super) poll: Poll,
    pub(super) listener: TcpListener,
    pub(super) conns: Slab<Conn>,
    /// Open connections per peer address (`MsfsMaxConnsPerIp`).
    pub(super) per_ip: HashMap<IpAddr, usize>,
    pub(super) next_gen: u32,
    pub(super) ctx: Ctx,
    pub(super) done: Receiver<Done>,
    pub(super) scratch: Vec<u8>,
}

impl Loop {
    pub(super) fn run(&mut self, stop: &AtomicBool) {
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
                    if self.conns.len() >= self.ctx.st.cfg.msfs.msfs_max_conns {
                        bump(&self.ctx.st.counters.conn_cap_rejects);
                        log::warn!(target: "msfs", "connection cap reached, closing {peer}");
                        continue;
                    }
                    let per_ip_cap = self.ctx.st.cfg.msfs.msfs_max_conns_per_ip;
                    let from_ip = self.per_ip.get(&peer.ip()).copied().unwrap_or(0);
                    if per_ip_cap > 0 && from_ip >= per_ip_cap {
                        bump(&self.ctx.st.counters.conn_cap_rejects);
                        log::warn!(target: "msfs", "MsfsMaxConnsPerIp reached, closing {peer}");
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
                    *self.per_ip.entry(peer.ip()).or_insert(0) += 1;
                    let generation = self.next_gen;
                    self.next_gen = self.next_gen.wrapping_add(1);
                    let now = Instant::now();
                    // The first request's head is due `MsfsHeadTimeout` after the accept.
                    let armed = now + self.ctx.pace.head.min(IDLE_TIMEOUT);
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
                        started: Some(now),
                        body_from: None,
                        ip: peer.ip(),
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
            let next = match c.deadline(&self.ctx.pace) {
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
            if let Some(n) = self.per_ip.get_mut(&c.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_ip.remove(&c.ip);
                }
            }
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
            rearm_if_earlier(ctx, key, c);
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
                c.body_from = Some(Instant::now());
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
    c.body_from = None;
    if h.close {
        c.close_after = true;
    }
    ctx.handle(key, c, &h, bytes);
    true
}

/// A deadline that moved before the armed timer (a new request's head, a slow body) gets its
/// own timer entry; the later one is then stale and skipped.
fn rearm_if_earlier(ctx: &mut Ctx, key: TimerKey, c: &mut Conn) {
    if let Some(d) = c.deadline(&ctx.pace).filter(|d| *d < c.armed) {
        c.armed = d;
        ctx.timers.arm(d, key);
    }
}
