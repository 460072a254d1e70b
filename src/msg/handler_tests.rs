//! The msg service without threads, SQLite or sockets: a [`MsgService`] over a [`State`] with
//! no pools, whose handlers hand their storage and hashing jobs to a [`Recorder`]. A test
//! connects, feeds PDUs as frames and reads the outbox; it plays the other threads itself:
//!
//! - a recorded hash job is run here (argon2 at `HashCost::Low`); its `Done` comes back through
//!   worker 0's channel and is fed to `on_message`, as the loop would;
//! - a recorded write is answered through the real [`WorkerOutlet`] with the `WriteOut` the
//!   writer returns for its `WriteOp` (or an error), so deliveries, fan-outs and cache updates
//!   go the way they go after a commit;
//! - a recorded read cannot run (its closure needs a database): the test answers its slot with
//!   the effects the closure would produce. The reads' SQL is covered by the store tests and
//!   the socket tests (tests/), and the replies' encoding by the handlers' callers there.
//!
//! Two worker channels exist: 0 is this service's, 1 stands for another loop (sessions there
//! are registered in the presence directory by hand).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver};
use parking_lot::Mutex;

use super::outlet::{WorkerOutlet, WriteTag};
use super::presence::{Class, SessionRef, LEAVE, OFFLINE, ONLINE};
use super::service::{MsgPeer, MsgService, WorkerMsg, LOGIN_LISTENER, MSG_LISTENER};
use super::state::{Pools, State};
use super::{encode_split, Effect, Jobs, Phase, Refused};
use crate::auth::hashers::{HashJob, Hashers};
use crate::auth::{password, HashCost};
use crate::config::Config;
use crate::net::service::{Action, Bytes, Close, Conns, Framing, Outbox, Service, Verdict};
use crate::net::{ConnId, WorkerHandle, Workers};
use crate::proto::frame::Header;
use crate::proto::{self as p, Dir, Id, Pdu};
use crate::store::departs::Depart;
use crate::store::groups::{Group, NORMAL, TEMP};
use crate::store::readers::{ReadJob, Readers};
use crate::store::users::User;
use crate::store::writer::{Outlet, WriteJob, WriteOp, WriteOut};
use crate::store::{Family, StoreError};

const ALICE: u32 = 1;
const BOB: u32 = 2;
const CAROL: u32 = 3;
/// Disabled.
const DAVE: u32 = 4;
/// A normal group of alice and bob.
const GROUP: u32 = 7;
/// A temporary group of alice and bob, created by alice.
const TEMP_GROUP: u32 = 8;
const PC: u32 = 0x01;
const MOBILE: u32 = 0x11;
/// The `create_time` the fake writer gives every stored message.
const STORED_AT: u32 = 1_700_000_000;

// ---------------------------------------------------------------- the recorder

/// Records the jobs the handlers hand over; refuses them when told to.
#[derive(Default)]
struct Recorder {
    writes: Mutex<VecDeque<WriteJob<WriteTag>>>,
    reads: Mutex<VecDeque<ReadJob>>,
    hashes: Mutex<VecDeque<HashJob>>,
    /// Presence notices (the watchers' 2/5), by user.
    keyed: Mutex<VecDeque<(u32, ReadJob)>>,
    refuse_write: Mutex<Option<Refused>>,
    refuse_read: Mutex<bool>,
    refuse_hash: Mutex<bool>,
}

impl Jobs for Recorder {
    fn write(&self, job: WriteJob<WriteTag>) -> Result<(), Refused> {
        if let Some(r) = *self.refuse_write.lock() {
            return Err(r);
        }
        self.writes.lock().push_back(job);
        Ok(())
    }

    fn read(&self, job: ReadJob) -> Result<(), ReadJob> {
        if *self.refuse_read.lock() {
            return Err(job);
        }
        self.reads.lock().push_back(job);
        Ok(())
    }

    fn hash(&self, job: HashJob) -> Result<(), HashJob> {
        if *self.refuse_hash.lock() {
            return Err(job);
        }
        self.hashes.lock().push_back(job);
        Ok(())
    }

    /// Presence notices: kept apart from the reads a test answers (`keyed`).
    fn read_keyed(&self, key: u32, job: ReadJob) -> Result<(), ReadJob> {
        if *self.refuse_read.lock() {
            return Err(job);
        }
        self.keyed.lock().push_back((key, job));
        Ok(())
    }

    fn storage_full(&self) -> bool {
        self.refuse_write.lock().is_some() || *self.refuse_read.lock()
    }
}

// ---------------------------------------------------------------- the harness

/// The loop's connection table, as the service sees it.
#[derive(Default)]
struct Peers(HashMap<ConnId, MsgPeer>);

impl Conns<MsgPeer> for Peers {
    fn get_mut(&mut self, id: ConnId) -> Option<&mut MsgPeer> {
        self.0.get_mut(&id)
    }
}

struct H {
    st: Arc<State>,
    svc: MsgService,
    jobs: Arc<Recorder>,
    conns: Peers,
    /// Worker 0's channel (this service's) and worker 1's (another loop).
    rx: Receiver<WorkerMsg>,
    rx1: Receiver<WorkerMsg>,
    outlet: WorkerOutlet,
    next_slot: u32,
    /// Only a waker for the channels above: nothing polls it.
    _poll: mio::Poll,
}

/// What one step of the service put in its outbox, and the verdict on a fed frame.
struct Out {
    verdict: Option<Verdict>,
    actions: Vec<Action<WorkerMsg>>,
}

fn pw_hash() -> String {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| password::hash(password::md5_hex("pw").as_bytes(), HashCost::Low).unwrap())
        .clone()
}

fn user(id: u32, name: &str) -> User {
    User {
        id,
        name: name.into(),
        password_hash: pw_hash(),
        nick: name.to_uppercase(),
        avatar: String::new(),
        title: String::new(),
        position: String::new(),
        sex: 0,
        role_status: 0,
        depart_id: 1,
        job_num: 0,
        telephone: String::new(),
        email: String::new(),
        disabled: id == DAVE,
    }
}

fn group(id: u32, group_type: u32, members: Vec<u32>) -> Group {
    Group {
        id,
        group_type,
        name: b"g".to_vec(),
        avatar: Vec::new(),
        creator: if group_type == TEMP { ALICE } else { 0 },
        created: 0,
        updated: 0,
        last_msg_id: 0,
        deleted: false,
        members,
    }
}

fn depart(id: u32, title: &str, disabled: bool) -> Depart {
    Depart {
        id,
        title: title.into(),
        description: String::new(),
        parent_id: 0,
        leader_id: 0,
        disabled,
    }
}

fn peer_addr() -> SocketAddr {
    "127.0.0.1:5000".parse().unwrap()
}

/// A session of another loop (worker 1).
fn remote(slot: u32) -> ConnId {
    ConnId {
        worker: 1,
        slot,
        generation: 1,
    }
}

impl H {
    fn new() -> H {
        H::with(|_| {})
    }

    /// A harness whose config `tune` adjusted first.
    fn with(tune: impl FnOnce(&mut Config)) -> H {
        let mut cfg = Config::default();
        cfg.auth.password_hash_cost = HashCost::Low;
        tune(&mut cfg);
        let users = vec![
            user(ALICE, "alice"),
            user(BOB, "bob"),
            user(CAROL, "carol"),
            user(DAVE, "dave"),
        ];
        let departs = vec![depart(2, "old", true), depart(1, "dev", false)];
        let groups = Arc::new(super::group_cache::GroupCache::new(vec![
            group(GROUP, NORMAL, vec![ALICE, BOB]),
            group(TEMP_GROUP, TEMP, vec![ALICE, BOB]),
        ]));
        // The writer's queue: jobs go to the recorder, so this one only answers `is_full`.
        let (writer, _) = crossbeam_channel::bounded(64);
        let st = Arc::new(State::new(
            cfg,
            super::directory::Directory::new(users, departs),
            Arc::clone(&groups),
            Pools {
                writer,
                readers: Readers::none(),
                hashers: Hashers::none(),
                room: Default::default(),
            },
            "127.0.0.1:8000".parse().unwrap(),
        ));
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let (tx, rx) = unbounded();
        let (tx1, rx1) = unbounded();
        let workers = Workers::new(vec![
            WorkerHandle {
                tx,
                waker: Arc::clone(&waker),
            },
            WorkerHandle { tx: tx1, waker },
        ]);
        let _ = st.workers.set(workers.clone());
        let outlet = WorkerOutlet::new(
            workers,
            Arc::clone(&st.counters),
            groups,
            Arc::clone(&st.presence),
        );
        let jobs = Arc::new(Recorder::default());
        let svc = MsgService::with_jobs(0, Arc::clone(&st), Arc::clone(&jobs) as Arc<dyn Jobs>);
        H {
            st,
            svc,
            jobs,
            conns: Peers::default(),
            rx,
            rx1,
            outlet,
            next_slot: 1,
            _poll: poll,
        }
    }

    /// A new connection on `listener`; its id is `c<n>` in summaries, n = 1, 2, ...
    fn accept(&mut self, listener: usize) -> (ConnId, Out) {
        let id = ConnId {
            worker: 0,
            slot: self.next_slot,
            generation: 1,
        };
        self.next_slot += 1;
        let mut out = Outbox::default();
        let peer = self.svc.accept(&mut out, id, listener, peer_addr());
        if let Some(peer) = peer {
            self.conns.0.insert(id, peer);
        }
        (id, Out::of(None, out))
    }

