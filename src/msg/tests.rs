//! Handler tests without sockets: a real store and storage threads, workers replaced by their
//! channels, so each test sees exactly the effects a worker would apply.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::directory::Directory;
use super::outlet::WorkerOutlet;
use super::presence::{Change, LEAVE, OFFLINE, ONLINE};
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

fn text<'a>(from: &'a [u8], to: &'a [u8], body: &'a [u8]) -> Pdu<'a> {
    Pdu::MsgData(crate::proto::MsgData {
        seq_no: 5,
        from_id: Id::Raw(from),
        to_id: Id::Raw(to),
        create_time: 0,
        msg_type: 1,
        msg_data: body,
        attach: b"",
    })
}

#[test]
fn only_login_is_processed_before_login() {
    // P-13, B-LOGIN-1
    let k = kit(&["alice"]);
    let mut mc = MsgConn::default();
    let step = k.step(&mut mc, conn(1), 3, Pdu::TimeRequest);
    assert!(matches!(step, Step::Now(ref e) if e.is_empty()));
    let step = k.step(&mut mc, conn(1), 3, Pdu::Heartbeat);
    assert!(matches!(step, Step::Now(ref e) if e.is_empty()));
    assert_eq!(k.count("ignored_before_login"), 2);
}

#[test]
fn wrong_password_refuses_closes_and_is_recorded() {
    // B-LOGIN-6, B-LOGIN-7
    let k = kit(&["alice"]);
    let mut mc = MsgConn::default();
    let md5 = password::md5_hex("nope");
    let step = k.step(
        &mut mc,
        conn(1),
        8,
        Pdu::LoginRequest(crate::proto::LoginRequest {
            user_name: b"alice",
            password: md5.as_bytes(),
            online_status: 1,
            client_type: 1,
            client_version: b"",
        }),
    );
    assert!(matches!(step, Step::Queued));
    // While verifying, further input waits (pipelined requests are not lost).
    assert!(matches!(
        k.step(&mut mc, conn(1), 9, Pdu::TimeRequest),
        Step::Wait
    ));
    let effects = k.complete(&mut mc, conn(1));
    assert_eq!(replies(&effects), vec![(1, 4, 8)]);
    assert!(matches!(effects.last(), Some(Effect::CloseAfterFlush)));
    assert_eq!(mc.phase, Phase::Ended);
    assert_eq!(k.count("login_failures"), 1);
    assert_eq!(k.st.presence.status(k.ids[0]), OFFLINE);
}

#[test]
fn responses_keep_request_order_behind_a_pending_write() {
    // B-GEN-1: 3/1 (write) then 3/5 (immediate) then 3/7 (read after write).
    let k = kit(&["alice", "bob"]);
    let c = conn(1);
    let mut mc = k.logged_in("alice", c, 1);
    let _bob = k.logged_in("bob", conn(2), 1);
    let (a, b) = (k.ids[0].to_string(), k.ids[1].to_string());
    assert!(matches!(
        k.step(&mut mc, c, 10, text(a.as_bytes(), b.as_bytes(), b"hi")),
        Step::Queued
    ));
    assert!(matches!(
        k.step(&mut mc, c, 11, Pdu::TimeRequest),
        Step::Queued
    ));
    assert!(matches!(
        k.step(&mut mc, c, 12, Pdu::UnreadCountRequest),
        Step::Wait
    ));
    let effects = k.complete(&mut mc, c);
    assert_eq!(replies(&effects), vec![(3, 2, 10), (3, 6, 11)]);
    // The delivery went straight to bob's session at commit; alice's own connection got none.
    let pushed: Vec<ConnId> = k
        .sent
        .borrow()
        .iter()
        .filter_map(|m| match m {
            WorkerMsg::Push { conn, bytes } => {
                assert_eq!(
                    crate::proto::frame::header(bytes).map(|h| (h.module, h.command)),
                    Some((3, 1))
                );
                Some(*conn)
            }
            _ => None,
        })
        .collect();
    assert_eq!(pushed, vec![conn(2)]);
    // Now the read goes through.
    assert!(matches!(
        k.step(&mut mc, c, 12, Pdu::UnreadCountRequest),
        Step::Queued
    ));
    assert_eq!(replies(&k.complete(&mut mc, c)), vec![(3, 8, 12)]);
}

