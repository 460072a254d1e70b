//! The file service without sockets: each test feeds loop events and reads the outbox.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::*;
use crate::file::core::{Limits, UPLOAD_SEGMENT};
use crate::file::hub::{TokenCheck, TransMode};
use crate::net::service::Close;
use crate::proto::file::FileLogin;
use crate::proto::Id;

const A: u32 = 10; // sender
const B: u32 = 20; // receiver
const LOGIN: Duration = Duration::from_secs(10);
const IDLE: Duration = Duration::from_secs(60);

/// Every user's token is "tok-<id>".
struct Tokens;
impl TokenCheck for Tokens {
    fn valid_for(&self, token: &[u8], user: u32) -> bool {
        token == format!("tok-{user}").as_bytes()
    }
}

struct NoConns;
impl Conns<FileConn> for NoConns {
    fn get_mut(&mut self, _: ConnId) -> Option<&mut FileConn> {
        None
    }
}

struct Setup {
    svc: FileService,
    tasks: Sender<Task>,
    io: Receiver<IoJob>,
    full: Arc<AtomicBool>,
    counters: Arc<Counters>,
}

fn setup(io_cap: usize) -> Setup {
    let counters = Arc::new(Counters::default());
    let limits = Limits {
        task_timeout: IDLE,
        segment: UPLOAD_SEGMENT,
        max_tasks: 100,
    };
    let core = Core::new(
        Arc::new(Tokens),
        Arc::clone(&counters),
        limits,
        Arc::default(),
        false,
    );
    let (tasks, task_rx) = crossbeam_channel::bounded(16);
    let (io_tx, io) = crossbeam_channel::bounded(io_cap);
    let full = Arc::new(AtomicBool::new(false));
    let port = PortLimits {
        max_pdu: 1 << 20,
        max_pdu_before_login: 4096,
        login_timeout: LOGIN,
        idle_timeout: IDLE,
    };
    let svc = FileService::new(
        core,
        Arc::clone(&counters),
        port,
        task_rx,
        IoPort::new(io_tx, Arc::clone(&full)),
        None,
    );
    Setup {
        svc,
        tasks,
        io,
        full,
        counters,
    }
}

fn id(slot: u32) -> ConnId {
    ConnId {
        worker: LOOP_ID,
        slot,
        generation: 1,
    }
}

fn accept(s: &mut Setup, who: ConnId) -> (FileConn, Outbox<FileMsg>) {
    let mut out = Outbox::default();
    let peer = "127.0.0.1:5000".parse().unwrap();
    let conn = s.svc.accept(&mut out, who, 0, peer).unwrap();
    (conn, out)
}

/// Frames `bytes` as the loop does and hands the frame over.
fn feed(
    s: &mut Setup,
    who: ConnId,
    conn: &mut FileConn,
    bytes: &[u8],
) -> (Verdict, Outbox<FileMsg>) {
    let mut out = Outbox::default();
    assert_eq!(
        s.svc.frame(&mut out, who, conn, bytes),
        Framing::Complete(bytes.len())
    );
    let v = s.svc.on_frame(&mut out, who, conn, bytes);
    (v, out)
}

fn announce(s: &Setup, mode: TransMode, size: u32) -> Task {
    let t = Task {
        id: crate::auth::token_gen::new_token().unwrap(),
        from: A,
        to: B,
        name: b"f.bin".to_vec(),
        size,
        mode,
    };
    s.tasks.send(t.clone()).unwrap();
    t
}

fn login_frame(user: u32, task: &str, mode: u32) -> Vec<u8> {
    let tok = format!("tok-{user}");
    Pdu::FileLogin(FileLogin {
        user_id: Id::Num(user),
        token: tok.as_bytes(),
        task_id: task.as_bytes(),
        client_mode: mode,
    })
    .to_frame(7)
}

