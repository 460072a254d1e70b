//! `group`: M members of one group log in (users `<prefix>1 ..= <prefix>M`, created by the
//! caller), the first S of them send K group messages each (W in flight, or at R/s); every
//! member session must get every message of every other sender exactly once and in that
//! sender's order, and the sending connection none of its own (B-GRP-8, B-GRP-9).
//!
//! The body carries `ttload <nonce> <sender> <seq> <send_us> `, so a receiver in any thread
//! can match a delivery and measure send -> delivery against the shared epoch.
//!
//! Phase 0: every member logs in (and publishes its id if it is a sender). Phase 1: send,
//! until this thread's senders are all acked and its members got every expected delivery (or
//! nothing moves for `STALL`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ttserver::proto::frame::Header;
use ttserver::proto::{Dir, Id, MsgData, Pdu};

use crate::net::{Handler, Net};
use crate::run::{Scenario, Shared};
use crate::session::{Outcome, Users, UsersConf};

/// Progress counters.
pub const C_LOGINS: usize = 0;
pub const C_SENT: usize = 1;
pub const C_ACKED: usize = 2;
pub const C_DELIV: usize = 3;

/// The run ends when nothing was acked or delivered for this long.
pub const STALL: Duration = Duration::from_secs(10);

/// Group text message type.
const MSG_GROUP_TEXT: u8 = 0x11;

#[derive(Clone, Copy)]
pub struct Conf {
    pub group: u32,
    pub senders: usize,
    pub messages: u32,
    pub window: u32,
    /// Messages per second per sender.
    pub rate: Option<f64>,
    pub size: usize,
    pub nonce: u32,
}

/// A bit per (sender, seq).
fn words(messages: u32) -> usize {
    (messages as usize).div_ceil(64)
}

fn bit_set(bits: &mut [u64], i: usize) -> bool {
    let (w, b) = (i / 64, 1u64 << (i % 64));
    let was = bits[w] & b != 0;
    bits[w] |= b;
    was
}

struct Sender {
    /// 1-based sender index (written in every body).
    s: usize,
    /// Index into `users`.
    ui: usize,
    sent: u32,
    acked: u32,
    next_ack: u32,
    sent_at: Vec<u32>,
    acks: Vec<u64>,
    dup_ack: u64,
    ack_ooo: u64,
    bad_ack: u64,
    broken: bool,
    next_send: f64,
}

/// One member session's receive state.
pub struct Member {
    /// 0-based global member index.
    pub g: usize,
    /// Per sender (0-based): the seqs delivered, `words(K)` words each.
    pub deliv: Vec<u64>,
    last: Vec<Option<u32>>,
    pub delivered: u64,
    broken: bool,
}

#[derive(Default)]
pub struct Out {
    pub sent: u64,
    pub acked: u64,
    pub delivered: u64,
    pub dup: u64,
    pub ooo: u64,
    pub own: u64,
    pub dup_ack: u64,
    pub ack_ooo: u64,
    pub bad: u64,
    pub stale: u64,
    pub bad_frames: u64,
    pub login_failed: u64,
    pub lost_conns: u64,
    pub stalled: bool,
    pub aborted: bool,
    pub proto_errors: u64,
    pub ack_lat: Vec<u32>,
    pub del_lat: Vec<u32>,
    pub login_lat: Vec<u32>,
    pub first_send_us: Option<u64>,
    pub last_ack_us: u64,
    pub last_deliv_us: u64,
    pub first_error: Option<String>,
    /// (1-based sender index, acked seqs bitset).
    pub acks: Vec<(usize, Vec<u64>)>,
    pub members: Vec<Member>,
}

pub struct Group {
    users: Users,
    senders: Vec<Sender>,
    /// Per user (index into `users`): its sender slot in `senders`, if it sends.
    sender_of: Vec<Option<usize>>,
    members: Vec<Member>,
    /// Every sender's user id (0 = not logged in), shared by all threads.
    ids: Arc<Vec<AtomicU32>>,
    /// This thread's copy of `ids`, taken when phase 1 opens.
    sender_ids: Vec<u32>,
    conf: Conf,
    shared: Arc<Shared>,
    phase0_done: bool,
    go: Option<Instant>,
    first_send: Option<Instant>,
    last_progress: Instant,
    stalled: bool,
    ack_lat: Vec<u32>,
    del_lat: Vec<u32>,
    last_ack: Option<Instant>,
    last_deliv: Option<Instant>,
    dup: u64,
    ooo: u64,
    own: u64,
    bad: u64,
    stale: u64,
    bad_frames: u64,
    lost_conns: u64,
    buf: Vec<u8>,
    local: [u64; 4],
    published: [u64; 4],
}

