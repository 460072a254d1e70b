//! Groups over real sockets (B-GRP, B-PRES-5, B-RC-4, B-GEN-1/4, B-FLOW-4).

mod common;

use std::time::{Duration, Instant};

use common::*;
use ttserver::client::Client;
use ttserver::proto::buddy::RemoveSessionRequest;
use ttserver::proto::group::{
    ChangeMemberRequest, CreateTempGroupRequest, GroupInfoRequest, GroupReadAck,
    GroupUnreadMsgRequest,
};
use ttserver::proto::msg::MsgData;
use ttserver::proto::{Id, Pdu};

/// A normal group made with the admin CLI; the server loads it at its next start.
fn group_add(srv: &Server, name: &str, members: &[u32]) -> u32 {
    let list: Vec<String> = members.iter().map(u32::to_string).collect();
    srv.admin(&["group", "add", name, "--members", &list.join(",")])
        .parse()
        .unwrap()
}

fn restart(srv: &mut Server) {
    assert!(srv.terminate());
    srv.spawn();
}

fn gtext(from: u32, group: u32, seq: u32, body: &str) -> Vec<u8> {
    let (f, g) = (from.to_string(), group.to_string());
    Pdu::MsgData(MsgData {
        seq_no: seq,
        from_id: Id::Raw(f.as_bytes()),
        to_id: Id::Raw(g.as_bytes()),
        create_time: 0,
        msg_type: 0x11,
        msg_data: body.as_bytes(),
        attach: b"at",
    })
    .to_frame(seq as u16)
}

fn vals(ids: &[Id<'_>]) -> Vec<u32> {
    ids.iter().map(|i| i.value().unwrap()).collect()
}

fn strs(ids: &[u32]) -> Vec<String> {
    ids.iter().map(u32::to_string).collect()
}

/// 5/12 -> (result, group id, name, members) of the 5/13 with `reserved`.
fn create(c: &mut Client, name: &str, members: &[&str], reserved: u16) -> (u32, u32, Vec<u32>) {
    c.send(
        &Pdu::CreateTempGroupRequest(CreateTempGroupRequest {
            group_name: name.as_bytes(),
            group_avatar: b"av",
            member_ids: members.iter().map(|m| Id::Raw(m.as_bytes())).collect(),
        }),
        reserved,
    )
    .unwrap();
    let f = recv_mc(c, 5, 13);
    assert_eq!(f.header.reserved, reserved);
    let Pdu::CreateTempGroupResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!(r.group_name, name.as_bytes());
    if r.result != 0 {
        assert_eq!(r.group_id, Id::Raw(b"0"));
        assert!(r.member_ids.is_empty());
        return (r.result, 0, Vec::new());
    }
    (r.result, r.group_id.value().unwrap(), vals(&r.member_ids))
}

/// A pushed 5/13: (group, members).
fn created_push(c: &mut Client) -> (u32, Vec<u32>) {
    let f = recv_mc(c, 5, 13);
    assert_eq!(f.header.reserved, 0);
    let Pdu::CreateTempGroupResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!(r.result, 0);
    (r.group_id.value().unwrap(), vals(&r.member_ids))
}

/// 5/14 -> 5/15: (result, group_id bytes, change_type, list bytes).
fn change(
    c: &mut Client,
    group: &str,
    change_type: u32,
    users: &[&str],
    reserved: u16,
) -> (u32, Vec<u8>, u32, Vec<Vec<u8>>) {
    c.send(
        &Pdu::ChangeMemberRequest(ChangeMemberRequest {
            group_id: Id::Raw(group.as_bytes()),
            change_type,
            user_ids: users.iter().map(|u| Id::Raw(u.as_bytes())).collect(),
        }),
        reserved,
    )
    .unwrap();
    let f = recv_mc(c, 5, 15);
    assert_eq!(f.header.reserved, reserved);
    change_fields(&f)
}

fn change_fields(f: &ttserver::client::Frame) -> (u32, Vec<u8>, u32, Vec<Vec<u8>>) {
    let Pdu::ChangeMemberResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    let raw = |id: &Id<'_>| match id {
        Id::Raw(b) => b.to_vec(),
        Id::Num(n) => n.to_string().into_bytes(),
    };
    (
        r.result,
        raw(&r.group_id),
        r.change_type,
        r.user_ids.iter().map(raw).collect(),
    )
}

