//! One-to-one chat, unread state, recent contacts, users, departments, statuses and P2P commands
//! over real sockets (B-MSG, B-UNR, B-RC, B-USER, B-PRES-6/7, B-CMD, B-GEN-2).

mod common;

use std::time::Duration;

use common::*;
use ttserver::client::Client;
use ttserver::proto::buddy::{
    RecentContactRequest, RemoveSessionRequest, UserInfoRequest, UserStatusRequest,
    UsersStatusRequest,
};
use ttserver::proto::msg::{MsgData, MsgReadAck, UnreadMsgRequest};
use ttserver::proto::switch::P2PCmd;
use ttserver::proto::{Id, Pdu};

fn text(from: u32, to: u32, seq: u32, body: &str) -> Vec<u8> {
    let from = from.to_string();
    let to = to.to_string();
    Pdu::MsgData(MsgData {
        seq_no: seq,
        from_id: Id::Raw(from.as_bytes()),
        to_id: Id::Raw(to.as_bytes()),
        create_time: 0,
        msg_type: 1,
        msg_data: body.as_bytes(),
        attach: b"att",
    })
    .to_frame(seq as u16)
}

fn unread_counts(c: &mut Client) -> Vec<(u32, u32)> {
    c.send(&Pdu::UnreadCountRequest, 3).unwrap();
    let f = recv_mc(c, 3, 8);
    assert_eq!(f.header.reserved, 3);
    let Pdu::UnreadCountResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    r.counts
        .iter()
        .map(|x| (x.peer_id.value().unwrap(), x.unread_cnt))
        .collect()
}

fn unread_texts(c: &mut Client, peer: u32) -> Vec<String> {
    let p = peer.to_string();
    c.send(
        &Pdu::UnreadMsgRequest(UnreadMsgRequest {
            peer_id: Id::Raw(p.as_bytes()),
        }),
        4,
    )
    .unwrap();
    let f = recv_mc(c, 3, 14);
    let Pdu::UnreadMsgResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!(r.peer_id.value(), Some(peer));
    r.msgs
        .iter()
        .map(|m| String::from_utf8(m.msg_data.to_vec()).unwrap())
        .collect()
}

#[test]
fn online_message_is_acked_then_delivered_to_every_session() {
    // B-MSG-2 steps 4-5, B-MSG-8 (attach relayed live), P-15/P-16
    let (srv, ids) = Server::start(&[("alice", "a"), ("bob", "b")]);
    let (a, b) = (ids[0], ids[1]);
    let (mut alice, _) = srv.login("alice", "a", PC);
    let (mut alice_phone, _) = srv.login("alice", "a", IOS);
    let (mut bob, _) = srv.login("bob", "b", PC);
    let (mut bob_phone, _) = srv.login("bob", "b", ANDROID);

    alice.send_raw(&text(a, b, 7, "hi")).unwrap();
    let ack = recv(&mut alice);
    assert_eq!(ack.module_command(), (3, 2));
    assert_eq!(ack.header.reserved, 7);
    let Pdu::MsgDataAck(k) = ack.pdu().unwrap() else {
        panic!()
    };
    assert_eq!(k.seq_no, 7);
    assert_eq!(k.from_id.value(), Some(a));

    for c in [&mut bob, &mut bob_phone, &mut alice_phone] {
        let f = recv_mc(c, 3, 1);
        assert_eq!(f.header.reserved, 0);
        let Pdu::MsgData(m) = f.pdu().unwrap() else {
            panic!()
        };
        assert_eq!(m.seq_no, 7);
        assert_eq!(m.from_id.value(), Some(a));
        assert_eq!(m.to_id.value(), Some(b));
        assert_eq!(m.msg_data, b"hi");
        assert_eq!(m.attach, b"att");
        assert!(m.create_time > 1_600_000_000);
    }
    // The sending connection gets no copy of its own message.
    sync(&mut alice);
    assert_silent(&mut alice, Duration::from_millis(200));
}

