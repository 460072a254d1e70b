//! The client login flow shared by every scenario, as a state machine per user:
//! login port 1/1 -> 1/2 (msg server address), close; msg port 1/3 -> 1/4; then periodic 7/1
//! heartbeats. Logins are started from a queue, at most `concurrency` in flight, optionally at
//! a fixed rate.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ttserver::client::md5_hex;
use ttserver::proto::frame::Header;
use ttserver::proto::{Dir, LoginRequest, Pdu};

use crate::net::Net;

/// `reserved` of the periodic heartbeats (their answers are swallowed here).
pub const HB_RESERVED: u16 = 0xFFFF;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum St {
    /// Not started (or ready for another login).
    Idle,
    /// 1/1 sent on the login port.
    LoginPort,
    /// 1/3 sent on the msg port.
    MsgLogin,
    Online,
    /// The login failed.
    Failed,
    /// Was online; the connection is gone (closed by the server or an error).
    Lost,
    /// Closed by the scenario on purpose.
    Done,
}

pub struct User {
    pub name: String,
    pub st: St,
    pub tok: usize,
    /// From the 1/4 (0 = not known yet).
    pub id: u32,
    started: Instant,
    next_hb: Instant,
}

/// What a received frame meant for the login flow.
pub enum Outcome {
    /// Consumed by the login flow (or stale).
    Handled,
    LoggedIn(usize),
    Failed(usize),
    /// A frame of an online user, for the scenario.
    Pass(usize),
}

pub struct Users {
    pub u: Vec<User>,
    login_addr: SocketAddr,
    pw_md5: String,
    client_type: u32,
    queue: VecDeque<usize>,
    in_flight: usize,
    concurrency: usize,
    /// Logins per second started by this thread (None = as fast as `concurrency` allows).
    rate: Option<f64>,
    rate_start: Option<Instant>,
    rate_started: u64,
    hb: Duration,
    last_hb_scan: Instant,
    /// Latency of each successful login (1/1 sent .. 1/4 received), microseconds.
    pub lat_us: Vec<u32>,
    pub ok: u64,
    pub failed: u64,
    pub first_error: Option<String>,
    pub last_login: Option<Instant>,
}

#[derive(Clone)]
pub struct UsersConf {
    pub login_addr: SocketAddr,
    pub password: String,
    pub client_type: u32,
    pub concurrency: usize,
    pub rate: Option<f64>,
    pub heartbeat: Duration,
}

/// Who the driver threads log in, and how: the same for every thread.
#[derive(Clone)]
pub struct Roster {
    pub prefix: String,
    pub conf: UsersConf,
}

impl Roster {
    /// Users `<prefix><i+1>` for each 0-based index i, queued to log in.
    pub fn numbered(&self, indices: &[usize]) -> Users {
        let names = indices.iter().map(|i| format!("{}{}", self.prefix, i + 1));
        Users::queued(names.collect(), &self.conf)
    }

    /// For each 0-based pair index i, its sender `<prefix><2i+1>` and receiver
    /// `<prefix><2i+2>`, queued to log in: the k-th pair given is users 2k and 2k+1.
    pub fn pairs(&self, indices: &[usize]) -> Users {
        let names = indices
            .iter()
            .flat_map(|i| [2 * i + 1, 2 * i + 2].map(|n| format!("{}{n}", self.prefix)));
        Users::queued(names.collect(), &self.conf)
    }
}

impl Users {
    /// The users, every one queued to log in.
    pub fn queued(names: Vec<String>, conf: &UsersConf) -> Users {
        let mut users = Users::new(names, conf);
        for ui in 0..users.u.len() {
            users.enqueue(ui);
        }
        users
    }

    fn new(names: Vec<String>, conf: &UsersConf) -> Users {
        let now = Instant::now();
        Users {
            u: names
                .into_iter()
                .map(|name| User {
                    name,
                    st: St::Idle,
                    tok: usize::MAX,
                    id: 0,
                    started: now,
                    next_hb: now,
                })
                .collect(),
            login_addr: conf.login_addr,
            pw_md5: md5_hex(&conf.password),
            client_type: conf.client_type,
            queue: VecDeque::new(),
            in_flight: 0,
            concurrency: conf.concurrency.max(1),
            rate: conf.rate,
            rate_start: None,
            rate_started: 0,
            hb: conf.heartbeat,
            last_hb_scan: now,
            lat_us: Vec::new(),
            ok: 0,
            failed: 0,
            first_error: None,
            last_login: None,
        }
    }