/// A logged-in online party.
fn party(s: &mut Setup, who: ConnId, user: u32, t: &Task, mode: u32) -> FileConn {
    let (mut conn, _) = accept(s, who);
    let (v, out) = feed(s, who, &mut conn, &login_frame(user, &t.id, mode));
    assert_eq!(v, Verdict::Consumed);
    assert_eq!(sent(&out, who).first(), Some(&(6, 2)));
    conn
}

/// Module/command of every PDU queued on `who`.
fn sent(out: &Outbox<FileMsg>, who: ConnId) -> Vec<(u16, u16)> {
    out.actions()
        .iter()
        .filter_map(|a| match a {
            Action::Send(c, Bytes::Owned(b)) | Action::Answer(c, Bytes::Owned(b)) if *c == who => {
                frame::header(b).map(|h| (h.module, h.command))
            }
            _ => None,
        })
        .collect()
}

fn holds(out: &Outbox<FileMsg>) -> Vec<ConnId> {
    out.actions()
        .iter()
        .filter_map(|a| match a {
            Action::Hold(c) => Some(*c),
            _ => None,
        })
        .collect()
}

fn resumes(out: &Outbox<FileMsg>) -> Vec<ConnId> {
    out.actions()
        .iter()
        .filter_map(|a| match a {
            Action::Resume(c) => Some(*c),
            _ => None,
        })
        .collect()
}

#[test]
fn login_timeout_then_idle_timeout() {
    let mut s = setup(16);
    let before = Instant::now();
    let (mut conn, out) = accept(&mut s, id(1));
    let at = out.actions().iter().find_map(|a| match a {
        Action::Deadline(c, Some(at)) if *c == id(1) => Some(*at),
        _ => None,
    });
    assert!(at.is_some_and(|at| at >= before + LOGIN && at <= Instant::now() + LOGIN));
    // No 6/1 in time: closed at once, counted.
    let mut out = Outbox::default();
    s.svc.on_timeout(&mut out, id(1), &mut conn);
    assert!(matches!(
        out.actions(),
        [Action::Close(c, Close::Now(_))] if *c == id(1)
    ));
    assert_eq!(s.counters.login_timeouts.load(Ordering::Relaxed), 1);
    // Logged in: every byte received moves the deadline (TaskTimeout); a timeout is idle.
    let t = announce(&s, TransMode::Online, 10);
    let (mut conn, _) = accept(&mut s, id(2));
    let (_, out) = feed(&mut s, id(2), &mut conn, &login_frame(A, &t.id, 1));
    assert!(out
        .actions()
        .iter()
        .any(|a| matches!(a, Action::IdleTimeout(c, Some(d)) if *c == id(2) && *d == IDLE)));
    let mut out = Outbox::default();
    s.svc.on_timeout(&mut out, id(2), &mut conn);
    assert!(matches!(
        out.actions(),
        [Action::Close(c, Close::Now(why))] if *c == id(2) && why.contains("TaskTimeout")
    ));
    assert_eq!(s.counters.login_timeouts.load(Ordering::Relaxed), 1);
}

#[test]
fn pdu_limit_is_the_small_one_until_login() {
    let mut s = setup(16);
    let t = announce(&s, TransMode::Online, 10);
    let (mut conn, _) = accept(&mut s, id(1));
    let mut big = Pdu::Heartbeat.to_frame(0);
    big.splice(..4, 5000u32.to_be_bytes());
    let mut out = Outbox::default();
    assert!(matches!(
        s.svc.frame(&mut out, id(1), &mut conn, &big),
        Framing::Invalid(_)
    ));
    feed(&mut s, id(1), &mut conn, &login_frame(A, &t.id, 1));
    assert_eq!(
        s.svc.frame(&mut out, id(1), &mut conn, &big),
        Framing::Partial
    );
}

