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

use crate::args::Common;
use crate::flow::{lost_unacked, send_msg, tag, tagged_body, words, Flow, Load};
use crate::meter::{Meter, Progress, Tally, C_SENT};
use crate::net::{Handler, Net};
use crate::run::{start, supervise, Scenario, Shared};
use crate::session::{Outcome, Users};
use crate::stats::per_s;

/// Group text message type.
const MSG_GROUP_TEXT: u8 = 0x11;

#[derive(Clone, Copy)]
pub struct Conf {
    pub group: u32,
    pub senders: usize,
    pub load: Load,
}

struct Sender {
    /// 1-based sender index (written in every body).
    s: usize,
    /// Index into `users`.
    ui: usize,
    flow: Flow,
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

pub struct Out {
    pub t: Tally,
    /// Deliveries of a member's own messages to its sending connection.
    pub own: u64,
    pub first_send_us: Option<u64>,
    /// (1-based sender index, acked seqs bitset).
    pub acks: Vec<(usize, Vec<u64>)>,
    pub members: Vec<Member>,
}

pub struct Group {
    m: Meter,
    senders: Vec<Sender>,
    /// Per user (index into `users`): its sender slot in `senders`, if it sends.
    sender_of: Vec<Option<usize>>,
    members: Vec<Member>,
    /// Every sender's user id (0 = not logged in), shared by all threads.
    ids: Arc<Vec<AtomicU32>>,
    /// This thread's copy of `ids`, taken when phase 1 opens.
    sender_ids: Vec<u32>,
    conf: Conf,
    first_send: Option<Instant>,
    own: u64,
}

impl Group {
    /// `mine`: the 0-based global indices of this thread's members; `users`: theirs
    /// (`Roster::numbered`).
    pub fn new(
        mine: &[usize],
        users: Users,
        conf: Conf,
        ids: Arc<Vec<AtomicU32>>,
        shared: Arc<Shared>,
    ) -> Group {
        let k = conf.load.messages as usize;
        let w = words(conf.load.messages);
        let mut senders = Vec::new();
        let mut sender_of = vec![None; mine.len()];
        for (ui, &g) in mine.iter().enumerate() {
            if g < conf.senders {
                sender_of[ui] = Some(senders.len());
                senders.push(Sender {
                    s: g + 1,
                    ui,
                    flow: Flow::new(conf.load.messages),
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
        let mut m = Meter::new(users, shared);
        m.t.ack_lat.reserve(senders.len() * k);
        m.t.del_lat
            .reserve((mine.len() * conf.senders * k).min(1 << 26));
        Group {
            m,
            senders,
            sender_of,
            members,
            ids,
            sender_ids: Vec::new(),
            conf,
            first_send: None,
            own: 0,
        }
    }

    fn broken(&mut self, ui: usize) {
        self.members[ui].broken = true;
        if let Some(k) = self.sender_of[ui] {
            self.senders[k].flow.broken = true;
        }
    }

    /// Sends what the window (and rate) allow for sender slot k.
    fn fill(&mut self, net: &mut Net, k: usize, now: Instant) {
        let Some(go) = self.m.go else {
            return;
        };
        let ui = self.senders[k].ui;
        if self.senders[k].flow.broken || !self.m.users.online(ui) {
            return;
        }
        let since_go = now.saturating_duration_since(go).as_secs_f64() * 1e6;
        let now_us = self.m.shared.us(now);
        let (from, tok) = (self.m.users.u[ui].id, self.m.users.u[ui].tok);
        let (c, p) = (&self.conf, &mut self.senders[k]);
        while let Some(seq) = p.flow.next(&c.load, since_go, now_us as u32) {
            body(&mut self.m.buf, c.load.nonce, p.s, seq, now_us, c.load.size);
            send_msg(net, tok, from, c.group, MSG_GROUP_TEXT, seq, &self.m.buf);
            self.m.count(C_SENT);
            self.first_send.get_or_insert(now);
        }
    }

    fn on_delivery(&mut self, ui: usize, body: &[u8]) {
        let Some((d, (s, seq, sent_us))) = self.m.delivery(body, self.conf.load.nonce, parse_body)
        else {
            return;
        };
        let now = Instant::now();
        let c = self.conf;
        // A delivery can arrive before this thread has seen the sending phase open (another
        // thread's sender went first): then read the id from the shared copy.
        let sender_id = match self.sender_ids.get(s.wrapping_sub(1)) {
            Some(&id) => Some(id),
            None => self
                .ids
                .get(s.wrapping_sub(1))
                .map(|a| a.load(Ordering::Relaxed))
                .filter(|&id| id != 0),
        };
        if s == 0
            || s > c.senders
            || seq >= c.load.messages
            || d.seq_no != seq
            || d.msg_type != MSG_GROUP_TEXT
            || d.to_id.value() != Some(c.group)
            || sender_id.is_none()
            || d.from_id.value() != sender_id
        {
            self.m.t.bad += 1;
            return;
        }
        let m = &mut self.members[ui];
        if m.g + 1 == s {
            // B-GRP-8: never to the sending connection.
            self.own += 1;
            return;
        }
        let (si, w) = (s - 1, words(c.load.messages));
        let lat = u32::try_from(self.m.shared.us(now).saturating_sub(sent_us)).unwrap_or(u32::MAX);
        let got = &mut m.deliv[si * w..(si + 1) * w];
        m.delivered += u64::from(self.m.delivered(got, &mut m.last[si], seq, lat, now));
    }

    fn expected_for(&self, m: &Member) -> u64 {
        let others = self.conf.senders - usize::from(m.g < self.conf.senders);
        others as u64 * u64::from(self.conf.load.messages)
    }

    fn all_done(&self) -> bool {
        let messages = self.conf.load.messages;
        self.senders
            .iter()
            .all(|p| p.flow.broken || p.flow.acked == messages)
            && self
                .members
                .iter()
                .all(|m| m.broken || m.delivered >= self.expected_for(m))
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
        for s in (0..senders).filter(|&s| s != m.g) {
            let (l, u) = lost_unacked(&acked[s * w..(s + 1) * w], &m.deliv[s * w..(s + 1) * w]);
            lost += l;
            unacked += u;
        }
    }
    (lost, unacked)
}

impl Handler for Group {
    fn frame(&mut self, net: &mut Net, tok: usize, h: &Header, body: &[u8]) {
        match self.m.users.on_frame(net, tok, h, body) {
            Outcome::Pass(ui) => match (h.module, h.command) {
                (3, 2) => match self.sender_of[ui] {
                    Some(k) => {
                        if let Some(now) = self.m.ack(&mut self.senders[k].flow, body) {
                            if self.conf.load.rate.is_none() {
                                self.fill(net, k, now);
                            }
                        }
                    }
                    None => self.m.t.bad += 1,
                },
                (3, 1) => self.on_delivery(ui, body),
                // presence pushes (2/5) and anything else: not ours
                _ => {}
            },
            Outcome::LoggedIn(ui) => {
                if let Some(k) = self.sender_of[ui] {
                    let s = self.senders[k].s;
                    self.ids[s - 1].store(self.m.users.u[ui].id, Ordering::Relaxed);
                }
            }
            Outcome::Failed(ui) => self.broken(ui),
            Outcome::Handled => {}
        }
    }

    fn closed(&mut self, _net: &mut Net, tok: usize, tag: u64, why: &str) {
        if let Some(ui) = self.m.closed(tok, tag, why) {
            self.broken(ui);
        }
    }
}

impl Scenario for Group {
    type Out = Out;

    fn tick(&mut self, net: &mut Net, now: Instant) -> bool {
        for ui in self.m.logins(net, now) {
            self.broken(ui);
        }
        let was_sending = self.m.go.is_some();
        if !self.m.sending(now) {
            return false;
        }
        if !was_sending {
            self.sender_ids = self.ids.iter().map(|a| a.load(Ordering::Relaxed)).collect();
        }
        if self.conf.load.rate.is_some() || self.m.published(C_SENT) == 0 {
            for k in 0..self.senders.len() {
                self.fill(net, k, now);
            }
        }
        self.all_done() || self.m.stalled(now)
    }

    fn poll_timeout(&self) -> Duration {
        self.conf.load.poll_timeout()
    }

    fn finish(mut self, done: bool, net: &Net) -> Out {
        let t = &mut self.m.t;
        let mut acks = Vec::with_capacity(self.senders.len());
        for p in &mut self.senders {
            t.sent += u64::from(p.flow.sent);
            t.acked += u64::from(p.flow.acked);
            acks.push((p.s, std::mem::take(&mut p.flow.acks)));
        }
        t.delivered = self.members.iter().map(|m| m.delivered).sum();
        Out {
            own: self.own,
            first_send_us: self.first_send.map(|t| self.m.shared.us(t)),
            acks,
            members: self.members,
            t: self.m.finish(done, net),
        }
    }
}

/// Runs the scenario with members `<prefix>1 ..= <prefix><members>` over `c.threads` driver
/// threads and prints its result line; Ok(false) unless it was complete and exactly once.
pub fn run(c: &Common, members: usize, client_type: u32, conf: Conf) -> Result<bool, String> {
    let mut roster = c.roster(None);
    roster.conf.client_type = client_type;
    let ids: Arc<Vec<AtomicU32>> = Arc::new((0..conf.senders).map(|_| AtomicU32::new(0)).collect());
    let (shared, handles) = start(c, members, members, move |mine, shared| {
        Group::new(mine, roster.numbered(mine), conf, ids.clone(), shared)
    })?;
    let Conf {
        group,
        senders,
        load,
    } = conf;
    let total = senders as u64 * u64::from(load.messages);
    let expected = total * (members as u64 - 1);
    let mut progress = Progress::new("group", members, total, Some(expected));
    let mut r = supervise(
        &shared,
        handles,
        1,
        |t| progress.line(&shared, t),
        |_| eprintln!("group: all members logged in, sending"),
    )?;
    let (lost, unacked) = lost(&r, senders, load.messages);
    let own: u64 = r.iter().map(|o| o.own).sum();
    let first_send = r
        .iter()
        .filter_map(|o| o.first_send_us)
        .min()
        .unwrap_or_else(|| shared.opened(1));
    let mut t = Tally::merge(r.iter_mut().map(|o| std::mem::take(&mut o.t)));
    // The delivery bitsets can be large: gone before the latency samples are sorted.
    drop(r);
    (t.lost, t.unacked) = (lost, unacked);
    let ack_us = t.last_ack_us.saturating_sub(first_send);
    let deliv_us = t.last_deliv_us.saturating_sub(first_send);
    t.report_errors();
    let (exactly_once, complete) = (t.exactly_once() && own == 0, t.complete(total, expected));
    let latency = t.latency_keys();
    let (load, threads, faults) = (load.keys(), c.threads, t.fault_keys());
    let (sent, acked, delivered) = (t.sent, t.acked, t.delivered);
    let (dup, ooo, stalled) = (t.dup, t.ooo, t.stalled);
    let (ack_s, deliv_s) = (ack_us as f64 / 1e6, deliv_us as f64 / 1e6);
    let (deliv_per_s, ack_per_s) = (per_s(delivered, deliv_us), per_s(acked, ack_us));
    println!(
        "result scenario=group group={group} members={members} senders={senders} {load} \
         client_type={client_type:#x} threads={threads} sent={sent} acked={acked} \
         expected_deliveries={expected} delivered={delivered} lost={lost} dup={dup} \
         out_of_order={ooo} own_deliveries={own} {faults} stalled={stalled} ack_s={ack_s:.3} \
         deliv_s={deliv_s:.3} deliv_per_s={deliv_per_s:.1} ack_per_s={ack_per_s:.1}{latency} \
         complete={complete} exactly_once={exactly_once}"
    );
    Ok(exactly_once && complete)
}

/// `ttload <nonce> <sender> <seq> <send_us> ` padded with 'x' to `size`.
fn body(out: &mut Vec<u8>, nonce: u32, sender: usize, seq: u32, us: u64, size: usize) {
    tagged_body(out, nonce, format_args!("{sender} {seq} {us}"), size);
}

/// (nonce, (sender, seq, send_us)) of a body written by [`body`].
fn parse_body(b: &[u8]) -> Option<(u32, (usize, u32, u64))> {
    let (nonce, mut it) = tag(b, 80)?;
    let sender = it.next()?.parse().ok()?;
    let seq = it.next()?.parse().ok()?;
    let us = it.next()?.parse().ok()?;
    Some((nonce, (sender, seq, us)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_body_roundtrip() {
        let mut b = Vec::new();
        body(&mut b, 0xbeef, 3, 17, 123_456_789, 100);
        assert_eq!(b.len(), 100);
        assert!(b.starts_with(b"ttload 0000beef 3 17 123456789 x"));
        assert_eq!(parse_body(&b), Some((0xbeef, (3, 17, 123_456_789))));
        body(&mut b, 1, 1, 0, 0, 1);
        assert_eq!(parse_body(&b), Some((1, (1, 0, 0))));
        assert_eq!(parse_body(b"ttload 1 2 3"), None);
    }
}