#[test]
fn foreign_from_id_is_rejected_without_a_job() {
    // B-GEN-2
    let k = kit(&["alice", "bob"]);
    let c = conn(1);
    let mut mc = k.logged_in("alice", c, 1);
    let b = k.ids[1].to_string();
    let step = k.step(&mut mc, c, 1, text(b.as_bytes(), b.as_bytes(), b"spoof"));
    assert!(matches!(step, Step::Now(ref e) if e.is_empty()));
    assert_eq!(k.count("identity_rejects"), 1);
    assert_eq!(mc.pending_len(), 0);
}

#[test]
fn status_change_echoes_and_reports_the_change() {
    // B-PRES-4
    let k = kit(&["alice"]);
    let c = conn(1);
    let mut mc = k.logged_in("alice", c, 1);
    let step = k.step(
        &mut mc,
        c,
        33,
        Pdu::ServiceSetting(crate::proto::ServiceSetting {
            key: 2,
            value: LEAVE,
        }),
    );
    let Step::Now(effects) = step else { panic!() };
    assert_eq!(replies(&effects), vec![(2, 5, 33)]);
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Deliver { skip: Some(s), .. } if *s == c)));
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::StatusChanged(Change {
            old: ONLINE,
            new: LEAVE,
            ..
        })
    )));
    assert_eq!(k.st.presence.status(k.ids[0]), LEAVE);
}

