//! The admin service without sockets: events in, actions out; a real database and reader pool,
//! the writer's queue read by the test (which answers the writes itself).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::*;
use crate::config::Config;
use crate::msg::directory::Directory;
use crate::msg::group_cache::GroupCache;
use crate::msg::outlet::WriteKind;
use crate::msg::state::State;
use crate::store::readers::Readers;
use crate::store::testutil::TempDb;
use crate::store::writer::{WriteOp, WriteOut};
use crate::store::{self, departs, groups, users, StoreError};

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

struct Kit {
    svc: AdminService,
    st: Arc<State>,
    rx: Receiver<AdminMsg>,
    writes: Receiver<WriteJob<WriteTag>>,
    conns: HashMap<ConnId, HttpConn>,
    _poll: mio::Poll,
    _db: TempDb,
}

impl Conns<HttpConn> for HashMap<ConnId, HttpConn> {
    fn get_mut(&mut self, id: ConnId) -> Option<&mut HttpConn> {
        HashMap::get_mut(self, &id)
    }
}

/// One reader thread with a queue of one job; a writer queue of `write_cap` jobs.
fn kit(write_cap: usize) -> Kit {
    let t = TempDb::new("admin-svc");
    let mut cfg = Config::default();
    cfg.store.data_dir = t.dir.clone();
    cfg.admin.admin_token = Some(TOKEN.into());
    let db = store::open(&cfg.db_path(), cfg.store.db_sync).unwrap();
    departs::insert(&db, "HQ", "", 0, 0).unwrap();
    let room: Arc<crate::store::room::Room> = Default::default();
    let readers =
        Readers::spawn(&cfg.db_path(), cfg.store.db_sync, 1, 1, Arc::clone(&room)).unwrap();
    let (wtx, writes) = crossbeam_channel::bounded(write_cap);
    let st = Arc::new(State::new(
        cfg,
        Directory::new(users::all(&db).unwrap(), departs::all(&db).unwrap()),
        Arc::new(GroupCache::new(groups::all_live(&db).unwrap())),
        crate::msg::state::Pools {
            writer: wtx,
            readers,
            hashers: crate::auth::hashers::Hashers::none(),
            room,
        },
        "127.0.0.1:8000".parse().unwrap(),
    ));
    let poll = mio::Poll::new().unwrap();
    let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
    let (tx, rx) = crossbeam_channel::bounded(512 + CHANNEL_SLACK);
    let me = WorkerHandle { tx, waker };
    let (relay_tx, relay_rx) = crossbeam_channel::unbounded();
    let to_loop = me.clone();
    std::thread::spawn(move || super::super::job::relay(relay_rx, to_loop));
    Kit {
        svc: AdminService::new(Api::new(Arc::clone(&st)), me, relay_tx),
        st,
        rx,
        writes,
        conns: HashMap::new(),
        _poll: poll,
        _db: t,
    }
}

fn conn(slot: u32) -> ConnId {
    ConnId {
        worker: LOOP_ID,
        slot,
        generation: 1,
    }
}

fn request(method: &str, path: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The answers among `acts`: (connection, status line and body).
fn answers(acts: &[Action<AdminMsg>]) -> Vec<(ConnId, String)> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Answer(id, Bytes::Owned(v)) => Some((*id, String::from_utf8_lossy(v).into())),
            _ => None,
        })
        .collect()
}

fn has(acts: &[Action<AdminMsg>], f: impl Fn(&Action<AdminMsg>) -> bool) -> bool {
    acts.iter().any(f)
}

fn status(answer: &str) -> &str {
    answer.get(9..12).unwrap_or_default()
}

impl Kit {
    fn accept(&mut self, slot: u32) -> ConnId {
        let id = conn(slot);
        let mut out = Outbox::default();
        let c = self
            .svc
            .accept(&mut out, id, 0, "127.0.0.1:1".parse().unwrap())
            .unwrap();
        self.conns.insert(id, c);
        id
    }

    /// Frames one request of `bytes` and hands it over, as the loop does.
    fn send(&mut self, id: ConnId, bytes: &[u8]) -> Vec<Action<AdminMsg>> {
        let mut out = Outbox::default();
        let c = self.conns.get_mut(&id).unwrap();
        match self.svc.frame(&mut out, id, c, bytes) {
            Framing::Complete(n) => {
                assert_eq!(n, bytes.len());
                let v = self.svc.on_frame(&mut out, id, c, bytes);
                assert_eq!(v, Verdict::Consumed);
            }
            Framing::Partial => {}
            Framing::Invalid(why) => self.svc.on_bad_input(&mut out, id, c, &why),
        }
        out.take()
    }

