//! Audio messages over real sockets (B-MSG-1, B-GRP-7, protocol.md section 8.4): 0x02 p2p audio
//! and 0x12 group audio carry `u32 duration` then the encoded audio; the server checks only the
//! length (more than 4, at most `MaxAudioLen`) and stores and returns the payload unchanged.

mod common;

use std::time::Duration;

use common::*;
use ttserver::client::Client;
use ttserver::proto::group::{CreateTempGroupRequest, GroupUnreadMsgRequest};
use ttserver::proto::msg::{MsgData, UnreadMsgRequest};
use ttserver::proto::{Id, Pdu};

const P2P_TEXT: u8 = 0x01;
const P2P_AUDIO: u8 = 0x02;
const GROUP_AUDIO: u8 = 0x12;
/// The default `MaxAudioLen` (behaviour.md section 0).
const MAX_AUDIO: usize = 102_400;

/// An audio payload of `len` bytes: `u32 duration` (big-endian), then bytes covering every
/// value, NUL and 0xff included.
fn audio(duration: u32, len: usize) -> Vec<u8> {
    let mut v = duration.to_be_bytes().to_vec();
    v.extend((0..len.saturating_sub(4)).map(|i| (i * 7 + 3) as u8));
    v.truncate(len);
    v
}

/// A 3/1 from `from` to `to` (a user or a group).
fn send(c: &mut Client, from: u32, to: u32, seq: u32, msg_type: u8, data: &[u8]) {
    c.send(
        &Pdu::MsgData(MsgData {
            seq_no: seq,
            from_id: Id::Num(from),
            to_id: Id::Num(to),
            create_time: 0,
            msg_type,
            msg_data: data,
            attach: b"",
        }),
        seq as u16,
    )
    .unwrap();
}

/// The next 3/2 on the sender's connection: its `seq_no`.
fn ack(c: &mut Client) -> u32 {
    let f = recv_mc(c, 3, 2);
    let Pdu::MsgDataAck(k) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!(f.header.reserved as u32, k.seq_no);
    k.seq_no
}

/// The next 3/1 push: (from, to, msg_type, payload).
fn delivery(c: &mut Client) -> (u32, u32, u8, Vec<u8>) {
    let f = recv_mc(c, 3, 1);
    let Pdu::MsgData(m) = f.pdu().unwrap() else {
        panic!()
    };
    (
        m.from_id.value().unwrap(),
        m.to_id.value().unwrap(),
        m.msg_type,
        m.msg_data.to_vec(),
    )
}

/// 3/9 -> 3/14: [(msg_type, payload)] from `peer`, newest first.
fn unread(c: &mut Client, peer: u32) -> Vec<(u8, Vec<u8>)> {
    let p = peer.to_string();
    c.send(
        &Pdu::UnreadMsgRequest(UnreadMsgRequest {
            peer_id: Id::Raw(p.as_bytes()),
        }),
        39,
    )
    .unwrap();
    let f = recv_mc(c, 3, 14);
    assert_eq!(f.header.reserved, 39);
    let Pdu::UnreadMsgResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!(r.peer_id.value(), Some(peer));
    r.msgs
        .iter()
        .map(|m| {
            assert_eq!(m.from_id.value(), Some(peer));
            assert!(m.create_time > 1_600_000_000);
            (m.msg_type, m.msg_data.to_vec())
        })
        .collect()
}

/// 5/7 -> 5/8: [(from, msg_type, payload)], newest first.
fn group_unread(c: &mut Client, group: u32) -> Vec<(u32, u8, Vec<u8>)> {
    let g = group.to_string();
    c.send(
        &Pdu::GroupUnreadMsgRequest(GroupUnreadMsgRequest {
            group_id: Id::Raw(g.as_bytes()),
        }),
        57,
    )
    .unwrap();
    let f = recv_mc(c, 5, 8);
    assert_eq!(f.header.reserved, 57);
    let Pdu::GroupUnreadMsgResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!(r.group_id.value(), Some(group));
    r.msgs
        .iter()
        .map(|m| {
            assert!(m.create_time > 1_600_000_000);
            (m.from_id.value().unwrap(), m.msg_type, m.msg_data.to_vec())
        })
        .collect()
}

/// Messages that must be rejected (B-MSG-1 (b)): nothing but the next valid one is acked.
fn rejected_then_valid(c: &mut Client, from: u32, to: u32, msg_type: u8, seq: &mut u32) {
    for bad in [
        Vec::new(),
        audio(9, 1),
        audio(9, 4), // the duration alone
        audio(9, MAX_AUDIO + 1),
        audio(9, MAX_AUDIO + 1000),
    ] {
        *seq += 1;
        send(c, from, to, *seq, msg_type, &bad);
    }
    *seq += 1;
    send(c, from, to, *seq, msg_type, &audio(1, 5));
    assert_eq!(ack(c), *seq, "only the valid message is acked");
}