/// 5/3 -> Some((type, creator, members)) or None on result 1.
fn info(c: &mut Client, group: u32) -> Option<(u32, u32, Vec<u32>)> {
    let g = group.to_string();
    c.send(
        &Pdu::GroupInfoRequest(GroupInfoRequest {
            group_id: Id::Raw(g.as_bytes()),
        }),
        33,
    )
    .unwrap();
    let f = recv_mc(c, 5, 4);
    assert_eq!(f.header.reserved, 33);
    let Pdu::GroupInfoResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!(r.group_id, Id::Raw(g.as_bytes()));
    match r.result {
        0 => {
            let ok = r.ok.unwrap();
            Some((
                ok.group_type,
                ok.creator_id.value().unwrap_or(0),
                vals(&ok.member_ids),
            ))
        }
        1 => {
            assert!(r.ok.is_none());
            assert_eq!(f.body().len(), 4 + g.len() + 4);
            None
        }
        x => panic!("5/4 result {x}"),
    }
}

fn members_of(c: &mut Client, group: u32) -> Vec<u32> {
    info(c, group).map(|i| i.2).unwrap_or_default()
}

/// 5/5 -> [(group, count)].
fn unread_counts(c: &mut Client) -> Vec<(u32, u32)> {
    c.send(&Pdu::GroupUnreadCountRequest, 55).unwrap();
    let f = recv_mc(c, 5, 6);
    assert_eq!(f.header.reserved, 55);
    let Pdu::GroupUnreadCountResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    r.counts
        .iter()
        .map(|x| (x.group_id.value().unwrap(), x.unread_cnt))
        .collect()
}

/// 5/7 -> [(from, text)] newest first.
fn unread_msgs(c: &mut Client, group: u32) -> Vec<(u32, String)> {
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
            assert_eq!(m.msg_type, 0x11);
            assert!(m.create_time > 1_600_000_000);
            (
                m.from_id.value().unwrap(),
                String::from_utf8(m.msg_data.to_vec()).unwrap(),
            )
        })
        .collect()
}

fn read_ack(c: &mut Client, group: u32) {
    let g = group.to_string();
    c.send(
        &Pdu::GroupReadAck(GroupReadAck {
            group_id: Id::Raw(g.as_bytes()),
        }),
        1,
    )
    .unwrap();
}

/// The next 3/1 push: (from, to, create_time, text, seq).
fn delivery(c: &mut Client) -> (u32, u32, u32, String, u32) {
    let f = recv_mc(c, 3, 1);
    assert_eq!(f.header.reserved, 0);
    let Pdu::MsgData(m) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!(m.msg_type, 0x11);
    assert_eq!(m.attach, b"at");
    (
        m.from_id.value().unwrap(),
        m.to_id.value().unwrap(),
        m.create_time,
        String::from_utf8(m.msg_data.to_vec()).unwrap(),
        m.seq_no,
    )
}

/// A 2/4 push: [(user, status)].
fn online_list(c: &mut Client) -> Vec<(u32, u32)> {
    let f = recv_mc(c, 2, 4);
    assert_eq!(f.header.reserved, 0);
    let Pdu::OnlineFriendList(l) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!(l.list_type, 2);
    l.users
        .iter()
        .map(|u| (u.user_id.value().unwrap(), u.status))
        .collect()
}

fn quiet(c: &mut Client) {
    sync(c);
    assert_silent(c, Duration::from_millis(150));
}