    /// A msg-port connection (its login deadline set).
    fn connect(&mut self) -> ConnId {
        let (id, out) = self.accept(MSG_LISTENER);
        assert_eq!(out.summary(), [format!("deadline {}", cn(id))]);
        id
    }

    /// Connects and logs `name` in with the right password; the outbox of the login is
    /// checked and dropped.
    fn login(&mut self, name: &str, client_type: u32) -> ConnId {
        let c = self.connect();
        let out = self.feed(c, 1, login_req(name, "pw", client_type));
        assert!(out.consumed_silently());
        let out = self.run_hash();
        assert!(out.summary().contains(&format!("answer {} 1/4 r1", cn(c))));
        assert_eq!(self.phase(c), Phase::LoggedIn);
        c
    }

    /// The frame of `pdu` through `frame` and `on_frame`, as the loop presents it.
    fn feed(&mut self, c: ConnId, reserved: u16, pdu: Pdu<'_>) -> Out {
        self.feed_bytes(c, &pdu.to_frame(reserved))
    }

    /// Raw bytes holding exactly one frame (or a header the framer refuses).
    fn feed_bytes(&mut self, c: ConnId, bytes: &[u8]) -> Out {
        let mut out = Outbox::default();
        let peer = self.conns.0.get_mut(&c).expect("an open connection");
        let verdict = match self.svc.frame(&mut out, c, peer, bytes) {
            Framing::Complete(n) => {
                assert_eq!(n, bytes.len(), "one whole frame");
                Some(self.svc.on_frame(&mut out, c, peer, bytes))
            }
            Framing::Invalid(why) => {
                self.svc.on_bad_input(&mut out, c, peer, &why);
                None
            }
            Framing::Partial => panic!("not a whole frame"),
        };
        Out::of(verdict, out)
    }

    fn framing(&mut self, c: ConnId, bytes: &[u8]) -> Framing {
        let peer = self.conns.0.get_mut(&c).expect("an open connection");
        self.svc.frame(&mut Outbox::default(), c, peer, bytes)
    }

    /// Feeds one message to the service, as if it came through its channel.
    fn message(&mut self, msg: WorkerMsg) -> Out {
        let mut out = Outbox::default();
        self.svc.on_message(&mut out, &mut self.conns, msg);
        Out::of(None, out)
    }

    /// Feeds everything waiting in worker 0's channel.
    fn drain(&mut self) -> Out {
        let mut out = Outbox::default();
        while let Ok(msg) = self.rx.try_recv() {
            self.svc.on_message(&mut out, &mut self.conns, msg);
        }
        Out::of(None, out)
    }

    /// What waits in worker 1's channel, summarised.
    fn remote_msgs(&self) -> Vec<String> {
        self.rx1.try_iter().map(|m| msg_summary(&m)).collect()
    }

    /// Runs the oldest recorded password check, then feeds its reply.
    fn run_hash(&mut self) -> Out {
        let job = self.jobs.hashes.lock().pop_front().expect("a hash job");
        job();
        self.drain()
    }

    /// The oldest recorded write.
    fn take_write(&self) -> WriteJob<WriteTag> {
        self.jobs.writes.lock().pop_front().expect("a write job")
    }

    /// Answers a write as the writer does after its batch committed (or failed).
    fn commit(&mut self, tag: WriteTag, result: Result<WriteOut, StoreError>) -> Out {
        self.outlet.reply(tag, result);
        self.outlet.flush();
        self.drain()
    }

    /// Takes the oldest recorded write and commits it with `result`.
    fn commit_next(&mut self, result: WriteOut) -> Out {
        let job = self.take_write();
        self.commit(job.tag, Ok(result))
    }

    /// Answers the oldest unanswered read of `c` with `effects`: what its closure would send.
    /// (The closure is dropped: it needs a database. See the module doc.)
    fn answer_read(&mut self, c: ConnId, effects: Vec<Effect>) -> Out {
        self.answer_nth_read(c, 0, effects)
    }

    /// Answers the `nth` unanswered read of `c` (0 = the oldest).
    fn answer_nth_read(&mut self, c: ConnId, nth: usize, effects: Vec<Effect>) -> Out {
        // The recorded closures cannot be told apart (nor run): one of them is done.
        assert!(self.jobs.reads.lock().pop_front().is_some(), "no read job");
        let m = self.conns.0.get(&c).and_then(|p| p.msg.as_deref());
        let reads = m.into_iter().flat_map(|m| m.pending.iter());
        let slot = reads.filter(|s| !s.write && s.done.is_none()).nth(nth);
        let seq = slot.expect("an unanswered read").seq;
        self.message(WorkerMsg::Done {
            conn: c,
            seq,
            done: effects,
        })
    }

    fn close(&mut self, c: ConnId) -> Out {
        let peer = self.conns.0.remove(&c).expect("an open connection");
        let mut out = Outbox::default();
        self.svc.on_closed(&mut out, c, peer, "test");
        Out::of(None, out)
    }

    fn tick(&mut self) -> Out {
        let mut out = Outbox::default();
        self.svc.on_tick(&mut out, Instant::now());
        Out::of(None, out)
    }

    fn timeout(&mut self, c: ConnId) -> Out {
        let mut out = Outbox::default();
        let peer = self.conns.0.get_mut(&c).expect("an open connection");
        self.svc.on_timeout(&mut out, c, peer);
        Out::of(None, out)
    }

    /// A mobile session of `user` on another loop (it replaces none of this loop's PC ones).
    fn remote_session(&self, user: u32, slot: u32) -> ConnId {
        let conn = remote(slot);
        self.st.presence.login(
            user,
            SessionRef {
                conn,
                class: Class::Mobile,
                status: ONLINE,
            },
        );
        conn
    }

    fn phase(&self, c: ConnId) -> Phase {
        let m = self.conns.0.get(&c).and_then(|p| p.msg.as_deref());
        m.expect("a msg-port connection").phase.clone()
    }

    fn pending(&self, c: ConnId) -> usize {
        let m = self.conns.0.get(&c).and_then(|p| p.msg.as_deref());
        m.map_or(0, super::MsgConn::pending_len)
    }

    fn reads(&self) -> usize {
        self.jobs.reads.lock().len()
    }

    fn writes(&self) -> usize {
        self.jobs.writes.lock().len()
    }

    fn count(&self, name: &str) -> u64 {
        let all = self.st.counters.snapshot();
        all.into_iter().find(|(n, _)| *n == name).unwrap().1
    }
}

// ---------------------------------------------------------------- reading the outbox

/// `c<slot>` for this loop's connections, `w<worker>c<slot>` for others'.
fn cn(c: ConnId) -> String {
    if c.worker == 0 {
        format!("c{}", c.slot)
    } else {
        format!("w{}c{}", c.worker, c.slot)
    }
}

fn bytes_of(b: &Bytes) -> &[u8] {
    match b {
        Bytes::Owned(v) => v,
        Bytes::Shared(s) => s,
        Bytes::Mapped(..) => panic!("the msg service maps no file"),
    }
}

/// `m/c r<reserved>` of a frame, `empty` for no bytes (the loop queues nothing then).
fn frame_summary(b: &[u8]) -> String {
    match p::frame::header(b) {
        Some(h) => format!("{}/{} r{}", h.module, h.command, h.reserved),
        None if b.is_empty() => "empty".into(),
        None => format!("{} bytes", b.len()),
    }
}

fn msg_summary(m: &WorkerMsg) -> String {
    match m {
        WorkerMsg::Push { conn, bytes } => format!("push {} {}", cn(*conn), frame_summary(bytes)),
        WorkerMsg::Kick { conn, bytes } => format!("kick {} {}", cn(*conn), frame_summary(bytes)),
        WorkerMsg::Fanout { members, skip, .. } => {
            format!("fanout {members:?} skip {:?}", skip.map(cn))
        }
        WorkerMsg::Done { conn, .. } => format!("done {}", cn(*conn)),
        WorkerMsg::Close { conn } => format!("close {}", cn(*conn)),
        WorkerMsg::StopReading { .. } => "stop-reading".into(),
        WorkerMsg::WriterDrained { .. } => "writer-drained".into(),
        WorkerMsg::Shutdown => "shutdown".into(),
    }
}

fn decode(b: &[u8]) -> (Header, Pdu<'_>) {
    let (h, pdu, n) = p::frame::parse(b, Dir::ToClient, u32::MAX)
        .unwrap()
        .expect("a whole frame");
    assert_eq!(n, b.len());
    (h, pdu.expect("a known server PDU"))
}

impl Out {
    fn of(verdict: Option<Verdict>, mut out: Outbox<WorkerMsg>) -> Out {
        Out {
            verdict,
            actions: out.take(),
        }
    }

    /// One line per action: `answer c1 3/2 r10`, `send c2 3/1 r0`, `post w1 push w1c5 4/1 r0`,
    /// `close c1` (after flush), `close-now c1`, `hold c1`, `resume c1`, `resume-at c1`,
    /// `stop-input c1`, `deadline c1`, `idle c1` ...
    fn summary(&self) -> Vec<String> {
        self.actions
            .iter()
            .map(|a| match a {
                Action::Answer(c, b) => format!("answer {} {}", cn(*c), frame_summary(bytes_of(b))),
                Action::Send(c, b) => format!("send {} {}", cn(*c), frame_summary(bytes_of(b))),
                Action::Close(c, Close::Now(_)) => format!("close-now {}", cn(*c)),
                Action::Close(c, Close::AfterFlush(_)) => format!("close {}", cn(*c)),
                Action::Close(c, Close::Linger(_)) => format!("linger {}", cn(*c)),
                Action::Deadline(c, Some(_)) => format!("deadline {}", cn(*c)),
                Action::Deadline(c, None) => format!("no-deadline {}", cn(*c)),
                Action::IdleTimeout(c, Some(_)) => format!("idle {}", cn(*c)),
                Action::IdleTimeout(c, None) => format!("no-idle {}", cn(*c)),
                Action::IdleTimeoutRw(c, _) => format!("idle-rw {}", cn(*c)),
                Action::NotifyFlushed(c) => format!("notify-flushed {}", cn(*c)),
                Action::Hold(c) => format!("hold {}", cn(*c)),
                Action::Resume(c) => format!("resume {}", cn(*c)),
                Action::ResumeAt(c, _) => format!("resume-at {}", cn(*c)),
                Action::StopInput(c) => format!("stop-input {}", cn(*c)),
                Action::Post(w, m) => format!("post w{w} {}", msg_summary(m)),
                Action::StopReading => "stop-reading".into(),
                Action::Exit { .. } => "exit".into(),
            })
            .collect()
    }