#[test]
fn p2p_audio_is_stored_and_returned_unchanged_b_msg_1() {
    let (srv, ids) = Server::start(&[("alice", "a"), ("bob", "b")]);
    let (a, b) = (ids[0], ids[1]);
    let (mut alice, _) = srv.login("alice", "a", PC);
    // Bob is offline. The shortest and the longest audio are accepted, and a text in between
    // keeps its own type.
    let sent: Vec<(u8, Vec<u8>)> = vec![
        (P2P_AUDIO, audio(1, 5)),
        (P2P_AUDIO, audio(12, 3000)),
        (P2P_TEXT, b"text in between".to_vec()),
        (P2P_AUDIO, audio(60, MAX_AUDIO)),
        (P2P_AUDIO, audio(u32::MAX, 6)),
    ];
    for (i, (t, d)) in sent.iter().enumerate() {
        send(&mut alice, a, b, i as u32 + 1, *t, d);
        assert_eq!(ack(&mut alice), i as u32 + 1);
    }
    // Too short (<= 4 bytes) or longer than MaxAudioLen: no ack, not stored.
    let mut seq = 100;
    rejected_then_valid(&mut alice, a, b, P2P_AUDIO, &mut seq);
    sync(&mut alice);
    assert_silent(&mut alice, Duration::from_millis(200));

    // Bob logs in: 3/14 returns every payload unchanged with its type, newest first.
    let (mut bob, _) = srv.login("bob", "b", PC);
    let mut expect = sent.clone();
    expect.push((P2P_AUDIO, audio(1, 5)));
    expect.reverse();
    let got = unread(&mut bob, a);
    assert_eq!(got.len(), expect.len());
    for (g, e) in got.iter().zip(&expect) {
        assert_eq!(g.0, e.0);
        assert!(g.1 == e.1, "payload of {} bytes changed", e.1.len());
    }

    // Live delivery carries the same payload and type.
    let clip = audio(7, 20_000);
    send(&mut alice, a, b, 200, P2P_AUDIO, &clip);
    assert_eq!(ack(&mut alice), 200);
    let (from, to, t, data) = delivery(&mut bob);
    assert_eq!((from, to, t), (a, b, P2P_AUDIO));
    assert!(data == clip);
    sync(&mut bob);
    assert_silent(&mut bob, Duration::from_millis(100));
}

#[test]
fn group_audio_is_stored_and_returned_unchanged_b_grp_7() {
    let (srv, ids) = Server::start(&[("alice", "a"), ("bob", "b"), ("carol", "c")]);
    let a = ids[0];
    let (mut alice, _) = srv.login("alice", "a", PC);
    let (mut carol, _) = srv.login("carol", "c", PC);
    let members: Vec<String> = ids[1..].iter().map(u32::to_string).collect();
    alice
        .send(
            &Pdu::CreateTempGroupRequest(CreateTempGroupRequest {
                group_name: b"voice",
                group_avatar: b"",
                member_ids: members.iter().map(|m| Id::Raw(m.as_bytes())).collect(),
            }),
            12,
        )
        .unwrap();
    let f = recv_mc(&mut alice, 5, 13);
    let Pdu::CreateTempGroupResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!(r.result, 0);
    let g = r.group_id.value().unwrap();
    recv_mc(&mut carol, 5, 13);

    let sent = [audio(1, 5), audio(30, 5000), audio(60, MAX_AUDIO)];
    for (i, d) in sent.iter().enumerate() {
        send(&mut alice, a, g, i as u32 + 1, GROUP_AUDIO, d);
        assert_eq!(ack(&mut alice), i as u32 + 1);
        let (from, to, t, data) = delivery(&mut carol);
        assert_eq!((from, to, t), (a, g, GROUP_AUDIO));
        assert!(&data == d, "delivered payload changed");
    }
    let mut seq = 100;
    rejected_then_valid(&mut alice, a, g, GROUP_AUDIO, &mut seq);
    assert_eq!(delivery(&mut carol).3, audio(1, 5));
    sync(&mut alice);
    assert_silent(&mut alice, Duration::from_millis(200));
    sync(&mut carol);
    assert_silent(&mut carol, Duration::from_millis(100));

    // Bob was offline: 5/7 -> 5/8 returns every payload unchanged, type 0x12, newest first.
    let (mut bob, _) = srv.login("bob", "b", PC);
    let mut expect: Vec<Vec<u8>> = sent.to_vec();
    expect.push(audio(1, 5));
    expect.reverse();
    let got = group_unread(&mut bob, g);
    assert_eq!(got.len(), expect.len());
    for (x, e) in got.iter().zip(&expect) {
        assert_eq!((x.0, x.1), (a, GROUP_AUDIO));
        assert!(&x.2 == e, "stored payload of {} bytes changed", e.len());
    }
}

#[test]
fn max_audio_len_is_configurable_b_msg_1() {
    let (srv, ids) = Server::start_with("MaxAudioLen=100", &[("alice", "a"), ("bob", "b")]);
    let (a, b) = (ids[0], ids[1]);
    let (mut alice, _) = srv.login("alice", "a", PC);
    send(&mut alice, a, b, 1, P2P_AUDIO, &audio(3, 101));
    send(&mut alice, a, b, 2, P2P_AUDIO, &audio(3, 100));
    assert_eq!(ack(&mut alice), 2, "101 bytes > MaxAudioLen = 100");
    sync(&mut alice);
    assert_silent(&mut alice, Duration::from_millis(100));
    let (mut bob, _) = srv.login("bob", "b", PC);
    assert_eq!(unread(&mut bob, a), vec![(P2P_AUDIO, audio(3, 100))]);
}
