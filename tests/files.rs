//! File transfer over real sockets (behaviour.md B-FILE, B-HB-3): offline and online transfers,
//! requests, refusals, path safety, offline-file list and deletion, download errors, abandoned
//! uploads, expiry and the file-port heartbeat.
//!
//! Users: alice sends, bob receives, carol is a third party. Replies synchronise the tests; where
//! the file role acts on its io thread without telling the client (6/19, an abandoned upload), a
//! refused 6/1 mode 4 is the barrier: the io thread handles jobs in order, and a mode 4 login is
//! answered from it ([`io_barrier`]).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use sha2::{Digest, Sha256};
use ttserver::client::{Client, Frame};
use ttserver::proto::file::{
    AddOfflineFile, Addr, DeleteOfflineFile, FileLogin, FileRequest, FileState, PullDataRequest,
    PullDataResponse,
};
use ttserver::proto::{Id, Pdu};

/// `trans_mode` (6/10, 6/11, 6/12) and 6/4 `mode`.
const ONLINE: u32 = 1;
const OFFLINE: u32 = 2;
/// 6/1 `client_mode`.
const SENDER: u32 = 1;
const RECEIVER: u32 = 2;
const UPLOAD: u32 = 3;
const DOWNLOAD: u32 = 4;
/// 6/3 `state`.
const PEER_READY: u32 = 0;
const CANCEL: u32 = 1;
const REFUSE: u32 = 2;
const DONE: u32 = 3;
/// B-FILE-8 / B-FILE-11 sizes.
const SEGMENT: u32 = 65_536;
const MAX_PULL: usize = 262_144;
/// A well-formed task id that no task has (B-TOK-1 layout).
const NO_TASK: &str = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";

const USERS: &[(&str, &str)] = &[("alice", "pa"), ("bob", "pb"), ("carol", "pc")];