    /// Handled, and nothing to do (yet): the request was dropped or went to a job.
    fn consumed_silently(&self) -> bool {
        self.verdict == Some(Verdict::Consumed) && self.actions.is_empty()
    }

    fn held(&self) -> bool {
        self.verdict == Some(Verdict::Hold)
    }

    /// The PDUs of the non-empty `Answer`s and `Send`s, in order.
    fn pdus(&self) -> Vec<Pdu<'_>> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::Answer(_, b) | Action::Send(_, b) => Some(bytes_of(b)),
                _ => None,
            })
            .filter(|b| !b.is_empty())
            .map(|b| decode(b).1)
            .collect()
    }

    fn pdu(&self, i: usize) -> Pdu<'_> {
        self.pdus().swap_remove(i)
    }

    /// The messages posted to other loops' channels (or this one's).
    fn posts(self) -> Vec<(u16, WorkerMsg)> {
        self.actions
            .into_iter()
            .filter_map(|a| match a {
                Action::Post(w, m) => Some((w, m)),
                _ => None,
            })
            .collect()
    }
}

// ---------------------------------------------------------------- requests

fn login_req<'a>(name: &'a str, pw: &str, client_type: u32) -> Pdu<'a> {
    // The md5hex string lives as long as the test: leaked, it is a few bytes.
    let md5: &'static str = Box::leak(password::md5_hex(pw).into_boxed_str());
    Pdu::LoginRequest(p::LoginRequest {
        user_name: name.as_bytes(),
        password: md5.as_bytes(),
        online_status: ONLINE,
        client_type,
        client_version: b"unit",
    })
}

fn id(s: &str) -> Id<'_> {
    Id::Raw(s.as_bytes())
}

fn text<'a>(from: &'a str, to: &'a str, body: &'a [u8]) -> Pdu<'a> {
    Pdu::MsgData(p::MsgData {
        seq_no: 5,
        from_id: id(from),
        to_id: id(to),
        create_time: 0,
        msg_type: super::chat::P2P_TEXT,
        msg_data: body,
        attach: b"",
    })
}

fn group_text<'a>(from: &'a str, group: &'a str, body: &'a [u8]) -> Pdu<'a> {
    Pdu::MsgData(p::MsgData {
        msg_type: super::chat::GROUP_TEXT,
        ..match text(from, group, body) {
            Pdu::MsgData(m) => m,
            _ => unreachable!(),
        }
    })
}

fn change_members<'a>(group: &'a str, change_type: u32, users: &[&'a str]) -> Pdu<'a> {
    Pdu::ChangeMemberRequest(p::ChangeMemberRequest {
        group_id: id(group),
        change_type,
        user_ids: users.iter().map(|u| id(u)).collect(),
    })
}

fn create_group<'a>(members: &[&'a str]) -> Pdu<'a> {
    Pdu::CreateTempGroupRequest(p::CreateTempGroupRequest {
        group_name: b"team",
        group_avatar: b"",
        member_ids: members.iter().map(|u| id(u)).collect(),
    })
}

fn file_req<'a>(from: &'a str, to: &'a str, size: u32) -> Pdu<'a> {
    Pdu::FileRequest(p::FileRequest {
        from_id: id(from),
        to_id: id(to),
        file_name: b"a.txt",
        file_size: size,
        trans_mode: 1,
    })
}

/// A frame with these bytes as its body, whatever they are.
fn raw_frame(module: u16, command: u16, reserved: u16, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(12 + body.len()).unwrap();
    let mut v = len.to_be_bytes().to_vec();
    for x in [module, command, 1, reserved] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend_from_slice(body);
    v
}

/// The effect a read job sends for a reply frame.
fn reply(pdu: Pdu<'_>, reserved: u16) -> Vec<Effect> {
    vec![Effect::Reply(pdu.to_frame(reserved))]
}

// ================================================================ before login, ports (P-13)

#[test]
fn only_login_is_processed_before_login() {
    // P-13, B-LOGIN-1: 3/5 and 7/1 before 1/3 are not answered; an unknown command is counted
    // as such.
    let mut h = H::new();
    let c = h.connect();
    assert!(h.feed(c, 3, Pdu::TimeRequest).consumed_silently());
    assert!(h.feed(c, 3, Pdu::Heartbeat).consumed_silently());
    assert!(h
        .feed_bytes(c, &raw_frame(9, 9, 3, b""))
        .consumed_silently());
    assert_eq!(h.count("ignored_before_login"), 2);
    assert_eq!(h.count("unknown_pdus"), 1);
    assert_eq!(h.reads() + h.writes(), 0);
}

#[test]
fn login_port_answers_1_2_and_closes() {
    // B-LS-1 (deadline), protocol.md section 1: 1/1 -> 1/2 with the msg port, then close.
    let mut h = H::new();
    let (c, out) = h.accept(LOGIN_LISTENER);
    assert_eq!(out.summary(), ["deadline c1"]);
    let out = h.feed(c, 4, Pdu::MsgServRequest);
    assert_eq!(out.summary(), ["answer c1 1/2 r4", "close c1"]);
    let Pdu::MsgServResponse(r) = out.pdu(0) else {
        panic!()
    };
    assert_eq!((r.result, r.ok.map(|o| o.port)), (0, Some(8000)));
}

#[test]
fn login_port_serves_nothing_else() {
    // P-13 on the login port: only 1/1; a 1/3 there is not a login.
    let mut h = H::new();
    let (c, _) = h.accept(LOGIN_LISTENER);
    assert!(h
        .feed(c, 1, login_req("alice", "pw", PC))
        .consumed_silently());
    assert!(h.feed(c, 2, Pdu::Heartbeat).consumed_silently());
    assert!(h.jobs.hashes.lock().is_empty());
    assert_eq!(h.count("ignored_before_login"), 2);
}

#[test]
fn msg_port_treats_other_ports_commands_as_unknown() {
    // P-12: 1/1 and 6/1 .. 6/5 belong to other ports.
    let mut h = H::new();
    let a = h.login("alice", PC);
    assert!(h.feed(a, 2, Pdu::MsgServRequest).consumed_silently());
    let file_login = Pdu::FileLogin(p::FileLogin {
        user_id: id("1"),
        token: b"t",
        task_id: b"x",
        client_mode: 1,
    });
    assert!(h.feed(a, 3, file_login).consumed_silently());
    assert_eq!(h.count("unknown_pdus"), 2);
}

#[test]
fn a_frame_over_the_before_login_limit_is_a_protocol_error() {
    // P-5: MaxPduSizeBeforeLogin until the 1/3, the full MaxPduSize from then on.
    let mut h = H::new();
    let c = h.connect();
    let big = raw_frame(3, 1, 0, &[0; 5000]);
    assert!(matches!(h.framing(c, &big), Framing::Invalid(_)));
    let a = h.login("alice", PC);
    assert_eq!(h.framing(a, &big), Framing::Complete(big.len()));
    assert_eq!(h.framing(a, &big[..100]), Framing::Partial);
    let out = h.feed_bytes(c, &big);
    assert_eq!(out.summary(), ["stop-input c1", "close c1"]);
}

// ================================================================ module 1: login

#[test]
fn login_answers_1_4_and_registers_the_session() {
    // B-LOGIN-1, B-TOK-1, B-TOK-2, B-PRES-1: the check runs as a hash job; its verdict
    // registers the session, sets the idle timeout and answers 1/4 with a token for this user.
    let mut h = H::new();
    let c = h.connect();
    assert!(h
        .feed(c, 1, login_req("alice", "pw", PC))
        .consumed_silently());
    assert_eq!(h.phase(c), Phase::Verifying);
    let out = h.run_hash();
    assert_eq!(out.summary(), ["idle c1", "answer c1 1/4 r1"]);
    let Pdu::LoginResponse(r) = out.pdu(0) else {
        panic!()
    };
    let ok = r.ok.unwrap();
    assert_eq!((r.result, ok.user_id.value()), (0, Some(ALICE)));
    assert_eq!(ok.nickname, b"ALICE");
    let tokens = h.st.tokens.lock();
    assert!(tokens.is_valid(ok.token, ALICE, Instant::now()));
    assert!(!tokens.is_valid(ok.token, BOB, Instant::now()));
    drop(tokens);
    assert_eq!(h.st.presence.status(ALICE), ONLINE);
}