#[test]
fn normal_group_lists_info_and_online_members() {
    // B-GRP-14, B-GRP-15, B-GRP-16, B-PRES-5, B-PRES-8
    let (mut srv, ids) = Server::start(&[("alice", "a"), ("bob", "b"), ("carol", "c")]);
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let g = group_add(&srv, "ops", &[b, a, c]);
    let solo = group_add(&srv, "solo", &[c]);
    restart(&mut srv);
    let (mut alice, _) = srv.login("alice", "a", PC);
    let (_bob, _) = srv.login("bob", "b", PC);
    let (mut carol_phone, _) = srv.login("carol", "c", ANDROID);

    alice.send(&Pdu::NormalGroupListRequest, 11).unwrap();
    let f = recv(&mut alice);
    assert_eq!((f.module_command(), f.header.reserved), ((5, 2), 11));
    let Pdu::NormalGroupListResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!(r.groups.len(), 1);
    let gi = &r.groups[0];
    assert_eq!(gi.group_id.value(), Some(g));
    assert_eq!(gi.name, b"ops");
    assert_eq!(gi.avatar, b"");
    assert_eq!(gi.creator_id, Id::Raw(b"0"));
    assert_eq!(gi.group_type, 1);
    assert_eq!(vals(&gi.member_ids), vec![b, a, c]);
    // then 2/4 with the other online members (carol's phone is online too)
    let f = recv(&mut alice);
    assert_eq!(f.module_command(), (2, 4));
    let mut online = online_list_from(&f);
    online.sort_unstable();
    let mut want = vec![(b, 1), (c, 1)];
    want.sort_unstable();
    assert_eq!(online, want);
    quiet(&mut alice);

    // 5/16 -> 5/17 then 2/4
    alice.send(&Pdu::RecentGroupListRequest, 12).unwrap();
    let f = recv(&mut alice);
    assert_eq!((f.module_command(), f.header.reserved), ((5, 17), 12));
    let Pdu::RecentGroupListResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!(r.groups.len(), 1);
    assert_eq!(r.groups[0].group_id.value(), Some(g));
    assert_eq!(r.groups[0].group_type, 1);
    assert!(r.groups[0].group_updated > 1_600_000_000);
    assert_eq!(vals(&r.groups[0].member_ids), vec![b, a, c]);
    assert_eq!(recv(&mut alice).module_command(), (2, 4));

    // 5/3: member -> result 0 + 2/4; not a member / unknown -> result 1 and no 2/4
    assert_eq!(info(&mut alice, g), Some((1, 0, vec![b, a, c])));
    assert_eq!(recv(&mut alice).module_command(), (2, 4));
    assert_eq!(info(&mut alice, solo), None);
    assert_eq!(info(&mut alice, 987_654), None);
    quiet(&mut alice);

    // A mobile session gets no 2/4 (PresenceToMobile = false).
    carol_phone.send(&Pdu::NormalGroupListRequest, 13).unwrap();
    let f = recv_mc(&mut carol_phone, 5, 2);
    let Pdu::NormalGroupListResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    let got: Vec<u32> = r
        .groups
        .iter()
        .map(|g| g.group_id.value().unwrap())
        .collect();
    assert_eq!(got, vec![g, solo]);
    quiet(&mut carol_phone);

    // No 2/4 when no other member is online: carol alone in "solo".
    let (mut carol, _) = srv.login("carol", "c", PC);
    assert_eq!(info(&mut carol, solo), Some((1, 0, vec![c])));
    quiet(&mut carol);
}

fn online_list_from(f: &ttserver::client::Frame) -> Vec<(u32, u32)> {
    let Pdu::OnlineFriendList(l) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!(f.header.reserved, 0);
    assert_eq!(l.list_type, 2);
    l.users
        .iter()
        .map(|u| (u.user_id.value().unwrap(), u.status))
        .collect()
}