impl Group {
    /// `mine`: the 0-based global indices of this thread's members (user `<prefix><i+1>`).
    pub fn new(
        mine: &[usize],
        prefix: &str,
        uconf: &UsersConf,
        conf: Conf,
        ids: Arc<Vec<AtomicU32>>,
        shared: Arc<Shared>,
    ) -> Group {
        let names = mine.iter().map(|i| format!("{prefix}{}", i + 1)).collect();
        let mut users = Users::new(names, uconf);
        for ui in 0..mine.len() {
            users.enqueue(ui);
        }
        let k = conf.messages as usize;
        let w = words(conf.messages);
        let mut senders = Vec::new();
        let mut sender_of = vec![None; mine.len()];
        for (ui, &g) in mine.iter().enumerate() {
            if g < conf.senders {
                sender_of[ui] = Some(senders.len());
                senders.push(Sender {
                    s: g + 1,
                    ui,
                    sent: 0,
                    acked: 0,
                    next_ack: 0,
                    sent_at: vec![0; k],
                    acks: vec![0; w],
                    dup_ack: 0,
                    ack_ooo: 0,
                    bad_ack: 0,
                    broken: false,
                    next_send: 0.0,
                });
            }
        }
        let members = mine
            .iter()
            .map(|&g| Member {
                g,
                deliv: vec![0; conf.senders * w],
                last: vec![None; conf.senders],
                delivered: 0,
                broken: false,
            })
            .collect();
        let expect = mine.len() * conf.senders * k;
        Group {
            users,
            ack_lat: Vec::with_capacity(senders.len() * k),
            del_lat: Vec::with_capacity(expect.min(1 << 26)),
            senders,
            sender_of,
            members,
            ids,
            sender_ids: Vec::new(),
            conf,
            shared,
            phase0_done: false,
            go: None,
            first_send: None,
            last_progress: Instant::now(),
            stalled: false,
            last_ack: None,
            last_deliv: None,
            dup: 0,
            ooo: 0,
            own: 0,
            bad: 0,
            stale: 0,
            bad_frames: 0,
            lost_conns: 0,
            buf: Vec::new(),
            local: [0; 4],
            published: [0; 4],
        }
    }

    fn broken(&mut self, ui: usize) {
        self.members[ui].broken = true;
        if let Some(k) = self.sender_of[ui] {
            self.senders[k].broken = true;
        }
    }

    /// Sends what the window (and rate) allow for sender slot k.
    fn fill(&mut self, net: &mut Net, k: usize, now: Instant) {
        let Some(go) = self.go else {
            return;
        };
        let ui = self.senders[k].ui;
        if self.senders[k].broken || !self.users.online(ui) {
            return;
        }
        let since_go = now.saturating_duration_since(go).as_secs_f64() * 1e6;
        let now_us = self.shared.us(now);
        let (from, tok) = (self.users.u[ui].id, self.users.u[ui].tok);
        let c = self.conf;
        let p = &mut self.senders[k];
        while p.sent < c.messages && p.sent - p.acked < c.window {
            if let Some(rate) = c.rate {
                if p.next_send > since_go {
                    break;
                }
                p.next_send += 1e6 / rate;
            }
            let seq = p.sent;
            body(&mut self.buf, c.nonce, p.s, seq, now_us, c.size);
            p.sent_at[seq as usize] = now_us as u32;
            net.send(
                tok,
                &Pdu::MsgData(MsgData {
                    seq_no: seq,
                    from_id: Id::Num(from),
                    to_id: Id::Num(c.group),
                    create_time: 0,
                    msg_type: MSG_GROUP_TEXT,
                    msg_data: &self.buf,
                    attach: b"",
                }),
                seq as u16,
            );
            p.sent += 1;
            self.local[C_SENT] += 1;
            self.first_send.get_or_insert(now);
        }
    }

    fn on_ack(&mut self, net: &mut Net, k: usize, body: &[u8]) {
        let Ok(Some(Pdu::MsgDataAck(a))) = Pdu::decode(Dir::ToClient, 3, 2, body) else {
            self.bad_frames += 1;
            return;
        };
        let now = Instant::now();
        let now_us = self.shared.us(now) as u32;
        let p = &mut self.senders[k];
        let seq = a.seq_no;
        if seq >= p.sent {
            p.bad_ack += 1;
            return;
        }
        if bit_set(&mut p.acks, seq as usize) {
            p.dup_ack += 1;
            return;
        }
        if seq != p.next_ack {
            p.ack_ooo += 1;
        }
        p.next_ack = seq + 1;
        p.acked += 1;
        self.local[C_ACKED] += 1;
        self.ack_lat
            .push(now_us.saturating_sub(p.sent_at[seq as usize]));
        self.last_ack = Some(now);
        self.last_progress = now;
        if self.conf.rate.is_none() {
            self.fill(net, k, now);
        }
    }

