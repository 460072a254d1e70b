//! Core of the file role without sockets or disk: each test feeds events and reads the acts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use memmap2::MmapMut;

use super::*;
use crate::proto::frame;
use crate::proto::Dir;

const A: u32 = 10; // sender
const B: u32 = 20; // receiver
const C: u32 = 30; // somebody else
const TIMEOUT: Duration = Duration::from_secs(60);

/// Every user's token is "tok-<id>".
struct Tokens;
impl TokenCheck for Tokens {
    fn valid_for(&self, token: &[u8], user: u32) -> bool {
        token == format!("tok-{user}").as_bytes()
    }
}

fn core(linked: bool) -> Core {
    core_with(linked, 1000)
}

fn core_with(linked: bool, max_tasks: usize) -> Core {
    let limits = Limits {
        task_timeout: TIMEOUT,
        segment: UPLOAD_SEGMENT,
        max_tasks,
    };
    Core::new(
        Arc::new(Tokens),
        Arc::new(Counters::default()),
        limits,
        Arc::default(),
        linked,
    )
}

fn task(mode: TransMode, size: u32) -> Task {
    Task {
        id: crate::auth::token_gen::new_token().unwrap(),
        from: A,
        to: B,
        name: b"f.bin".to_vec(),
        size,
        mode,
    }
}

fn cid(n: usize) -> Cid {
    Cid {
        slot: n,
        generation: 1,
    }
}

/// Runs one client PDU through the core as the worker does.
fn feed(c: &mut Core, who: Cid, pdu: Pdu<'_>, reserved: u16, now: Instant) -> Vec<Act> {
    let raw = pdu.to_frame(reserved);
    let h = frame::header(&raw).unwrap();
    let body = &raw[frame::HEADER_LEN..];
    let p = Pdu::decode(Dir::ToServer, h.module, h.command, body)
        .unwrap()
        .unwrap();
    c.on_pdu(who, &h, &raw, p, now)
}

fn login(c: &mut Core, who: Cid, user: u32, task: &str, mode: u32, now: Instant) -> Vec<Act> {
    let tok = format!("tok-{user}");
    let pdu = Pdu::FileLogin(FileLogin {
        user_id: Id::Num(user),
        token: tok.as_bytes(),
        task_id: task.as_bytes(),
        client_mode: mode,
    });
    feed(c, who, pdu, 7, now)
}

/// One queued PDU: (target, module/command, reserved, bytes).
type Sent = (Cid, (u16, u16), u16, Vec<u8>);

/// Every Send among the acts (a mapped send as the bytes the socket gets: head + map range).
fn sends(acts: &[Act]) -> Vec<Sent> {
    acts.iter()
        .filter_map(|a| {
            let (c, b) = match a {
                Act::Send(c, b) => (c, b.clone()),
                Act::SendMapped(c, head, map, range) => {
                    (c, [&head[..], &map[range.clone()]].concat())
                }
                _ => return None,
            };
            let h = frame::header(&b).unwrap();
            assert_eq!(h.length as usize, b.len(), "length field");
            Some((*c, (h.module, h.command), h.reserved, b))
        })
        .collect()
}

fn result_of(bytes: &[u8]) -> u32 {
    let h = frame::header(bytes).unwrap();
    match Pdu::decode(
        Dir::ToClient,
        h.module,
        h.command,
        &bytes[frame::HEADER_LEN..],
    )
    .unwrap()
    .unwrap()
    {
        Pdu::FileLoginResponse(r) => r.result,
        Pdu::PullDataResponse(r) => r.result,
        other => panic!("no result in {other:?}"),
    }
}

fn closes(acts: &[Act], who: Cid) -> bool {
    acts.iter()
        .any(|a| matches!(a, Act::CloseAfterFlush(c) if *c == who))
}

#[test]
fn online_parties_log_in_and_the_second_hears_peer_ready() {
    // B-FILE-4, B-FILE-5
    let now = Instant::now();
    let mut c = core(false);
    let t = task(TransMode::Online, 100);
    c.task_created(t.clone(), now);
    for n in 1..=2 {
        c.accepted(cid(n));
    }
    let a = login(&mut c, cid(1), A, &t.id, 1, now);
    let s = sends(&a);
    assert_eq!(s.len(), 1, "only 6/2, the peer is not there yet");
    assert_eq!((s[0].1, s[0].2, result_of(&s[0].3)), ((6, 2), 7, 0));
    let b = login(&mut c, cid(2), B, &t.id, 2, now);
    let s = sends(&b);
    assert_eq!(s.len(), 2);
    assert_eq!(
        (s[1].0, s[1].1, s[1].2),
        (cid(2), (6, 3), 0),
        "peer ready is a push"
    );
    assert!(c.logged_in(cid(1)) && c.logged_in(cid(2)));
    // A second 6/1 on a connection is ignored.
    assert!(login(&mut c, cid(2), B, &t.id, 2, now).is_empty());
}