    /// Queues a (re)login of user `ui`.
    pub fn enqueue(&mut self, ui: usize) {
        if let Some(u) = self.u.get_mut(ui) {
            u.st = St::Idle;
            self.queue.push_back(ui);
        }
    }

    /// True when no login is queued or in flight.
    pub fn settled(&self) -> bool {
        self.queue.is_empty() && self.in_flight == 0
    }

    pub fn online(&self, ui: usize) -> bool {
        self.u.get(ui).is_some_and(|u| u.st == St::Online)
    }

    fn record_failure(&mut self, ui: usize, why: String) {
        self.failed += 1;
        if let Some(u) = self.u.get_mut(ui) {
            u.st = St::Failed;
            if self.first_error.is_none() {
                self.first_error = Some(format!("login of {}: {why}", u.name));
            }
        }
    }

    /// Starts queued logins as `concurrency` and `rate` allow. Returns users that failed at once.
    pub fn pump(&mut self, net: &mut Net, now: Instant) -> Vec<usize> {
        let mut failed = Vec::new();
        while self.in_flight < self.concurrency {
            if let Some(rate) = self.rate {
                let start = *self.rate_start.get_or_insert(now);
                let allowed = (now.duration_since(start).as_secs_f64() * rate) as u64 + 1;
                if self.rate_started >= allowed {
                    break;
                }
            }
            let Some(ui) = self.queue.pop_front() else {
                break;
            };
            self.rate_started += 1;
            match net.connect(self.login_addr, ui as u64) {
                Ok(tok) => {
                    net.send(tok, &Pdu::MsgServRequest, 1);
                    if let Some(u) = self.u.get_mut(ui) {
                        u.st = St::LoginPort;
                        u.tok = tok;
                        u.started = now;
                    }
                    self.in_flight += 1;
                }
                Err(e) => {
                    self.record_failure(ui, format!("connect to login port: {e}"));
                    failed.push(ui);
                }
            }
        }
        failed
    }

    /// Sends a 7/1 on every online connection whose heartbeat is due (scans at most twice a
    /// second).
    pub fn heartbeats(&mut self, net: &mut Net, now: Instant) {
        if now.duration_since(self.last_hb_scan) < Duration::from_millis(500) {
            return;
        }
        self.last_hb_scan = now;
        for u in &mut self.u {
            if u.st == St::Online && u.next_hb <= now {
                net.send(u.tok, &Pdu::Heartbeat, HB_RESERVED);
                u.next_hb = now + self.hb;
            }
        }
    }

    /// Closes the user's connection on purpose.
    pub fn close(&mut self, net: &mut Net, ui: usize) {
        if let Some(u) = self.u.get_mut(ui) {
            if matches!(u.st, St::Online | St::LoginPort | St::MsgLogin) {
                if u.st != St::Online {
                    self.in_flight -= 1;
                }
                net.close(u.tok);
                u.st = St::Done;
            }
        }
    }

    /// The user a connection belongs to, if it is that user's current connection.
    pub fn user_of(&self, net: &Net, tok: usize) -> Option<usize> {
        let ui = net.tag(tok)? as usize;
        self.u.get(ui).filter(|u| u.tok == tok).map(|_| ui)
    }