#[test]
fn offline_messages_are_unread_per_family_until_read() {
    // B-UNR-1..6, B-MSG-8 (attach not stored)
    let (srv, ids) = Server::start(&[("alice", "a"), ("bob", "b"), ("carol", "c")]);
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let (mut alice, _) = srv.login("alice", "a", PC);
    for (i, t) in ["one", "two", "three"].iter().enumerate() {
        alice.send_raw(&text(a, b, i as u32 + 1, t)).unwrap();
        recv_mc(&mut alice, 3, 2);
    }
    let (mut carol, _) = srv.login("carol", "c", PC);
    carol.send_raw(&text(c, b, 1, "from carol")).unwrap();
    recv_mc(&mut carol, 3, 2);

    let (mut bob, _) = srv.login("bob", "b", PC);
    // Nothing is pushed at login (B-UNR-5).
    sync(&mut bob);
    assert_silent(&mut bob, Duration::from_millis(200));
    // Newest unread peer first.
    assert_eq!(unread_counts(&mut bob), vec![(c, 1), (a, 3)]);
    assert_eq!(unread_texts(&mut bob, a), vec!["three", "two", "one"]);

    // 3/14 carries the sender's record and the stored time and type.
    let p = a.to_string();
    bob.send(
        &Pdu::UnreadMsgRequest(UnreadMsgRequest {
            peer_id: Id::Raw(p.as_bytes()),
        }),
        5,
    )
    .unwrap();
    let f = recv_mc(&mut bob, 3, 14);
    assert_eq!(f.header.reserved, 5);
    let Pdu::UnreadMsgResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    let m = &r.msgs[0];
    assert_eq!(m.from_id.value(), Some(a));
    assert_eq!(m.from_name, b"alice");
    assert_eq!(m.msg_type, 1);
    assert!(m.create_time > 1_600_000_000);

    // 3/3 on the PC: read for pc only; the phone still sees it (B-UNR-4).
    bob.send(
        &Pdu::MsgReadAck(MsgReadAck {
            peer_id: Id::Raw(p.as_bytes()),
        }),
        6,
    )
    .unwrap();
    // Read-your-writes: the 3/7 right after the 3/3 reflects it (B-GEN-1).
    assert_eq!(unread_counts(&mut bob), vec![(c, 1)]);
    assert!(unread_texts(&mut bob, a).is_empty());
    let (mut phone, _) = srv.login("bob", "b", IOS);
    assert_eq!(unread_counts(&mut phone), vec![(c, 1), (a, 3)]);

    // Unknown or malformed peer: empty list, id echoed.
    bob.send(
        &Pdu::UnreadMsgRequest(UnreadMsgRequest {
            peer_id: Id::Raw(b"007"),
        }),
        8,
    )
    .unwrap();
    let f = recv_mc(&mut bob, 3, 14);
    let Pdu::UnreadMsgResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!(r.peer_id, Id::Raw(b"007"));
    assert!(r.msgs.is_empty());
}

#[test]
fn message_to_oneself_is_never_unread() {
    // B-MSG-9
    let (srv, ids) = Server::start(&[("alice", "a")]);
    let a = ids[0];
    let (mut pc, _) = srv.login("alice", "a", PC);
    let (mut phone, _) = srv.login("alice", "a", IOS);
    pc.send_raw(&text(a, a, 1, "note")).unwrap();
    recv_mc(&mut pc, 3, 2);
    let f = recv_mc(&mut phone, 3, 1);
    let Pdu::MsgData(m) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!(m.msg_data, b"note");
    assert!(unread_counts(&mut pc).is_empty());
    assert!(unread_counts(&mut phone).is_empty());
}