#[test]
fn refused_logins_get_result_1_and_close() {
    // B-FILE-4 table
    let now = Instant::now();
    let mut c = core(false);
    let on = task(TransMode::Online, 10);
    let off = task(TransMode::Offline, 10);
    c.task_created(on.clone(), now);
    c.task_created(off.clone(), now);
    let cases: Vec<(u32, &str, u32, &str)> = vec![
        (A, &on.id, 2, "sender as receiver"),
        (B, &on.id, 1, "receiver as sender"),
        (C, &on.id, 1, "not a party"),
        (A, &on.id, 3, "upload on an online task"),
        (A, &off.id, 1, "realtime on an offline task"),
        (B, &off.id, 3, "receiver uploading"),
        (A, "../x", 3, "unknown task"),
        (A, &off.id, 9, "no such mode"),
    ];
    for (i, (user, task_id, mode, why)) in cases.into_iter().enumerate() {
        let who = cid(100 + i);
        c.accepted(who);
        let acts = login(&mut c, who, user, task_id, mode, now);
        let s = sends(&acts);
        assert_eq!(result_of(&s[0].3), 1, "{why}");
        assert!(closes(&acts, who), "{why}");
        assert!(!c.logged_in(who));
    }
    // Wrong token: another user's.
    let who = cid(200);
    c.accepted(who);
    let pdu = Pdu::FileLogin(FileLogin {
        user_id: Id::Num(A),
        token: b"tok-20",
        task_id: off.id.as_bytes(),
        client_mode: 3,
    });
    let acts = feed(&mut c, who, pdu, 1, now);
    assert_eq!(result_of(&sends(&acts)[0].3), 1);
    // One uploader at a time.
    c.accepted(cid(1));
    c.accepted(cid(2));
    assert!(!closes(&login(&mut c, cid(1), A, &off.id, 3, now), cid(1)));
    assert!(closes(&login(&mut c, cid(2), A, &off.id, 3, now), cid(2)));
}

#[test]
fn online_relay_and_its_errors() {
    // B-FILE-6, B-FILE-7, P-17
    let now = Instant::now();
    let mut c = core(false);
    let t = task(TransMode::Online, 1000);
    c.task_created(t.clone(), now);
    c.accepted(cid(1));
    c.accepted(cid(2));
    login(&mut c, cid(2), B, &t.id, 2, now);
    let pull = |user| {
        Pdu::PullDataRequest(PullDataRequest {
            task_id: t.id.as_bytes(),
            user_id: Id::Num(user),
            mode: 1,
            offset: 0,
            size: 10,
        })
    };
    // Sender not connected yet: result 5 to the receiver.
    let acts = feed(&mut c, cid(2), pull(B), 3, now);
    let s = sends(&acts);
    assert_eq!((s[0].0, s[0].2, result_of(&s[0].3)), (cid(2), 3, 5));
    login(&mut c, cid(1), A, &t.id, 1, now);
    // Receiver's pull goes to the sender unchanged.
    let raw = pull(B).to_frame(3);
    let acts = feed(&mut c, cid(2), pull(B), 3, now);
    assert!(matches!(&acts[..], [Act::Send(to, b)] if *to == cid(1) && *b == raw));
    // A pull naming another user, or from the sender's side: result 6.
    let s = sends(&feed(&mut c, cid(2), pull(C), 4, now));
    assert_eq!((s[0].0, result_of(&s[0].3)), (cid(2), 6));
    let s = sends(&feed(&mut c, cid(1), pull(B), 4, now));
    assert_eq!((s[0].0, result_of(&s[0].3)), (cid(1), 6));
    // The sender's answer goes to the receiver unchanged.
    let data = Pdu::PullDataResponse(PullDataResponse {
        result: 0,
        task_id: t.id.as_bytes(),
        user_id: Id::Num(A),
        offset: 0,
        data: b"0123456789",
    });
    let raw = data.to_frame(9);
    let acts = feed(&mut c, cid(1), data, 9, now);
    assert!(matches!(&acts[..], [Act::Send(to, b)] if *to == cid(2) && *b == raw));
    // Cancel from the receiver: forwarded, task over, both close.
    let cancel = Pdu::FileState(FileState {
        state: 1,
        task_id: t.id.as_bytes(),
        user_id: Id::Num(B),
    });
    let acts = feed(&mut c, cid(2), cancel, 5, now);
    assert_eq!(sends(&acts)[0].0, cid(1));
    assert!(closes(&acts, cid(1)) && closes(&acts, cid(2)));
    assert_eq!(c.task_count(), 0);
}