fn pattern(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn sha256(b: &[u8]) -> Vec<u8> {
    Sha256::digest(b).to_vec()
}

fn id_bytes(i: &Id<'_>) -> Vec<u8> {
    match *i {
        Id::Raw(b) => b.to_vec(),
        Id::Num(n) => n.to_string().into_bytes(),
    }
}

fn owned_addrs(a: &[Addr<'_>]) -> Vec<(String, u16)> {
    a.iter()
        .map(|a| (String::from_utf8_lossy(a.ip).into_owned(), a.port))
        .collect()
}

/// The addresses every 6/11, 6/12 and 6/17 carries: `FileAddr` (127.0.0.1) with the file port.
fn file_addrs(srv: &Server) -> Vec<(String, u16)> {
    vec![("127.0.0.1".to_string(), srv.file.port())]
}

/// B-TOK-1 layout: 8-4-4-4-12 lowercase hex.
fn is_server_id(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

/// A logged-in msg session with its token.
struct Party {
    c: Client,
    id: u32,
    tok: String,
}

fn party(srv: &Server, name: &str, client_type: u32) -> Party {
    let pw = USERS.iter().find(|u| u.0 == name).unwrap().1;
    let (c, id, tok) = srv.login_token(name, pw, client_type);
    Party { c, id, tok }
}

// ---------------------------------------------------------------------------------------------
// Msg port: 6/10 -> 6/11, 6/12, 6/16 -> 6/17, 6/18, 6/19

/// A 6/11, owned.
#[derive(Debug)]
struct Resp {
    reserved: u16,
    result: u32,
    from: Vec<u8>,
    to: Vec<u8>,
    name: Vec<u8>,
    task: String,
    addrs: Vec<(String, u16)>,
    trans_mode: u32,
}

/// Sends a 6/10 with any field values; returns the next 6/11.
fn file_req(
    c: &mut Client,
    from: Id<'_>,
    to: Id<'_>,
    name: &[u8],
    size: u32,
    mode: u32,
    reserved: u16,
) -> Resp {
    c.send(
        &Pdu::FileRequest(FileRequest {
            from_id: from,
            to_id: to,
            file_name: name,
            file_size: size,
            trans_mode: mode,
        }),
        reserved,
    )
    .unwrap();
    let f = recv_mc(c, 6, 11);
    let Pdu::FileResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    Resp {
        reserved: f.header.reserved,
        result: r.result,
        from: id_bytes(&r.from_id),
        to: id_bytes(&r.to_id),
        name: r.file_name.to_vec(),
        task: String::from_utf8(r.task_id.to_vec()).unwrap(),
        addrs: owned_addrs(&r.addrs),
        trans_mode: r.trans_mode,
    }
}

/// A successful 6/10 from `p` to `to`; returns the 6/11.
fn task(p: &mut Party, to: u32, name: &[u8], size: u32, mode: u32) -> Resp {
    let r = file_req(&mut p.c, Id::Num(p.id), Id::Num(to), name, size, mode, 21);
    assert_eq!((r.reserved, r.result), (21, 0), "6/10 refused: {r:?}");
    assert!(is_server_id(&r.task), "B-FILE-3 task id {:?}", r.task);
    r
}

/// A 6/12, owned.
#[derive(Debug, PartialEq, Eq)]
struct Notice {
    from: u32,
    to: u32,
    name: Vec<u8>,
    size: u32,
    task: String,
    addrs: Vec<(String, u16)>,
    trans_mode: u32,
    ready: u32,
}

/// The next 6/12 (a push: reserved 0).
fn notice(c: &mut Client) -> Notice {
    let f = recv_mc(c, 6, 12);
    assert_eq!(f.header.reserved, 0, "6/12 is a push");
    let Pdu::FileNotify(n) = f.pdu().unwrap() else {
        panic!()
    };
    Notice {
        from: n.from_id.value().unwrap(),
        to: n.to_id.value().unwrap(),
        name: n.file_name.to_vec(),
        size: n.file_size,
        task: String::from_utf8(n.task_id.to_vec()).unwrap(),
        addrs: owned_addrs(&n.addrs),
        trans_mode: n.trans_mode,
        ready: n.offline_ready,
    }
}

/// One 6/17 entry: (from, task, name, size).
type Listed = (u32, String, Vec<u8>, u32);

/// 6/16 -> 6/17: (files, addresses).
fn offline_list(c: &mut Client) -> (Vec<Listed>, Vec<(String, u16)>) {
    c.send(&Pdu::OfflineFileListRequest, 616).unwrap();
    let f = recv_mc(c, 6, 17);
    assert_eq!(f.header.reserved, 616);
    let Pdu::OfflineFileListResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    let files = r
        .files
        .iter()
        .map(|x| {
            (
                x.from_id.value().unwrap(),
                String::from_utf8(x.task_id.to_vec()).unwrap(),
                x.file_name.to_vec(),
                x.file_size,
            )
        })
        .collect();
    (files, owned_addrs(&r.addrs))
}

/// The task ids of `c`'s 6/17, in order.
fn listed_tasks(c: &mut Client) -> Vec<String> {
    offline_list(c).0.into_iter().map(|f| f.1).collect()
}

/// 6/19 (no reply).
fn delete_file(c: &mut Client, from: Id<'_>, to: Id<'_>, task: &[u8]) {
    c.send(
        &Pdu::DeleteOfflineFile(DeleteOfflineFile {
            from_id: from,
            to_id: to,
            task_id: task,
        }),
        619,
    )
    .unwrap();
}

// ---------------------------------------------------------------------------------------------
// File port: 6/1 .. 6/5

/// Sends a 6/1 with any field values; returns the 6/2 result (its reserved must echo).
fn flogin(c: &mut Client, user: Id<'_>, token: &[u8], task: &[u8], mode: u32) -> u32 {
    c.send(
        &Pdu::FileLogin(FileLogin {
            user_id: user,
            token,
            task_id: task,
            client_mode: mode,
        }),
        61,
    )
    .unwrap();
    let f = recv_mc(c, 6, 2);
    assert_eq!(f.header.reserved, 61);
    let Pdu::FileLoginResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    r.result
}

/// B-FILE-4: a 6/1 answered by 6/2 result 1, then the server closes the connection.
fn refused(srv: &Server, user: Id<'_>, token: &str, task: &[u8], mode: u32, why: &str) {
    let mut c = srv.file_conn();
    assert_eq!(
        flogin(&mut c, user, token.as_bytes(), task, mode),
        1,
        "6/1 accepted: {why}"
    );
    c.expect_closed()
        .unwrap_or_else(|e| panic!("not closed after refusal ({why}): {e}"));
}

/// A logged-in file connection.
fn file_party(srv: &Server, user: u32, tok: &str, task: &str, mode: u32) -> Client {
    let mut c = srv.file_conn();
    assert_eq!(
        flogin(&mut c, Id::Num(user), tok.as_bytes(), task.as_bytes(), mode),
        0,
        "6/1 mode {mode} for {task} refused"
    );
    c
}

/// Every io job of the file role queued before this call has run: a 6/1 mode 4 is answered
/// by the io thread, which handles jobs in order. The task id is well formed but has no file,
/// so the answer is a refusal.
fn io_barrier(srv: &Server, p: &Party) {
    refused(
        srv,
        Id::Num(p.id),
        &p.tok,
        b"00000000-0000-0000-0000-000000000000",
        DOWNLOAD,
        "barrier",
    );
}

/// A 6/4 with any field values.
fn pull(c: &mut Client, task: &[u8], user: Id<'_>, mode: u32, offset: u32, size: u32, rsv: u16) {
    c.send(
        &Pdu::PullDataRequest(PullDataRequest {
            task_id: task,
            user_id: user,
            mode,
            offset,
            size,
        }),
        rsv,
    )
    .unwrap();
}

/// A 6/5, owned.
#[derive(Debug)]
struct Pulled {
    reserved: u16,
    result: u32,
    task: Vec<u8>,
    user: Vec<u8>,
    offset: u32,
    data: Vec<u8>,
}

fn pulled(c: &mut Client) -> Pulled {
    let f = recv_mc(c, 6, 5);
    let Pdu::PullDataResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    Pulled {
        reserved: f.header.reserved,
        result: r.result,
        task: r.task_id.to_vec(),
        user: id_bytes(&r.user_id),
        offset: r.offset,
        data: r.data.to_vec(),
    }
}

/// protocol.md 6/5 error form: result, empty task and user, offset 0, no data; `reserved` echoed.
fn assert_pull_error(p: &Pulled, result: u32, reserved: u16) {
    assert_eq!(
        (p.result, p.reserved, p.offset),
        (result, reserved, 0),
        "{p:?}"
    );
    assert!(
        p.task.is_empty() && p.user.is_empty() && p.data.is_empty(),
        "{p:?}"
    );
}

/// A 6/5 from an uploader.
fn segment(c: &mut Client, task: &str, user: u32, result: u32, offset: u32, data: &[u8]) {
    c.send(
        &Pdu::PullDataResponse(PullDataResponse {
            result,
            task_id: task.as_bytes(),
            user_id: Id::Num(user),
            offset,
            data,
        }),
        0,
    )
    .unwrap();
}

/// A 6/3 from a client.
fn state(c: &mut Client, state: u32, task: &str, user: u32, reserved: u16) {
    c.send(
        &Pdu::FileState(FileState {
            state,
            task_id: task.as_bytes(),
            user_id: Id::Num(user),
        }),
        reserved,
    )
    .unwrap();
}

/// The next 6/3: (state, task, user).
fn state_of(f: &Frame) -> (u32, String, u32) {
    let Pdu::FileState(s) = f.pdu().unwrap() else {
        panic!("{:?}", f.module_command())
    };
    (
        s.state,
        String::from_utf8(s.task_id.to_vec()).unwrap(),
        s.user_id.value().unwrap(),
    )
}

/// B-FILE-8: the server's next 6/4 to an uploader: (offset, size), after checking the rest.
fn server_pull(c: &mut Client, task: &str, sender: u32) -> (u32, u32) {
    let f = recv_mc(c, 6, 4);
    let Pdu::PullDataRequest(r) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!(r.task_id, task.as_bytes());
    assert_eq!(r.user_id.value(), Some(sender));
    assert_eq!(r.mode, OFFLINE);
    (r.offset, r.size)
}

/// Offline upload of `data` for `task` by `from`, to completion (6/3 done, then close).
fn upload(srv: &Server, from: u32, tok: &str, task: &str, data: &[u8]) {
    let mut up = file_party(srv, from, tok, task, UPLOAD);
    up.serve_upload(task, from, data).unwrap();
    up.expect_closed().unwrap();
}

/// Offline download of `task` by `to`; returns the bytes and the sender id the 6/5s named.
fn download(srv: &Server, to: u32, tok: &str, task: &str) -> (Vec<u8>, u32) {
    let mut down = file_party(srv, to, tok, task, DOWNLOAD);
    let mut got = Vec::new();
    let d = down.download(task, to, 65_536, &mut got).unwrap();
    down.expect_closed().unwrap();
    assert_eq!(d.bytes, got.len() as u64);
    (got, d.sender)
}

/// An offline file from `a` to `to`, uploaded and recorded; returns its task id.
fn offline_file(srv: &Server, a: &mut Party, to: u32, name: &[u8], data: &[u8]) -> String {
    let t = task(a, to, name, data.len() as u32, OFFLINE);
    assert_eq!(t.trans_mode, OFFLINE);
    upload(srv, a.id, &a.tok, &t.task, data);
    t.task
}

fn data_dir(srv: &Server) -> PathBuf {
    srv.dir.join("data")
}

/// B-FILE-9: where a finished offline file lives.
fn stored(srv: &Server, to: u32, task: &str) -> PathBuf {
    data_dir(srv)
        .join("offline")
        .join(to.to_string())
        .join(task)
}

/// The files in `DataDir/offline/tmp` (uploads in progress).
fn temp_files(srv: &Server) -> Vec<PathBuf> {
    match std::fs::read_dir(data_dir(srv).join("offline").join("tmp")) {
        Ok(d) => d.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Every regular file below `dir`.
fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Round trips

/// Offline: upload `data` as alice, download it as bob; returns what bob received.
fn offline_round_trip(srv: &Server, data: &[u8]) -> Vec<u8> {
    let mut a = party(srv, "alice", PC);
    let b = party(srv, "bob", PC);
    let size = u32::try_from(data.len()).unwrap();
    let t = task(&mut a, b.id, b"data.bin", size, OFFLINE);
    assert_eq!(t.trans_mode, OFFLINE);
    // The advertised address (B-FILE-3) is where the upload goes.
    let (ip, port) = &t.addrs[0];
    let mut up = Client::connect(format!("{ip}:{port}").parse().unwrap()).unwrap();
    assert_eq!(up.file_login(a.id, &a.tok, &t.task, UPLOAD).unwrap(), 0);
    up.serve_upload(&t.task, a.id, data).unwrap();
    up.expect_closed().unwrap();
    let (got, sender) = download(srv, b.id, &b.tok, &t.task);
    assert_eq!(sender, a.id, "B-FILE-11: 6/5 user_id = the sender");
    got
}

#[test]
fn offline_one_byte_and_ten_mib_b_file_8_9_11() {
    let (srv, _) = Server::start(USERS);
    for data in [vec![0x5a], pattern(10 << 20, 7)] {
        let got = offline_round_trip(&srv, &data);
        assert_eq!(got.len(), data.len());
        assert_eq!(sha256(&got), sha256(&data), "sha256 differs");
        assert!(got == data, "bytes differ");
    }
}

/// Online: the receiver pulls through the server from the sender (B-FILE-5, B-FILE-6).
fn online_round_trip(srv: &Server, data: &[u8]) -> Vec<u8> {
    let mut a = party(srv, "alice", PC);
    let mut b = party(srv, "bob", PC);
    let size = u32::try_from(data.len()).unwrap();
    let t = task(&mut a, b.id, b"live.bin", size, ONLINE);
    assert_eq!(t.trans_mode, ONLINE);
    let n = notice(&mut b.c);
    assert_eq!(n.task, t.task);
    assert_eq!((n.trans_mode, n.ready, n.size), (ONLINE, 0, size));
    let mut snd = file_party(srv, a.id, &a.tok, &t.task, SENDER);
    let mut rcv = file_party(srv, b.id, &b.tok, &t.task, RECEIVER);
    // B-FILE-5: the second to log in hears that its peer is ready.
    let ready = recv_mc(&mut rcv, 6, 3);
    assert_eq!(ready.header.reserved, 0);
    assert_eq!(state_of(&ready), (PEER_READY, t.task.clone(), b.id));
    let mut got = Vec::new();
    let tid = t.task.as_bytes();
    while got.len() < data.len() {
        let want = (data.len() - got.len()).min(100_000) as u32;
        pull(
            &mut rcv,
            tid,
            Id::Num(b.id),
            ONLINE,
            got.len() as u32,
            want,
            77,
        );
        let asked = recv_mc(&mut snd, 6, 4);
        assert_eq!(asked.header.reserved, 77, "relayed unchanged (P-17)");
        let Pdu::PullDataRequest(r) = asked.pdu().unwrap() else {
            panic!()
        };
        let start = r.offset as usize;
        let chunk = &data[start..start + r.size as usize];
        let rsp = Pdu::PullDataResponse(PullDataResponse {
            result: 0,
            task_id: tid,
            user_id: Id::Num(a.id),
            offset: r.offset,
            data: chunk,
        });
        snd.send(&rsp, 78).unwrap();
        let r = pulled(&mut rcv);
        assert_eq!((r.result, r.reserved), (0, 78));
        got.extend_from_slice(&r.data);
    }
    state(&mut rcv, DONE, &t.task, b.id, 5);
    let fwd = recv_mc(&mut snd, 6, 3);
    assert_eq!(fwd.header.reserved, 5);
    snd.expect_closed().unwrap();
    rcv.expect_closed().unwrap();
    got
}

#[test]
fn online_one_byte_and_ten_mib_b_file_5_6() {
    let (srv, _) = Server::start(USERS);
    for data in [vec![0xa5], pattern(10 << 20, 9)] {
        let got = online_round_trip(&srv, &data);
        assert_eq!(sha256(&got), sha256(&data), "sha256 differs");
        assert!(got == data, "bytes differ");
    }
}

// ---------------------------------------------------------------------------------------------
// 6/10 (B-FILE-1 .. B-FILE-3)

#[test]
fn file_request_checks_b_file_1_3() {
    let (srv, _) = Server::start_with("MaxFileSize=1000", USERS);
    let mut a = party(&srv, "alice", PC);
    let mut b = party(&srv, "bob", PC);
    let (ai, bi) = (a.id, b.id);
    let (a_s, b_s) = (ai.to_string(), bi.to_string());
    let long = vec![b'n'; 256];
    // (to, name, size, trans_mode, why): each gets 6/11 result 1 in the failure layout.
    let bad: Vec<(Id<'_>, &[u8], u32, u32, &str)> = vec![
        (Id::Num(bi), b"f", 0, OFFLINE, "0-byte file"),
        (Id::Num(bi), b"f", 0, ONLINE, "0-byte file, online"),
        (Id::Num(bi), b"f", 1001, OFFLINE, "file_size > MaxFileSize"),
        (Id::Num(bi), b"", 10, OFFLINE, "empty name"),
        (Id::Num(bi), &long[..], 10, OFFLINE, "name of 256 bytes"),
        (Id::Num(ai), b"f", 10, OFFLINE, "to_id = self"),
        (Id::Num(99_999), b"f", 10, OFFLINE, "unknown to_id"),
        (Id::Raw(b"0"), b"f", 10, OFFLINE, "to_id 0"),
        (Id::Raw(b"../2"), b"f", 10, OFFLINE, "to_id not an id"),
        (Id::Num(bi), b"f", 10, 3, "trans_mode 3"),
        (Id::Num(bi), b"f", 10, 0, "trans_mode 0"),
    ];
    for (i, (to, name, size, mode, why)) in bad.iter().enumerate() {
        let rsv = 100 + i as u16;
        let r = file_req(
            &mut a.c,
            Id::Raw(a_s.as_bytes()),
            *to,
            name,
            *size,
            *mode,
            rsv,
        );
        assert_eq!((r.reserved, r.result), (rsv, 1), "{why}: {r:?}");
        assert!(r.task.is_empty() && r.addrs.is_empty(), "{why}: {r:?}");
        assert_eq!(r.trans_mode, 0, "{why}");
        // The full layout, with the request's fields echoed.
        assert_eq!(
            (r.from.as_slice(), r.name.as_slice()),
            (a_s.as_bytes(), *name),
            "{why}"
        );
        assert_eq!(r.to, id_bytes(to), "{why}");
    }
    // B-FILE-1 / B-GEN-2: a foreign from_id gets no reply at all; the next 6/11 answers the
    // following request.
    let r = {
        a.c.send(
            &Pdu::FileRequest(FileRequest {
                from_id: Id::Raw(b_s.as_bytes()),
                to_id: Id::Num(bi),
                file_name: b"spoof",
                file_size: 10,
                trans_mode: OFFLINE,
            }),
            150,
        )
        .unwrap();
        file_req(&mut a.c, Id::Num(ai), Id::Num(bi), b"x", 1000, OFFLINE, 151)
    };
    assert_eq!(
        (r.reserved, r.result),
        (151, 0),
        "the spoofed 6/10 was answered"
    );
    // Boundaries accepted: 255-byte name, file_size = MaxFileSize.
    let name255 = vec![b'n'; 255];
    let ok2 = task(&mut a, bi, &name255, 1, ONLINE);
    assert_eq!(ok2.trans_mode, ONLINE);
    // B-FILE-3: success carries the addresses and a fresh task id; the receiver gets 6/12.
    for ok in [&r, &ok2] {
        assert_eq!(ok.addrs, file_addrs(&srv));
        assert!(is_server_id(&ok.task), "{:?}", ok.task);
    }
    assert_ne!(r.task, ok2.task);
    let n1 = notice(&mut b.c);
    assert_eq!(
        n1,
        Notice {
            from: ai,
            to: bi,
            name: b"x".to_vec(),
            size: 1000,
            task: r.task.clone(),
            addrs: file_addrs(&srv),
            trans_mode: OFFLINE,
            ready: 0,
        }
    );
    let n2 = notice(&mut b.c);
    assert_eq!(
        (n2.task, n2.trans_mode, n2.name),
        (ok2.task, ONLINE, name255)
    );
    // Only the two successful requests notified bob; the refused ones and the spoof did not.
    sync(&mut b.c);
    assert_silent(&mut b.c, Duration::from_millis(200));
    sync(&mut a.c);
    assert_silent(&mut a.c, Duration::from_millis(100));
}

#[test]
fn online_request_becomes_offline_without_receiver_pc_b_file_2_9() {
    let (srv, ids) = Server::start(USERS);
    let mut a = party(&srv, "alice", PC);
    let bi = ids[1];
    let data = pattern(150_000, 3);
    let size = data.len() as u32;

    // Bob offline: online asked, offline used.
    let t1 = task(&mut a, bi, b"one.bin", size, ONLINE);
    assert_eq!(t1.trans_mode, OFFLINE, "B-FILE-2: receiver offline");

    // Bob on a phone only (client type 0x11): offline too; the phone gets 6/12 ready 0.
    let mut phone = party(&srv, "bob", IOS);
    let t2 = task(&mut a, bi, b"two.bin", size, ONLINE);
    assert_eq!(t2.trans_mode, OFFLINE, "B-FILE-2: receiver on mobile only");
    let n = notice(&mut phone.c);
    assert_eq!(
        n,
        Notice {
            from: a.id,
            to: bi,
            name: b"two.bin".to_vec(),
            size,
            task: t2.task.clone(),
            addrs: file_addrs(&srv),
            trans_mode: OFFLINE,
            ready: 0,
        }
    );

    // Upload t2: after completion every session of bob gets 6/12 trans_mode 2, ready 1 (B-FILE-9).
    upload(&srv, a.id, &a.tok, &t2.task, &data);
    let n = notice(&mut phone.c);
    assert_eq!(
        (n.task.as_str(), n.trans_mode, n.ready),
        (t2.task.as_str(), OFFLINE, 1)
    );
    assert_eq!(
        (n.from, n.to, n.size, n.name.as_slice()),
        (a.id, bi, size, &b"two.bin"[..])
    );
    assert_eq!(n.addrs, file_addrs(&srv));

    // Bob's PC logs in before t1 is uploaded: both sessions get the ready notice.
    let mut pc = party(&srv, "bob", PC);
    upload(&srv, a.id, &a.tok, &t1.task, &data);
    for c in [&mut phone.c, &mut pc.c] {
        let n = notice(c);
        assert_eq!(
            (n.task.as_str(), n.trans_mode, n.ready),
            (t1.task.as_str(), OFFLINE, 1)
        );
    }
    // Bob on PC now: an online request stays online, and both sessions hear of it (B-FILE-3).
    let t3 = task(&mut a, bi, b"three.bin", size, ONLINE);
    assert_eq!(t3.trans_mode, ONLINE);
    for c in [&mut phone.c, &mut pc.c] {
        let n = notice(c);
        assert_eq!(
            (n.task.as_str(), n.trans_mode, n.ready),
            (t3.task.as_str(), ONLINE, 0)
        );
    }
    // Both offline files are there, intact.
    assert_eq!(
        listed_tasks(&mut pc.c),
        vec![t1.task.clone(), t2.task.clone()]
    );
    for t in [&t1.task, &t2.task] {
        let (got, _) = download(&srv, bi, &pc.tok, t);
        assert_eq!(sha256(&got), sha256(&data));
    }
}

// ---------------------------------------------------------------------------------------------
// 6/1 (B-FILE-4)

#[test]
fn file_login_refusals_b_file_4() {
    let (srv, _) = Server::start(USERS);
    let mut a = party(&srv, "alice", PC);
    let b = party(&srv, "bob", PC);
    let c = party(&srv, "carol", PC);
    let data = pattern(100_000, 5);
    let on = task(&mut a, b.id, b"on.bin", 10, ONLINE);
    let off = task(&mut a, b.id, b"off.bin", data.len() as u32, OFFLINE);
    assert_eq!((on.trans_mode, off.trans_mode), (ONLINE, OFFLINE));
    let (on_t, off_t) = (on.task.as_bytes(), off.task.as_bytes());
    let (ai, bi, ci) = (Id::Num(a.id), Id::Num(b.id), Id::Num(c.id));
    let zero = "00000000-0000-0000-0000-000000000000";

    // Tokens (B-TOK-2).
    refused(&srv, ai, zero, on_t, SENDER, "wrong token");
    refused(&srv, ai, "", on_t, SENDER, "empty token");
    refused(&srv, ai, &b.tok, on_t, SENDER, "another user's valid token");
    refused(
        &srv,
        bi,
        &a.tok,
        on_t,
        RECEIVER,
        "another user's valid token",
    );
    refused(
        &srv,
        ai,
        &b.tok,
        off_t,
        UPLOAD,
        "another user's valid token",
    );
    // A user that is no party of the task, with its own token.
    refused(&srv, ci, &c.tok, on_t, SENDER, "non-party as sender");
    refused(&srv, ci, &c.tok, on_t, RECEIVER, "non-party as receiver");
    refused(&srv, ci, &c.tok, off_t, UPLOAD, "non-party as uploader");
    // Unknown task ids.
    refused(&srv, ai, &a.tok, NO_TASK.as_bytes(), SENDER, "unknown task");
    refused(&srv, ai, &a.tok, NO_TASK.as_bytes(), UPLOAD, "unknown task");
    refused(&srv, ai, &a.tok, b"", SENDER, "empty task id");
    // client_mode that does not fit the task.
    refused(&srv, ai, &a.tok, off_t, SENDER, "mode 1 on an offline task");
    refused(
        &srv,
        bi,
        &b.tok,
        off_t,
        RECEIVER,
        "mode 2 on an offline task",
    );
    refused(&srv, ai, &a.tok, on_t, UPLOAD, "mode 3 on an online task");
    refused(&srv, bi, &b.tok, off_t, UPLOAD, "mode 3 by the receiver");
    refused(&srv, bi, &b.tok, on_t, SENDER, "mode 1 by the receiver");
    refused(&srv, ai, &a.tok, on_t, RECEIVER, "mode 2 by the sender");
    refused(&srv, ai, &a.tok, on_t, 0, "mode 0");
    refused(&srv, ai, &a.tok, on_t, 5, "mode 5");
    refused(&srv, bi, &b.tok, on_t, DOWNLOAD, "mode 4 on an online task");

    // Before 6/1 other file PDUs are ignored; the connection stays open and a 6/1 still works.
    let mut rcv = srv.file_conn();
    state(&mut rcv, CANCEL, &on.task, b.id, 1);
    pull(&mut rcv, on_t, bi, ONLINE, 0, 10, 2);
    segment(&mut rcv, &on.task, b.id, 0, 0, b"0123456789");
    assert_eq!(flogin(&mut rcv, bi, b.tok.as_bytes(), on_t, RECEIVER), 0);
    // The first frame after those was the 6/2 (checked by flogin via recv_mc; nothing queued).
    assert_eq!(rcv.queued(), 0, "a PDU before 6/1 was answered");

    // One connection per role: a second sender / receiver / uploader is refused.
    let mut snd = file_party(&srv, a.id, &a.tok, &on.task, SENDER);
    refused(&srv, ai, &a.tok, on_t, SENDER, "second sender");
    refused(&srv, bi, &b.tok, on_t, RECEIVER, "second receiver");
    let mut up = file_party(&srv, a.id, &a.tok, &off.task, UPLOAD);
    assert_eq!(server_pull(&mut up, &off.task, a.id), (0, SEGMENT));
    refused(&srv, ai, &a.tok, off_t, UPLOAD, "second uploader");
    // Mode 4 before the upload completed.
    refused(
        &srv,
        bi,
        &b.tok,
        off_t,
        DOWNLOAD,
        "mode 4 before completion",
    );

    // A second 6/1 on a logged-in connection is ignored (no reply, still open).
    assert_eq!(state_of(&recv_mc(&mut snd, 6, 3)).0, PEER_READY);
    snd.send(
        &Pdu::FileLogin(FileLogin {
            user_id: ai,
            token: a.tok.as_bytes(),
            task_id: on_t,
            client_mode: SENDER,
        }),
        62,
    )
    .unwrap();
    sync(&mut snd);
    assert_silent(&mut snd, Duration::from_millis(100));

    // Finish the upload: the upload task has ended, the file record exists.
    segment(&mut up, &off.task, a.id, 0, 0, &data[..SEGMENT as usize]);
    up.serve_upload(&off.task, a.id, &data).unwrap();
    up.expect_closed().unwrap();
    refused(&srv, ai, &a.tok, off_t, UPLOAD, "mode 3 after completion");
    refused(&srv, ai, &a.tok, off_t, DOWNLOAD, "mode 4 by the sender");
    refused(&srv, ci, &c.tok, off_t, DOWNLOAD, "mode 4 by a non-party");
    refused(
        &srv,
        bi,
        &a.tok,
        off_t,
        DOWNLOAD,
        "mode 4 with the sender's token",
    );
    // Mode 4: any number of connections at once.
    let mut d1 = file_party(&srv, b.id, &b.tok, &off.task, DOWNLOAD);
    let mut d2 = file_party(&srv, b.id, &b.tok, &off.task, DOWNLOAD);
    for d in [&mut d1, &mut d2] {
        let mut got = Vec::new();
        d.download(&off.task, b.id, 40_000, &mut got).unwrap();
        assert_eq!(sha256(&got), sha256(&data));
        d.expect_closed().unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Path safety (B-FILE-16)

#[test]
fn crafted_ids_never_reach_the_disk_b_file_16() {
    let (srv, _) = Server::start(USERS);
    let mut a = party(&srv, "alice", PC);
    let mut b = party(&srv, "bob", PC);
    let data = pattern(70_000, 11);
    // The file name is metadata only, never a path.
    let evil_name = b"../../../../evil.txt";
    let real = offline_file(&srv, &mut a, b.id, evil_name, &data);
    assert!(stored(&srv, b.id, &real).is_file());
    let dd = data_dir(&srv);
    // Files outside the offline store that crafted ids would reach from DataDir/offline/<bob>/.
    let victims = [
        dd.join("victim.txt"),
        dd.join("offline").join("victim.txt"),
        dd.join("offline").join(b.id.to_string()).join("victim.txt"),
        srv.dir.join("victim.txt"),
    ];
    for v in &victims {
        std::fs::write(v, b"keep me").unwrap();
    }
    let db = dd.join("ttserver.db");
    assert!(db.is_file());
    let crafted: Vec<String> = vec![
        "../x".into(),
        "../../ttserver.db".into(),
        "../../victim.txt".into(),
        "../victim.txt".into(),
        "victim.txt".into(),
        "../../../victim.txt".into(),
        format!("{NO_TASK}/../.."),
        format!("{real}/../victim.txt"),
        format!("{real}/../../../victim.txt"),
        format!("../{}/{real}", b.id),
        format!("./{real}"),
        format!("{real}/"),
        real.to_uppercase(),
        "/etc/passwd".into(),
        String::new(),
    ];
    let (ai, bi) = (Id::Num(a.id), Id::Num(b.id));
    for t in &crafted {
        refused(
            &srv,
            bi,
            &b.tok,
            t.as_bytes(),
            DOWNLOAD,
            &format!("mode 4 task {t:?}"),
        );
    }
    // A user id crafted as a path (raw bytes), with a valid token of bob's.
    let b_s = b.id.to_string();
    let crafted_users = [
        "../1".to_string(),
        format!("../{b_s}"),
        format!("0{b_s}"),
        format!("{b_s}/.."),
        format!(" {b_s}"),
    ];
    for u in &crafted_users {
        refused(
            &srv,
            Id::Raw(u.as_bytes()),
            &b.tok,
            real.as_bytes(),
            DOWNLOAD,
            &format!("user_id {u:?}"),
        );
    }
    // 6/19 with crafted task ids (and crafted from ids) deletes nothing.
    for t in &crafted {
        delete_file(&mut b.c, ai, bi, t.as_bytes());
    }
    delete_file(&mut b.c, Id::Raw(b"../1"), bi, real.as_bytes());
    delete_file(&mut b.c, Id::Raw(b"0"), bi, real.as_bytes());
    delete_file(
        &mut b.c,
        ai,
        Id::Raw(format!("../{b_s}").as_bytes()),
        real.as_bytes(),
    );
    // B-GEN-1: the 6/16 is answered after the 6/19s took effect; the barrier waits for any
    // deletion the file role's io thread still had queued.
    assert_eq!(listed_tasks(&mut b.c), vec![real.clone()]);
    io_barrier(&srv, &b);
    for v in &victims {
        assert_eq!(
            std::fs::read(v).unwrap(),
            b"keep me",
            "{} changed",
            v.display()
        );
    }
    assert!(db.is_file());
    assert!(stored(&srv, b.id, &real).is_file());
    // The real file is still there and intact; its name came back unchanged.
    let (files, _) = offline_list(&mut b.c);
    assert_eq!(files[0].2, evil_name);
    let (got, _) = download(&srv, b.id, &b.tok, &real);
    assert_eq!(sha256(&got), sha256(&data));
    // The only file the server wrote outside the database is the offline file.
    let written: Vec<PathBuf> = all_files(&dd.join("offline"))
        .into_iter()
        .filter(|p| !p.ends_with("victim.txt"))
        .collect();
    assert_eq!(written, vec![stored(&srv, b.id, &real)]);
    assert!(!srv.dir.join("evil.txt").exists() && !dd.join("evil.txt").exists());
}

// ---------------------------------------------------------------------------------------------
// 6/16, 6/18, 6/19 (B-FILE-12 .. B-FILE-14)

#[test]
fn offline_list_is_newest_first_with_addresses_b_file_12() {
    let (srv, _) = Server::start(USERS);
    let mut a = party(&srv, "alice", PC);
    let mut b = party(&srv, "bob", PC);
    let mut c = party(&srv, "carol", PC);
    // Empty list: no files, the addresses still follow.
    assert_eq!(offline_list(&mut b.c), (Vec::new(), file_addrs(&srv)));
    let mut expect: Vec<Listed> = Vec::new();
    for i in 0..3 {
        let p = if i == 1 { &mut c } else { &mut a };
        let name = format!("f{i}.txt");
        let data = pattern(1000 + i, i as u32);
        let t = offline_file(&srv, p, b.id, name.as_bytes(), &data);
        expect.insert(0, (p.id, t, name.into_bytes(), data.len() as u32));
    }
    // An online task and an offline task not yet uploaded are not listed.
    task(&mut a, b.id, b"live", 5, ONLINE);
    task(&mut a, b.id, b"pending", 5, OFFLINE);
    let (files, addrs) = offline_list(&mut b.c);
    assert_eq!(files, expect, "bob's files, newest first");
    assert_eq!(addrs, file_addrs(&srv), "addresses after the list");
    // Not the senders' files: their lists stay empty.
    assert!(offline_list(&mut a.c).0.is_empty());
    assert!(offline_list(&mut c.c).0.is_empty());
}

#[test]
fn receiver_deletes_offline_file_b_file_14() {
    let (srv, _) = Server::start(USERS);
    let mut a = party(&srv, "alice", PC);
    let mut b = party(&srv, "bob", PC);
    let mut c = party(&srv, "carol", PC);
    let d1 = pattern(300_000, 1);
    let d2 = pattern(300_000, 2);
    let f1 = offline_file(&srv, &mut a, b.id, b"f1", &d1);
    let f2 = offline_file(&srv, &mut a, b.id, b"f2", &d2);
    let both = vec![f2.clone(), f1.clone()];
    assert_eq!(listed_tasks(&mut b.c), both);
    let (ai, bi, ci) = (Id::Num(a.id), Id::Num(b.id), Id::Num(c.id));

    // Not applied: a non-receiver (its own id as to_id), the sender, a foreign to_id (B-GEN-2),
    // a wrong from_id.
    delete_file(&mut c.c, ai, ci, f1.as_bytes());
    delete_file(&mut a.c, ai, ai, f1.as_bytes());
    delete_file(&mut a.c, ai, bi, f1.as_bytes());
    delete_file(&mut c.c, ai, bi, f1.as_bytes());
    delete_file(&mut b.c, ci, bi, f1.as_bytes());
    delete_file(&mut b.c, bi, bi, f1.as_bytes());
    for p in [&mut a, &mut c] {
        assert!(listed_tasks(&mut p.c).is_empty());
    }
    assert_eq!(listed_tasks(&mut b.c), both);
    io_barrier(&srv, &b);
    assert_eq!(listed_tasks(&mut b.c), both);
    assert!(stored(&srv, b.id, &f1).is_file() && stored(&srv, b.id, &f2).is_file());

    // A download of f2 already running may finish after f2 is deleted.
    let mut running = file_party(&srv, b.id, &b.tok, &f2, DOWNLOAD);
    pull(&mut running, f2.as_bytes(), bi, OFFLINE, 0, 1000, 1);
    let first = pulled(&mut running);
    assert_eq!((first.result, first.data.len()), (0, 1000));

    // The receiver's 6/19: a 6/16 right after it omits the file (B-GEN-1 read-your-writes).
    delete_file(&mut b.c, ai, bi, f1.as_bytes());
    assert_eq!(listed_tasks(&mut b.c), vec![f2.clone()]);
    delete_file(&mut b.c, ai, bi, f2.as_bytes());
    assert!(listed_tasks(&mut b.c).is_empty());
    // The stored files are gone, and 6/1 mode 4 fails.
    io_barrier(&srv, &b);
    assert!(!stored(&srv, b.id, &f1).exists(), "f1 still on disk");
    assert!(!stored(&srv, b.id, &f2).exists(), "f2 still on disk");
    refused(&srv, bi, &b.tok, f1.as_bytes(), DOWNLOAD, "deleted file");
    refused(&srv, bi, &b.tok, f2.as_bytes(), DOWNLOAD, "deleted file");
    // Deleting again changes nothing.
    delete_file(&mut b.c, ai, bi, f1.as_bytes());
    assert!(listed_tasks(&mut b.c).is_empty());

    // The running download completes with the right bytes.
    let mut got = first.data;
    let mut rest = Vec::new();
    loop {
        pull(
            &mut running,
            f2.as_bytes(),
            bi,
            OFFLINE,
            (got.len() + rest.len()) as u32,
            100_000,
            2,
        );
        let p = pulled(&mut running);
        assert_eq!(p.result, 0);
        if p.data.is_empty() {
            break;
        }
        rest.extend_from_slice(&p.data);
    }
    assert_eq!(state_of(&recv_mc(&mut running, 6, 3)).0, DONE);
    running.expect_closed().unwrap();
    got.extend_from_slice(&rest);
    assert_eq!(sha256(&got), sha256(&d2));
}

/// 6/18 (no reply).
fn report(c: &mut Client, from: Id<'_>, to: Id<'_>, t: &str, size: u32) {
    c.send(
        &Pdu::AddOfflineFile(AddOfflineFile {
            from_id: from,
            to_id: to,
            task_id: t.as_bytes(),
            file_name: b"claimed.bin",
            file_size: size,
        }),
        618,
    )
    .unwrap();
}

#[test]
fn add_report_changes_nothing_b_file_13() {
    let (srv, _) = Server::start(USERS);
    let mut a = party(&srv, "alice", PC);
    let mut b = party(&srv, "bob", PC);
    let data = pattern(5000, 4);
    let pending = task(&mut a, b.id, b"pending.bin", 5000, OFFLINE);
    assert_eq!(notice(&mut b.c).task, pending.task);
    let done = offline_file(&srv, &mut a, b.id, b"done.bin", &data);
    assert_eq!(notice(&mut b.c).task, done.clone()); // ready 0
    let n = notice(&mut b.c);
    assert_eq!((n.task.as_str(), n.ready), (done.as_str(), 1));
    let before = offline_list(&mut b.c);
    let (ai, bi) = (Id::Num(a.id), Id::Num(b.id));
    // The sender reports the pending (never uploaded) task, the done one again, a made-up one;
    // bob reports one as if from alice (foreign from_id).
    report(&mut a.c, ai, bi, &pending.task, 5000);
    report(&mut a.c, ai, bi, &done, 5000);
    report(&mut a.c, ai, bi, NO_TASK, 7);
    report(&mut b.c, ai, bi, &pending.task, 5000);
    // No reply to anybody, nothing pushed, nothing listed.
    sync(&mut a.c);
    assert_silent(&mut a.c, Duration::from_millis(100));
    assert_eq!(offline_list(&mut b.c), before);
    assert!(offline_list(&mut a.c).0.is_empty());
    sync(&mut b.c);
    assert_silent(&mut b.c, Duration::from_millis(200));
    // The pending task can still be uploaded normally, and only then appears.
    refused(
        &srv,
        bi,
        &b.tok,
        pending.task.as_bytes(),
        DOWNLOAD,
        "reported, not uploaded",
    );
    upload(&srv, a.id, &a.tok, &pending.task, &data);
    assert_eq!(listed_tasks(&mut b.c), vec![pending.task.clone(), done]);
}

// ---------------------------------------------------------------------------------------------
// Offline download errors (B-FILE-11)

#[test]
fn offline_download_errors_b_file_11() {
    let (srv, _) = Server::start(USERS);
    let mut a = party(&srv, "alice", PC);
    let b = party(&srv, "bob", PC);
    let data = pattern(300_000, 8);
    let size = data.len() as u32;
    let t = offline_file(&srv, &mut a, b.id, b"d.bin", &data);
    let tb = t.as_bytes();
    let bi = Id::Num(b.id);
    let mut d = file_party(&srv, b.id, &b.tok, &t, DOWNLOAD);
    // Offset beyond the end: result 11, error form; the connection stays usable.
    pull(&mut d, tb, bi, OFFLINE, size + 1, 10, 31);
    assert_pull_error(&pulled(&mut d), 11, 31);
    pull(&mut d, tb, bi, OFFLINE, u32::MAX, 10, 32);
    assert_pull_error(&pulled(&mut d), 11, 32);
    // Another user's id: result 6.
    pull(&mut d, tb, Id::Num(a.id), OFFLINE, 0, 10, 33);
    assert_pull_error(&pulled(&mut d), 6, 33);
    pull(&mut d, tb, Id::Raw(b"../1"), OFFLINE, 0, 10, 34);
    assert_pull_error(&pulled(&mut d), 6, 34);
    // A pull returns at most 262 144 bytes, from the requested offset, named by the sender.
    pull(&mut d, tb, bi, OFFLINE, 10, 1_000_000, 35);
    let p = pulled(&mut d);
    assert_eq!((p.result, p.reserved, p.offset), (0, 35, 10));
    assert_eq!(
        (p.task.as_slice(), p.user),
        (tb, a.id.to_string().into_bytes())
    );
    assert!(p.data == data[10..10 + MAX_PULL], "{} bytes", p.data.len());
    // The last bytes: n = bytes left.
    pull(&mut d, tb, bi, OFFLINE, size - 5, 65_536, 36);
    assert!(pulled(&mut d).data == data[data.len() - 5..]);
    // At offset = size: empty data, then 6/3 done (task, receiver), then close.
    pull(&mut d, tb, bi, OFFLINE, size, 65_536, 37);
    let p = pulled(&mut d);
    assert_eq!((p.result, p.reserved, p.offset), (0, 37, size));
    assert!(p.data.is_empty());
    let f = recv(&mut d);
    assert_eq!(f.module_command(), (6, 3));
    assert_eq!(state_of(&f), (DONE, t.clone(), b.id));
    d.expect_closed().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Abandoned uploads (B-FILE-8, B-FILE-10, B-FILE-7)

#[test]
fn upload_bad_answers_disconnect_and_restart_b_file_8_10() {
    let (srv, _) = Server::start(USERS);
    let mut a = party(&srv, "alice", PC);
    let mut b = party(&srv, "bob", PC);
    let data = pattern(200_000, 6); // 3 full segments and 3 392 bytes
    let t = task(&mut a, b.id, b"up.bin", data.len() as u32, OFFLINE).task;
    let seg0 = &data[..SEGMENT as usize];

    // Three bad answers in a row: the same 6/4 each time, then the connection closes.
    let mut up = file_party(&srv, a.id, &a.tok, &t, UPLOAD);
    assert_eq!(server_pull(&mut up, &t, a.id), (0, SEGMENT));
    segment(&mut up, &t, a.id, 0, 1, seg0); // wrong offset
    assert_eq!(server_pull(&mut up, &t, a.id), (0, SEGMENT));
    segment(&mut up, &t, a.id, 0, 0, &seg0[1..]); // short
    assert_eq!(server_pull(&mut up, &t, a.id), (0, SEGMENT));
    segment(&mut up, &t, a.id, 0, SEGMENT, seg0); // wrong offset again
    up.expect_closed().unwrap();
    // No record, no temporary file.
    io_barrier(&srv, &b);
    assert!(temp_files(&srv).is_empty(), "{:?}", temp_files(&srv));
    assert!(listed_tasks(&mut b.c).is_empty());
    refused(
        &srv,
        Id::Num(b.id),
        &b.tok,
        t.as_bytes(),
        DOWNLOAD,
        "abandoned upload",
    );

    // The task lives on: a new 6/1 mode 3 restarts at offset 0. Bad answers that are not three
    // in a row are forgiven; then the uploader disconnects mid-upload.
    let mut up = file_party(&srv, a.id, &a.tok, &t, UPLOAD);
    assert_eq!(server_pull(&mut up, &t, a.id), (0, SEGMENT));
    segment(&mut up, &t, a.id, 1, 0, seg0); // result != 0
    assert_eq!(server_pull(&mut up, &t, a.id), (0, SEGMENT));
    segment(&mut up, &t, a.id, 0, 0, &data[..SEGMENT as usize + 1]); // too long
    assert_eq!(server_pull(&mut up, &t, a.id), (0, SEGMENT));
    segment(&mut up, &t, a.id, 0, 0, seg0);
    assert_eq!(server_pull(&mut up, &t, a.id), (SEGMENT, SEGMENT));
    let seg1 = &data[SEGMENT as usize..2 * SEGMENT as usize];
    segment(&mut up, &t, a.id, 0, SEGMENT, seg1);
    assert_eq!(server_pull(&mut up, &t, a.id), (2 * SEGMENT, SEGMENT));
    assert_eq!(temp_files(&srv).len(), 1, "upload in progress");
    up.shutdown_write().unwrap();
    up.expect_closed().unwrap();
    io_barrier(&srv, &b);
    assert!(temp_files(&srv).is_empty(), "{:?}", temp_files(&srv));
    assert!(listed_tasks(&mut b.c).is_empty());

    // Restart: from offset 0 again, to completion; the last segment is short.
    let mut up = file_party(&srv, a.id, &a.tok, &t, UPLOAD);
    let mut asked = Vec::new();
    loop {
        let f = recv(&mut up);
        match f.module_command() {
            (6, 4) => {
                let Pdu::PullDataRequest(r) = f.pdu().unwrap() else {
                    panic!()
                };
                asked.push((r.offset, r.size));
                let s = r.offset as usize;
                segment(
                    &mut up,
                    &t,
                    a.id,
                    0,
                    r.offset,
                    &data[s..s + r.size as usize],
                );
            }
            (6, 3) => {
                assert_eq!(state_of(&f), (DONE, t.clone(), a.id));
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        asked,
        vec![
            (0, SEGMENT),
            (SEGMENT, SEGMENT),
            (2 * SEGMENT, SEGMENT),
            (3 * SEGMENT, 3392)
        ]
    );
    up.expect_closed().unwrap();
    assert!(temp_files(&srv).is_empty());
    // Bob: task created (ready 0), then one ready 1.
    assert_eq!(notice(&mut b.c).ready, 0);
    let n = notice(&mut b.c);
    assert_eq!((n.task.as_str(), n.ready), (t.as_str(), 1));
    sync(&mut b.c);
    assert_silent(&mut b.c, Duration::from_millis(100));
    let (got, _) = download(&srv, b.id, &b.tok, &t);
    assert_eq!(sha256(&got), sha256(&data));
}

#[test]
fn upload_cancel_ends_the_task_b_file_7_10() {
    let (srv, _) = Server::start(USERS);
    let mut a = party(&srv, "alice", PC);
    let mut b = party(&srv, "bob", PC);
    let data = pattern(100_000, 12);
    let t = task(&mut a, b.id, b"c.bin", data.len() as u32, OFFLINE).task;
    let mut up = file_party(&srv, a.id, &a.tok, &t, UPLOAD);
    assert_eq!(server_pull(&mut up, &t, a.id), (0, SEGMENT));
    segment(&mut up, &t, a.id, 0, 0, &data[..SEGMENT as usize]);
    assert_eq!(server_pull(&mut up, &t, a.id), (SEGMENT, 100_000 - SEGMENT));
    state(&mut up, CANCEL, &t, a.id, 9);
    up.expect_closed().unwrap();
    io_barrier(&srv, &b);
    assert!(temp_files(&srv).is_empty(), "{:?}", temp_files(&srv));
    assert!(listed_tasks(&mut b.c).is_empty());
    // The task has ended: no restart.
    refused(
        &srv,
        Id::Num(a.id),
        &a.tok,
        t.as_bytes(),
        UPLOAD,
        "cancelled task",
    );
}

// ---------------------------------------------------------------------------------------------
// Online relay errors and 6/3 (B-FILE-6, B-FILE-7)

#[test]
fn online_relay_errors_and_cancel_b_file_6_7() {
    let (srv, _) = Server::start(USERS);
    let mut a = party(&srv, "alice", PC);
    let b = party(&srv, "bob", PC);
    let t = task(&mut a, b.id, b"r.bin", 1000, ONLINE).task;
    let tb = t.as_bytes();
    let (ai, bi) = (Id::Num(a.id), Id::Num(b.id));

    // The receiver alone: 6/4 → result 5 (other party absent).
    let mut rcv = file_party(&srv, b.id, &b.tok, &t, RECEIVER);
    pull(&mut rcv, tb, bi, ONLINE, 0, 100, 41);
    assert_pull_error(&pulled(&mut rcv), 5, 41);

    // Both in: the sender, second, hears its peer is ready.
    let mut snd = file_party(&srv, a.id, &a.tok, &t, SENDER);
    let f = recv_mc(&mut snd, 6, 3);
    assert_eq!(state_of(&f), (PEER_READY, t.clone(), a.id));
    // A 6/4 from the sender's side → 6; one naming another user → 6.
    pull(&mut snd, tb, ai, ONLINE, 0, 100, 42);
    assert_pull_error(&pulled(&mut snd), 6, 42);
    pull(&mut snd, tb, bi, ONLINE, 0, 100, 43);
    assert_pull_error(&pulled(&mut snd), 6, 43);
    pull(&mut rcv, tb, ai, ONLINE, 0, 100, 44);
    assert_pull_error(&pulled(&mut rcv), 6, 44);
    // A peer-ready 6/3 from a client is ignored.
    state(&mut rcv, PEER_READY, &t, b.id, 45);
    sync(&mut rcv);
    sync(&mut snd);
    assert_silent(&mut snd, Duration::from_millis(100));
    assert_silent(&mut rcv, Duration::from_millis(10));

    // Relay works, both ways unchanged.
    pull(&mut rcv, tb, bi, ONLINE, 0, 100, 46);
    let req = recv_mc(&mut snd, 6, 4);
    let Pdu::PullDataRequest(r) = req.pdu().unwrap() else {
        panic!()
    };
    assert_eq!((r.offset, r.size, r.user_id.value()), (0, 100, Some(b.id)));
    segment(&mut snd, &t, a.id, 0, 0, &[7u8; 100]);
    let p = pulled(&mut rcv);
    assert_eq!((p.result, p.data.len()), (0, 100));

    // 6/3 cancel from the sender: forwarded byte for byte, both connections close.
    let cancel = Pdu::FileState(FileState {
        state: CANCEL,
        task_id: tb,
        user_id: ai,
    })
    .to_frame(0x1234);
    snd.send_raw(&cancel).unwrap();
    let fwd = recv_mc(&mut rcv, 6, 3);
    assert_eq!(fwd.bytes, cancel, "forwarded unchanged");
    snd.expect_closed().unwrap();
    rcv.expect_closed().unwrap();
    refused(&srv, bi, &b.tok, tb, RECEIVER, "cancelled task");

    // 6/3 refuse from the receiver: the same, the other way.
    let t2 = task(&mut a, b.id, b"r2.bin", 1000, ONLINE).task;
    let mut snd = file_party(&srv, a.id, &a.tok, &t2, SENDER);
    let mut rcv = file_party(&srv, b.id, &b.tok, &t2, RECEIVER);
    assert_eq!(state_of(&recv_mc(&mut rcv, 6, 3)).0, PEER_READY);
    let refuse = Pdu::FileState(FileState {
        state: REFUSE,
        task_id: t2.as_bytes(),
        user_id: bi,
    })
    .to_frame(0x4321);
    rcv.send_raw(&refuse).unwrap();
    assert_eq!(recv_mc(&mut snd, 6, 3).bytes, refuse, "forwarded unchanged");
    snd.expect_closed().unwrap();
    rcv.expect_closed().unwrap();
    refused(&srv, ai, &a.tok, t2.as_bytes(), SENDER, "refused task");

    // The sender leaves: the receiver's 6/4 → 5 again.
    let t3 = task(&mut a, b.id, b"r3.bin", 1000, ONLINE).task;
    let mut snd = file_party(&srv, a.id, &a.tok, &t3, SENDER);
    let mut rcv = file_party(&srv, b.id, &b.tok, &t3, RECEIVER);
    assert_eq!(state_of(&recv_mc(&mut rcv, 6, 3)).0, PEER_READY);
    snd.shutdown_write().unwrap();
    snd.expect_closed().unwrap();
    pull(&mut rcv, t3.as_bytes(), bi, ONLINE, 0, 100, 47);
    assert_pull_error(&pulled(&mut rcv), 5, 47);
}

// ---------------------------------------------------------------------------------------------
// Expiry (B-FILE-15), heartbeats and timeouts (B-HB-3)

/// Polls `cond` every `every` until true or `timeout`.
fn poll_every(what: &str, every: Duration, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(every);
    }
}

#[test]
fn tasks_expire_after_task_timeout_b_file_15() {
    let (srv, _) = Server::start_with("TaskTimeout=2", USERS);
    let mut a = party(&srv, "alice", PC);
    let b = party(&srv, "bob", PC);
    // The subject: a task nobody logs in to.
    let subject = task(&mut a, b.id, b"s", 10, ONLINE).task;
    // Probes created after it, so none is due before it. A 6/1 is traffic that keeps a task
    // alive, so each probe is tried once: the first refused probe shows the sweep has passed the
    // subject's due time, without the subject ever being touched.
    let probes: Vec<String> = (0..40)
        .map(|_| task(&mut a, b.id, b"p", 10, ONLINE).task)
        .collect();
    let mut next = probes.iter();
    let mut tried = 0;
    poll_every(
        "a probe task to expire",
        Duration::from_millis(200),
        Duration::from_secs(8),
        || {
            let p = next.next().expect("out of probe tasks");
            let mut c = srv.file_conn();
            let r = flogin(
                &mut c,
                Id::Num(a.id),
                a.tok.as_bytes(),
                p.as_bytes(),
                SENDER,
            );
            tried += 1;
            assert!(r == 0 || tried > 1, "the first probe must be alive");
            r == 1
        },
    );
    refused(
        &srv,
        Id::Num(a.id),
        &a.tok,
        subject.as_bytes(),
        SENDER,
        "expired task",
    );
    refused(
        &srv,
        Id::Num(b.id),
        &b.tok,
        subject.as_bytes(),
        RECEIVER,
        "expired task",
    );

    // A logged-in online party without traffic is closed after TaskTimeout; the task ends.
    let t = task(&mut a, b.id, b"idle", 10, ONLINE).task;
    let mut snd = file_party(&srv, a.id, &a.tok, &t, SENDER);
    let start = Instant::now();
    snd.expect_closed().unwrap();
    let idle = start.elapsed();
    assert!(
        idle >= Duration::from_millis(1500) && idle < Duration::from_secs(8),
        "closed after {idle:?}"
    );
    refused(
        &srv,
        Id::Num(b.id),
        &b.tok,
        t.as_bytes(),
        RECEIVER,
        "idle task",
    );

    // An offline upload without traffic: closed, temporary file deleted, no record.
    let t = task(&mut a, b.id, b"stalled", 100_000, OFFLINE).task;
    let mut up = file_party(&srv, a.id, &a.tok, &t, UPLOAD);
    assert_eq!(server_pull(&mut up, &t, a.id), (0, SEGMENT));
    let start = Instant::now();
    up.expect_closed().unwrap();
    assert!(start.elapsed() >= Duration::from_millis(1500));
    io_barrier(&srv, &b);
    assert!(temp_files(&srv).is_empty(), "{:?}", temp_files(&srv));
    refused(
        &srv,
        Id::Num(b.id),
        &b.tok,
        t.as_bytes(),
        DOWNLOAD,
        "stalled upload",
    );
}

#[test]
fn offline_files_expire_after_offline_file_days_b_file_15() {
    let (srv, _) = Server::start_with("FileSweepInterval=1", USERS);
    let mut a = party(&srv, "alice", PC);
    let mut b = party(&srv, "bob", PC);
    let old_data = pattern(10_000, 1);
    let new_data = pattern(10_000, 2);
    let old = offline_file(&srv, &mut a, b.id, b"old", &old_data);
    let new = offline_file(&srv, &mut a, b.id, b"new", &new_data);
    assert_eq!(listed_tasks(&mut b.c), vec![new.clone(), old.clone()]);
    // Age one record by 8 days (OfflineFileDays = 7).
    let db = rusqlite::Connection::open(data_dir(&srv).join("ttserver.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let n = db
        .execute(
            "UPDATE offline_files SET created = ?1 WHERE task_id = ?2",
            rusqlite::params![now - 8 * 86_400, old],
        )
        .unwrap();
    assert_eq!(n, 1);
    drop(db);
    // The sweeper (every second here) deletes the file and its record.
    wait_until(
        "the expired file to leave the disk",
        Duration::from_secs(10),
        || !stored(&srv, b.id, &old).exists(),
    );
    assert_eq!(listed_tasks(&mut b.c), vec![new.clone()]);
    refused(
        &srv,
        Id::Num(b.id),
        &b.tok,
        old.as_bytes(),
        DOWNLOAD,
        "expired file",
    );
    assert!(stored(&srv, b.id, &new).is_file());
    let (got, _) = download(&srv, b.id, &b.tok, &new);
    assert_eq!(sha256(&got), sha256(&new_data));
}

#[test]
fn file_port_heartbeat_after_five_silent_seconds_b_hb_3() {
    let (srv, _) = Server::start(USERS);
    let mut a = party(&srv, "alice", PC);
    let b = party(&srv, "bob", PC);
    let t = task(&mut a, b.id, b"hb", 10, ONLINE).task;
    let mut snd = file_party(&srv, a.id, &a.tok, &t, SENDER);
    let start = Instant::now();
    snd.set_timeout(Some(Duration::from_secs(8)));
    let f = recv(&mut snd);
    let waited = start.elapsed();
    assert_eq!((f.module_command(), f.header.reserved), ((7, 1), 0));
    assert!(
        waited >= Duration::from_millis(4500) && waited < Duration::from_millis(6500),
        "7/1 after {waited:?}"
    );
    // Client 7/1s are answered with their reserved.
    sync(&mut snd);
}

#[test]
fn file_port_closes_without_login_b_hb_3() {
    let (srv, _) = Server::start_with("LoginTimeout=1", &[]);
    let mut c = srv.file_conn();
    let start = Instant::now();
    c.expect_closed().unwrap();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(4),
        "closed after {waited:?}"
    );
}

#[test]
fn upload_segments_follow_file_segment_size_b_file_8() {
    let (srv, _) = Server::start_with("FileSegmentSize=4096", USERS);
    let mut a = party(&srv, "alice", PC);
    let b = party(&srv, "bob", PC);
    let data = pattern(10_000, 3);
    let t = task(&mut a, b.id, b"seg.bin", 10_000, OFFLINE).task;
    let mut up = file_party(&srv, a.id, &a.tok, &t, UPLOAD);
    assert_eq!(server_pull(&mut up, &t, a.id), (0, 4096));
    // Answer that first pull, then let the client helper serve the rest.
    let rsp = Pdu::PullDataResponse(ttserver::proto::file::PullDataResponse {
        result: 0,
        task_id: t.as_bytes(),
        user_id: Id::Num(a.id),
        offset: 0,
        data: &data[..4096],
    });
    up.send(&rsp, 0).unwrap();
    assert_eq!(server_pull(&mut up, &t, a.id), (4096, 4096));
    let rsp = Pdu::PullDataResponse(ttserver::proto::file::PullDataResponse {
        result: 0,
        task_id: t.as_bytes(),
        user_id: Id::Num(a.id),
        offset: 4096,
        data: &data[4096..8192],
    });
    up.send(&rsp, 0).unwrap();
    assert_eq!(
        server_pull(&mut up, &t, a.id),
        (8192, 10_000 - 8192),
        "the last one shorter"
    );
}

/// P-4 .. P-12 on the file port: a bad frame closes only its connection; an unknown command is
/// skipped and the connection stays usable.
#[test]
fn malformed_input_on_the_file_port_closes_only_that_connection_p_11() {
    let (srv, _) = Server::start(USERS);
    let mut a = party(&srv, "alice", PC);
    let b = party(&srv, "bob", PC);
    let t = task(&mut a, b.id, b"m.bin", 10, OFFLINE).task;
    let mut bad_len = srv.file_conn();
    bad_len
        .send_raw(&[0xff, 0xff, 0xff, 0xff, 0, 6, 0, 1, 0, 1, 0, 0])
        .unwrap();
    bad_len.expect_closed().unwrap();
    // A 6/1 with one trailing byte (P-6).
    let mut trailing = srv.file_conn();
    let mut f = Pdu::FileLogin(ttserver::proto::file::FileLogin {
        user_id: Id::Num(a.id),
        token: a.tok.as_bytes(),
        task_id: t.as_bytes(),
        client_mode: UPLOAD,
    })
    .to_frame(1);
    f.push(0);
    let n = f.len() as u32;
    f[..4].copy_from_slice(&n.to_be_bytes());
    trailing.send_raw(&f).unwrap();
    trailing.expect_closed().unwrap();
    // An unknown command (3/1 belongs to the msg port) is skipped; the 6/1 after it works.
    let mut ok = srv.file_conn();
    let unknown = [0, 0, 0, 12, 0, 3, 0, 1, 0, 1, 0, 0];
    ok.send_raw(&unknown).unwrap();
    assert_eq!(
        flogin(
            &mut ok,
            Id::Num(a.id),
            a.tok.as_bytes(),
            t.as_bytes(),
            UPLOAD
        ),
        0
    );
    assert_eq!(server_pull(&mut ok, &t, a.id), (0, 10));
}

/// MaxFileTasks: at the cap 6/10 answers result 2 (B-FILE-3 "task not creatable"); once a
/// task ends there is room again.
#[test]
fn live_tasks_are_capped_b_file_3() {
    let (srv, _) = Server::start_with("MaxFileTasks=2", USERS);
    let mut a = party(&srv, "alice", PC);
    let b = party(&srv, "bob", PC);
    let first = task(&mut a, b.id, b"1", 10, OFFLINE).task;
    task(&mut a, b.id, b"2", 10, OFFLINE);
    let r = file_req(&mut a.c, Id::Num(a.id), Id::Num(b.id), b"3", 10, OFFLINE, 5);
    assert_eq!((r.result, r.task.as_str(), r.trans_mode), (2, "", 0));
    assert!(r.addrs.is_empty());
    // Finish the first upload: its task ends and a new one can be created.
    let mut up = file_party(&srv, a.id, &a.tok, &first, UPLOAD);
    up.serve_upload(&first, a.id, &[7u8; 10]).unwrap();
    up.expect_closed().unwrap();
    let r = file_req(&mut a.c, Id::Num(a.id), Id::Num(b.id), b"4", 10, OFFLINE, 6);
    assert_eq!(r.result, 0);
}
