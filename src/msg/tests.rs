//! Handler tests that need the real store: storage threads over a temporary database, workers
//! replaced by their channels, so each test sees exactly the effects a worker would apply.
//! Everything that only needs effects is in `handler_tests` (no threads, no database).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::directory::Directory;
use super::outlet::WorkerOutlet;
use super::*;
use crate::auth::{password, HashCost};
use crate::config::Config;
use crate::msg::service::WorkerMsg;
use crate::net::{WorkerHandle, Workers};
use crate::proto::frame::Header;
use crate::proto::{Id, Pdu};
use crate::store::{self, readers::Readers, users, writer};

static NEXT: AtomicUsize = AtomicUsize::new(0);

struct Kit {
    st: Arc<State>,
    rx: Receiver<WorkerMsg>,
    _poll: mio::Poll,
    /// Worker messages other than completions (pushes, fan-outs), in arrival order.
    sent: std::cell::RefCell<Vec<WorkerMsg>>,
    ids: Vec<u32>,
    dir: std::path::PathBuf,
}

impl Drop for Kit {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn kit(names: &[&str]) -> Kit {
    let dir = std::env::temp_dir().join(format!(
        "ttserver-msg-unit-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = Config::default();
    cfg.store.data_dir = dir.clone();
    cfg.auth.password_hash_cost = HashCost::Low;
    let db = store::open(&cfg.db_path(), cfg.store.db_sync).unwrap();
    let ids = names
        .iter()
        .map(|n| {
            let hash = password::hash(password::md5_hex("pw").as_bytes(), HashCost::Low).unwrap();
            users::insert(
                &db,
                &users::NewUser {
                    name: n.to_string(),
                    password_hash: hash,
                    nick: n.to_uppercase(),
                    ..Default::default()
                },
            )
            .unwrap()
        })
        .collect();
    let directory = Directory::new(users::all(&db).unwrap(), Vec::new());
    let readers =
        Readers::spawn(&cfg.db_path(), cfg.store.db_sync, 1, 64, Default::default()).unwrap();
    let (wtx, wrx) = crossbeam_channel::bounded(64);
    let poll = mio::Poll::new().unwrap();
    let waker = mio::Waker::new(poll.registry(), mio::Token(0)).unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    let workers = Workers::new(vec![WorkerHandle {
        tx,
        waker: Arc::new(waker),
    }]);
    let group_cache = Arc::new(super::group_cache::GroupCache::new(
        store::groups::all_live(&db).unwrap(),
    ));
    let st = Arc::new(State::new(
        cfg,
        directory,
        Arc::clone(&group_cache),
        super::state::Pools {
            writer: wtx,
            readers,
            hashers: crate::auth::hashers::Hashers::spawn(1, 64).unwrap(),
            room: Default::default(),
        },
        "127.0.0.1:8000".parse().unwrap(),
    ));
    let _ = st.workers.set(workers.clone());
    writer::spawn_writer(
        db,
        wrx,
        WorkerOutlet::new(
            workers,
            Arc::clone(&st.counters),
            group_cache,
            Arc::clone(&st.presence),
        ),
        16,
        Default::default(),
    )
    .unwrap();
    Kit {
        st,
        rx,
        _poll: poll,
        sent: Default::default(),
        ids,
        dir,
    }
}

fn conn(slot: u32) -> ConnId {
    ConnId {
        worker: 0,
        slot,
        generation: 1,
    }
}

fn peer() -> SocketAddr {
    "127.0.0.1:5000".parse().unwrap()
}

impl Kit {
    fn step(&self, mc: &mut MsgConn, c: ConnId, reserved: u16, pdu: Pdu<'_>) -> Step {
        let cx = Ctx {
            st: &self.st,
            jobs: &*self.st,
            conn: c,
            peer: peer(),
            reserved,
            now: Instant::now(),
        };
        let (module, command) = pdu.module_command();
        let h = Header {
            length: pdu.to_frame(0).len() as u32,
            module,
            command,
            version: 1,
            reserved,
        };
        on_pdu(&cx, mc, &h, pdu, &mut || Ok(()))
    }

    /// Waits for the next storage completion for `c` and applies it to `mc`; returns the
    /// effects now ready, with FinishLogin resolved the way the worker does it.
    fn complete(&self, mc: &mut MsgConn, c: ConnId) -> Vec<Effect> {
        // Pushes and fan-outs the outlet sends straight to workers come first; keep them.
        let (conn, seq, done) = loop {
            match self.rx.recv_timeout(Duration::from_secs(10)).unwrap() {
                WorkerMsg::Done { conn, seq, done } => break (conn, seq, done),
                other => self.sent.borrow_mut().push(other),
            }
        };
        assert_eq!(conn, c);
        assert!(mc.complete(seq, done));
        let mut out = Vec::new();
        for e in mc.take_ready() {
            match e {
                Effect::FinishLogin(v) => {
                    out.extend(login::finish(&self.st, c, mc, *v, Instant::now()))
                }
                other => out.push(other),
            }
        }
        out
    }

    fn logged_in(&self, name: &str, c: ConnId, client_type: u32) -> MsgConn {
        let mut mc = MsgConn::default();
        let md5 = password::md5_hex("pw");
        let step = self.step(
            &mut mc,
            c,
            1,
            Pdu::LoginRequest(crate::proto::LoginRequest {
                user_name: name.as_bytes(),
                password: md5.as_bytes(),
                online_status: 1,
                client_type,
                client_version: b"unit",
            }),
        );
        assert!(matches!(step, Step::Queued));
        let effects = self.complete(&mut mc, c);
        assert!(effects.iter().any(|e| matches!(e, Effect::Reply(_))));
        assert_eq!(mc.phase, Phase::LoggedIn);
        mc
    }

    fn count(&self, name: &str) -> u64 {
        self.st
            .counters
            .snapshot()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .unwrap()
    }
}

fn replies(effects: &[Effect]) -> Vec<(u16, u16, u16)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Reply(v) => {
                let h = crate::proto::frame::header(v).unwrap();
                Some((h.module, h.command, h.reserved))
            }
            _ => None,
        })
        .collect()
}