/// Drives an upload of `size` bytes through the io results; returns the acts of the finish.
fn upload(c: &mut Core, who: Cid, t: &Task, now: Instant) -> Vec<Act> {
    let acts = login(c, who, A, &t.id, 3, now);
    assert!(matches!(acts.last(), Some(Act::Io(IoJob::Begin { .. }))));
    assert!(c.waiting(who), "input waits for the temp file");
    let mut acts = c.io_done(
        IoDone::Began {
            task_id: t.id.clone(),
            by: who,
            ok: true,
        },
        now,
    );
    let mut expect_offset = 0u32;
    loop {
        let s = sends(&acts);
        let Some((_, (6, 4), 0, bytes)) = s.first() else {
            return acts;
        };
        let h = frame::header(bytes).unwrap();
        let Pdu::PullDataRequest(r) = Pdu::decode(Dir::ToClient, 6, 4, &bytes[frame::HEADER_LEN..])
            .unwrap()
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(h.reserved, 0);
        assert_eq!(
            (r.offset, r.mode, r.user_id.value()),
            (expect_offset, 2, Some(A))
        );
        assert_eq!(
            r.size,
            (t.size - r.offset).min(UPLOAD_SEGMENT),
            "B-FILE-8 segments"
        );
        let data = vec![1u8; r.size as usize];
        let answer = Pdu::PullDataResponse(PullDataResponse {
            result: 0,
            task_id: t.id.as_bytes(),
            user_id: Id::Num(A),
            offset: r.offset,
            data: &data,
        });
        let a = feed(c, who, answer, 0, now);
        assert!(matches!(&a[..], [Act::Io(IoJob::Append { .. })]));
        assert!(c.waiting(who));
        expect_offset += r.size;
        acts = c.io_done(
            IoDone::Appended {
                task_id: t.id.clone(),
                by: who,
                ok: true,
            },
            now,
        );
        if expect_offset == t.size {
            assert!(matches!(&acts[..], [Act::Io(IoJob::Finish { .. })]));
            return c.io_done(
                IoDone::Finished {
                    task_id: t.id.clone(),
                    by: who,
                    ok: true,
                },
                now,
            );
        }
    }
}

#[test]
fn offline_upload_pulls_segments_then_says_done() {
    // B-FILE-8, B-FILE-9
    let now = Instant::now();
    let mut c = core(false);
    let t = task(TransMode::Offline, 2 * UPLOAD_SEGMENT + 5);
    c.task_created(t.clone(), now);
    c.accepted(cid(1));
    let acts = upload(&mut c, cid(1), &t, now);
    let s = sends(&acts);
    assert_eq!((s[0].1, s[0].2), ((6, 3), 0), "done is a push");
    assert!(closes(&acts, cid(1)));
    assert_eq!(c.task_count(), 0, "the upload task has ended");
}

#[test]
fn three_bad_segments_abandon_and_a_new_login_restarts_at_zero() {
    // B-FILE-8, B-FILE-10
    let now = Instant::now();
    let mut c = core(false);
    let t = task(TransMode::Offline, 100);
    c.task_created(t.clone(), now);
    c.accepted(cid(1));
    login(&mut c, cid(1), A, &t.id, 3, now);
    c.io_done(
        IoDone::Began {
            task_id: t.id.clone(),
            by: cid(1),
            ok: true,
        },
        now,
    );
    let bad = |off| {
        Pdu::PullDataResponse(PullDataResponse {
            result: 0,
            task_id: t.id.as_bytes(),
            user_id: Id::Num(A),
            offset: off,
            data: &[0u8; 100],
        })
    };
    for _ in 0..2 {
        let s = sends(&feed(&mut c, cid(1), bad(7), 0, now));
        assert_eq!(s[0].1, (6, 4), "the same 6/4 again");
    }
    let acts = feed(&mut c, cid(1), bad(7), 0, now);
    assert!(matches!(acts[0], Act::Io(IoJob::Abandon { .. })));
    assert!(closes(&acts, cid(1)));
    // The task lives on: a new uploader starts at offset 0 and completes.
    c.closed(cid(1), now);
    c.accepted(cid(2));
    let acts = upload(&mut c, cid(2), &t, now);
    assert_eq!(sends(&acts)[0].1, (6, 3));
}

