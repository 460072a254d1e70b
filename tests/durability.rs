//! "Ack means durable" (B-MSG-2, B-MSG-3): every acked message survives SIGKILL, exactly once.

mod common;

use std::collections::HashMap;

use common::*;
use ttserver::proto::msg::{MsgData, UnreadMsgRequest};
use ttserver::proto::{Id, Pdu};

const N: u32 = 300;

#[test]
fn acked_messages_survive_sigkill_exactly_once() {
    let (mut srv, ids) = Server::start_with(
        "MaxUnreadMsgs=1000\nMsgRateLimit=100000\nDbSync=full",
        &[("sender", "s"), ("receiver", "r")],
    );
    let (a, b) = (ids[0], ids[1]);
    let (mut sender, _) = srv.login("sender", "s", PC);
    let (sa, sb) = (a.to_string(), b.to_string());
    // Write all messages in a few large writes so many are in flight at once (group commit).
    let mut batch = Vec::new();
    for i in 0..N {
        let body = format!("durable message {i}");
        Pdu::MsgData(MsgData {
            seq_no: i,
            from_id: Id::Raw(sa.as_bytes()),
            to_id: Id::Raw(sb.as_bytes()),
            create_time: 0,
            msg_type: 1,
            msg_data: body.as_bytes(),
            attach: b"",
        })
        .encode(1, &mut batch);
    }
    sender.send_raw(&batch).unwrap();
    let mut acked = Vec::new();
    for _ in 0..N {
        let f = recv_mc(&mut sender, 3, 2);
        let Pdu::MsgDataAck(k) = f.pdu().unwrap() else {
            panic!()
        };
        acked.push(k.seq_no);
    }
    assert_eq!(
        acked,
        (0..N).collect::<Vec<_>>(),
        "acks in arrival order (B-MSG-4)"
    );

    srv.kill9();
    srv.spawn();

    let (mut receiver, _) = srv.login("receiver", "r", ANDROID);
    receiver.send(&Pdu::UnreadCountRequest, 1).unwrap();
    let f = recv_mc(&mut receiver, 3, 8);
    let Pdu::UnreadCountResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!(r.counts.len(), 1);
    assert_eq!(r.counts[0].peer_id.value(), Some(a));
    assert_eq!(r.counts[0].unread_cnt, N);

    receiver
        .send(
            &Pdu::UnreadMsgRequest(UnreadMsgRequest {
                peer_id: Id::Raw(sa.as_bytes()),
            }),
            2,
        )
        .unwrap();
    let f = recv_mc(&mut receiver, 3, 14);
    let Pdu::UnreadMsgResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    let mut seen: HashMap<String, u32> = HashMap::new();
    for m in &r.msgs {
        *seen
            .entry(String::from_utf8(m.msg_data.to_vec()).unwrap())
            .or_default() += 1;
    }
    for i in 0..N {
        assert_eq!(
            seen.get(&format!("durable message {i}")),
            Some(&1),
            "message {i}"
        );
    }
    assert_eq!(r.msgs.len(), N as usize);
    // Newest first, and stored times never decrease in storage order (B-GEN-3).
    assert_eq!(
        r.msgs[0].msg_data,
        format!("durable message {}", N - 1).as_bytes()
    );
    assert!(r
        .msgs
        .windows(2)
        .all(|w| w[0].create_time >= w[1].create_time));
}
