//! `idle`: N users log in and stay connected, sending a 7/1 every `--heartbeat` seconds.
//! Phase 0: log in, then one 7/1 round trip per connection (so the server finished setting up
//! every session). The main thread then measures the server over the hold and opens phase 1,
//! which ends the run.

use std::sync::Arc;
use std::time::Instant;

use ttserver::proto::frame::Header;
use ttserver::proto::Pdu;

use crate::net::{Handler, Net};
use crate::run::{Scenario, Shared};
use crate::session::{Outcome, St, Users};

pub const C_OK: usize = 0;
pub const C_FAILED: usize = 1;
pub const C_SYNCED: usize = 2;
pub const C_LOST: usize = 3;

const SYNC_RESERVED: u16 = 0x5A5A;

pub struct Idle {
    pub users: Users,
    shared: Arc<Shared>,
    pub synced: u64,
    pub lost: u64,
    /// Lost before their sync heartbeat came back.
    lost_unsynced: u64,
    is_synced: Vec<bool>,
    phase0_done: bool,
    published: [u64; 4],
}

impl Idle {
    pub fn new(users: Users, shared: Arc<Shared>) -> Idle {
        let n = users.u.len();
        Idle {
            users,
            shared,
            synced: 0,
            lost: 0,
            lost_unsynced: 0,
            is_synced: vec![false; n],
            phase0_done: false,
            published: [0; 4],
        }
    }

    fn publish(&mut self) {
        let now = [self.users.ok, self.users.failed, self.synced, self.lost];
        for (i, v) in now.iter().enumerate() {
            self.shared.add(i, v - self.published[i]);
            self.published[i] = *v;
        }
    }

    /// Connections still online.
    pub fn finish(&mut self) -> u64 {
        self.publish();
        self.users.u.iter().filter(|u| u.st == St::Online).count() as u64
    }
}

impl Handler for Idle {
    fn frame(&mut self, net: &mut Net, tok: usize, h: &Header, body: &[u8]) {
        match self.users.on_frame(net, tok, h, body) {
            Outcome::LoggedIn(ui) => net.send(self.users.u[ui].tok, &Pdu::Heartbeat, SYNC_RESERVED),
            Outcome::Pass(ui)
                if (h.module, h.command, h.reserved) == (7, 1, SYNC_RESERVED)
                    && !self.is_synced[ui] =>
            {
                self.is_synced[ui] = true;
                self.synced += 1;
            }
            _ => {}
        }
    }

    fn closed(&mut self, _net: &mut Net, tok: usize, tag: u64, why: &str) {
        if let Outcome::Pass(ui) = self.users.on_closed(tok, tag, why) {
            self.lost += 1;
            if !self.is_synced[ui] {
                self.lost_unsynced += 1;
            }
        }
    }
}

impl Scenario for Idle {
    fn tick(&mut self, net: &mut Net, now: Instant) -> bool {
        self.users.pump(net, now);
        self.users.heartbeats(net, now);
        self.publish();
        if !self.phase0_done
            && self.users.settled()
            && self.synced + self.lost_unsynced + self.users.failed >= self.users.u.len() as u64
        {
            self.phase0_done = true;
            self.shared.finish_phase(0);
        }
        self.shared.phase() >= 1
    }

    fn poll_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(5)
    }
}
