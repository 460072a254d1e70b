//! File transfer over real sockets (behaviour.md B-FILE): offline and online transfers, refusals,
//! path safety, expiry.

mod common;

use common::*;
use ttserver::client::Client;

const ONLINE: u32 = 1;
const OFFLINE: u32 = 2;

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

/// Offline: upload `data` as a, download it as b; returns what b received.
fn offline_round_trip(srv: &Server, data: &[u8]) -> Vec<u8> {
    let (mut a, a_id, a_tok) = srv.login_token("alice", "pa", PC);
    let (mut b, b_id, b_tok) = srv.login_token("bob", "pb", PC);
    let size = u32::try_from(data.len()).unwrap();
    let task = a
        .request_file(a_id, b_id, b"data.bin", size, OFFLINE)
        .unwrap();
    assert_eq!(task.result, 0);
    assert_eq!(task.trans_mode, OFFLINE);
    let mut up = Client::connect(task.addr().unwrap()).unwrap();
    assert_eq!(up.file_login(a_id, &a_tok, &task.task_id, 3).unwrap(), 0);
    up.serve_upload(&task.task_id, a_id, data).unwrap();
    up.expect_closed().unwrap();
    let mut down = srv.file_conn();
    assert_eq!(down.file_login(b_id, &b_tok, &task.task_id, 4).unwrap(), 0);
    let mut got = Vec::new();
    let d = down
        .download(&task.task_id, b_id, 65_536, &mut got)
        .unwrap();
    assert_eq!(d.sender, a_id);
    down.expect_closed().unwrap();
    let _ = (&mut a, &mut b);
    got
}

#[test]
fn offline_one_byte_and_ten_mib() {
    let (srv, _) = Server::start(&[("alice", "pa"), ("bob", "pb")]);
    for data in [vec![0x5a], pattern(10 << 20, 7)] {
        let got = offline_round_trip(&srv, &data);
        assert_eq!(got.len(), data.len());
        assert!(got == data, "bytes differ");
    }
}

/// Online: the receiver pulls through the server from the sender (B-FILE-5, B-FILE-6).
fn online_round_trip(srv: &Server, data: &[u8]) -> Vec<u8> {
    use ttserver::proto::file::{FileState, PullDataRequest, PullDataResponse};
    use ttserver::proto::{Id, Pdu};
    let (mut a, a_id, a_tok) = srv.login_token("alice", "pa", PC);
    let (mut b, b_id, b_tok) = srv.login_token("bob", "pb", PC);
    let size = u32::try_from(data.len()).unwrap();
    let task = a
        .request_file(a_id, b_id, b"live.bin", size, ONLINE)
        .unwrap();
    assert_eq!((task.result, task.trans_mode), (0, ONLINE));
    let note = recv_mc(&mut b, 6, 12);
    match note.pdu().unwrap() {
        Pdu::FileNotify(n) => {
            assert_eq!(n.task_id, task.task_id.as_bytes());
            assert_eq!(
                (n.trans_mode, n.offline_ready, n.file_size),
                (ONLINE, 0, size)
            );
        }
        other => panic!("{other:?}"),
    }
    let mut snd = Client::connect(task.addr().unwrap()).unwrap();
    assert_eq!(snd.file_login(a_id, &a_tok, &task.task_id, 1).unwrap(), 0);
    let mut rcv = srv.file_conn();
    assert_eq!(rcv.file_login(b_id, &b_tok, &task.task_id, 2).unwrap(), 0);
    // B-FILE-5: the second to log in hears that its peer is ready.
    let ready = recv_mc(&mut rcv, 6, 3);
    assert_eq!(ready.header.reserved, 0);
    let mut got = Vec::new();
    let tid = task.task_id.as_bytes();
    while got.len() < data.len() {
        let want = (data.len() - got.len()).min(100_000) as u32;
        let req = Pdu::PullDataRequest(PullDataRequest {
            task_id: tid,
            user_id: Id::Num(b_id),
            mode: 1,
            offset: got.len() as u32,
            size: want,
        });
        rcv.send(&req, 77).unwrap();
        let pulled = recv_mc(&mut snd, 6, 4);
        assert_eq!(pulled.header.reserved, 77, "relayed unchanged (P-17)");
        let Pdu::PullDataRequest(r) = pulled.pdu().unwrap() else {
            panic!()
        };
        let start = r.offset as usize;
        let chunk = &data[start..start + r.size as usize];
        let rsp = Pdu::PullDataResponse(PullDataResponse {
            result: 0,
            task_id: tid,
            user_id: Id::Num(a_id),
            offset: r.offset,
            data: chunk,
        });
        snd.send(&rsp, 78).unwrap();
        let f = recv_mc(&mut rcv, 6, 5);
        let Pdu::PullDataResponse(r) = f.pdu().unwrap() else {
            panic!()
        };
        assert_eq!(r.result, 0);
        got.extend_from_slice(r.data);
    }
    let done = Pdu::FileState(FileState {
        state: 3,
        task_id: tid,
        user_id: Id::Num(b_id),
    });
    rcv.send(&done, 5).unwrap();
    let fwd = recv_mc(&mut snd, 6, 3);
    assert_eq!(fwd.header.reserved, 5);
    snd.expect_closed().unwrap();
    rcv.expect_closed().unwrap();
    got
}

#[test]
fn online_one_byte_and_ten_mib() {
    let (srv, _) = Server::start(&[("alice", "pa"), ("bob", "pb")]);
    for data in [vec![0xa5], pattern(10 << 20, 9)] {
        let got = online_round_trip(&srv, &data);
        assert!(got == data, "bytes differ");
    }
}
