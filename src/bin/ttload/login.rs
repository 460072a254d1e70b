//! `login`: every user logs in once (login port 1/1 -> 1/2, msg port 1/3 -> 1/4), then closes.
//! One phase; latency is 1/1 sent .. 1/4 received.

use std::sync::Arc;
use std::time::Instant;

use ttserver::proto::frame::Header;

use crate::args::Common;
use crate::net::{Handler, Net};
use crate::run::{first_error, start, supervise, Published, Scenario, Shared};
use crate::session::{Outcome, Users};
use crate::stats::{per_s, Lat};

pub const C_OK: usize = 0;
pub const C_FAILED: usize = 1;

pub struct Login {
    users: Users,
    shared: Arc<Shared>,
    published: Published<2>,
}

/// A thread's result.
pub struct Out {
    /// False if the run was aborted first.
    pub done: bool,
    pub users: Users,
}

impl Login {
    pub fn new(users: Users, shared: Arc<Shared>) -> Login {
        Login {
            users,
            shared,
            published: Published::default(),
        }
    }

    fn publish(&mut self) {
        let now = [self.users.ok, self.users.failed];
        self.published.publish(&self.shared, now);
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
    type Out = Out;

    fn tick(&mut self, net: &mut Net, now: Instant) -> bool {
        self.users.pump(net, now);
        self.publish();
        self.users.settled()
    }

    fn poll_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(2)
    }
    fn finish(mut self, done: bool, _net: &Net) -> Out {
        self.publish();
        Out {
            done,
            users: self.users,
        }
    }
}

/// Logs in users `<prefix>1 ..= <prefix><n>` once each over `c.threads` driver threads (at
/// `rate` logins per second, all threads together, if given) and prints the result line;
/// Ok(false) unless every login succeeded.
pub fn run(c: &Common, n: usize, rate: Option<f64>) -> Result<bool, String> {
    let roster = c.roster(rate);
    let (shared, handles) = start(c, 0, n, move |mine, shared| {
        Login::new(roster.numbered(mine), shared)
    })?;
    let mut prev = 0;
    let results = supervise(
        &shared,
        handles,
        0,
        |t| {
            let ok = shared.get(C_OK);
            let s = format!(
                "login: {t:.0}s logins {ok}/{n} failed {} ({}/s)",
                shared.get(C_FAILED),
                ok - prev
            );
            prev = ok;
            s
        },
        |_| {},
    )?;
    let logins: u64 = results.iter().map(|r| r.users.ok).sum();
    let failed: u64 = results.iter().map(|r| r.users.failed).sum();
    let last = results
        .iter()
        .filter_map(|r| r.users.last_login)
        .max()
        .map_or(0, |t| shared.us(t));
    let complete = results.iter().all(|r| r.done);
    first_error(results.iter().map(|r| &r.users.first_error));
    let lat = Lat::new(results.into_iter().map(|r| r.users.lat_us));
    println!(
        "result scenario=login users={n} threads={} logins={logins} failed={failed} \
         elapsed_s={:.3} logins_per_s={:.1}{} complete={complete}",
        c.threads,
        last as f64 / 1e6,
        per_s(logins, last),
        lat.keys("")
    );
    Ok(complete && failed == 0 && logins == n as u64)
}