#[test]
fn invalid_messages_are_rejected_without_ack() {
    // B-MSG-1 (a)-(c), B-GEN-2: a foreign from_id is never delivered as that user.
    let (srv, ids) = Server::start_with(
        "MaxTextLen=10",
        &[("alice", "a"), ("bob", "b"), ("mallory", "m")],
    );
    let (a, b, m) = (ids[0], ids[1], ids[2]);
    let (mut mallory, _) = srv.login("mallory", "m", PC);
    let (mut bob, _) = srv.login("bob", "b", PC);
    mallory.send_raw(&text(a, b, 1, "spoofed")).unwrap(); // identity
    mallory.send_raw(&text(m, 99_999, 2, "nobody")).unwrap(); // unknown recipient
    mallory.send_raw(&text(m, b, 3, "")).unwrap(); // empty
    mallory
        .send_raw(&text(m, b, 4, "this text is too long"))
        .unwrap(); // > MaxTextLen
    let bad_type = {
        let mut v = text(m, b, 5, "x");
        // msg_type sits before msg_data ("x") and attach ("att").
        let at = v.len() - (3 + 4) - (1 + 4) - 1;
        v[at] = 0x07;
        v
    };
    mallory.send_raw(&bad_type).unwrap();
    mallory.send_raw(&text(m, b, 6, "fine")).unwrap();
    let ack = recv(&mut mallory);
    let Pdu::MsgDataAck(k) = ack.pdu().unwrap() else {
        panic!("{:?}", ack.module_command())
    };
    assert_eq!(k.seq_no, 6, "only the valid message is acked");
    let f = recv_mc(&mut bob, 3, 1);
    let Pdu::MsgData(d) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!(d.from_id.value(), Some(m));
    assert_eq!(d.msg_data, b"fine");
    sync(&mut bob);
    assert_silent(&mut bob, Duration::from_millis(200));
    let (mut alice, _) = srv.login("alice", "a", PC);
    assert!(unread_counts(&mut alice).is_empty());
}

#[test]
fn p2p_command_is_forwarded_not_stored() {
    // B-CMD-1, B-CMD-2, B-GEN-2
    let (srv, ids) = Server::start(&[("alice", "a"), ("bob", "b")]);
    let (a, b) = (ids[0], ids[1]);
    let (mut alice, _) = srv.login("alice", "a", PC);
    let (mut alice_phone, _) = srv.login("alice", "a", IOS);
    let (mut bob, _) = srv.login("bob", "b", PC);
    let (sa, sb) = (a.to_string(), b.to_string());
    let cmd = |from: &str, to: &str| {
        Pdu::P2PCmd(P2PCmd {
            seq_no: 3,
            from_id: Id::Raw(from.as_bytes()),
            to_id: Id::Raw(to.as_bytes()),
            cmd_data: b"typing",
        })
        .to_frame(12)
    };
    alice.send_raw(&cmd(&sb, &sb)).unwrap(); // foreign from_id
    alice.send_raw(&cmd(&sa, &sa)).unwrap(); // to oneself
    alice.send_raw(&cmd(&sa, &sb)).unwrap();
    for c in [&mut bob, &mut alice_phone] {
        let f = recv_mc(c, 4, 1);
        assert_eq!(f.header.reserved, 0);
        let Pdu::P2PCmd(p) = f.pdu().unwrap() else {
            panic!()
        };
        assert_eq!(p.from_id.value(), Some(a));
        assert_eq!(p.to_id.value(), Some(b));
        assert_eq!(p.cmd_data, b"typing");
        sync(c);
        assert_silent(c, Duration::from_millis(100));
    }
    sync(&mut alice);
    assert_silent(&mut alice, Duration::from_millis(100));
    assert!(unread_counts(&mut bob).is_empty());
}