#[test]
fn heartbeat_after_five_silent_seconds_to_logged_in_only() {
    let mut s = setup(16);
    let t = announce(&s, TransMode::Online, 10);
    let start = Instant::now();
    let _fresh = accept(&mut s, id(1));
    let _conn = party(&mut s, id(2), A, &t, 1);
    let mut out = Outbox::default();
    s.svc.on_tick(&mut out, start + Duration::from_secs(4));
    assert!(out.is_empty());
    s.svc
        .on_tick(&mut out, Instant::now() + Duration::from_secs(6));
    assert_eq!(sent(&out, id(2)), vec![(7, 1)]);
    assert!(sent(&out, id(1)).is_empty());
    assert!(s
        .svc
        .next_tick()
        .is_some_and(|t| t > Instant::now() + Duration::from_secs(10)));
}

#[test]
fn a_full_queue_holds_both_relay_parties_until_it_drains() {
    let mut s = setup(16);
    let t = announce(&s, TransMode::Online, 10);
    let mut snd = party(&mut s, id(1), A, &t, 1);
    let mut rcv = party(&mut s, id(2), B, &t, 2);
    let mut out = Outbox::default();
    s.svc.on_output_level(&mut out, id(2), &mut rcv, true);
    assert_eq!(holds(&out), vec![id(2), id(1)]);
    // The sender's next PDU would land on that queue: it stays in the input.
    let hb = Pdu::Heartbeat.to_frame(1);
    let (v, _) = feed(&mut s, id(1), &mut snd, &hb);
    assert_eq!(v, Verdict::Hold);
    let mut out = Outbox::default();
    s.svc.on_output_level(&mut out, id(2), &mut rcv, false);
    assert_eq!(resumes(&out), vec![id(2), id(1)]);
    let (v, out) = feed(&mut s, id(1), &mut snd, &hb);
    assert_eq!(v, Verdict::Consumed);
    assert_eq!(sent(&out, id(1)), vec![(7, 1)]);
}

#[test]
fn the_receivers_close_resumes_a_held_sender() {
    let mut s = setup(16);
    let t = announce(&s, TransMode::Online, 10);
    let _snd = party(&mut s, id(1), A, &t, 1);
    let mut rcv = party(&mut s, id(2), B, &t, 2);
    let mut out = Outbox::default();
    s.svc.on_output_level(&mut out, id(2), &mut rcv, true);
    let mut out = Outbox::default();
    s.svc.on_closed(&mut out, id(2), rcv, "gone");
    assert_eq!(resumes(&out), vec![id(1)]);
}

#[test]
fn io_jobs_over_the_cap_wait_and_hold_their_connection() {
    let mut s = setup(1);
    let up = announce(&s, TransMode::Offline, 10);
    let (mut a, _) = accept(&mut s, id(1));
    // The upload's first job fills the channel; the download's open waits in the backlog.
    let (_, out) = feed(&mut s, id(1), &mut a, &login_frame(A, &up.id, 3));
    assert_eq!(holds(&out), vec![id(1)]); // its own job is in flight
    let (mut b, _) = accept(&mut s, id(2));
    let (_, out) = feed(&mut s, id(2), &mut b, &login_frame(B, &up.id, 4));
    assert_eq!(holds(&out), vec![id(2)]);
    assert_eq!(s.counters.channel_full_waits.load(Ordering::Relaxed), 1);
    assert!(
        s.full.load(Ordering::SeqCst),
        "the io thread is asked for room"
    );
    // The io thread takes a job and reports room: the waiting job moves on.
    assert!(matches!(s.io.try_recv(), Ok(IoJob::Begin { .. })));
    assert!(s.full.swap(false, Ordering::SeqCst));
    let mut out = Outbox::default();
    s.svc.on_message(&mut out, &mut NoConns, FileMsg::IoRoom);
    assert!(matches!(s.io.try_recv(), Ok(IoJob::OpenDownload { .. })));
    assert!(s.svc.io_held.is_empty());
    // Still waiting for its own answer, so not resumed yet.
    assert!(resumes(&out).is_empty());
}

#[test]
fn shutdown_exits_the_loop() {
    let mut s = setup(1);
    let mut out = Outbox::default();
    s.svc.on_message(&mut out, &mut NoConns, FileMsg::Shutdown);
    assert!(matches!(out.actions(), [Action::Exit { .. }]));
}