#[test]
fn wrong_password_refuses_closes_and_is_recorded() {
    // B-LOGIN-6, B-LOGIN-7; B-GEN-1: a request pipelined behind the 1/3 waits for the verdict.
    let mut h = H::new();
    let c = h.connect();
    assert!(h
        .feed(c, 8, login_req("alice", "nope", PC))
        .consumed_silently());
    assert!(h.feed(c, 9, Pdu::TimeRequest).held());
    let out = h.run_hash();
    assert_eq!(out.summary(), ["answer c1 1/4 r8", "close c1", "resume c1"]);
    let Pdu::LoginResponse(r) = out.pdu(0) else {
        panic!()
    };
    assert_eq!((r.result, r.ok), (super::login::RESULT_REFUSED, None));
    assert_eq!(h.phase(c), Phase::Ended);
    // The held 3/5 is not served by an ended session.
    assert!(h.feed(c, 9, Pdu::TimeRequest).consumed_silently());
    assert_eq!(h.count("login_failures"), 1);
    assert_eq!(h.st.presence.status(ALICE), OFFLINE);
}

#[test]
fn unknown_and_disabled_users_are_refused_like_a_wrong_password() {
    // B-LOGIN-3: a hash is verified anyway; the answer is the same.
    let mut h = H::new();
    for name in ["nobody", "dave"] {
        let c = h.connect();
        assert!(h.feed(c, 2, login_req(name, "pw", PC)).consumed_silently());
        let out = h.run_hash();
        assert_eq!(
            out.summary(),
            [
                format!("answer {} 1/4 r2", cn(c)),
                format!("close {}", cn(c))
            ]
        );
    }
    assert_eq!(h.count("login_failures"), 2);
}

#[test]
fn throttled_login_is_refused_without_a_password_check() {
    // B-LOGIN-7: at LoginFailLimit failures the name is locked; a locked attempt is answered
    // at once, unverified.
    let mut h = H::with(|cfg| cfg.auth.login_fail_limit = 2);
    for _ in 0..2 {
        let c = h.connect();
        h.feed(c, 1, login_req("alice", "nope", PC));
        h.run_hash();
    }
    let c = h.connect();
    let out = h.feed(c, 5, login_req("alice", "pw", PC));
    assert_eq!(out.summary(), ["answer c3 1/4 r5", "close c3"]);
    assert!(h.jobs.hashes.lock().is_empty());
    assert_eq!(h.count("login_throttled"), 1);
}

#[test]
fn a_full_hash_pool_answers_unavailable() {
    // 1/4 result 3 when the hashing queue is full (auth::hashers).
    let mut h = H::new();
    *h.jobs.refuse_hash.lock() = true;
    let c = h.connect();
    let out = h.feed(c, 6, login_req("alice", "pw", PC));
    assert_eq!(out.summary(), ["answer c1 1/4 r6", "close c1"]);
    let Pdu::LoginResponse(r) = out.pdu(0) else {
        panic!()
    };
    assert_eq!(r.result, super::login::RESULT_UNAVAILABLE);
    assert_eq!(h.pending(c), 0);
}

#[test]
fn a_second_login_of_the_same_class_kicks_the_first() {
    // B-KICK-2: the old session gets 1/7 through its loop's channel and closes once flushed;
    // a mobile session stays (B-KICK-1).
    let mut h = H::new();
    let old = h.login("alice", PC);
    let mobile = h.login("alice", MOBILE);
    let c = h.connect();
    h.feed(c, 1, login_req("alice", "pw", PC));
    let out = h.run_hash();
    assert_eq!(
        out.summary(),
        ["idle c3", "post w0 kick c1 1/7 r0", "answer c3 1/4 r1"]
    );
    let (w, kick) = out.posts().pop().unwrap();
    assert_eq!(w, 0);
    let out = h.message(kick);
    assert_eq!(out.summary(), ["answer c1 1/7 r0", "close c1"]);
    assert_eq!(h.phase(old), Phase::Ended);
    assert_eq!(h.phase(mobile), Phase::LoggedIn);
    assert_eq!(h.count("kicks"), 1);
}

#[test]
fn a_second_1_3_on_a_session_is_ignored() {
    let mut h = H::new();
    let a = h.login("alice", PC);
    assert!(h
        .feed(a, 2, login_req("alice", "pw", PC))
        .consumed_silently());
    assert!(h.jobs.hashes.lock().is_empty());
    assert_eq!(h.count("ignored_relogin"), 1);
}

#[test]
fn closing_a_session_logs_it_out() {
    // B-KICK-4: presence and the local session table forget it; a late delivery finds nobody.
    let mut h = H::new();
    let a = h.login("alice", PC);
    let b = h.login("bob", PC);
    assert!(h.close(b).summary().is_empty());
    assert_eq!(h.st.presence.status(BOB), OFFLINE);
    let out = h.message(WorkerMsg::Fanout {
        members: vec![ALICE, BOB].into(),
        bytes: Pdu::Heartbeat.to_frame(0).into(),
        skip: None,
    });
    assert_eq!(out.summary(), [format!("send {} 7/1 r0", cn(a))]);
}

// ================================================================ module 7, timeouts

#[test]
fn heartbeat_is_answered_after_login() {
    // B-HB-1
    let mut h = H::new();
    let a = h.login("alice", PC);
    assert_eq!(h.feed(a, 9, Pdu::Heartbeat).summary(), ["answer c1 7/1 r9"]);
}

#[test]
fn status_change_echoes_copies_and_reports() {
    // B-PRES-4: the echo (its reserved) to the requester, a copy (reserved 0) to the user's
    // other sessions, the aggregated status changes. B-PRES-3: the watchers' 2/5 is a reader
    // job keyed by the user (one user's changes go out in order), one per change.
    let mut h = H::new();
    let a = h.login("alice", PC);
    let m = h.login("alice", MOBILE);
    let notices = h.jobs.keyed.lock().len();
    let setting = Pdu::ServiceSetting(p::ServiceSetting {
        key: 2,
        value: LEAVE,
    });
    let out = h.feed(a, 33, setting.clone());
    assert_eq!(out.summary(), ["answer c1 2/5 r33", "send c2 2/5 r0"]);
    // The mobile session is still online: so is alice, nobody else is told.
    assert_eq!(h.st.presence.status(ALICE), ONLINE);
    assert_eq!(h.jobs.keyed.lock().len(), notices);
    let out = h.feed(m, 34, setting);
    assert_eq!(out.summary(), ["answer c2 2/5 r34", "send c1 2/5 r0"]);
    assert_eq!(h.st.presence.status(ALICE), LEAVE);
    let keyed = h.jobs.keyed.lock();
    assert_eq!(keyed.len(), notices + 1);
    assert_eq!(keyed.back().map(|k| k.0), Some(ALICE));
}

#[test]
fn service_setting_with_another_key_is_ignored() {
    let mut h = H::new();
    let a = h.login("alice", PC);
    let setting = Pdu::ServiceSetting(p::ServiceSetting { key: 1, value: 1 });
    assert!(h.feed(a, 1, setting).consumed_silently());
    assert_eq!(h.count("ignored_settings"), 1);
}

#[test]
fn timeouts_close_at_once_and_are_counted() {
    // LoginTimeout before 1/3, the idle timeout (PcIdleTimeout, MobileIdleTimeout) after.
    let mut h = H::new();
    let fresh = h.connect();
    let a = h.login("alice", PC);
    assert_eq!(h.timeout(fresh).summary(), ["close-now c1"]);
    assert_eq!(h.timeout(a).summary(), ["close-now c2"]);
    assert_eq!((h.count("login_timeouts"), h.count("idle_closes")), (1, 1));
}

#[test]
fn an_admin_close_closes_at_once() {
    // B-ADM-6
    let mut h = H::new();
    let a = h.login("alice", PC);
    let out = h.message(WorkerMsg::Close { conn: a });
    assert_eq!(out.summary(), ["close-now c1"]);
}

// ================================================================ module 2

#[test]
fn user_status_echoes_the_requested_id() {
    // B-PRES-6, P-21
    let mut h = H::new();
    let a = h.login("alice", PC);
    let req = Pdu::UserStatusRequest(p::UserStatusRequest { user_id: id("007") });
    let out = h.feed(a, 4, req);
    assert_eq!(out.summary(), ["answer c1 2/9 r4"]);
    let Pdu::UserStatusResponse(r) = out.pdu(0) else {
        panic!()
    };
    assert_eq!((r.user_id, r.status), (id("007"), OFFLINE));
}

