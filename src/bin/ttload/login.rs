//! `login`: every user logs in once (login port 1/1 -> 1/2, msg port 1/3 -> 1/4), then closes.
//! One phase; latency is 1/1 sent .. 1/4 received.

use std::sync::Arc;
use std::time::Instant;

use ttserver::proto::frame::Header;

use crate::net::{Handler, Net};
use crate::run::{Scenario, Shared};
use crate::session::{Outcome, Users};

pub const C_OK: usize = 0;
pub const C_FAILED: usize = 1;

pub struct Login {
    pub users: Users,
    shared: Arc<Shared>,
    published: [u64; 2],
}

impl Login {
    pub fn new(users: Users, shared: Arc<Shared>) -> Login {
        Login {
            users,
            shared,
            published: [0; 2],
        }
    }

    fn publish(&mut self) {
        let now = [self.users.ok, self.users.failed];
        for (i, v) in now.iter().enumerate() {
            self.shared.add(i, v - self.published[i]);
            self.published[i] = *v;
        }
    }

    pub fn finish(&mut self) {
        self.publish();
    }
}

impl Handler for Login {
    fn frame(&mut self, net: &mut Net, tok: usize, h: &Header, body: &[u8]) {
        if let Outcome::LoggedIn(ui) = self.users.on_frame(net, tok, h, body) {
            self.users.close(net, ui);
        }
    }

    fn closed(&mut self, _net: &mut Net, tok: usize, tag: u64, why: &str) {
        self.users.on_closed(tok, tag, why);
    }
}

impl Scenario for Login {
    fn tick(&mut self, net: &mut Net, now: Instant) -> bool {
        self.users.pump(net, now);
        self.publish();
        self.users.settled()
    }

    fn poll_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(2)
    }
}
