//! Long texts (B-MSG-1 (b), issue: 1,700 Chinese characters are already 5,100 bytes): a text of
//! exactly `MaxTextLen` (default 65,536 bytes) travels every path whole (ack, live delivery,
//! group fan-out, 3/14, 5/8, the admin API); one byte more is rejected.

mod common;

use common::*;
use ttserver::client::Client;
use ttserver::proto::group::GroupUnreadMsgRequest;
use ttserver::proto::msg::UnreadMsgRequest;
use ttserver::proto::{Id, Pdu};

/// Default `MaxTextLen`.
const MAX_TEXT: usize = 65_536;

/// `len` bytes of Chinese text (3 bytes a character), padded with ASCII to the exact length.
fn chinese(len: usize) -> Vec<u8> {
    let mut s = "你好".repeat(len / 6).into_bytes();
    s.resize(len, b'!');
    s
}

/// The payload of the next 3/1 delivered to `c`.
fn delivered(c: &mut Client) -> Vec<u8> {
    let f = recv_mc(c, 3, 1);
    let Pdu::MsgData(m) = f.pdu().unwrap() else {
        panic!()
    };
    m.msg_data.to_vec()
}

#[test]
fn p2p_text_of_max_len_everywhere_and_one_more_byte_rejected() {
    let (srv, ids) = Server::start(&[("alice", "a"), ("bob", "b")]);
    let (a, b) = (ids[0], ids[1]);
    let (mut alice, _) = srv.login("alice", "a", PC);
    let (mut bob, _) = srv.login("bob", "b", PC);
    let long = chinese(MAX_TEXT);

    // One byte over: no ack, nothing delivered (B-MSG-1); the connection stays open.
    alice
        .send_raw(&msg_frame(a, b, 0x01, 1, &chinese(MAX_TEXT + 1)))
        .unwrap();
    // Exactly MaxTextLen: acked (and the ack comes first, so the one above had none).
    alice.send_raw(&msg_frame(a, b, 0x01, 2, &long)).unwrap();
    let ack = recv(&mut alice);
    assert_eq!((ack.module_command(), ack.header.reserved), ((3, 2), 2));
    assert_eq!(delivered(&mut bob), long);

    // Stored whole: 3/14 returns it byte for byte.
    bob.send(
        &Pdu::UnreadMsgRequest(UnreadMsgRequest {
            peer_id: Id::Num(a),
        }),
        9,
    )
    .unwrap();
    let f = recv_mc(&mut bob, 3, 14);
    let Pdu::UnreadMsgResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    let msgs: Vec<&[u8]> = r.msgs.iter().map(|m| m.msg_data).collect();
    assert_eq!(msgs, vec![&long[..]]);
}

#[test]
fn group_text_of_max_len_fans_out_and_is_stored() {
    let (srv, ids) = Server::start(&[("alice", "a"), ("bob", "b"), ("carol", "c")]);
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let (mut alice, _) = srv.login("alice", "a", PC);
    let (mut bob, _) = srv.login("bob", "b", PC);
    let (mut carol, _) = srv.login("carol", "c", IOS);
    let g = create_temp_group(&mut alice, "long", &[b, c]);
    recv_mc(&mut bob, 5, 13);
    recv_mc(&mut carol, 5, 13);

    let long = chinese(MAX_TEXT);
    alice
        .send_raw(&msg_frame(a, g, 0x11, 2, &chinese(MAX_TEXT + 1)))
        .unwrap();
    alice.send_raw(&msg_frame(a, g, 0x11, 3, &long)).unwrap();
    let ack = recv(&mut alice);
    assert_eq!((ack.module_command(), ack.header.reserved), ((3, 2), 3));
    assert_eq!(delivered(&mut bob), long);
    assert_eq!(delivered(&mut carol), long);

    carol
        .send(
            &Pdu::GroupUnreadMsgRequest(GroupUnreadMsgRequest {
                group_id: Id::Num(g),
            }),
            4,
        )
        .unwrap();
    let f = recv_mc(&mut carol, 5, 8);
    let Pdu::GroupUnreadMsgResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    let msgs: Vec<&[u8]> = r.msgs.iter().map(|m| m.msg_data).collect();
    assert_eq!(msgs, vec![&long[..]]);
}

#[test]
fn admin_message_of_max_len_is_stored_and_delivered() {
    let (srv, ids) = Server::start(&[("alice", "a"), ("bob", "b")]);
    let (a, b) = (ids[0], ids[1]);
    let (mut bob, _) = srv.login("bob", "b", PC);
    let mut h = srv.http();
    let long = String::from_utf8(chinese(MAX_TEXT)).unwrap();
    let over = String::from_utf8(chinese(MAX_TEXT + 1)).unwrap();
    let (st, _) = h.req(
        "POST",
        "/v1/messages",
        Some(serde_json::json!({"from": a, "to_user": b, "text": over})),
    );
    assert_eq!(st, 400);
    h.ok(
        "POST",
        "/v1/messages",
        Some(serde_json::json!({"from": a, "to_user": b, "text": long})),
        200,
    );
    assert_eq!(delivered(&mut bob), long.as_bytes());
}