    /// Handles the next message from the pool or the relay.
    fn pump(&mut self) -> Vec<Action<AdminMsg>> {
        let msg = self.rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let mut out = Outbox::default();
        self.svc.on_message(&mut out, &mut self.conns, msg);
        out.take()
    }

    /// Answers the next write from the writer's queue with `result`.
    fn commit(&self, result: Result<WriteOut, StoreError>) -> WriteOp {
        let job = self.writes.recv_timeout(Duration::from_secs(5)).unwrap();
        let WriteKind::Admin { reply, .. } = job.tag.kind else {
            panic!("not an admin write")
        };
        reply.send(result).unwrap();
        job.op
    }
}

/// Occupies the only reader thread until the returned sender is dropped, and fills its queue.
fn block_readers(st: &State) -> Sender<()> {
    let (started_tx, started) = crossbeam_channel::unbounded();
    let (release, wait) = crossbeam_channel::unbounded::<()>();
    st.readers
        .submit(Box::new(move |_: &rusqlite::Connection| {
            started_tx.send(()).unwrap();
            let _ = wait.recv();
        }))
        .unwrap_or_else(|_| panic!("queue full"));
    started.recv().unwrap();
    st.readers
        .submit(Box::new(|_: &rusqlite::Connection| {}))
        .unwrap_or_else(|_| panic!("queue full"));
    release
}

#[test]
fn answers_without_the_database_come_at_once() {
    let mut k = kit(4);
    let a = k.accept(1);
    let acts = k.send(a, &request("GET", "/v1/health", ""));
    let got = answers(&acts);
    assert_eq!(got.len(), 1);
    assert_eq!(status(&got[0].1), "200");
    assert!(!has(&acts, |x| matches!(x, Action::Hold(_))));
    // A wrong token: 401 before anything (no write reaches the queue).
    let acts = k.send(
        a,
        b"POST /v1/departments HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
    );
    assert_eq!(status(&answers(&acts)[0].1), "401");
    assert!(k.writes.try_recv().is_err());
    // 100-continue from the head, once.
    let head = format!(
        "POST /v1/departments HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    );
    let acts = k.send(a, head.as_bytes());
    assert_eq!(answers(&acts)[0].1, "HTTP/1.1 100 Continue\r\n\r\n");
    assert!(answers(&k.send(a, head.as_bytes())).is_empty());
    // The framer's refusal: its answer, then a lingering close.
    let b = k.accept(2);
    let acts = k.send(b, b"POST / HTTP/1.1\r\nContent-Length: 9999999\r\n\r\n");
    let got = answers(&acts);
    assert_eq!(status(&got[0].1), "413");
    assert!(got[0].1.contains("Connection: close\r\n"));
    assert!(has(&acts, |x| matches!(
        x,
        Action::Close(_, Close::Linger(_))
    )));
}

#[test]
fn a_read_holds_the_connection_until_its_answer() {
    let mut k = kit(4);
    let a = k.accept(1);
    let acts = k.send(a, &request("GET", "/v1/departments", ""));
    assert!(answers(&acts).is_empty());
    assert!(has(&acts, |x| matches!(x, Action::Hold(id) if *id == a)));
    assert!(has(&acts, |x| matches!(x, Action::Deadline(_, None))));
    let acts = k.pump();
    let got = answers(&acts);
    assert_eq!(got.len(), 1);
    assert_eq!(status(&got[0].1), "200");
    assert!(got[0].1.contains("\"title\":\"HQ\""));
    assert!(has(&acts, |x| matches!(x, Action::Resume(id) if *id == a)));
    assert!(has(&acts, |x| matches!(x, Action::Deadline(_, Some(_)))));
}

#[test]
fn a_full_writer_queue_answers_503_with_retry_after() {
    let mut k = kit(1);
    let (tx, _rx) = crossbeam_channel::bounded(1);
    let filler = WriteJob {
        op: WriteOp::CreateDepart {
            title: "filler".into(),
            description: String::new(),
            parent_id: 0,
            leader_id: 0,
        },
        tag: WriteTag::admin(tx, AdminCache::Nothing, None),
    };
    k.st.writer
        .try_send(filler)
        .unwrap_or_else(|_| panic!("queue full"));
    let a = k.accept(1);
    let acts = k.send(
        a,
        &request("POST", "/v1/departments", "{\"title\":\"R&D\"}"),
    );
    let got = answers(&acts);
    assert_eq!(status(&got[0].1), "503", "{}", got[0].1);
    assert!(got[0].1.contains("Retry-After: 1\r\n"));
    assert!(!has(&acts, |x| matches!(x, Action::Hold(_))));
    // The change slot is free again: the next change is tried (and refused) too.
    let acts = k.send(
        a,
        &request("POST", "/v1/departments", "{\"title\":\"R&D\"}"),
    );
    assert_eq!(status(&answers(&acts)[0].1), "503");
    assert!(k.svc.jobs.is_empty());
}

#[test]
fn a_full_pool_refuses_before_a_commit_and_waits_after_one() {
    let mut k = kit(4);
    let release = block_readers(&k.st);
    let a = k.accept(1);
    let acts = k.send(a, &request("GET", "/v1/departments", ""));
    let got = answers(&acts);
    assert_eq!(status(&got[0].1), "503");
    assert!(got[0].1.contains("Retry-After: 1\r\n"));

    // A change writes first; the read after its commit finds the pool full and waits.
    let acts = k.send(
        a,
        &request("POST", "/v1/departments", "{\"title\":\"R&D\"}"),
    );
    assert!(answers(&acts).is_empty());
    let op = k.commit(Ok(WriteOut::Created { id: 1 }));
    assert!(matches!(op, WriteOp::CreateDepart { .. }));
    let acts = k.pump();
    assert!(answers(&acts).is_empty());
    assert_eq!(k.svc.retry.len(), 1);
    assert!(!k.st.room.rang(k.svc.room_id), "nothing rang yet");
    drop(release);
    let mut out = Outbox::default();
    // The blocked reader takes the next job off its queue and rings the room; the retry
    // gets in on the tick after the ring (no timer).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !k.svc.retry.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        k.svc.on_tick(&mut out, Instant::now());
    }
    assert!(k.svc.retry.is_empty());
    let got = answers(&k.pump());
    assert_eq!(status(&got[0].1), "201", "{}", got[0].1);
}