#[test]
fn temp_group_creation_pushes_each_member_session_once() {
    // B-GRP-2, B-GRP-3
    let (srv, ids) = Server::start(&[("alice", "a"), ("bob", "b"), ("carol", "c")]);
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let s = strs(&ids);
    let (mut alice, _) = srv.login("alice", "a", PC);
    let (mut alice_phone, _) = srv.login("alice", "a", IOS);
    let (mut bob, _) = srv.login("bob", "b", PC);
    let (mut bob_phone, _) = srv.login("bob", "b", ANDROID);

    let (r, g, members) = create(&mut alice, "team", &[&s[1], &s[2], &s[1], &s[0]], 9);
    assert_eq!(r, 0);
    assert_eq!(members, vec![a, b, c], "creator first, no duplicates");
    for p in [&mut alice_phone, &mut bob, &mut bob_phone] {
        assert_eq!(created_push(p), (g, vec![a, b, c]));
        quiet(p);
    }
    quiet(&mut alice);
    assert_eq!(info(&mut bob, g), Some((2, a, vec![a, b, c])));
    let f = recv(&mut bob);
    assert_eq!(online_list_from(&f), vec![(a, 1)]);
    // carol logs in later: she is a member, nothing pushed.
    let (mut carol, _) = srv.login("carol", "c", ANDROID);
    assert_eq!(members_of(&mut carol, g), vec![a, b, c]);

    // An empty list gives a creator-only group.
    let (r, g2, members) = create(&mut carol, "me", &[], 4);
    assert_eq!((r, members), (0, vec![c]));
    assert!(g2 > g);

    // Failures: result 1 to the requester only, group "0", empty list.
    let long = "x".repeat(257);
    for (name, list) in [
        ("", vec![s[1].as_str()]),
        (long.as_str(), vec![]),
        ("t", vec!["0"]),
        ("t", vec!["01"]),
        ("t", vec!["999999"]),
    ] {
        assert_eq!(create(&mut alice, name, &list, 5).0, 1, "{name:?} {list:?}");
    }
    quiet(&mut alice_phone);
    quiet(&mut bob);
}

#[test]
fn temp_group_too_many_members_is_result_2() {
    // B-GRP-2
    let (srv, ids) = Server::start_with(
        "MaxTempGroupMembers=2",
        &[("a", "a"), ("b", "b"), ("c", "c")],
    );
    let s = strs(&ids);
    let (mut a, _) = srv.login("a", "a", PC);
    assert_eq!(create(&mut a, "t", &[&s[1], &s[2]], 3).0, 2);
    assert_eq!(create(&mut a, "t", &[&s[1]], 3).0, 0);
}

