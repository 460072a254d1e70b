//! `relay`: the baseline. A minimal mio server speaking just enough TT for `ttload p2p`:
//! 1/1 -> 1/2 pointing to itself, 1/3 -> 1/4 (result 0, a user id per distinct login name, no
//! password check), 3/1 -> 3/2 to the sender then the 3/1 (create_time = now) to the
//! connection of `to_id`, 7/1 -> 7/1. No storage, no other logic. Messages to a user who is not
//! connected are acked and dropped (counted).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::Waker;
use socket2::{Domain, Protocol, Socket, Type};
use ttserver::clock::unix_now;
use ttserver::proto::frame::Header;
use ttserver::proto::{
    Dir, Id, LoginOk, LoginResponse, MsgData, MsgDataAck, MsgServOk, MsgServResponse, Pdu,
};

use crate::net::{Handler, Net, WAKER};

const R_LOGINS: usize = 0;
const R_FORWARDED: usize = 1;
const R_CROSS: usize = 2;
const R_DROPPED: usize = 3;
const R_BAD: usize = 4;

struct Global {
    /// Login name -> user id (1, 2, ... in order of first login).
    names: Mutex<HashMap<Vec<u8>, u32>>,
    /// User id -> the thread holding its (latest) connection.
    location: RwLock<HashMap<u32, usize>>,
    chans: Vec<Sender<(u32, Vec<u8>)>>,
    wakers: Vec<Waker>,
    count: [AtomicU64; 5],
}

struct Relay {
    idx: usize,
    g: Arc<Global>,
    rx: Receiver<(u32, Vec<u8>)>,
    /// User id -> connection token on this thread.
    local: HashMap<u32, usize>,
    ip: String,
    port: u16,
    buf: Vec<u8>,
}

impl Relay {
    fn count(&self, i: usize) {
        self.g.count[i].fetch_add(1, Ordering::Relaxed);
    }

    fn login(&mut self, net: &mut Net, tok: usize, h: &Header, body: &[u8]) {
        let Ok(Some(Pdu::LoginRequest(r))) = Pdu::decode(Dir::ToServer, 1, 3, body) else {
            self.count(R_BAD);
            net.close(tok);
            return;
        };
        let id = {
            let mut names = self.g.names.lock().unwrap_or_else(|e| e.into_inner());
            let next = names.len() as u32 + 1;
            *names.entry(r.user_name.to_vec()).or_insert(next)
        };
        net.set_tag(tok, u64::from(id));
        self.local.insert(id, tok);
        self.g
            .location
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, self.idx);
        let rsp = Pdu::LoginResponse(LoginResponse {
            server_time: unix_now(),
            result: 0,
            ok: Some(LoginOk {
                online_status: 1,
                user_id: Id::Num(id),
                nickname: r.user_name,
                avatar_url: b"",
                title: b"",
                position: b"",
                role_status: 0,
                sex: 0,
                depart_id: Id::Num(1),
                job_num: 0,
                telephone: b"",
                email: b"",
                token: b"00000000-0000-0000-0000-000000000000",
            }),
        });
        net.send(tok, &rsp, h.reserved);
        self.count(R_LOGINS);
    }

    fn message(&mut self, net: &mut Net, tok: usize, h: &Header, body: &[u8]) {
        let Ok(Some(Pdu::MsgData(d))) = Pdu::decode(Dir::ToServer, 3, 1, body) else {
            self.count(R_BAD);
            net.close(tok);
            return;
        };
        net.send(
            tok,
            &Pdu::MsgDataAck(MsgDataAck {
                seq_no: d.seq_no,
                from_id: d.from_id,
            }),
            h.reserved,
        );
        let target = d.to_id.value().unwrap_or(0);
        self.buf.clear();
        Pdu::MsgData(MsgData {
            create_time: unix_now(),
            ..d
        })
        .encode(0, &mut self.buf);
        if let Some(&t) = self.local.get(&target) {
            net.send_raw(t, &self.buf);
            self.count(R_FORWARDED);
            return;
        }
        let other = self
            .g
            .location
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&target)
            .copied();
        match other {
            Some(t) if t != self.idx => {
                if let (Some(ch), Some(w)) = (self.g.chans.get(t), self.g.wakers.get(t)) {
                    if ch.send((target, self.buf.clone())).is_ok() {
                        let _ = w.wake();
                        self.count(R_CROSS);
                        return;
                    }
                }
                self.count(R_DROPPED);
            }
            _ => self.count(R_DROPPED),
        }
    }
}