fn decode_reply(bytes: &[u8]) -> Pdu<'_> {
    let h = crate::proto::frame::header(bytes).unwrap();
    Pdu::decode(
        crate::proto::Dir::ToClient,
        h.module,
        h.command,
        &bytes[12..],
    )
    .unwrap()
    .unwrap()
}

fn group_text<'a>(from: &'a [u8], group: &'a [u8], body: &'a [u8]) -> Pdu<'a> {
    Pdu::MsgData(crate::proto::MsgData {
        seq_no: 9,
        from_id: Id::Raw(from),
        to_id: Id::Raw(group),
        create_time: 0,
        msg_type: 0x11,
        msg_data: body,
        attach: b"",
    })
}

/// alice (conn 1) creates a temporary group with bob; returns the group id.
fn create_group(k: &Kit, mc: &mut MsgConn, c: ConnId, members: &[u32]) -> u32 {
    let ids: Vec<String> = members.iter().map(u32::to_string).collect();
    let step = k.step(
        mc,
        c,
        21,
        Pdu::CreateTempGroupRequest(crate::proto::CreateTempGroupRequest {
            group_name: b"team",
            group_avatar: b"",
            member_ids: ids.iter().map(|s| Id::Raw(s.as_bytes())).collect(),
        }),
    );
    assert!(matches!(step, Step::Queued));
    let effects = k.complete(mc, c);
    assert_eq!(replies(&effects), vec![(5, 13, 21)]);
    let Some(Effect::Reply(b)) = effects.first() else {
        panic!()
    };
    let Pdu::CreateTempGroupResponse(r) = decode_reply(b) else {
        panic!()
    };
    assert_eq!(r.result, 0);
    // The push copy goes to every member's sessions but this connection.
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::DeliverMembers { skip: Some(s), .. } if *s == c
    )));
    r.group_id.value().unwrap()
}

#[test]
fn message_sent_right_after_leaving_is_refused_at_commit() {
    // B-GRP-19: the 3/1 passed the cache check while the leave was still queued; the writer
    // refuses it, counted as a rejected message, and no ack is sent.
    let k = kit(&["alice", "bob"]);
    let (a, b) = (conn(1), conn(2));
    let mut ma = k.logged_in("alice", a, 1);
    let group = create_group(&k, &mut ma, a, &[k.ids[1]]);
    let (bob, gs) = (k.ids[1].to_string(), group.to_string());
    let mut mb = k.logged_in("bob", b, 1);
    let leave = Pdu::ChangeMemberRequest(crate::proto::ChangeMemberRequest {
        group_id: Id::Raw(gs.as_bytes()),
        change_type: 1,
        user_ids: vec![Id::Raw(bob.as_bytes())],
    });
    assert!(matches!(k.step(&mut mb, b, 3, leave), Step::Queued));
    let msg = group_text(bob.as_bytes(), gs.as_bytes(), b"late");
    assert!(matches!(k.step(&mut mb, b, 4, msg), Step::Queued));
    let mut effects = k.complete(&mut mb, b);
    effects.extend(k.complete(&mut mb, b));
    assert_eq!(replies(&effects), vec![(5, 15, 3)]);
    assert_eq!(k.count("msg_rejected"), 1);
    assert_eq!(k.count("store_failures"), 0);
    assert_eq!(k.count("msgs_group"), 0);
}