#[test]
fn changes_run_one_at_a_time_in_arrival_order() {
    let mut k = kit(8);
    let a = k.accept(1);
    let b = k.accept(2);
    assert!(
        answers(&k.send(a, &request("POST", "/v1/departments", "{\"title\":\"A\"}"))).is_empty()
    );
    assert!(
        answers(&k.send(b, &request("POST", "/v1/departments", "{\"title\":\"B\"}"))).is_empty()
    );
    // Only A's write is queued; B waits for A's answer.
    let WriteOp::CreateDepart { title, .. } = k.commit(Ok(WriteOut::Created { id: 1 })) else {
        panic!()
    };
    assert_eq!(title, "A");
    assert!(k.writes.try_recv().is_err());
    assert!(answers(&k.pump()).is_empty()); // the read after the commit is submitted
    let acts = k.pump();
    let got = answers(&acts);
    assert_eq!((got[0].0, status(&got[0].1)), (a, "201"));
    let WriteOp::CreateDepart { title, .. } = k.commit(Err(StoreError::Invalid("no".into())))
    else {
        panic!()
    };
    assert_eq!(title, "B");
    let got = answers(&k.pump());
    assert_eq!((got[0].0, status(&got[0].1)), (b, "400"));
    assert!(k.svc.jobs.is_empty() && !k.svc.change_running);
}

#[test]
fn a_closed_connection_drops_the_answer_not_the_change() {
    let mut k = kit(4);
    let a = k.accept(1);
    k.send(a, &request("POST", "/v1/departments", "{\"title\":\"A\"}"));
    k.conns.remove(&a); // closed by the peer meanwhile
    k.commit(Ok(WriteOut::Created { id: 1 }));
    k.pump(); // the post-commit read still runs (the directory reload)
    assert!(answers(&k.pump()).is_empty());
    assert!(k.svc.jobs.is_empty() && !k.svc.change_running);
}
