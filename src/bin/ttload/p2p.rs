//! `p2p`: N sender/receiver pairs; each sender keeps W messages in flight (or sends at R/s);
//! every ack and delivery is matched to (pair, seq) so loss, duplicates and reordering are
//! counted, not assumed.
//!
//! Phase 0: every user logs in. Phase 1 (opened by the main thread once all threads are
//! logged in): send, until every message is acked and delivered (or nothing moves for
//! `STALL`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ttserver::proto::frame::Header;

use crate::args::Common;
use crate::flow::{body, lost_unacked, parse_body, send_msg, words, Flow, Load};
use crate::meter::{Meter, Progress, Tally, C_SENT};
use crate::net::{Handler, Net};
use crate::run::{start_pairs, supervise, Scenario, Shared};
use crate::session::{Outcome, Users};
use crate::stats::per_s;

struct Pair {
    /// Global 1-based pair index (written in every body).
    g: usize,
    flow: Flow,
    /// A bit per seq delivered to the receiver.
    deliv: Vec<u64>,
    delivered: u32,
    last_deliv: Option<u32>,
}

pub struct P2p {
    m: Meter,
    pairs: Vec<Pair>,
    load: Load,
}

impl P2p {
    /// `pairs`: the 0-based global indices of this thread's pairs; `users`: their sender and
    /// receiver each (`Roster::pairs`).
    pub fn new(pairs: &[usize], users: Users, load: Load, shared: Arc<Shared>) -> P2p {
        let mut m = Meter::new(users, shared);
        let n = pairs.len() * load.messages as usize;
        m.t.ack_lat.reserve(n);
        m.t.del_lat.reserve(n);
        P2p {
            m,
            pairs: pairs
                .iter()
                .map(|&i| Pair {
                    g: i + 1,
                    flow: Flow::new(load.messages),
                    deliv: vec![0; words(load.messages)],
                    delivered: 0,
                    last_deliv: None,
                })
                .collect(),
            load,
        }
    }

    fn pair_ready(&self, k: usize) -> bool {
        !self.pairs[k].flow.broken && self.m.users.online(2 * k) && self.m.users.online(2 * k + 1)
    }

    /// Sends what the window (and rate) allow for pair k.
    fn fill(&mut self, net: &mut Net, k: usize, now: Instant) {
        let Some(go) = self.m.go else {
            return;
        };
        if !self.pair_ready(k) {
            return;
        }
        let since_go = now.saturating_duration_since(go).as_secs_f64() * 1e6;
        let now_us = self.m.shared.us(now) as u32;
        let u = &self.m.users.u;
        let (from, to, tok) = (u[2 * k].id, u[2 * k + 1].id, u[2 * k].tok);
        let (l, p) = (&self.load, &mut self.pairs[k]);
        while let Some(seq) = p.flow.next(l, since_go, now_us) {
            body(&mut self.m.buf, l.nonce, p.g, seq, l.size);
            send_msg(net, tok, from, to, 1, seq, &self.m.buf);
            self.m.count(C_SENT);
        }
    }

    fn on_ack(&mut self, net: &mut Net, k: usize, body: &[u8]) {
        if let Some(now) = self.m.ack(&mut self.pairs[k].flow, body) {
            if self.load.rate.is_none() {
                self.fill(net, k, now);
            }
        }
    }

    fn on_delivery(&mut self, k: usize, body: &[u8]) {
        let Some((d, (g, seq))) = self.m.delivery(body, self.load.nonce, parse_body) else {
            return;
        };
        let now = Instant::now();
        let now_us = self.m.shared.us(now) as u32;
        let sender = self.m.users.u[2 * k].id;
        let p = &mut self.pairs[k];
        if g != p.g || d.seq_no != seq || seq >= p.flow.sent || d.from_id.value() != Some(sender) {
            self.m.t.bad += 1;
            return;
        }
        let lat = now_us.saturating_sub(p.flow.sent_at(seq));
        let new = self
            .m
            .delivered(&mut p.deliv, &mut p.last_deliv, seq, lat, now);
        p.delivered += u32::from(new);
    }

    fn pair_done(&self, k: usize) -> bool {
        let p = &self.pairs[k];
        p.flow.broken || (p.flow.acked == self.load.messages && p.delivered == self.load.messages)
    }
}