    fn on_delivery(&mut self, ui: usize, body: &[u8]) {
        let Ok(Some(Pdu::MsgData(d))) = Pdu::decode(Dir::ToClient, 3, 1, body) else {
            self.bad_frames += 1;
            return;
        };
        let Some((nonce, s, seq, t_us)) = parse_body(d.msg_data) else {
            self.stale += 1;
            return;
        };
        if nonce != self.conf.nonce {
            self.stale += 1;
            return;
        }
        let now = Instant::now();
        let c = self.conf;
        let sender_id = self.sender_ids.get(s.wrapping_sub(1)).copied();
        if s == 0
            || s > c.senders
            || seq >= c.messages
            || d.seq_no != seq
            || d.msg_type != MSG_GROUP_TEXT
            || d.to_id.value() != Some(c.group)
            || sender_id.is_none()
            || d.from_id.value() != sender_id
        {
            self.bad += 1;
            return;
        }
        let m = &mut self.members[ui];
        if m.g + 1 == s {
            // B-GRP-8: never to the sending connection.
            self.own += 1;
            return;
        }
        let si = s - 1;
        let w = words(c.messages);
        if bit_set(&mut m.deliv[si * w..(si + 1) * w], seq as usize) {
            self.dup += 1;
            return;
        }
        if m.last[si].is_some_and(|l| seq < l) {
            self.ooo += 1;
        }
        m.last[si] = Some(m.last[si].map_or(seq, |l| l.max(seq)));
        m.delivered += 1;
        self.local[C_DELIV] += 1;
        let lat = self.shared.us(now).saturating_sub(t_us);
        self.del_lat.push(u32::try_from(lat).unwrap_or(u32::MAX));
        self.last_deliv = Some(now);
        self.last_progress = now;
    }

    fn publish(&mut self) {
        self.local[C_LOGINS] = self.users.ok;
        for i in 0..4 {
            self.shared.add(i, self.local[i] - self.published[i]);
            self.published[i] = self.local[i];
        }
    }

    fn expected_for(&self, m: &Member) -> u64 {
        let others = self.conf.senders - usize::from(m.g < self.conf.senders);
        others as u64 * u64::from(self.conf.messages)
    }

    fn all_done(&self) -> bool {
        self.senders
            .iter()
            .all(|p| p.broken || p.acked == self.conf.messages)
            && self
                .members
                .iter()
                .all(|m| m.broken || m.delivered >= self.expected_for(m))
    }

    pub fn finish(mut self, aborted: bool, net: &Net) -> Out {
        self.publish();
        let mut o = Out {
            dup: self.dup,
            ooo: self.ooo,
            own: self.own,
            bad: self.bad,
            stale: self.stale,
            bad_frames: self.bad_frames,
            login_failed: self.users.failed,
            lost_conns: self.lost_conns,
            stalled: self.stalled,
            aborted,
            proto_errors: net.proto_errors,
            first_send_us: self.first_send.map(|t| self.shared.us(t)),
            last_ack_us: self.last_ack.map_or(0, |t| self.shared.us(t)),
            last_deliv_us: self.last_deliv.map_or(0, |t| self.shared.us(t)),
            first_error: self.users.first_error.take(),
            ..Out::default()
        };
        for p in &mut self.senders {
            o.sent += u64::from(p.sent);
            o.acked += u64::from(p.acked);
            o.dup_ack += p.dup_ack;
            o.ack_ooo += p.ack_ooo;
            o.bad += p.bad_ack;
            o.acks.push((p.s, std::mem::take(&mut p.acks)));
        }
        o.delivered = self.members.iter().map(|m| m.delivered).sum();
        o.members = std::mem::take(&mut self.members);
        o.ack_lat = std::mem::take(&mut self.ack_lat);
        o.del_lat = std::mem::take(&mut self.del_lat);
        o.login_lat = std::mem::take(&mut self.users.lat_us);
        o
    }
}