#[test]
fn change_members_checks_permissions_in_order() {
    // B-GRP-4, B-GRP-5, B-GRP-6
    let (mut srv, ids) = Server::start_with(
        "MaxTempGroupMembers=4",
        &[
            ("alice", "a"),
            ("bob", "b"),
            ("carol", "c"),
            ("dave", "d"),
            ("eve", "e"),
        ],
    );
    let (a, b, c, e) = (ids[0], ids[1], ids[2], ids[4]);
    let s = strs(&ids);
    let normal = group_add(&srv, "n", &[a, b]);
    restart(&mut srv);
    let (mut alice, _) = srv.login("alice", "a", ANDROID);
    let (mut bob, _) = srv.login("bob", "b", ANDROID);
    let (mut carol, _) = srv.login("carol", "c", ANDROID);
    let (mut dave, _) = srv.login("dave", "d", ANDROID);
    let (mut eve, _) = srv.login("eve", "e", ANDROID);
    let (_, g, _) = create(&mut alice, "t", &[&s[1], &s[2]], 1);
    created_push(&mut bob);
    created_push(&mut carol);
    let gs = g.to_string();
    let ns = normal.to_string();
    let before = vec![a, b, c];

    // Refusals: only the requester hears, with the request's bytes; nothing changes.
    let cases: Vec<(usize, String, u32, Vec<String>, u32)> = vec![
        (0, "424242".into(), 0, vec![s[3].clone()], 1), // no such group
        (0, "0042".into(), 0, vec![s[3].clone()], 1),   // non-canonical group id
        (0, ns.clone(), 0, vec!["x".into()], 2),        // normal group before anything else
        (0, ns.clone(), 1, vec![s[1].clone()], 2),
        (0, gs.clone(), 2, vec![s[3].clone()], 1), // bad change_type
        (0, gs.clone(), 0, vec![], 1),             // empty list
        (0, gs.clone(), 0, vec!["999999".into()], 1), // unknown user
        (0, gs.clone(), 0, vec!["07".into()], 1),  // non-canonical user
        (3, gs.clone(), 0, vec![s[4].clone()], 2), // dave is no member: add
        (3, gs.clone(), 1, vec![s[3].clone()], 2), // nor may he "leave"
        (1, gs.clone(), 1, vec![s[2].clone()], 2), // bob is no creator
        (1, gs.clone(), 1, vec![s[1].clone(), s[2].clone()], 2),
        (1, gs.clone(), 0, vec![s[3].clone(), s[4].clone()], 3), // 3 + 2 > 4
    ];
    for (who, group, ct, list, want) in &cases {
        let c = match who {
            0 => &mut alice,
            1 => &mut bob,
            _ => &mut dave,
        };
        let l: Vec<&str> = list.iter().map(String::as_str).collect();
        let (r, gid, ct2, got) = change(c, group, *ct, &l, 77);
        assert_eq!(r, *want, "case {group} {ct} {list:?}");
        assert_eq!(gid, group.as_bytes());
        assert_eq!(ct2, *ct);
        let want_list: Vec<Vec<u8>> = list.iter().map(|x| x.as_bytes().to_vec()).collect();
        assert_eq!(got, want_list);
        assert_eq!(members_of(&mut alice, g), before);
    }
    assert_eq!(members_of(&mut alice, normal), vec![a, b]);
    for x in [&mut bob, &mut carol, &mut dave, &mut eve] {
        quiet(x);
    }

    // Any member may add: bob adds eve (and an existing member, a no-op that stays listed).
    let (r, gid, ct, got) = change(&mut bob, &gs, 0, &[&s[4], &s[0], &s[4]], 78);
    assert_eq!((r, gid, ct), (0, gs.as_bytes().to_vec(), 0));
    assert_eq!(
        got,
        vec![s[4].as_bytes().to_vec(), s[0].as_bytes().to_vec()]
    );
    for x in [&mut alice, &mut carol, &mut eve] {
        let f = recv_mc(x, 5, 15);
        assert_eq!(f.header.reserved, 0);
        assert_eq!(change_fields(&f).3, got);
        quiet(x);
    }
    quiet(&mut bob);
    quiet(&mut dave);
    assert_eq!(members_of(&mut alice, g), vec![a, b, c, e]);
    // Full: one more is result 3.
    assert_eq!(change(&mut eve, &gs, 0, &[&s[3]], 1).0, 3);

    // The creator removes carol; carol (removed) is told too.
    let (r, _, _, got) = change(&mut alice, &gs, 1, &[&s[2]], 79);
    assert_eq!((r, got), (0, vec![s[2].as_bytes().to_vec()]));
    for x in [&mut bob, &mut carol, &mut eve] {
        assert_eq!(change_fields(&recv_mc(x, 5, 15)).0, 0);
        quiet(x);
    }
    assert_eq!(members_of(&mut alice, g), vec![a, b, e]);
    assert_eq!(
        info(&mut carol, g),
        None,
        "B-GRP-19: no info for a removed member"
    );

    // A member leaves; the creator leaves too (creator_id stays).
    assert_eq!(change(&mut bob, &gs, 1, &[&s[1]], 2).0, 0);
    assert_eq!(change_fields(&recv_mc(&mut alice, 5, 15)).0, 0);
    assert_eq!(change(&mut alice, &gs, 1, &[&s[0]], 2).0, 0);
    assert_eq!(info(&mut eve, g), Some((2, a, vec![e])));
    // alice is no longer a member: she may not add.
    assert_eq!(change(&mut alice, &gs, 0, &[&s[0]], 2).0, 2);
}

