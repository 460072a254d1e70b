//! Back-pressure rate limit (B-MSG-6), slow consumers (B-FLOW-1), connection cap (B-FLOW-2).

mod common;

use std::time::{Duration, Instant};

use common::*;
use ttserver::client::Client;
use ttserver::proto::msg::MsgData;
use ttserver::proto::switch::P2PCmd;
use ttserver::proto::{Id, Pdu};

#[test]
fn rate_limit_delays_but_never_drops() {
    // B-MSG-6 example: 300 3/1s written at once are all acked, in order, the last at least
    // 1.9 s after the first (100 tokens at once, then 100 per second).
    let (srv, ids) = Server::start(&[("alice", "a"), ("bob", "b")]);
    let (sa, sb) = (ids[0].to_string(), ids[1].to_string());
    let (mut alice, _) = srv.login("alice", "a", PC);
    let mut batch = Vec::new();
    for i in 0..300u32 {
        Pdu::MsgData(MsgData {
            seq_no: i,
            from_id: Id::Raw(sa.as_bytes()),
            to_id: Id::Raw(sb.as_bytes()),
            create_time: 0,
            msg_type: 1,
            msg_data: b"x",
            attach: b"",
        })
        .encode(0, &mut batch);
    }
    alice.send_raw(&batch).unwrap();
    let mut first = None;
    for i in 0..300u32 {
        let f = recv_mc(&mut alice, 3, 2);
        let Pdu::MsgDataAck(k) = f.pdu().unwrap() else {
            panic!()
        };
        assert_eq!(k.seq_no, i);
        first.get_or_insert_with(Instant::now);
    }
    let spread = first.unwrap().elapsed();
    assert!(
        spread >= Duration::from_millis(1900),
        "acks spread over {spread:?}"
    );
    // The connection is still open and usable.
    sync(&mut alice);
}

#[test]
fn slow_consumer_is_closed_and_others_are_not_delayed() {
    // B-FLOW-1: a recipient that never reads is closed once its queue passes OutBufCap.
    let (srv, ids) = Server::start_with(
        "OutBufCap=65536\nMaxOutPduSize=16384\nMaxAudioLen=8192\nMaxTextLen=8192\nMsgRateLimit=1000000",
        &[("alice", "a"), ("bob", "b"), ("carol", "c")],
    );
    let (sa, sb, sc) = (ids[0].to_string(), ids[1].to_string(), ids[2].to_string());
    let (mut alice, _) = srv.login("alice", "a", PC);
    let (mut bob, _) = srv.login("bob", "b", PC); // never reads
    let (mut carol, _) = srv.login("carol", "c", PC);
    let payload = vec![b'p'; 16000];
    let cmd = |to: &str| {
        Pdu::P2PCmd(P2PCmd {
            seq_no: 1,
            from_id: Id::Raw(sa.as_bytes()),
            to_id: Id::Raw(to.as_bytes()),
            cmd_data: &payload,
        })
        .to_frame(0)
    };
    // 32 MiB: far more than the kernel's socket buffers plus OutBufCap can hold for bob.
    let to_bob = cmd(&sb);
    for round in 0..2000 {
        alice.send_raw(&to_bob).unwrap();
        if round % 100 == 99 {
            // Carol is not delayed by bob: her command arrives while bob's queue is full.
            alice.send_raw(&cmd(&sc)).unwrap();
            let f = recv_mc(&mut carol, 4, 1);
            assert_eq!(f.body().len(), 16000 + 4 + 4 + sa.len() + 4 + sc.len() + 4);
        }
    }
    sync(&mut alice);
    // Now bob reads: he finds what the kernel buffered, then the close.
    bob.set_timeout(Some(Duration::from_secs(10)));
    let closed = loop {
        match bob.recv() {
            Ok(_) => continue,
            Err(ttserver::client::ClientError::Closed)
            | Err(ttserver::client::ClientError::Io(_)) => break true,
            Err(_) => break false,
        }
    };
    assert!(closed, "the slow consumer was never closed");
    sync(&mut alice);
    sync(&mut carol);
}

#[test]
fn connections_over_the_cap_are_closed_at_once() {
    // B-FLOW-2 and B-LS-2 with MaxConnCnt=2
    let (srv, _) = Server::start_with("MaxConnCnt=2", &[("alice", "a"), ("bob", "b")]);
    let (mut a, _) = srv.login("alice", "a", PC);
    let (mut b, _) = srv.login("bob", "b", PC);
    let mut third = Client::connect(srv.msg).unwrap();
    third.expect_closed().unwrap();
    // The login port now answers "all msg servers full" (result 2, body = result only).
    let ms = Client::request_msg_server(srv.login).unwrap();
    assert_eq!(ms.result, 2);
    sync(&mut a);
    sync(&mut b);
}