#[test]
fn users_status_answers_each_id_in_order() {
    // B-PRES-7: one entry per requested id, echoed.
    let mut h = H::new();
    let a = h.login("alice", PC);
    h.login("bob", PC);
    let ids = vec![id("2"), id("12x"), id("1"), id("2")];
    let out = h.feed(
        a,
        5,
        Pdu::UsersStatusRequest(p::UsersStatusRequest { user_ids: ids }),
    );
    assert_eq!(out.summary(), ["answer c1 2/17 r5"]);
    let Pdu::UsersStatusResponse(r) = out.pdu(0) else {
        panic!()
    };
    let got: Vec<(Id<'_>, u32)> = r.users.iter().map(|u| (u.user_id, u.status)).collect();
    let want = [
        (id("2"), ONLINE),
        (id("12x"), OFFLINE),
        (id("1"), ONLINE),
        (id("2"), ONLINE),
    ];
    assert_eq!(got, want);
}

#[test]
fn user_info_lists_active_users_once_in_request_order() {
    // B-USER-1
    let mut h = H::new();
    let a = h.login("alice", PC);
    let ids = vec![id("2"), id("1"), id("2"), id("4"), id("007"), id("99")];
    let out = h.feed(
        a,
        6,
        Pdu::UserInfoRequest(p::UserInfoRequest { user_ids: ids }),
    );
    assert_eq!(out.summary(), ["answer c1 2/10 r6"]);
    let Pdu::UserInfoResponse(r) = out.pdu(0) else {
        panic!()
    };
    let got: Vec<_> = r
        .users
        .iter()
        .map(|u| (u.user_id.value(), u.name))
        .collect();
    assert_eq!(got, [(Some(BOB), &b"bob"[..]), (Some(ALICE), b"alice")]);
}

#[test]
fn all_users_lists_active_users_by_id() {
    // B-USER-2
    let mut h = H::new();
    let a = h.login("alice", PC);
    let out = h.feed(a, 7, Pdu::AllUserRequest);
    assert_eq!(out.summary(), ["answer c1 2/15 r7"]);
    let Pdu::AllUserResponse(r) = out.pdu(0) else {
        panic!()
    };
    let ids: Vec<_> = r.users.iter().filter_map(|u| u.user_id.value()).collect();
    assert_eq!(ids, [ALICE, BOB, CAROL]);
}

#[test]
fn all_users_split_over_frames_of_max_out_pdu_size() {
    // B-USER-2 with AllUsersSplit: whole users, in order, each frame within MaxOutPduSize.
    let alice = user(ALICE, "alice");
    let one = Pdu::AllUserResponse(p::AllUserResponse {
        users: vec![super::buddy::user_info_record(&alice)],
    })
    .to_frame(7)
    .len();
    let mut h = H::with(|cfg| cfg.msg.max_out_pdu_size = u32::try_from(one).unwrap());
    let a = h.login("alice", PC);
    let out = h.feed(a, 7, Pdu::AllUserRequest);
    assert_eq!(out.summary(), ["answer c1 2/15 r7"; 3]);
    let ids: Vec<_> = out
        .pdus()
        .iter()
        .flat_map(|pdu| match pdu {
            Pdu::AllUserResponse(r) => r.users.iter().filter_map(|u| u.user_id.value()).collect(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(ids, [ALICE, BOB, CAROL]);
}

#[test]
fn departments_lists_the_active_ones() {
    // B-USER-3
    let mut h = H::new();
    let a = h.login("alice", PC);
    let out = h.feed(a, 8, Pdu::DepartmentRequest);
    assert_eq!(out.summary(), ["answer c1 2/19 r8"]);
    let Pdu::DepartmentResponse(r) = out.pdu(0) else {
        panic!()
    };
    let got: Vec<_> = r.departments.iter().map(|d| d.title).collect();
    assert_eq!(got, [&b"dev"[..]]);
}

#[test]
fn recent_contacts_is_a_read() {
    // B-RC-2: a reader job; its reply goes out when it comes back.
    let mut h = H::new();
    let a = h.login("alice", PC);
    let req = Pdu::RecentContactRequest(p::RecentContactRequest { req_type: 0 });
    assert!(h.feed(a, 9, req).consumed_silently());
    assert_eq!(h.reads(), 1);
    let list = Pdu::RecentContactList(p::RecentContactList {
        contacts: Vec::new(),
    });
    let out = h.answer_read(a, reply(list, 9));
    assert_eq!(out.summary(), ["answer c1 2/3 r9"]);
}

fn remove_session(session_type: u32, session_id: &str) -> Pdu<'_> {
    Pdu::RemoveSessionRequest(p::RemoveSessionRequest {
        session_type,
        session_id: id(session_id),
    })
}

fn remove_result(out: &Out) -> u32 {
    match out.pdu(0) {
        Pdu::RemoveSessionResponse(r) => r.result,
        other => panic!("{other:?}"),
    }
}

#[test]
fn removing_a_user_session_is_a_write_answered_after_commit() {
    // B-RC-3, B-GEN-5: 2/13 result 0 once committed, 1 if the write failed.
    let mut h = H::new();
    let a = h.login("alice", PC);
    for (result, want) in [
        (Ok(WriteOut::Done), 0),
        (Err(StoreError::Invalid("x".into())), 1),
    ] {
        assert!(h.feed(a, 12, remove_session(1, "2")).consumed_silently());
        let job = h.take_write();
        assert_eq!(
            job.op,
            WriteOp::HideRecent {
                owner: ALICE,
                peer: BOB
            }
        );
        let out = h.commit(job.tag, result);
        assert_eq!(out.summary(), ["answer c1 2/13 r12"]);
        assert_eq!(remove_result(&out), want);
    }
}

#[test]
fn removing_a_group_session_answers_by_membership() {
    // B-RC-4: result 0 only if the writer found the user a member.
    let mut h = H::new();
    let a = h.login("alice", PC);
    for (member, want) in [(true, 0), (false, 1)] {
        h.feed(a, 13, remove_session(2, "7"));
        let job = h.take_write();
        assert_eq!(
            job.op,
            WriteOp::HideGroup {
                user: ALICE,
                group: GROUP
            }
        );
        let out = h.commit(job.tag, Ok(WriteOut::Hidden { ok: member }));
        assert_eq!(remove_result(&out), want);
    }
}

#[test]
fn removing_a_session_of_an_unknown_type_fails_at_once() {
    // B-RC-5
    let mut h = H::new();
    let a = h.login("alice", PC);
    let out = h.feed(a, 14, remove_session(9, "2"));
    assert_eq!(out.summary(), ["answer c1 2/13 r14"]);
    assert_eq!(remove_result(&out), 1);
    assert_eq!(h.writes(), 0);
}

// ================================================================ modules 3 and 4

#[test]
fn p2p_message_is_stored_then_acked_and_delivered() {
    // B-MSG-2, B-MSG-4: one write; after commit the recipient's sessions get the 3/1 with the
    // stored time (before the ack, in commit order), the sender the 3/2 echoing its from_id.
    let mut h = H::new();
    let a = h.login("alice", PC);
    h.login("bob", PC);
    assert!(h.feed(a, 10, text("1", "2", b"hi")).consumed_silently());
    let job = h.take_write();
    let data: Arc<[u8]> = Arc::from(&b"hi"[..]);
    let op = WriteOp::StoreP2p {
        from: ALICE,
        to: BOB,
        msg_type: 1,
        data,
    };
    assert_eq!(job.op, op);
    let out = h.commit(
        job.tag,
        Ok(WriteOut::Stored {
            msg_id: 1,
            create_time: STORED_AT,
        }),
    );
    assert_eq!(out.summary(), ["send c2 3/1 r0", "answer c1 3/2 r10"]);
    let Pdu::MsgData(d) = out.pdu(0) else {
        panic!()
    };
    let got = (
        d.from_id.value(),
        d.to_id.value(),
        d.create_time,
        d.msg_data,
    );
    assert_eq!(got, (Some(ALICE), Some(BOB), STORED_AT, &b"hi"[..]));
    let Pdu::MsgDataAck(ack) = out.pdu(1) else {
        panic!()
    };
    assert_eq!((ack.seq_no, ack.from_id), (5, id("1")));
    assert_eq!(h.count("msgs_p2p"), 1);
}

#[test]
fn committed_message_reaches_other_loops_and_the_senders_other_sessions() {
    // B-MSG-4: the outlet pushes to each session's own loop; the sending connection gets only
    // the ack.
    let mut h = H::new();
    let a = h.login("alice", PC);
    h.login("alice", MOBILE);
    h.remote_session(BOB, 5);
    h.feed(a, 10, text("1", "2", b"hi"));
    let out = h.commit_next(WriteOut::Stored {
        msg_id: 1,
        create_time: STORED_AT,
    });
    assert_eq!(out.summary(), ["send c2 3/1 r0", "answer c1 3/2 r10"]);
    assert_eq!(h.remote_msgs(), ["push w1c5 3/1 r0"]);
}

#[test]
fn a_delivery_outlives_its_sender() {
    // A committed message is delivered even if its sender left before the commit; the ack
    // is a stale reply.
    let mut h = H::new();
    let a = h.login("alice", PC);
    h.login("bob", PC);
    h.feed(a, 10, text("1", "2", b"hi"));
    h.close(a);
    let out = h.commit_next(WriteOut::Stored {
        msg_id: 1,
        create_time: STORED_AT,
    });
    assert_eq!(out.summary(), ["send c2 3/1 r0"]);
    assert_eq!(h.count("stale_replies"), 1);
}

#[test]
fn foreign_from_id_is_rejected_without_a_job() {
    // B-GEN-2
    let mut h = H::new();
    let a = h.login("alice", PC);
    assert!(h.feed(a, 1, text("2", "2", b"spoof")).consumed_silently());
    assert_eq!(h.count("identity_rejects"), 1);
    assert_eq!((h.writes(), h.pending(a)), (0, 0));
}

#[test]
fn invalid_messages_are_dropped_without_a_job() {
    // B-MSG-1: unknown or disabled recipient, empty text, unknown type.
    let mut h = H::new();
    let a = h.login("alice", PC);
    let mut odd = text("1", "2", b"x");
    if let Pdu::MsgData(m) = &mut odd {
        m.msg_type = 9;
    }
    for pdu in [
        text("1", "99", b"x"),
        text("1", "4", b"x"),
        text("1", "2", b""),
        odd,
    ] {
        assert!(h.feed(a, 1, pdu).consumed_silently());
    }
    assert_eq!((h.count("msg_rejected"), h.writes()), (4, 0));
}

#[test]
fn a_client_3_2_is_only_counted() {
    let mut h = H::new();
    let a = h.login("alice", PC);
    let ack = Pdu::MsgDataAck(p::MsgDataAck {
        seq_no: 1,
        from_id: id("2"),
    });
    assert!(h.feed(a, 1, ack).consumed_silently());
    assert_eq!(h.count("recv_acks"), 1);
}

#[test]
fn read_ack_is_a_silent_write() {
    // B-UNR-4: marks the peer's messages read in this session's family; nothing is answered.
    let mut h = H::new();
    let a = h.login("alice", MOBILE);
    let ack = |peer| Pdu::MsgReadAck(p::MsgReadAck { peer_id: id(peer) });
    assert!(h.feed(a, 3, ack("99")).consumed_silently());
    assert!(h.feed(a, 3, ack("2")).consumed_silently());
    let job = h.take_write();
    let op = WriteOp::MarkRead {
        reader: ALICE,
        peer: BOB,
        family: Family::Ios,
    };
    assert_eq!(job.op, op);
    let out = h.commit(job.tag, Ok(WriteOut::Done));
    assert_eq!(out.summary(), ["answer c1 empty"]);
    assert_eq!(h.pending(a), 0);
}

#[test]
fn time_request_answers_3_6() {
    let mut h = H::new();
    let a = h.login("alice", PC);
    let out = h.feed(a, 11, Pdu::TimeRequest);
    assert_eq!(out.summary(), ["answer c1 3/6 r11"]);
    let Pdu::TimeResponse(t) = out.pdu(0) else {
        panic!()
    };
    assert!(t.server_time > STORED_AT);
}

#[test]
fn unread_requests_are_reads() {
    // B-UNR-2 (3/7 -> 3/8), B-UNR-3 (3/9 -> 3/14), answered in request order.
    let mut h = H::new();
    let a = h.login("alice", PC);
    assert!(h.feed(a, 1, Pdu::UnreadCountRequest).consumed_silently());
    let req = Pdu::UnreadMsgRequest(p::UnreadMsgRequest { peer_id: id("2") });
    assert!(h.feed(a, 2, req).consumed_silently());
    assert_eq!(h.reads(), 2);
    let counts = Pdu::UnreadCountResponse(p::UnreadCountResponse { counts: Vec::new() });
    let msgs = Pdu::UnreadMsgResponse(p::UnreadMsgResponse {
        peer_id: id("2"),
        msgs: Vec::new(),
    });
    // The second read finishes first: its reply waits for the first one's.
    assert!(h.answer_nth_read(a, 1, reply(msgs, 2)).summary().is_empty());
    let out = h.answer_read(a, reply(counts, 1));
    assert_eq!(out.summary(), ["answer c1 3/8 r1", "answer c1 3/14 r2"]);
}

#[test]
fn responses_keep_request_order_behind_a_pending_write() {
    // B-GEN-1: 3/1 (write), 3/5 (immediate) queues behind it, 3/7 (a read of what the write
    // may change) is held until the write committed.
    let mut h = H::new();
    let a = h.login("alice", PC);
    h.login("bob", PC);
    assert!(h.feed(a, 10, text("1", "2", b"hi")).consumed_silently());
    assert!(h.feed(a, 11, Pdu::TimeRequest).consumed_silently());
    let out = h.feed(a, 12, Pdu::UnreadCountRequest);
    assert!(out.held() && out.actions.is_empty());
    let out = h.commit_next(WriteOut::Stored {
        msg_id: 1,
        create_time: STORED_AT,
    });
    assert_eq!(
        out.summary(),
        [
            "send c2 3/1 r0",
            "answer c1 3/2 r10",
            "answer c1 3/6 r11",
            "resume c1"
        ]
    );
    assert!(h.feed(a, 12, Pdu::UnreadCountRequest).consumed_silently());
    let counts = Pdu::UnreadCountResponse(p::UnreadCountResponse { counts: Vec::new() });
    assert_eq!(
        h.answer_read(a, reply(counts, 12)).summary(),
        ["answer c1 3/8 r12"]
    );
}

#[test]
fn every_read_of_own_state_waits_for_own_writes() {
    // B-GEN-1: with a write in flight each of these is held, not submitted.
    let mut h = H::new();
    let a = h.login("alice", PC);
    h.feed(a, 1, Pdu::MsgReadAck(p::MsgReadAck { peer_id: id("2") }));
    let reads = [
        Pdu::UnreadCountRequest,
        Pdu::UnreadMsgRequest(p::UnreadMsgRequest { peer_id: id("2") }),
        Pdu::RecentContactRequest(p::RecentContactRequest { req_type: 0 }),
        Pdu::NormalGroupListRequest,
        Pdu::RecentGroupListRequest,
        Pdu::GroupInfoRequest(p::GroupInfoRequest { group_id: id("7") }),
        Pdu::GroupUnreadCountRequest,
        Pdu::GroupUnreadMsgRequest(p::GroupUnreadMsgRequest { group_id: id("7") }),
        Pdu::OfflineFileListRequest,
    ];
    for pdu in reads {
        let name = pdu.name();
        assert!(h.feed(a, 2, pdu).held(), "{name}");
    }
    assert_eq!((h.reads(), h.pending(a)), (0, 1));
}

#[test]
fn p2p_command_goes_to_the_peer_and_the_senders_other_sessions() {
    // B-CMD: to every session of the recipient, and of the sender but this one; a session of
    // another loop through that loop's channel.
    let mut h = H::new();
    let a = h.login("alice", PC);
    h.login("bob", PC);
    h.remote_session(BOB, 5);
    h.login("alice", MOBILE);
    let cmd = |to| {
        Pdu::P2PCmd(p::P2PCmd {
            seq_no: 1,
            from_id: id("1"),
            to_id: id(to),
            cmd_data: b"{}",
        })
    };
    let mut out = h.feed(a, 4, cmd("2")).summary();
    out.sort();
    assert_eq!(
        out,
        [
            "post w1 push w1c5 4/1 r0",
            "send c2 4/1 r0",
            "send c3 4/1 r0"
        ]
    );
    assert!(h.feed(a, 4, cmd("1")).consumed_silently());
    assert_eq!(h.count("cmd_rejected"), 1);
}

// ================================================================ module 5

#[test]
fn group_lists_info_and_unread_are_reads_answered_in_order() {
    // B-GRP-14, B-GRP-15, B-GRP-16, B-GRP-11, B-GRP-12
    let mut h = H::new();
    let a = h.login("alice", PC);
    let requests = [
        Pdu::NormalGroupListRequest,
        Pdu::RecentGroupListRequest,
        Pdu::GroupInfoRequest(p::GroupInfoRequest { group_id: id("7") }),
        Pdu::GroupUnreadCountRequest,
        Pdu::GroupUnreadMsgRequest(p::GroupUnreadMsgRequest { group_id: id("7") }),
    ];
    for (i, pdu) in (1u16..).zip(requests) {
        assert!(h.feed(a, i, pdu).consumed_silently());
    }
    assert_eq!((h.reads(), h.pending(a)), (5, 5));
    let list = Pdu::NormalGroupListResponse(p::NormalGroupListResponse { groups: Vec::new() });
    let mut got = Vec::new();
    for i in 1..=5 {
        got.extend(h.answer_read(a, reply(list.clone(), i)).summary());
    }
    let want: Vec<String> = (1..=5).map(|i| format!("answer c1 5/2 r{i}")).collect();
    assert_eq!(got, want);
}

#[test]
fn group_read_ack_writes_only_for_a_member() {
    // B-GRP-13: a silent write for a member (per the cache), nothing for anyone else.
    let mut h = H::new();
    let a = h.login("alice", PC);
    let c = h.login("carol", PC);
    let ack = || Pdu::GroupReadAck(p::GroupReadAck { group_id: id("7") });
    assert!(h.feed(c, 1, ack()).consumed_silently());
    assert_eq!(h.writes(), 0);
    assert!(h.feed(a, 1, ack()).consumed_silently());
    let op = WriteOp::GroupReadAck {
        user: ALICE,
        group: GROUP,
        family: Family::Pc,
    };
    assert_eq!(h.take_write().op, op);
}

#[test]
fn create_temp_group_is_written_then_answered_and_pushed() {
    // B-GRP-2, B-GRP-3: after commit, 5/13 to the creator (its reserved), a copy (reserved 0)
    // to the other members' sessions; the new group is in the cache.
    let mut h = H::new();
    let a = h.login("alice", PC);
    h.login("bob", PC);
    assert!(h.feed(a, 21, create_group(&["2"])).consumed_silently());
    let job = h.take_write();
    let op = WriteOp::CreateTempGroup {
        creator: ALICE,
        name: b"team".to_vec(),
        avatar: Vec::new(),
        members: vec![BOB],
        max_members: 1000,
    };
    assert_eq!(job.op, op);
    let created = WriteOut::GroupCreated {
        group_id: 50,
        members: vec![ALICE, BOB],
    };
    let out = h.commit(job.tag, Ok(created));
    assert_eq!(out.summary(), ["answer c1 5/13 r21", "send c2 5/13 r0"]);
    let Pdu::CreateTempGroupResponse(r) = out.pdu(0) else {
        panic!()
    };
    assert_eq!(
        (r.result, r.group_id.value(), r.group_name),
        (0, Some(50), &b"team"[..])
    );
    let g = h.st.groups.live(50).unwrap();
    assert_eq!((g.group_type, &g.members[..]), (TEMP, &[ALICE, BOB][..]));
}

#[test]
fn create_temp_group_with_a_bad_member_fails_at_once() {
    // B-GRP-2, B-GRP-3
    let mut h = H::new();
    let a = h.login("alice", PC);
    for bad in ["007", "424242", "4"] {
        let out = h.feed(a, 6, create_group(&[bad]));
        assert_eq!(out.summary(), ["answer c1 5/13 r6"]);
        let Pdu::CreateTempGroupResponse(r) = out.pdu(0) else {
            panic!()
        };
        assert_eq!(
            (r.result, r.group_id, r.group_name),
            (1, id("0"), &b"team"[..])
        );
        assert!(r.member_ids.is_empty());
    }
    assert_eq!((h.writes(), h.pending(a)), (0, 0));
}

#[test]
fn create_temp_group_refused_or_failed_answers_its_result() {
    // B-GRP-2: too many members (result 2, from the writer); B-GEN-5: a storage failure (1).
    let mut h = H::new();
    let a = h.login("alice", PC);
    let refused = WriteOut::GroupChange {
        result: 2,
        group_id: 0,
        listed: Vec::new(),
        members_before: Vec::new(),
        members_after: Vec::new(),
    };
    for (result, want) in [(Ok(refused), 2), (Err(StoreError::Invalid("x".into())), 1)] {
        h.feed(a, 6, create_group(&["2"]));
        let out = h.commit(h.take_write().tag, result);
        assert_eq!(out.summary(), ["answer c1 5/13 r6"]);
        let Pdu::CreateTempGroupResponse(r) = out.pdu(0) else {
            panic!()
        };
        assert_eq!(r.result, want);
    }
}

#[test]
fn removed_member_is_told_and_can_no_longer_send() {
    // B-GRP-5: 5/15 to the requester and to the members before and after (the removed one
    // included); B-GRP-19: the cache is replaced at commit, so bob's next 3/1 is refused.
    let mut h = H::new();
    let a = h.login("alice", PC);
    let b = h.login("bob", PC);
    assert!(h
        .feed(a, 8, change_members("8", 1, &["2"]))
        .consumed_silently());
    let job = h.take_write();
    let op = WriteOp::ChangeMembers {
        group: TEMP_GROUP,
        requester: ALICE,
        change_type: 1,
        users: vec![BOB],
        max_members: 1000,
    };
    assert_eq!(job.op, op);
    let change = WriteOut::GroupChange {
        result: 0,
        group_id: TEMP_GROUP,
        listed: vec![BOB],
        members_before: vec![ALICE, BOB],
        members_after: vec![ALICE],
    };
    let out = h.commit(job.tag, Ok(change));
    assert_eq!(out.summary(), ["answer c1 5/15 r8", "send c2 5/15 r0"]);
    assert!(h.feed(b, 1, group_text("2", "8", b"x")).consumed_silently());
    assert_eq!((h.count("msg_rejected"), h.writes()), (1, 0));
}

#[test]
fn refused_member_change_echoes_the_request() {
    // B-GRP-4, P-21: a refusal (here 3, not allowed) echoes group id and list as sent, and
    // nobody else hears of it.
    let mut h = H::new();
    let a = h.login("alice", PC);
    h.login("bob", PC);
    h.feed(a, 9, change_members("8", 0, &["3", "03"]));
    let job = h.take_write();
    assert!(matches!(&job.op, WriteOp::ChangeMembers { users, .. } if users == &[CAROL, 0]));
    let refused = WriteOut::GroupChange {
        result: 3,
        group_id: TEMP_GROUP,
        listed: vec![CAROL],
        members_before: vec![ALICE, BOB],
        members_after: vec![ALICE, BOB],
    };
    let out = h.commit(job.tag, Ok(refused));
    assert_eq!(out.summary(), ["answer c1 5/15 r9"]);
    let Pdu::ChangeMemberResponse(r) = out.pdu(0) else {
        panic!()
    };
    assert_eq!((r.result, r.group_id), (3, id("8")));
    assert_eq!(r.user_ids, [id("3"), id("03")]);
    assert_eq!(
        &h.st.groups.live(TEMP_GROUP).unwrap().members[..],
        &[ALICE, BOB]
    );
}

#[test]
fn member_change_of_a_non_canonical_group_fails_at_once() {
    // B-GRP-4: no such group (1), without a write.
    let mut h = H::new();
    let a = h.login("alice", PC);
    let out = h.feed(a, 10, change_members("08", 0, &["3"]));
    assert_eq!(out.summary(), ["answer c1 5/15 r10"]);
    let Pdu::ChangeMemberResponse(r) = out.pdu(0) else {
        panic!()
    };
    assert_eq!((r.result, r.group_id), (1, id("08")));
    assert_eq!(h.writes(), 0);
}

#[test]
fn group_message_is_acked_then_fanned_out_as_one_buffer() {
    // B-GRP-8, B-GRP-9, B-FLOW-4: one Fanout per loop in commit order, each delivering to its
    // own member sessions but the sender's connection; then the ack.
    let mut h = H::new();
    let a = h.login("alice", PC);
    h.login("bob", PC);
    assert!(h
        .feed(a, 7, group_text("1", "7", b"hello"))
        .consumed_silently());
    let job = h.take_write();
    assert!(matches!(
        job.op,
        WriteOp::StoreGroupMsg {
            group: GROUP,
            from: ALICE,
            msg_type: 0x11,
            family: Family::Pc,
            ..
        }
    ));
    let out = h.commit(
        job.tag,
        Ok(WriteOut::Stored {
            msg_id: 1,
            create_time: STORED_AT,
        }),
    );
    assert_eq!(out.summary(), ["send c2 3/1 r0", "answer c1 3/2 r7"]);
    let Pdu::MsgData(d) = out.pdu(0) else {
        panic!()
    };
    let got = (
        d.from_id.value(),
        d.to_id.value(),
        d.create_time,
        d.msg_data,
    );
    assert_eq!(got, (Some(ALICE), Some(GROUP), STORED_AT, &b"hello"[..]));
    assert_eq!(h.remote_msgs(), ["fanout [1, 2] skip Some(\"c1\")"]);
    assert_eq!(h.count("msgs_group"), 1);
}

#[test]
fn group_message_from_a_non_member_is_rejected_without_a_job() {
    // B-GRP-7: by the membership cache; an unknown group too.
    let mut h = H::new();
    let c = h.login("carol", PC);
    assert!(h
        .feed(c, 1, group_text("3", "7", b"hi"))
        .consumed_silently());
    assert!(h
        .feed(c, 1, group_text("3", "999", b"hi"))
        .consumed_silently());
    assert_eq!(
        (h.count("msg_rejected"), h.writes(), h.pending(c)),
        (2, 0, 0)
    );
}

#[test]
fn group_message_refused_at_commit_is_not_acked() {
    // B-GRP-19: the writer found the sender no longer a member: a rejected message, not a
    // storage failure; no ack, no fan-out. (That the writer refuses it: msg::tests.)
    let mut h = H::new();
    let b = h.login("bob", PC);
    h.feed(b, 4, group_text("2", "7", b"late"));
    let failures = h.count("store_failures");
    let out = h.commit(
        h.take_write().tag,
        Err(StoreError::Invalid("not a member".into())),
    );
    assert!(out.summary().is_empty());
    assert_eq!(h.pending(b), 0);
    assert_eq!(h.count("msg_rejected"), 1);
    assert_eq!(h.count("store_failures"), failures);
    assert!(h.remote_msgs().is_empty());
}

// ================================================================ module 6 on the msg port

#[test]
fn file_request_without_a_file_role_answers_8() {
    // B-FILE-1: a valid request is refused with 8 when no file role runs; an invalid one
    // (to oneself, too large) with 1; a foreign from_id is dropped (B-GEN-2).
    let mut h = H::new();
    let a = h.login("alice", PC);
    let result = |out: &Out| match out.pdu(0) {
        Pdu::FileResponse(r) => r.result,
        other => panic!("{other:?}"),
    };
    let out = h.feed(a, 1, file_req("1", "2", 10));
    assert_eq!(out.summary(), ["answer c1 6/11 r1"]);
    assert_eq!(result(&out), 8);
    assert_eq!(result(&h.feed(a, 2, file_req("1", "1", 10))), 1);
    assert_eq!(result(&h.feed(a, 3, file_req("1", "2", 0))), 1);
    assert_eq!(h.count("file_rejected"), 2);
    assert!(h.feed(a, 4, file_req("2", "1", 10)).consumed_silently());
    assert_eq!(h.count("identity_rejects"), 1);
}

#[test]
fn offline_file_list_is_a_read() {
    // B-FILE-12
    let mut h = H::new();
    let a = h.login("alice", PC);
    assert!(h
        .feed(a, 16, Pdu::OfflineFileListRequest)
        .consumed_silently());
    let list = Pdu::OfflineFileListResponse(p::OfflineFileListResponse {
        files: Vec::new(),
        addrs: Vec::new(),
    });
    assert_eq!(
        h.answer_read(a, reply(list, 16)).summary(),
        ["answer c1 6/17 r16"]
    );
}

#[test]
fn offline_file_reports_are_checked_and_counted() {
    // B-FILE-13 (6/18: counted only), B-FILE-14 (6/19: without a file role, refused); both
    // only from the user they name.
    let mut h = H::new();
    let a = h.login("alice", PC);
    let add = |from| {
        Pdu::AddOfflineFile(p::AddOfflineFile {
            from_id: id(from),
            to_id: id("2"),
            task_id: b"t",
            file_name: b"f",
            file_size: 1,
        })
    };
    let del = |to| {
        Pdu::DeleteOfflineFile(p::DeleteOfflineFile {
            from_id: id("2"),
            to_id: id(to),
            task_id: b"t",
        })
    };
    assert!(h.feed(a, 1, add("1")).consumed_silently());
    assert!(h.feed(a, 1, add("2")).consumed_silently());
    assert!(h.feed(a, 1, del("1")).consumed_silently());
    assert!(h.feed(a, 1, del("2")).consumed_silently());
    assert_eq!(h.count("file_add_reports"), 1);
    assert_eq!(
        (h.count("file_rejected"), h.count("identity_rejects")),
        (1, 2)
    );
    assert_eq!(h.pending(a), 0);
}

// ================================================================ flow control

#[test]
fn max_in_flight_holds_until_a_reply_arrives() {
    // MaxInFlight: past it a request is held, not refused; a reply resumes the connection.
    let mut h = H::with(|cfg| cfg.msg.max_in_flight = 2);
    let a = h.login("alice", PC);
    h.feed(a, 1, Pdu::UnreadCountRequest);
    h.feed(a, 2, Pdu::GroupUnreadCountRequest);
    let out = h.feed(a, 3, Pdu::TimeRequest);
    assert!(out.held() && out.actions.is_empty());
    let counts = Pdu::UnreadCountResponse(p::UnreadCountResponse { counts: Vec::new() });
    let out = h.answer_read(a, reply(counts, 1));
    assert_eq!(out.summary(), ["answer c1 3/8 r1", "resume c1"]);
    // Retried: queued behind the remaining read.
    assert!(h.feed(a, 3, Pdu::TimeRequest).consumed_silently());
    let groups = Pdu::GroupUnreadCountResponse(p::GroupUnreadCountResponse { counts: Vec::new() });
    let out = h.answer_read(a, reply(groups, 2));
    assert_eq!(out.summary(), ["answer c1 5/6 r2", "answer c1 3/6 r3"]);
}

#[test]
fn rate_limit_pauses_until_a_token_is_back() {
    // B-MSG-6: over MsgRateLimit a 3/1 (or 4/1) is held and resumed at the time its token
    // comes back; other requests are not limited.
    let mut h = H::with(|cfg| cfg.msg.msg_rate_limit = 1);
    let a = h.login("alice", PC);
    assert!(h.feed(a, 1, text("1", "2", b"one")).consumed_silently());
    let out = h.feed(a, 2, text("1", "2", b"two"));
    assert!(out.held());
    assert_eq!(out.summary(), ["resume-at c1"]);
    assert_eq!(h.writes(), 1);
    let time = h.feed(a, 3, Pdu::TimeRequest);
    assert!(time.consumed_silently(), "queued behind the pending write");
}

#[test]
fn a_full_writer_queue_holds_until_storage_has_room() {
    // Back-pressure: a refused write gives its slot back and the PDU is held; the storage
    // threads' room bell resumes it (on the next tick), and the retry goes through.
    let mut h = H::new();
    let a = h.login("alice", PC);
    *h.jobs.refuse_write.lock() = Some(Refused::Full);
    let out = h.feed(a, 1, text("1", "2", b"hi"));
    assert!(out.held() && out.actions.is_empty());
    assert_eq!((h.pending(a), h.count("storage_full_waits")), (0, 1));
    assert!(h.tick().summary().is_empty(), "no room yet");
    *h.jobs.refuse_write.lock() = None;
    h.st.room.ring();
    assert_eq!(h.tick().summary(), ["resume c1"]);
    assert!(h.feed(a, 1, text("1", "2", b"hi")).consumed_silently());
    assert_eq!(h.writes(), 1);
}

#[test]
fn a_storage_reply_resumes_connections_waiting_for_room() {
    // A reply means a job left a queue: parked connections try again at once.
    let mut h = H::new();
    let a = h.login("alice", PC);
    let b = h.login("bob", PC);
    h.feed(b, 1, Pdu::UnreadCountRequest);
    *h.jobs.refuse_read.lock() = true;
    assert!(h.feed(a, 2, Pdu::UnreadCountRequest).held());
    *h.jobs.refuse_read.lock() = false;
    let counts = Pdu::UnreadCountResponse(p::UnreadCountResponse { counts: Vec::new() });
    let out = h.answer_read(b, reply(counts, 1));
    assert_eq!(out.summary(), ["resume c1", "answer c2 3/8 r1"]);
}

#[test]
fn a_stopped_writer_drops_the_request() {
    // Refused::Closed (the process is stopping): no slot, counted.
    let mut h = H::new();
    let a = h.login("alice", PC);
    *h.jobs.refuse_write.lock() = Some(Refused::Closed);
    let failures = h.count("store_failures");
    assert!(h.feed(a, 1, text("1", "2", b"hi")).consumed_silently());
    assert_eq!((h.pending(a), h.count("store_failures")), (0, failures + 1));
}

// ================================================================ protocol errors (P-11)

/// A 3/5 with a body: bytes after the last field (P-6).
fn bad_body() -> Vec<u8> {
    raw_frame(3, 5, 9, &[0, 0, 0, 1])
}

#[test]
fn a_bad_body_stops_input_and_closes_after_flush() {
    // P-11
    let mut h = H::new();
    let a = h.login("alice", PC);
    let out = h.feed_bytes(a, &bad_body());
    assert_eq!(out.verdict, Some(Verdict::Consumed));
    assert_eq!(out.summary(), ["stop-input c1", "close c1"]);
    assert_eq!(h.count("proto_errors"), 1);
}

#[test]
fn a_bad_body_behind_a_pending_write_closes_after_its_answer() {
    // P-11, B-GEN-1: the requests accepted before the error still get their replies; the last
    // one closes. If they do not come in time, the flush limit closes.
    let mut h = H::new();
    let a = h.login("alice", PC);
    h.feed(a, 10, text("1", "2", b"hi"));
    h.feed(a, 11, text("1", "2", b"ho"));
    let out = h.feed_bytes(a, &bad_body());
    assert_eq!(out.summary(), ["stop-input c1", "deadline c1"]);
    let out = h.commit_next(WriteOut::Stored {
        msg_id: 1,
        create_time: STORED_AT,
    });
    assert_eq!(out.summary(), ["answer c1 3/2 r10"]);
    let out = h.commit_next(WriteOut::Stored {
        msg_id: 2,
        create_time: STORED_AT,
    });
    assert_eq!(out.summary(), ["answer c1 3/2 r11", "close c1"]);
    assert_eq!(h.timeout(a).summary(), ["close-now c1"]);
}

#[test]
fn a_short_request_is_served_and_counted() {
    // P-6: a client request may end before its last fields, which read as zero.
    let mut h = H::new();
    let a = h.login("alice", PC);
    let out = h.feed_bytes(a, &raw_frame(2, 8, 3, b""));
    assert_eq!(out.summary(), ["answer c1 2/9 r3"]);
    assert_eq!(h.count("short_requests"), 1);
}

// ================================================================ graceful stop

#[test]
fn a_stopping_worker_reports_quiet_once_no_reply_is_outstanding() {
    // Graceful stop (service.rs module doc): step 1 stops accepting and reading; step 2 is
    // acknowledged once every storage reply of this worker came back.
    let mut h = H::new();
    let a = h.login("alice", PC);
    h.feed(a, 1, Pdu::UnreadCountRequest);
    let (ack, acked) = unbounded();
    let deadline = Instant::now() + Duration::from_secs(60);
    let out = h.message(WorkerMsg::StopReading { ack, deadline });
    assert_eq!(out.summary(), ["stop-reading"]);
    assert_eq!(acked.try_recv(), Ok(0));
    assert!(h.accept(MSG_LISTENER).1.summary().is_empty());
    let (quiet, quieted) = unbounded();
    h.message(WorkerMsg::WriterDrained { quiet });
    h.tick();
    assert!(quieted.try_recv().is_err(), "a read is outstanding");
    let counts = Pdu::UnreadCountResponse(p::UnreadCountResponse { counts: Vec::new() });
    h.answer_read(a, reply(counts, 1));
    h.tick();
    assert_eq!(quieted.try_recv(), Ok(0));
    assert_eq!(h.message(WorkerMsg::Shutdown).summary(), ["exit"]);
}

// ================================================================ encoding helpers

#[test]
fn split_lists_fill_frames_exactly_to_max_out_pdu_size() {
    // B-USER-2 (encode_split): whole entries, frames filled up to MaxOutPduSize.
    use crate::proto::buddy::{UserStatus, UsersStatusResponse};
    // One entry = idstr "7" (5 bytes) + status (4) = 9 bytes; a frame = 16 + 9 n bytes.
    let max = 16 + 9 * 3;
    let h = H::with(|cfg| cfg.msg.max_out_pdu_size = max as u32);
    let split = |items: &[UserStatus<'_>]| {
        encode_split(&h.st, items, 5, |p| {
            Pdu::UsersStatusResponse(UsersStatusResponse { users: p.to_vec() })
        })
    };
    let one = |items: &[UserStatus<'_>]| {
        Pdu::UsersStatusResponse(UsersStatusResponse {
            users: items.to_vec(),
        })
        .to_frame(5)
    };
    let entry = UserStatus {
        user_id: Id::Raw(b"7"),
        status: 1,
    };
    let frames = split(&vec![entry.clone(); 7]);
    let sizes: Vec<usize> = frames.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![max, max, 16 + 9]);
    // An empty list is still one (empty) frame.
    assert_eq!(split(&[]), vec![one(&[])]);
    // An entry too large for any frame is left out; the frames close around it, in order.
    let long_id = [b'9'; 64];
    let huge = UserStatus {
        user_id: Id::Raw(&long_id),
        status: 1,
    };
    let frames = split(&[entry.clone(), huge, entry.clone()]);
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
    let Some(Pdu::MsgData(m)) = Pdu::decode(Dir::ToServer, 3, 1, &c2s[12..]).unwrap() else {
        panic!()
    };
    let d = super::chat::Delivery::of(&m, 10035, 10036, m.msg_data.into());
    assert_eq!(&d.encode(1_700_000_000)[..], &s2c[..]);
}