#[test]
fn group_messages_are_acked_delivered_and_unread_per_family() {
    // B-GRP-7..13, B-GRP-19, B-RC-4
    let (srv, ids) = Server::start(&[("alice", "a"), ("bob", "b"), ("carol", "c"), ("dave", "d")]);
    let (a, b, c, d) = (ids[0], ids[1], ids[2], ids[3]);
    let s = strs(&ids);
    let (mut alice, _) = srv.login("alice", "a", PC);
    let (mut alice_phone, _) = srv.login("alice", "a", IOS);
    let (mut bob, _) = srv.login("bob", "b", PC);
    let (mut carol, _) = srv.login("carol", "c", ANDROID);
    let (mut dave, _) = srv.login("dave", "d", PC);
    let (_, g, _) = create(&mut alice, "t", &[&s[1], &s[2]], 1);
    for x in [&mut alice_phone, &mut bob, &mut carol] {
        created_push(x);
    }

    alice.send_raw(&gtext(a, g, 1, "one")).unwrap();
    let f = recv(&mut alice);
    assert_eq!((f.module_command(), f.header.reserved), ((3, 2), 1));
    let Pdu::MsgDataAck(k) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!((k.seq_no, k.from_id.value()), (1, Some(a)));
    let mut t = 0;
    for x in [&mut alice_phone, &mut bob, &mut carol] {
        let (from, to, time, text, seq) = delivery(x);
        assert_eq!((from, to, text.as_str(), seq), (a, g, "one", 1));
        assert!(time > 1_600_000_000);
        t = time;
    }
    assert!(t > 0);
    quiet(&mut alice);

    // Rejected: not a member, unknown group, foreign from_id, empty text. No ack.
    dave.send_raw(&gtext(d, g, 2, "x")).unwrap();
    dave.send_raw(&gtext(d, 999_999, 3, "x")).unwrap();
    bob.send_raw(&gtext(a, g, 4, "spoof")).unwrap();
    bob.send_raw(&gtext(b, g, 5, "")).unwrap();
    quiet(&mut dave);
    quiet(&mut bob);
    quiet(&mut carol);

    bob.send_raw(&gtext(b, g, 6, "two")).unwrap();
    recv_mc(&mut bob, 3, 2);
    for x in [&mut alice, &mut alice_phone, &mut carol] {
        assert_eq!(delivery(x).3, "two");
    }

    // Unread: the sender's own messages are not unread for it.
    // Sending moved bob's PC cursor to his own message (B-GRP-8): "one" counts as read there.
    assert!(unread_counts(&mut bob).is_empty());
    assert!(unread_msgs(&mut bob, g).is_empty());
    assert_eq!(unread_counts(&mut alice), vec![(g, 1)]);
    assert_eq!(unread_msgs(&mut alice, g), vec![(b, "two".into())]);
    assert_eq!(unread_counts(&mut carol), vec![(g, 2)]);
    assert_eq!(
        unread_msgs(&mut carol, g),
        vec![(b, "two".into()), (a, "one".into())]
    );
    // A non-member sees nothing.
    assert!(unread_msgs(&mut dave, g).is_empty());
    assert!(unread_counts(&mut dave).is_empty());

    // PC 5/11 does not clear the mobile family (read-your-writes: 5/5 right after 5/11).
    read_ack(&mut alice, g);
    assert!(unread_counts(&mut alice).is_empty());
    assert_eq!(unread_counts(&mut alice_phone), vec![(g, 1)]);
    read_ack(&mut alice_phone, g);
    assert!(unread_counts(&mut alice_phone).is_empty());
    // 5/11 from a non-member is ignored.
    read_ack(&mut dave, g);
    quiet(&mut dave);

    // 2/12 hides the group from 5/17 for a member; non-member -> 1.
    assert_eq!(hide(&mut bob, 3, g), 0);
    assert_eq!(hide(&mut dave, 3, g), 1);
    assert_eq!(hide(&mut bob, 2, g), 0);
    assert_eq!(hide(&mut bob, 2, 999_999), 1);
    let recent = |x: &mut Client| -> Vec<u32> {
        x.send(&Pdu::RecentGroupListRequest, 8).unwrap();
        let f = recv_mc(x, 5, 17);
        let Pdu::RecentGroupListResponse(r) = f.pdu().unwrap() else {
            panic!()
        };
        r.groups
            .iter()
            .map(|g| g.group_id.value().unwrap())
            .collect()
    };
    assert!(recent(&mut bob).is_empty());
    // The next message un-hides it.
    carol.send_raw(&gtext(c, g, 7, "three")).unwrap();
    recv_mc(&mut carol, 3, 2);
    assert_eq!(recent(&mut bob), vec![g]);
    // then 2/4 (B-PRES-5): alice, carol's phone is online too
    let mut online = online_list(&mut bob);
    online.sort_unstable();
    assert_eq!(online, vec![(a, 1), (c, 1)]);

    // A removed member gets no more deliveries and cannot send.
    assert_eq!(change(&mut alice, &g.to_string(), 1, &[&s[2]], 5).0, 0);
    recv_mc(&mut carol, 5, 15);
    recv_mc(&mut bob, 5, 15);
    alice.send_raw(&gtext(a, g, 8, "four")).unwrap();
    recv_mc(&mut alice, 3, 2);
    assert_eq!(delivery(&mut bob).3, "three");
    assert_eq!(delivery(&mut bob).3, "four");
    carol.send_raw(&gtext(c, g, 9, "nope")).unwrap();
    quiet(&mut carol);
    assert!(unread_msgs(&mut carol, g).is_empty());
    quiet(&mut bob);
}

