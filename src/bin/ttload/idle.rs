//! `idle`: N users log in and stay connected, sending a 7/1 every `--heartbeat` seconds.
//! Phase 0: log in, then one 7/1 round trip per connection (so the server finished setting up
//! every session). The main thread then measures the server over the hold and opens phase 1,
//! which ends the run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ttserver::proto::frame::Header;
use ttserver::proto::Pdu;

use crate::args::Common;
use crate::net::{Handler, Net};
use crate::run::{first_error, spawn_drivers, supervise, Published, Scenario, Shared};
use crate::session::{Outcome, St, Users};
use crate::stats::{clock_ticks_per_s, cpu_ticks, rss_kib, Lat};

pub const C_OK: usize = 0;
pub const C_FAILED: usize = 1;
pub const C_SYNCED: usize = 2;
pub const C_LOST: usize = 3;

const SYNC_RESERVED: u16 = 0x5A5A;

pub struct Idle {
    users: Users,
    shared: Arc<Shared>,
    synced: u64,
    lost: u64,
    /// Lost before their sync heartbeat came back.
    lost_unsynced: u64,
    is_synced: Vec<bool>,
    phase0_done: bool,
    published: Published<4>,
}

/// A thread's result.
pub struct Out {
    /// False if the run was aborted first.
    pub done: bool,
    /// Connections still online.
    pub alive: u64,
    /// Connections lost once online.
    pub lost: u64,
    pub users: Users,
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
            published: Published::default(),
        }
    }

    fn publish(&mut self) {
        let now = [self.users.ok, self.users.failed, self.synced, self.lost];
        self.published.publish(&self.shared, now);
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
    type Out = Out;

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

    fn poll_timeout(&self) -> Duration {
        Duration::from_millis(5)
    }

    fn finish(mut self, done: bool, _net: &Net) -> Out {
        self.publish();
        let alive = self.users.u.iter().filter(|u| u.st == St::Online).count() as u64;
        Out {
            done,
            alive,
            lost: self.lost,
            users: self.users,
        }
    }
}

/// Logs in users `<prefix>1 ..= <prefix><n>` over `c.threads` driver threads, holds the
/// connections `hold` seconds while measuring the server (process `pid`) and prints the result
/// line; Ok(false) unless every connection was set up and held.
pub fn run(c: &Common, n: usize, pid: u32, hold: u64) -> Result<bool, String> {
    c.reserve(n)?;
    let rss_before = rss_kib(pid)?;
    let cpu_before_login = cpu_ticks(pid)?;
    let shared = Shared::new(c.threads, c.limit);
    let roster = c.roster(None);
    let handles = spawn_drivers(&shared, &c.sources, n, move |mine, shared| {
        Idle::new(roster.numbered(mine), shared)
    })?;
    // Phase 1 is opened by the supervisor once everyone is logged in and synced; the hold runs
    // here, in the progress callback's thread, before that.
    let mut measured: Option<(u64, u64, u64, f64, f64)> = None;
    let hold_d = Duration::from_secs(hold);
    let mut hold_err = None;
    let r = supervise(
        &shared,
        handles,
        1,
        |t| {
            format!(
                "idle: {t:.0}s logged_in {}/{n} synced {} failed {} lost {}",
                shared.get(C_OK),
                shared.get(C_SYNCED),
                shared.get(C_FAILED),
                shared.get(C_LOST)
            )
        },
        |_| {
            let login_s = shared.epoch.elapsed().as_secs_f64();
            eprintln!("idle: all connections set up in {login_s:.1}s, holding {hold}s");
            let r = (|| -> Result<(u64, u64, u64, f64, f64), String> {
                let rss_mid = rss_kib(pid)?;
                let cpu0 = cpu_ticks(pid)?;
                let t0 = Instant::now();
                let mut next = t0 + Duration::from_secs(1);
                while t0.elapsed() < hold_d && Instant::now() < shared.deadline {
                    std::thread::sleep(Duration::from_millis(50));
                    if Instant::now() >= next {
                        next += Duration::from_secs(1);
                        eprintln!(
                            "idle: holding {:.0}/{hold}s conns lost {}",
                            t0.elapsed().as_secs_f64(),
                            shared.get(C_LOST)
                        );
                    }
                }
                let cpu1 = cpu_ticks(pid)?;
                let rss_after = rss_kib(pid)?;
                let secs = t0.elapsed().as_secs_f64();
                let pct =
                    (cpu1.saturating_sub(cpu0)) as f64 / clock_ticks_per_s() as f64 / secs * 100.0;
                Ok((rss_mid, rss_after, cpu0, pct, login_s))
            })();
            match r {
                Ok(m) => measured = Some(m),
                Err(e) => hold_err = Some(e),
            }
        },
    )?;
    if let Some(e) = hold_err {
        return Err(e);
    }
    let conns: u64 = r.iter().map(|x| x.alive).sum();
    let failed: u64 = r.iter().map(|x| x.users.failed).sum();
    let lost: u64 = r.iter().map(|x| x.lost).sum();
    let logins: u64 = r.iter().map(|x| x.users.ok).sum();
    let done = r.iter().all(|x| x.done);
    first_error(r.iter().map(|x| &x.users.first_error));
    let Some((rss_mid, rss_after, cpu0, pct, login_s)) = measured else {
        return Err("the run ended before every connection was set up".into());
    };
    let login_pct = (cpu0.saturating_sub(cpu_before_login)) as f64
        / clock_ticks_per_s() as f64
        / login_s.max(1e-9)
        * 100.0;
    let per_conn = rss_after.saturating_sub(rss_before) as f64 * 1024.0 / conns.max(1) as f64;
    let lat = Lat::new(r.into_iter().map(|x| x.users.lat_us));
    println!(
        "result scenario=idle users={n} threads={} conns={conns} failed={failed} \
         lost={lost} hold_s={hold} login_s={login_s:.3} logins_per_s={:.1} \
         login_p50_ms={:.3} login_p99_ms={:.3} rss_before_kib={rss_before} \
         rss_loggedin_kib={rss_mid} rss_after_kib={rss_after} rss_per_conn_bytes={per_conn:.0} \
         server_cpu_pct={pct:.2} server_login_cpu_pct={login_pct:.1} complete={}",
        c.threads,
        logins as f64 / login_s.max(1e-9),
        lat.ms(0.5),
        lat.ms(0.99),
        done && conns == n as u64
    );
    Ok(done && conns == n as u64 && failed == 0 && lost == 0)
}