impl Handler for P2p {
    fn frame(&mut self, net: &mut Net, tok: usize, h: &Header, body: &[u8]) {
        match self.m.users.on_frame(net, tok, h, body) {
            Outcome::Pass(ui) => match (ui % 2, h.module, h.command) {
                (0, 3, 2) => self.on_ack(net, ui / 2, body),
                (1, 3, 1) => self.on_delivery(ui / 2, body),
                _ => {}
            },
            Outcome::Failed(ui) => self.pairs[ui / 2].flow.broken = true,
            Outcome::LoggedIn(_) | Outcome::Handled => {}
        }
    }

    fn closed(&mut self, _net: &mut Net, tok: usize, tag: u64, why: &str) {
        if let Some(ui) = self.m.closed(tok, tag, why) {
            self.pairs[ui / 2].flow.broken = true;
        }
    }
}

impl Scenario for P2p {
    type Out = Tally;

    fn tick(&mut self, net: &mut Net, now: Instant) -> bool {
        for ui in self.m.logins(net, now) {
            self.pairs[ui / 2].flow.broken = true;
        }
        if !self.m.sending(now) {
            return false;
        }
        if self.load.rate.is_some() || self.m.published(C_SENT) == 0 {
            for k in 0..self.pairs.len() {
                self.fill(net, k, now);
            }
        }
        (0..self.pairs.len()).all(|k| self.pair_done(k)) || self.m.stalled(now)
    }

    fn poll_timeout(&self) -> Duration {
        self.load.poll_timeout()
    }

    fn finish(mut self, done: bool, net: &Net) -> Tally {
        let t = &mut self.m.t;
        for p in &self.pairs {
            t.sent += u64::from(p.flow.sent);
            t.acked += u64::from(p.flow.acked);
            t.delivered += u64::from(p.delivered);
            t.broken += u64::from(p.flow.broken);
            let (lost, unacked) = lost_unacked(&p.flow.acks, &p.deliv);
            t.lost += lost;
            t.unacked += unacked;
        }
        self.m.finish(done, net)
    }
}

/// Sends `load` from each of `pairs` senders to its online receiver and prints the result
/// line; Ok(false) unless every message was acked and delivered exactly once.
pub fn run(c: &Common, pairs: usize, load: Load) -> Result<bool, String> {
    let (shared, handles) = start_pairs(c, pairs, load, P2p::new)?;
    let expected = pairs as u64 * u64::from(load.messages);
    let mut progress = Progress::new("p2p", 2 * pairs, expected, None);
    let results = supervise(
        &shared,
        handles,
        1,
        |t| progress.line(&shared, t),
        |_| eprintln!("p2p: all users logged in, sending"),
    )?;
    let mut t = Tally::merge(results);
    let go = shared.opened(1);
    let ack_us = t.last_ack_us.saturating_sub(go);
    let deliv_us = t.last_deliv_us.saturating_sub(go);
    t.report_errors();
    let (exactly_once, complete) = (t.exactly_once(), t.complete(expected, expected));
    let latency = t.latency_keys();
    let (load, threads, faults) = (load.keys(), c.threads, t.fault_keys());
    let (sent, acked, delivered, lost) = (t.sent, t.acked, t.delivered, t.lost);
    let (dup, ooo, broken, stalled) = (t.dup, t.ooo, t.broken, t.stalled);
    let (ack_s, deliv_s) = (ack_us as f64 / 1e6, deliv_us as f64 / 1e6);
    let (ack_per_s, deliv_per_s) = (per_s(acked, ack_us), per_s(delivered, deliv_us));
    println!(
        "result scenario=p2p pairs={pairs} {load} threads={threads} sent={sent} acked={acked} \
         delivered={delivered} lost={lost} dup={dup} out_of_order={ooo} {faults} \
         broken_pairs={broken} stalled={stalled} ack_s={ack_s:.3} deliv_s={deliv_s:.3} \
         ack_per_s={ack_per_s:.1} deliv_per_s={deliv_per_s:.1}{latency} complete={complete} \
         exactly_once={exactly_once}"
    );
    Ok(exactly_once && complete)
}