#[test]
fn acked_group_message_survives_sigkill() {
    // B-MSG-3 for groups, B-GEN-4
    let (mut srv, ids) = Server::start(&[("alice", "a"), ("bob", "b")]);
    let (a, b) = (ids[0], ids[1]);
    let g = group_add(&srv, "n", &[a, b]);
    restart(&mut srv);
    let (mut alice, _) = srv.login("alice", "a", PC);
    alice.send_raw(&gtext(a, g, 1, "durable")).unwrap();
    recv_mc(&mut alice, 3, 2);
    srv.kill9();
    srv.spawn();
    let (mut bob, _) = srv.login("bob", "b", IOS);
    assert_eq!(unread_counts(&mut bob), vec![(g, 1)]);
    assert_eq!(unread_msgs(&mut bob, g), vec![(a, "durable".into())]);
    // The cache was reloaded: bob can still send to it.
    bob.send_raw(&gtext(b, g, 2, "back")).unwrap();
    recv_mc(&mut bob, 3, 2);
}

#[test]
fn thousand_member_group_delivers_each_message_once_to_every_session() {
    // B-GRP-8, B-GRP-9, B-FLOW-4
    const N: usize = 1000;
    let t0 = Instant::now();
    let (mut srv, first) = Server::start(&[("m0", "pw")]);
    let csv = srv.dir.join("users.csv");
    let lines: Vec<String> = (1..N).map(|i| format!("m{i},pw")).collect();
    std::fs::write(&csv, lines.join("\n")).unwrap();
    assert_eq!(
        srv.admin(&["user", "import", csv.to_str().unwrap()]),
        (N - 1).to_string()
    );
    let ids: Vec<u32> = (0..N as u32).map(|i| first[0] + i).collect();
    let g = group_add(&srv, "big", &ids);
    restart(&mut srv);
    let mut clients: Vec<Client> = (0..N)
        .map(|i| {
            let (c, id) = srv.login(&format!("m{i}"), "pw", ANDROID);
            assert_eq!(id, ids[i]);
            c
        })
        .collect();
    eprintln!("{N} sessions after {:?}", t0.elapsed());
    const M: u32 = 3;
    for seq in 1..=M {
        let sender = (seq as usize * 337) % N;
        clients[sender]
            .send_raw(&gtext(ids[sender], g, seq, &format!("m{seq}")))
            .unwrap();
        recv_mc(&mut clients[sender], 3, 2);
    }
    for c in clients.iter_mut() {
        c.send(&Pdu::Heartbeat, 0x5a5a).unwrap();
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let mut got = Vec::new();
        loop {
            let f = recv(c);
            match f.module_command() {
                (3, 1) => {
                    let Pdu::MsgData(m) = f.pdu().unwrap() else {
                        panic!()
                    };
                    assert_eq!(m.to_id.value(), Some(g));
                    got.push(m.seq_no);
                }
                (7, 1) => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        // Deliveries keep storage order; the sending connection has no copy of its own.
        let want: Vec<u32> = (1..=M).filter(|s| (*s as usize * 337) % N != i).collect();
        if got != want {
            // A copy can still be in flight behind the heartbeat only if it came from another
            // worker; read until every expected message arrived, then check for duplicates.
            while got.len() < want.len() {
                got.push(delivery_seq(c));
            }
        }
        assert_eq!(got, want, "session {i}");
    }
    eprintln!("done after {:?}", t0.elapsed());
    assert!(t0.elapsed() < Duration::from_secs(60));
}

fn delivery_seq(c: &mut Client) -> u32 {
    let f = recv_mc(c, 3, 1);
    let Pdu::MsgData(m) = f.pdu().unwrap() else {
        panic!()
    };
    m.seq_no
}

/// 2/12 for a group -> the 2/13 result (type and id echoed).
fn hide(x: &mut Client, st: u32, g: u32) -> u32 {
    let gs = g.to_string();
    x.send(
        &Pdu::RemoveSessionRequest(RemoveSessionRequest {
            session_type: st,
            session_id: Id::Raw(gs.as_bytes()),
        }),
        44,
    )
    .unwrap();
    let f = recv_mc(x, 2, 13);
    assert_eq!(f.header.reserved, 44);
    let Pdu::RemoveSessionResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!(r.session_type, st);
    assert_eq!(r.session_id.value(), Some(g));
    r.result
}

#[test]
fn concurrent_senders_reach_every_member_in_storage_order() {
    // B-GRP-9: two senders on separate connections (likely on different workers) write at once;
    // a third member receives the group's messages exactly in storage order, which 5/7 shows
    // (newest first).
    const N: u32 = 150;
    let (srv, ids) = Server::start_with(
        "MsgRateLimit=1000000\nMaxGroupUnread=1000",
        &[("ann", "a"), ("ben", "b"), ("cat", "c")],
    );
    let (a, b) = (ids[0], ids[1]);
    let (mut ann, _) = srv.login("ann", "a", PC);
    let (mut ben, _) = srv.login("ben", "b", PC);
    let (mut cat, _) = srv.login("cat", "c", ANDROID);
    let member_ids = strs(&ids[1..]);
    let member_refs: Vec<&str> = member_ids.iter().map(String::as_str).collect();
    let (result, group, _) = create(&mut ann, "race", &member_refs, 1);
    assert_eq!(result, 0);
    created_push(&mut ben);
    created_push(&mut cat);
    let batch = |from: u32, tag: &str| -> Vec<u8> {
        (0..N)
            .flat_map(|i| gtext(from, group, i, &format!("{tag}{i}")))
            .collect()
    };
    let (ba, bb) = (batch(a, "a"), batch(b, "b"));
    ann.send_raw(&ba).unwrap();
    ben.send_raw(&bb).unwrap();
    let mut live = Vec::new();
    while live.len() < 2 * N as usize {
        let f = recv_mc(&mut cat, 3, 1);
        let Pdu::MsgData(m) = f.pdu().unwrap() else {
            panic!()
        };
        live.push(String::from_utf8(m.msg_data.to_vec()).unwrap());
    }
    let g = group.to_string();
    cat.send(
        &Pdu::GroupUnreadMsgRequest(GroupUnreadMsgRequest {
            group_id: Id::Raw(g.as_bytes()),
        }),
        9,
    )
    .unwrap();
    let f = recv_mc(&mut cat, 5, 8);
    let Pdu::GroupUnreadMsgResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    let mut stored: Vec<String> = r
        .msgs
        .iter()
        .map(|m| String::from_utf8(m.msg_data.to_vec()).unwrap())
        .collect();
    stored.reverse();
    assert_eq!(stored.len(), 2 * N as usize);
    assert_eq!(live, stored, "live order = storage order");
}