#[test]
fn recent_contacts_list_and_hide() {
    // B-RC-1..3, B-RC-5
    let (srv, ids) = Server::start(&[("alice", "a"), ("bob", "b"), ("carol", "c")]);
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let (mut alice, _) = srv.login("alice", "a", PC);
    alice.send_raw(&text(a, b, 1, "x")).unwrap();
    recv_mc(&mut alice, 3, 2);
    alice.send_raw(&text(a, c, 2, "y")).unwrap();
    recv_mc(&mut alice, 3, 2);

    let recent = |cl: &mut Client| -> Vec<u32> {
        cl.send(
            &Pdu::RecentContactRequest(RecentContactRequest { req_type: 0 }),
            20,
        )
        .unwrap();
        let f = recv_mc(cl, 2, 3);
        assert_eq!(f.header.reserved, 20);
        let Pdu::RecentContactList(l) = f.pdu().unwrap() else {
            panic!()
        };
        l.contacts
            .iter()
            .map(|e| e.user_id.value().unwrap())
            .collect()
    };
    let got = recent(&mut alice);
    assert_eq!(got.len(), 2);
    assert!(got.contains(&b) && got.contains(&c));
    let (mut bob, _) = srv.login("bob", "b", PC);
    assert_eq!(recent(&mut bob), vec![a]);

    let sb = b.to_string();
    alice
        .send(
            &Pdu::RemoveSessionRequest(RemoveSessionRequest {
                session_type: 1,
                session_id: Id::Raw(sb.as_bytes()),
            }),
            21,
        )
        .unwrap();
    let f = recv_mc(&mut alice, 2, 13);
    assert_eq!(f.header.reserved, 21);
    let Pdu::RemoveSessionResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!((r.result, r.session_type), (0, 1));
    assert_eq!(r.session_id.value(), Some(b));
    assert_eq!(recent(&mut alice), vec![c]);
    assert_eq!(recent(&mut bob), vec![a], "bob's row is untouched");

    // Non-canonical id and unknown session type -> result 1, echoed.
    for (t, id) in [(1u32, &b"0042"[..]), (9, sb.as_bytes())] {
        alice
            .send(
                &Pdu::RemoveSessionRequest(RemoveSessionRequest {
                    session_type: t,
                    session_id: Id::Raw(id),
                }),
                22,
            )
            .unwrap();
        let f = recv_mc(&mut alice, 2, 13);
        let Pdu::RemoveSessionResponse(r) = f.pdu().unwrap() else {
            panic!()
        };
        assert_eq!(r.result, 1);
        assert_eq!(r.session_type, t);
        assert_eq!(r.session_id, Id::Raw(id));
    }

    // A new message un-hides the row.
    alice.send_raw(&text(a, b, 3, "z")).unwrap();
    recv_mc(&mut alice, 3, 2);
    assert_eq!(recent(&mut alice)[0], b);
}