    pub fn on_frame(&mut self, net: &mut Net, tok: usize, h: &Header, body: &[u8]) -> Outcome {
        let Some(ui) = self.user_of(net, tok) else {
            net.close(tok);
            return Outcome::Handled;
        };
        let st = self.u[ui].st;
        match (st, h.module, h.command) {
            (St::LoginPort, 1, 2) => {
                let addr = match Pdu::decode(Dir::ToClient, 1, 2, body) {
                    Ok(Some(Pdu::MsgServResponse(r))) => match r.ok {
                        Some(ok) if r.result == 0 => {
                            msg_addr(ok.ip1, ok.port).or_else(|_| msg_addr(ok.ip2, ok.port))
                        }
                        _ => Err(format!("1/2 result {}", r.result)),
                    },
                    Ok(_) => Err("undecodable 1/2".into()),
                    Err(e) => {
                        net.proto_errors += 1;
                        Err(format!("bad 1/2: {e}"))
                    }
                };
                net.close(tok);
                let res = addr.and_then(|a| {
                    net.connect(a, ui as u64)
                        .map_err(|e| format!("connect to msg port {a}: {e}"))
                });
                match res {
                    Ok(t) => {
                        let req = Pdu::LoginRequest(LoginRequest {
                            user_name: self.u[ui].name.as_bytes(),
                            password: self.pw_md5.as_bytes(),
                            online_status: 1,
                            client_type: self.client_type,
                            client_version: b"ttload/1",
                        });
                        net.send(t, &req, 2);
                        self.u[ui].tok = t;
                        self.u[ui].st = St::MsgLogin;
                        Outcome::Handled
                    }
                    Err(why) => {
                        self.in_flight -= 1;
                        self.record_failure(ui, why);
                        Outcome::Failed(ui)
                    }
                }
            }
            (St::MsgLogin, 1, 4) => {
                self.in_flight -= 1;
                let res = match Pdu::decode(Dir::ToClient, 1, 4, body) {
                    Ok(Some(Pdu::LoginResponse(r))) => match r.ok {
                        Some(ok) if r.result == 0 => ok
                            .user_id
                            .value()
                            .ok_or_else(|| "1/4 without a valid user id".to_string()),
                        _ => Err(format!("1/4 result {}", r.result)),
                    },
                    Ok(_) => Err("undecodable 1/4".into()),
                    Err(e) => {
                        net.proto_errors += 1;
                        Err(format!("bad 1/4: {e}"))
                    }
                };
                match res {
                    Ok(id) => {
                        let now = Instant::now();
                        let u = &mut self.u[ui];
                        u.id = id;
                        u.st = St::Online;
                        u.next_hb = now + self.hb;
                        let us = now.duration_since(u.started).as_micros();
                        self.lat_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                        self.ok += 1;
                        self.last_login = Some(now);
                        Outcome::LoggedIn(ui)
                    }
                    Err(why) => {
                        net.close(tok);
                        self.record_failure(ui, why);
                        Outcome::Failed(ui)
                    }
                }
            }
            (St::Online, 7, 1) if h.reserved == HB_RESERVED => Outcome::Handled,
            (St::Online, _, _) => Outcome::Pass(ui),
            _ => Outcome::Handled,
        }
    }

    /// A connection went away. `Failed` during login, `Pass` for an online user (now `Lost`).
    pub fn on_closed(&mut self, tok: usize, tag: u64, why: &str) -> Outcome {
        let ui = tag as usize;
        let Some(u) = self.u.get_mut(ui).filter(|u| u.tok == tok) else {
            return Outcome::Handled;
        };
        match u.st {
            St::LoginPort | St::MsgLogin => {
                self.in_flight -= 1;
                self.record_failure(ui, why.to_string());
                Outcome::Failed(ui)
            }
            St::Online => {
                u.st = St::Lost;
                if self.first_error.is_none() {
                    self.first_error = Some(format!("{} lost its connection: {why}", u.name));
                }
                Outcome::Pass(ui)
            }
            _ => Outcome::Handled,
        }
    }
}

/// The msg server address from a 1/2: loopback only.
fn msg_addr(ip: &[u8], port: u16) -> Result<SocketAddr, String> {
    let text = String::from_utf8_lossy(ip);
    let ip: IpAddr = text
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| format!("1/2 address {text:?} is not an IP address"))?;
    if !ip.is_loopback() {
        return Err(format!(
            "1/2 points to {ip}, not a loopback address (ttload only targets 127.0.0.0/8, ::1)"
        ));
    }
    Ok(SocketAddr::new(ip, port))
}