impl Handler for Relay {
    fn frame(&mut self, net: &mut Net, tok: usize, h: &Header, body: &[u8]) {
        let logged_in = net.tag(tok).unwrap_or(0) != 0;
        match (h.module, h.command, logged_in) {
            (1, 1, false) => {
                let rsp = Pdu::MsgServResponse(MsgServResponse {
                    result: 0,
                    ok: Some(MsgServOk {
                        ip1: self.ip.as_bytes(),
                        ip2: self.ip.as_bytes(),
                        port: self.port,
                    }),
                });
                net.send(tok, &rsp, h.reserved);
                net.close_after_flush(tok);
            }
            (1, 3, false) => self.login(net, tok, h, body),
            (3, 1, true) => self.message(net, tok, h, body),
            (7, 1, _) => net.send(tok, &Pdu::Heartbeat, h.reserved),
            _ => {}
        }
    }

    fn closed(&mut self, _net: &mut Net, tok: usize, tag: u64, _why: &str) {
        let id = tag as u32;
        if id != 0 && self.local.get(&id) == Some(&tok) {
            self.local.remove(&id);
            let mut loc = self.g.location.write().unwrap_or_else(|e| e.into_inner());
            if loc.get(&id) == Some(&self.idx) {
                loc.remove(&id);
            }
        }
    }

    fn woken(&mut self, net: &mut Net) {
        while let Ok((target, bytes)) = self.rx.try_recv() {
            match self.local.get(&target) {
                Some(&t) => {
                    net.send_raw(t, &bytes);
                    self.count(R_FORWARDED);
                }
                None => self.count(R_DROPPED),
            }
        }
    }
}

fn listener(addr: SocketAddr) -> std::io::Result<mio::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.bind(&addr.into())?;
    s.listen(4096)?;
    s.set_nonblocking(true)?;
    let l: std::net::TcpListener = s.into();
    Ok(mio::net::TcpListener::from_std(l))
}

/// Runs the relay until SIGTERM/SIGINT or `limit`. One SO_REUSEPORT listener per thread.
pub fn run(addr: SocketAddr, threads: usize, limit: Duration) -> Result<bool, String> {
    let stop_signals =
        ttserver::signals::block_stop_signals().map_err(|e| format!("signals: {e}"))?;
    let first = listener(addr).map_err(|e| format!("listen {addr}: {e}"))?;
    let bound = first.local_addr().map_err(|e| e.to_string())?;
    let mut nets = Vec::new();
    let mut wakers = Vec::new();
    let mut chans = Vec::new();
    let mut rxs = Vec::new();
    let mut first = Some(first);
    for _ in 0..threads {
        let mut net = Net::new(Vec::new(), 0).map_err(|e| e.to_string())?;
        let l = match first.take() {
            Some(l) => l,
            None => listener(bound).map_err(|e| format!("listen {bound}: {e}"))?,
        };
        net.listen(l).map_err(|e| e.to_string())?;
        wakers.push(Waker::new(net.registry(), WAKER).map_err(|e| e.to_string())?);
        let (tx, rx) = crossbeam_channel::unbounded();
        chans.push(tx);
        rxs.push(rx);
        nets.push(net);
    }
    let g = Arc::new(Global {
        names: Mutex::new(HashMap::new()),
        location: RwLock::new(HashMap::new()),
        chans,
        wakers,
        count: Default::default(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let sig = stop_signals.wait();
            eprintln!("relay: signal {sig}, stopping");
            stop.store(true, Ordering::Relaxed);
        });
    }
    let deadline = Instant::now() + limit;
    let mut handles = Vec::new();
    for (idx, (mut net, rx)) in nets.into_iter().zip(rxs).enumerate() {
        let mut r = Relay {
            idx,
            g: g.clone(),
            rx,
            local: HashMap::new(),
            ip: bound.ip().to_string(),
            port: bound.port(),
            buf: Vec::new(),
        };
        let stop = stop.clone();
        handles.push(std::thread::spawn(move || -> Result<(), String> {
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                net.poll_once(&mut r, Duration::from_millis(100))
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        }));
    }
    println!("listening relay {bound}");
    println!("ready");
    let mut errors = Vec::new();
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push("relay thread panicked".into()),
        }
    }
    if Instant::now() >= deadline {
        eprintln!("relay: duration limit reached");
    }
    let c = |i: usize| g.count[i].load(Ordering::Relaxed);
    println!(
        "result scenario=relay threads={threads} logins={} forwarded={} cross_thread={} \
         dropped={} bad={}",
        c(R_LOGINS),
        c(R_FORWARDED),
        c(R_CROSS),
        c(R_DROPPED),
        c(R_BAD)
    );
    for e in &errors {
        eprintln!("relay: {e}");
    }
    Ok(errors.is_empty())
}