#[test]
fn a_disconnect_mid_upload_abandons_and_stale_io_is_ignored() {
    // B-FILE-10
    let now = Instant::now();
    let mut c = core(false);
    let t = task(TransMode::Offline, 100);
    c.task_created(t.clone(), now);
    c.accepted(cid(1));
    login(&mut c, cid(1), A, &t.id, 3, now);
    let acts = c.closed(cid(1), now);
    assert!(matches!(&acts[..], [Act::Io(IoJob::Abandon { .. })]));
    c.accepted(cid(2));
    login(&mut c, cid(2), A, &t.id, 3, now);
    // The first attempt's result arrives late: nothing happens.
    let late = c.io_done(
        IoDone::Began {
            task_id: t.id.clone(),
            by: cid(1),
            ok: true,
        },
        now,
    );
    assert!(late.is_empty());
    assert!(c.waiting(cid(2)));
}

#[test]
fn tasks_without_traffic_expire() {
    // B-FILE-15
    let t0 = Instant::now();
    let mut c = core(false);
    let idle = task(TransMode::Online, 10);
    let busy = task(TransMode::Online, 10);
    c.task_created(idle.clone(), t0);
    c.task_created(busy.clone(), t0);
    c.accepted(cid(1));
    login(&mut c, cid(1), A, &busy.id, 1, t0 + TIMEOUT / 2);
    assert!(c.expire(t0 + TIMEOUT - Duration::from_millis(1)).is_empty());
    c.expire(t0 + TIMEOUT);
    assert_eq!(c.task_count(), 1, "the one logged in to lives on");
    let acts = c.expire(t0 + TIMEOUT / 2 + TIMEOUT);
    assert!(closes(&acts, cid(1)), "its connection is closed");
    assert_eq!(c.task_count(), 0);
    c.accepted(cid(2));
    let acts = login(&mut c, cid(2), A, &idle.id, 1, t0 + 2 * TIMEOUT);
    assert_eq!(result_of(&sends(&acts)[0].3), 1);
}

#[test]
fn offline_download_serves_from_the_map() {
    // B-FILE-11
    let now = Instant::now();
    let mut c = core(false);
    let t = task(TransMode::Offline, 300_000);
    c.accepted(cid(1));
    let acts = login(&mut c, cid(1), B, &t.id, 4, now);
    assert!(matches!(
        &acts[..],
        [Act::Io(IoJob::OpenDownload { user: B, .. })]
    ));
    assert!(c.waiting(cid(1)));
    let mut m = MmapMut::map_anon(300_000).unwrap();
    for (i, b) in m.iter_mut().enumerate() {
        *b = i as u8;
    }
    let rec = OfflineFile {
        task_id: t.id.clone(),
        from_id: A,
        to_id: B,
        file_name: t.name.clone(),
        file_size: 300_000,
        created: 0,
    };
    let acts = c.io_done(
        IoDone::Opened {
            cid: cid(1),
            file: Some((rec, Arc::new(m.make_read_only().unwrap()))),
        },
        now,
    );
    assert_eq!(result_of(&sends(&acts)[0].3), 0);
    assert!(!c.waiting(cid(1)));
    let pull = |user, offset, size| {
        Pdu::PullDataRequest(PullDataRequest {
            task_id: t.id.as_bytes(),
            user_id: Id::Num(user),
            mode: 2,
            offset,
            size,
        })
    };
    let s = sends(&feed(&mut c, cid(1), pull(B, 5, 1_000_000), 8, now));
    let Pdu::PullDataResponse(r) = Pdu::decode(Dir::ToClient, 6, 5, &s[0].3[frame::HEADER_LEN..])
        .unwrap()
        .unwrap()
    else {
        panic!()
    };
    assert_eq!((r.result, r.offset, r.user_id.value()), (0, 5, Some(A)));
    assert_eq!(r.data.len(), MAX_PULL as usize, "at most 256 KiB per pull");
    assert_eq!(r.data[0], 5);
    assert_eq!(s[0].2, 8, "a response keeps reserved");
    assert_eq!(
        result_of(&sends(&feed(&mut c, cid(1), pull(B, 300_001, 1), 0, now))[0].3),
        11
    );
    assert_eq!(
        result_of(&sends(&feed(&mut c, cid(1), pull(C, 0, 1), 0, now))[0].3),
        6
    );
    let acts = feed(&mut c, cid(1), pull(B, 300_000, 10), 0, now);
    let s = sends(&acts);
    assert_eq!((s[0].1, s[1].1), ((6, 5), (6, 3)), "empty data, then done");
    assert!(closes(&acts, cid(1)));
    // A refused lookup (no record, wrong receiver) is a refused login.
    c.accepted(cid(2));
    login(&mut c, cid(2), C, &t.id, 4, now);
    let acts = c.io_done(
        IoDone::Opened {
            cid: cid(2),
            file: None,
        },
        now,
    );
    assert_eq!(result_of(&sends(&acts)[0].3), 1);
    assert!(closes(&acts, cid(2)));
}