#[test]
fn user_status_echoes_the_requested_id() {
    // B-PRES-6, P-21
    let k = kit(&["alice"]);
    let c = conn(1);
    let mut mc = k.logged_in("alice", c, 1);
    let step = k.step(
        &mut mc,
        c,
        4,
        Pdu::UserStatusRequest(crate::proto::UserStatusRequest {
            user_id: Id::Raw(b"007"),
        }),
    );
    let Step::Now(effects) = step else { panic!() };
    let Some(Effect::Reply(bytes)) = effects.first() else {
        panic!()
    };
    let h = crate::proto::frame::header(bytes).unwrap();
    let Some(Pdu::UserStatusResponse(r)) = Pdu::decode(
        crate::proto::Dir::ToClient,
        h.module,
        h.command,
        &bytes[12..],
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(r.user_id, Id::Raw(b"007"));
    assert_eq!(r.status, OFFLINE);
}

#[test]
fn login_token_is_registered_for_its_user() {
    // B-TOK-1, B-TOK-2
    let k = kit(&["alice", "bob"]);
    let c = conn(1);
    let mut mc = MsgConn::default();
    let md5 = password::md5_hex("pw");
    k.step(
        &mut mc,
        c,
        1,
        Pdu::LoginRequest(crate::proto::LoginRequest {
            user_name: b"alice",
            password: md5.as_bytes(),
            online_status: 1,
            client_type: 1,
            client_version: b"",
        }),
    );
    let effects = k.complete(&mut mc, c);
    let Some(Effect::Reply(bytes)) = effects.iter().find(|e| matches!(e, Effect::Reply(_))) else {
        panic!()
    };
    let Some(Pdu::LoginResponse(r)) =
        Pdu::decode(crate::proto::Dir::ToClient, 1, 4, &bytes[12..]).unwrap()
    else {
        panic!()
    };
    let token = r.ok.unwrap().token;
    assert_eq!(token.len(), 36);
    let now = Instant::now();
    let tokens = k.st.tokens.lock();
    assert!(tokens.is_valid(token, k.ids[0], now));
    assert!(!tokens.is_valid(token, k.ids[1], now));
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
fn group_message_from_a_non_member_is_rejected_without_a_job() {
    // B-GRP-7
    let k = kit(&["alice", "bob", "carol"]);
    let (a, c3) = (conn(1), conn(3));
    let mut ma = k.logged_in("alice", a, 1);
    let group = create_group(&k, &mut ma, a, &[k.ids[1]]);
    let gs = group.to_string();
    let mut mcarol = k.logged_in("carol", c3, 1);
    let carol = k.ids[2].to_string();
    let step = k.step(
        &mut mcarol,
        c3,
        1,
        group_text(carol.as_bytes(), gs.as_bytes(), b"hi"),
    );
    assert!(matches!(step, Step::Now(ref e) if e.is_empty()));
    assert_eq!(mcarol.pending_len(), 0);
    assert_eq!(k.count("msg_rejected"), 1);
    // An unknown group too.
    let step = k.step(
        &mut mcarol,
        c3,
        1,
        group_text(carol.as_bytes(), b"999", b"hi"),
    );
    assert!(matches!(step, Step::Now(ref e) if e.is_empty()));
    assert_eq!(k.count("msg_rejected"), 2);
    assert_eq!(k.count("msgs_group"), 0);
}

#[test]
fn group_message_is_acked_then_fanned_out_as_one_buffer() {
    // B-GRP-8, B-FLOW-4
    let k = kit(&["alice", "bob"]);
    let a = conn(1);
    let mut ma = k.logged_in("alice", a, 1);
    let group = create_group(&k, &mut ma, a, &[k.ids[1]]);
    let (me, gs) = (k.ids[0].to_string(), group.to_string());
    let step = k.step(
        &mut ma,
        a,
        7,
        group_text(me.as_bytes(), gs.as_bytes(), b"hello"),
    );
    assert!(matches!(step, Step::Queued));
    let effects = k.complete(&mut ma, a);
    assert_eq!(replies(&effects), vec![(3, 2, 7)]);
    let sent = k.sent.borrow();
    let fanouts: Vec<&WorkerMsg> = sent
        .iter()
        .filter(|m| matches!(m, WorkerMsg::Fanout { .. }))
        .collect();
    assert_eq!(fanouts.len(), 1, "one fan-out per worker (the kit has one)");
    let Some(WorkerMsg::Fanout {
        members,
        bytes,
        skip,
    }) = fanouts.first()
    else {
        panic!("no fan-out")
    };
    assert_eq!(&**members, &[k.ids[0], k.ids[1]]);
    assert_eq!(*skip, Some(a));
    let Pdu::MsgData(d) = decode_reply(bytes) else {
        panic!()
    };
    assert_eq!(d.to_id.value(), Some(group));
    assert_eq!(d.from_id.value(), Some(k.ids[0]));
    assert!(d.create_time > 0);
    assert_eq!(d.msg_data, b"hello");
    assert_eq!(k.count("msgs_group"), 1);
}

#[test]
fn create_temp_group_with_a_bad_member_fails_at_once() {
    // B-GRP-2, B-GRP-3
    let k = kit(&["alice"]);
    let a = conn(1);
    let mut ma = k.logged_in("alice", a, 1);
    for bad in [&b"007"[..], b"424242"] {
        let step = k.step(
            &mut ma,
            a,
            6,
            Pdu::CreateTempGroupRequest(crate::proto::CreateTempGroupRequest {
                group_name: b"team",
                group_avatar: b"",
                member_ids: vec![Id::Raw(bad)],
            }),
        );
        let Step::Now(effects) = step else {
            panic!("expected an immediate answer")
        };
        assert_eq!(replies(&effects), vec![(5, 13, 6)]);
        let Some(Effect::Reply(b)) = effects.first() else {
            panic!()
        };
        let Pdu::CreateTempGroupResponse(r) = decode_reply(b) else {
            panic!()
        };
        assert_eq!(r.result, 1);
        assert_eq!(r.group_id, Id::Raw(b"0"));
        assert_eq!(r.group_name, b"team");
        assert!(r.member_ids.is_empty());
        assert_eq!(ma.pending_len(), 0);
    }
}

#[test]
fn removed_member_can_no_longer_send() {
    // B-GRP-19: the cache is replaced after the commit of the removal.
    let k = kit(&["alice", "bob"]);
    let (a, b) = (conn(1), conn(2));
    let mut ma = k.logged_in("alice", a, 1);
    let group = create_group(&k, &mut ma, a, &[k.ids[1]]);
    let (bob, gs) = (k.ids[1].to_string(), group.to_string());
    let step = k.step(
        &mut ma,
        a,
        8,
        Pdu::ChangeMemberRequest(crate::proto::ChangeMemberRequest {
            group_id: Id::Raw(gs.as_bytes()),
            change_type: 1,
            user_ids: vec![Id::Raw(bob.as_bytes())],
        }),
    );
    assert!(matches!(step, Step::Queued));
    let effects = k.complete(&mut ma, a);
    assert_eq!(replies(&effects), vec![(5, 15, 8)]);
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::DeliverMembers { members, .. } if **members == [k.ids[0], k.ids[1]]
    )));
    let mut mb = k.logged_in("bob", b, 1);
    let step = k.step(
        &mut mb,
        b,
        1,
        group_text(bob.as_bytes(), gs.as_bytes(), b"x"),
    );
    assert!(matches!(step, Step::Now(ref e) if e.is_empty()));
    assert_eq!(k.count("msg_rejected"), 1);
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