/// (lost, delivered without an ack) over all threads' results: for every member and every
/// other sender, the acked seqs not delivered and the delivered seqs never acked.
pub fn lost(outs: &[Out], senders: usize, messages: u32) -> (u64, u64) {
    let w = words(messages);
    let mut acked = vec![0u64; senders * w];
    for o in outs {
        for (s, bits) in &o.acks {
            acked[(s - 1) * w..s * w].copy_from_slice(bits);
        }
    }
    let (mut lost, mut unacked) = (0u64, 0u64);
    for m in outs.iter().flat_map(|o| &o.members) {
        for s in 0..senders {
            if s == m.g {
                continue;
            }
            let a = &acked[s * w..(s + 1) * w];
            let d = &m.deliv[s * w..(s + 1) * w];
            for (a, d) in a.iter().zip(d) {
                lost += u64::from((a & !d).count_ones());
                unacked += u64::from((d & !a).count_ones());
            }
        }
    }
    (lost, unacked)
}

impl Handler for Group {
    fn frame(&mut self, net: &mut Net, tok: usize, h: &Header, body: &[u8]) {
        match self.users.on_frame(net, tok, h, body) {
            Outcome::Pass(ui) => match (h.module, h.command) {
                (3, 2) => match self.sender_of[ui] {
                    Some(k) => self.on_ack(net, k, body),
                    None => self.bad += 1,
                },
                (3, 1) => self.on_delivery(ui, body),
                // presence pushes (2/5) and anything else: not ours
                _ => {}
            },
            Outcome::LoggedIn(ui) => {
                if let Some(k) = self.sender_of[ui] {
                    let s = self.senders[k].s;
                    self.ids[s - 1].store(self.users.u[ui].id, Ordering::Relaxed);
                }
            }
            Outcome::Failed(ui) => self.broken(ui),
            Outcome::Handled => {}
        }
    }

    fn closed(&mut self, _net: &mut Net, tok: usize, tag: u64, why: &str) {
        match self.users.on_closed(tok, tag, why) {
            Outcome::Pass(ui) => {
                self.lost_conns += 1;
                self.broken(ui);
            }
            Outcome::Failed(ui) => self.broken(ui),
            _ => {}
        }
    }
}

impl Scenario for Group {
    fn tick(&mut self, net: &mut Net, now: Instant) -> bool {
        self.publish();
        for ui in self.users.pump(net, now) {
            self.broken(ui);
        }
        self.users.heartbeats(net, now);
        if !self.phase0_done && self.users.settled() {
            self.phase0_done = true;
            self.shared.finish_phase(0);
        }
        if self.go.is_none() && self.shared.phase() >= 1 {
            self.go = Some(now);
            self.last_progress = now;
            self.sender_ids = self.ids.iter().map(|a| a.load(Ordering::Relaxed)).collect();
        }
        if self.go.is_none() {
            return false;
        }
        if self.conf.rate.is_some() || self.published[C_SENT] == 0 {
            for k in 0..self.senders.len() {
                self.fill(net, k, now);
            }
        }
        if self.all_done() {
            return true;
        }
        if now.duration_since(self.last_progress) > STALL {
            self.stalled = true;
            return true;
        }
        false
    }

    fn poll_timeout(&self) -> Duration {
        if self.conf.rate.is_some() {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(20)
        }
    }
}

/// `ttload <nonce> <sender> <seq> <send_us> ` padded with 'x' to `size`.
fn body(out: &mut Vec<u8>, nonce: u32, sender: usize, seq: u32, us: u64, size: usize) {
    use std::io::Write;
    out.clear();
    let _ = write!(out, "ttload {nonce:08x} {sender} {seq} {us} ");
    if out.len() < size {
        out.resize(size, b'x');
    }
}

/// (nonce, sender, seq, send_us) of a body written by [`body`].
fn parse_body(b: &[u8]) -> Option<(u32, usize, u32, u64)> {
    let text = std::str::from_utf8(b.get(..b.len().min(80))?).ok()?;
    let mut it = text.split(' ');
    if it.next()? != "ttload" {
        return None;
    }
    let nonce = u32::from_str_radix(it.next()?, 16).ok()?;
    let sender = it.next()?.parse().ok()?;
    let seq = it.next()?.parse().ok()?;
    let us = it.next()?.parse().ok()?;
    Some((nonce, sender, seq, us))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_body_roundtrip() {
        let mut b = Vec::new();
        body(&mut b, 0xbeef, 3, 17, 123_456_789, 100);
        assert_eq!(b.len(), 100);
        assert_eq!(parse_body(&b), Some((0xbeef, 3, 17, 123_456_789)));
        body(&mut b, 1, 1, 0, 0, 1);
        assert_eq!(parse_body(&b), Some((1, 1, 0, 0)));
        assert_eq!(parse_body(b"ttload 1 2 3"), None);
        let mut bits = vec![0u64; 2];
        assert!(!bit_set(&mut bits, 70));
        assert!(bit_set(&mut bits, 70));
        assert_eq!(bits[1], 1 << 6);
    }
}