#[test]
fn a_linked_core_waits_briefly_for_a_task_announcement() {
    // File role alone: the link's announcement may trail the client's 6/1.
    let now = Instant::now();
    let mut c = core(true);
    let t = task(TransMode::Offline, 10);
    c.accepted(cid(1));
    assert!(login(&mut c, cid(1), A, &t.id, 3, now).is_empty());
    assert!(c.waiting(cid(1)));
    let acts = c.task_created(t.clone(), now);
    assert_eq!(result_of(&sends(&acts)[0].3), 0);
    assert!(acts
        .iter()
        .any(|a| matches!(a, Act::Resume(x) if *x == cid(1))));
    // Never announced: refused once the grace is over.
    c.accepted(cid(2));
    let other = task(TransMode::Offline, 10);
    assert!(login(&mut c, cid(2), A, &other.id, 3, now).is_empty());
    assert!(c.next_expiry().is_some_and(|t| t <= now + LINK_GRACE));
    let acts = c.expire(now + LINK_GRACE);
    assert_eq!(result_of(&sends(&acts)[0].3), 1);
    assert!(closes(&acts, cid(2)));
}

#[test]
fn live_tasks_are_capped_and_counted() {
    // MaxFileTasks: over the cap an announcement is dropped (its 6/1 is refused).
    let now = Instant::now();
    // The hub reserved a place for each of the 3 announcements.
    let live = Arc::new(std::sync::atomic::AtomicUsize::new(3));
    let limits = Limits {
        task_timeout: TIMEOUT,
        segment: UPLOAD_SEGMENT,
        max_tasks: 2,
    };
    let mut c = Core::new(
        Arc::new(Tokens),
        Arc::new(Counters::default()),
        limits,
        Arc::clone(&live),
        false,
    );
    let ts: Vec<Task> = (0..3).map(|_| task(TransMode::Online, 10)).collect();
    for t in &ts {
        c.task_created(t.clone(), now);
    }
    assert_eq!((c.task_count(), live.load(Ordering::Relaxed)), (2, 2));
    c.accepted(cid(1));
    let acts = login(&mut c, cid(1), A, &ts[2].id, 1, now);
    assert_eq!(result_of(&sends(&acts)[0].3), 1);
    c.expire(now + TIMEOUT);
    assert_eq!((c.task_count(), live.load(Ordering::Relaxed)), (0, 0));
}

#[test]
fn an_upload_stored_after_its_uploader_left_ends_the_task() {
    // B-FILE-9/10: the last segment was in and the file is being placed when the uploader
    // disconnects and logs in again; the placement succeeds, so the task is over and the new
    // attempt is stopped (no second file under the same task id).
    let now = Instant::now();
    let mut c = core(false);
    let t = task(TransMode::Offline, 10);
    c.task_created(t.clone(), now);
    c.accepted(cid(1));
    login(&mut c, cid(1), A, &t.id, 3, now);
    c.closed(cid(1), now);
    c.accepted(cid(2));
    login(&mut c, cid(2), A, &t.id, 3, now);
    let acts = c.io_done(
        IoDone::Finished {
            task_id: t.id.clone(),
            by: cid(1),
            ok: true,
        },
        now,
    );
    assert!(matches!(acts[0], Act::Io(IoJob::Abandon { .. })));
    assert!(closes(&acts, cid(2)));
    assert_eq!(c.task_count(), 0);
}