#[test]
fn split_lists_fill_frames_exactly_to_max_out_pdu_size() {
    use crate::proto::buddy::{UserStatus, UsersStatusResponse};
    let mut k = kit(&["a"]);
    let split = |st: &State, items: &[UserStatus<'_>]| {
        encode_split(st, items, 5, |p| {
            Pdu::UsersStatusResponse(UsersStatusResponse { users: p.to_vec() })
        })
    };
    let one = |items: &[UserStatus<'_>]| {
        Pdu::UsersStatusResponse(UsersStatusResponse {
            users: items.to_vec(),
        })
        .to_frame(5)
    };
    // One entry = idstr "7" (5 bytes) + status (4) = 9 bytes; a frame = 16 + 9 n bytes.
    let entry = UserStatus {
        user_id: Id::Raw(b"7"),
        status: 1,
    };
    let max = 16 + 9 * 3;
    Arc::get_mut(&mut k.st).unwrap().cfg.msg.max_out_pdu_size = max as u32;
    let frames = split(&k.st, &vec![entry.clone(); 7]);
    let sizes: Vec<usize> = frames.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![max, max, 16 + 9]);
    // An empty list is still one (empty) frame.
    assert_eq!(split(&k.st, &[]), vec![one(&[])]);
    // An entry too large for any frame is left out; the frames close around it, in order.
    let long_id = [b'9'; 64];
    let huge = UserStatus {
        user_id: Id::Raw(&long_id),
        status: 1,
    };
    let frames = split(&k.st, &[entry.clone(), huge, entry.clone()]);
    assert_eq!(frames, vec![one(std::slice::from_ref(&entry)); 2]);
}

#[test]
fn delivery_is_encoded_with_the_stored_time() {
    // protocol.md §10 `msg_data_s2c`: the 3/1 of `msg_data_c2s` as delivered.
    let c2s = crate::proto::testutil::hex(
        "00 00 00 31 00 03 00 01 00 01 00 07 | 00 00 00 07 | 00 00 00 05 31 30 30 33 35
         | 00 00 00 05 31 30 30 33 36 | 00 00 00 00 | 01 | 00 00 00 02 68 69 | 00 00 00 00",
    );
    let s2c = crate::proto::testutil::hex(
        "00 00 00 31 00 03 00 01 00 01 00 00 | 00 00 00 07 | 00 00 00 05 31 30 30 33 35
         | 00 00 00 05 31 30 30 33 36 | 65 53 F1 00 | 01 | 00 00 00 02 68 69 | 00 00 00 00",
    );
    let Some(Pdu::MsgData(m)) = Pdu::decode(crate::proto::Dir::ToServer, 3, 1, &c2s[12..]).unwrap()
    else {
        panic!()
    };
    let d = chat::Delivery::of(&m, 10035, 10036, m.msg_data.into());
    assert_eq!(&d.encode(1_700_000_000)[..], &s2c[..]);
}