#[test]
fn users_departments_and_statuses() {
    // B-USER-1..3, B-PRES-6, B-PRES-7
    let (srv, _) = Server::start(&[]);
    let dep = srv.admin(&["depart", "add", "R&D"]);
    let sub = srv.admin(&["depart", "add", "Backend", "--parent", &dep]);
    let a: u32 = srv
        .admin(&[
            "user",
            "add",
            "alice",
            "--password",
            "a",
            "--nick",
            "Alice",
            "--depart",
            &sub,
        ])
        .parse()
        .unwrap();
    let b: u32 = srv
        .admin(&["user", "add", "bob", "--password", "b"])
        .parse()
        .unwrap();
    // Users created after start are not in the server's cache: restart to load them.
    let mut srv = srv;
    srv.kill9();
    srv.spawn();
    let (mut alice, _) = srv.login("alice", "a", PC);

    let (sa, sb) = (a.to_string(), b.to_string());
    alice
        .send(
            &Pdu::UserInfoRequest(UserInfoRequest {
                user_ids: vec![
                    Id::Raw(sb.as_bytes()),
                    Id::Raw(b"99999"),
                    Id::Raw(sa.as_bytes()),
                    Id::Raw(sb.as_bytes()),
                ],
            }),
            30,
        )
        .unwrap();
    let f = recv_mc(&mut alice, 2, 10);
    let Pdu::UserInfoResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    let got: Vec<u32> = r.users.iter().map(|u| u.user_id.value().unwrap()).collect();
    assert_eq!(got, vec![b, a]);
    assert_eq!(r.users[1].nick_name, b"Alice");
    assert_eq!(r.users[1].name, b"alice");
    assert_eq!(r.users[1].depart_id.value(), Some(sub.parse().unwrap()));

    alice.send(&Pdu::AllUserRequest, 31).unwrap();
    let f = recv_mc(&mut alice, 2, 15);
    let Pdu::AllUserResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    let got: Vec<u32> = r.users.iter().map(|u| u.user_id.value().unwrap()).collect();
    assert_eq!(got, vec![a, b]);

    alice.send(&Pdu::DepartmentRequest, 32).unwrap();
    let f = recv_mc(&mut alice, 2, 19);
    let Pdu::DepartmentResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!(r.departments.len(), 2);
    assert_eq!(r.departments[0].title, b"R&D");
    assert_eq!(r.departments[0].parent_depart_id, Id::Raw(b"0"));
    assert_eq!(
        r.departments[1].parent_depart_id.value(),
        Some(dep.parse().unwrap())
    );
    assert_eq!(r.departments[1].leader_id, Id::Raw(b"0"));

    alice
        .send(
            &Pdu::UserStatusRequest(UserStatusRequest {
                user_id: Id::Raw(sb.as_bytes()),
            }),
            33,
        )
        .unwrap();
    let f = recv_mc(&mut alice, 2, 9);
    let Pdu::UserStatusResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!((r.user_id.value(), r.status), (Some(b), 2));

    let (_bob, _) = srv.login("bob", "b", PC);
    alice
        .send(
            &Pdu::UsersStatusRequest(UsersStatusRequest {
                user_ids: vec![
                    Id::Raw(sb.as_bytes()),
                    Id::Raw(b"x"),
                    Id::Raw(sa.as_bytes()),
                    Id::Raw(sb.as_bytes()),
                ],
            }),
            34,
        )
        .unwrap();
    let f = recv_mc(&mut alice, 2, 17);
    let Pdu::UsersStatusResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    let got: Vec<(Id<'_>, u32)> = r.users.iter().map(|u| (u.user_id, u.status)).collect();
    assert_eq!(
        got,
        vec![
            (Id::Raw(sb.as_bytes()), 1),
            (Id::Raw(b"x"), 2),
            (Id::Raw(sa.as_bytes()), 1),
            (Id::Raw(sb.as_bytes()), 1)
        ]
    );
}

#[test]
fn repeated_seq_no_is_a_new_message() {
    // B-MSG-7 and B-MSG-4: acks in order, storage in order.
    let (srv, ids) = Server::start(&[("alice", "a"), ("bob", "b")]);
    let (a, b) = (ids[0], ids[1]);
    let (mut alice, _) = srv.login("alice", "a", PC);
    let mut batch = Vec::new();
    for i in 0..50u32 {
        batch.extend(text(a, b, i % 3, &format!("m{i}")));
    }
    alice.send_raw(&batch).unwrap();
    for i in 0..50u32 {
        let f = recv_mc(&mut alice, 3, 2);
        let Pdu::MsgDataAck(k) = f.pdu().unwrap() else {
            panic!()
        };
        assert_eq!(k.seq_no, i % 3);
    }
    let (mut bob, _) = srv.login("bob", "b", PC);
    assert_eq!(unread_counts(&mut bob), vec![(a, 50)]);
    let texts = unread_texts(&mut bob, a);
    let want: Vec<String> = (0..50).rev().map(|i| format!("m{i}")).collect();
    assert_eq!(texts, want);
}

#[test]
fn message_is_delivered_even_if_the_sender_leaves_before_the_commit() {
    // B-MSG-2 step 5 does not depend on the sender's connection: once stored, it is delivered.
    let (srv, ids) = Server::start(&[("alice", "a"), ("bob", "b")]);
    let (a, b) = (ids[0], ids[1]);
    let (mut bob, _) = srv.login("bob", "b", PC);
    {
        let (mut alice, _) = srv.login("alice", "a", PC);
        alice.send_raw(&text(a, b, 9, "bye")).unwrap();
        alice.shutdown_write().unwrap();
    } // dropped: the server sees the 3/1, then the close
    let f = recv_mc(&mut bob, 3, 1);
    let Pdu::MsgData(m) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!(m.msg_data, b"bye");
}
