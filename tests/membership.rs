//! Membership changes take effect for online sessions on every worker from their commit on, both
//! ways (B-GRP-17, B-GRP-18, B-GRP-19, B-GRP-5): admin create, admin member list, admin delete,
//! and 5/14 add / remove. Every changed member is logged in on the OTHER msg worker than the
//! sender (the test servers run two workers; `GET /v1/stats` tells which one a session is on).
//!
//! Absence is shown without waiting: a sender's deliveries leave in the order of its 3/1s
//! (B-GEN-1, B-MSG-4), so when a p2p 3/1 sent after a group 3/1 is the next thing a user gets,
//! the group message did not reach it.

mod common;

use std::time::Duration;

use common::http::Http;
use common::*;
use serde_json::{json, Value};
use ttserver::client::Client;
use ttserver::proto::group::ChangeMemberRequest;
use ttserver::proto::{Id, Pdu};

fn worker_sessions(h: &mut Http) -> Vec<u64> {
    let v = h.ok("GET", "/v1/stats", None, 200);
    v["worker_sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect()
}

/// Logs `name` in (PC) until its session lands on msg worker `want`; returns the client.
fn login_on(srv: &Server, h: &mut Http, name: &str, want: usize) -> Client {
    for _ in 0..64 {
        let before = worker_sessions(h);
        let (c, _) = srv.login(name, "pw", PC);
        let after = worker_sessions(h);
        let on: Vec<usize> = (0..after.len())
            .filter(|i| after[*i] == before[*i] + 1)
            .collect();
        assert_eq!(on.len(), 1, "{before:?} -> {after:?}");
        if on[0] == want {
            return c;
        }
        drop(c);
        wait_until("the session to end", Duration::from_secs(10), || {
            worker_sessions(h) == before
        });
    }
    panic!("{name} never landed on worker {want}");
}

/// Alice logged in, then each of `others` on the other worker than alice.
fn setup(srv: &Server, others: &[&str]) -> (Http, Client, Vec<Client>) {
    let mut h = srv.http();
    let before = worker_sessions(&mut h);
    assert_eq!(before.len(), 2, "the test servers run two msg workers");
    let (alice, _) = srv.login("alice", "pw", PC);
    let after = worker_sessions(&mut h);
    let alice_on = (0..2).find(|i| after[*i] > before[*i]).unwrap();
    let others = others
        .iter()
        .map(|n| login_on(srv, &mut h, n, 1 - alice_on))
        .collect();
    (h, alice, others)
}

/// `from` sends `body` to group `g`; it is acked (the sender is a member).
fn group_send(c: &mut Client, from: u32, g: u32, seq: u32, body: &[u8]) {
    c.send_raw(&msg_frame(from, g, 0x11, seq, body)).unwrap();
    let ack = recv_mc(c, 3, 2);
    assert_eq!(ack.header.reserved, seq as u16);
}

/// `from` sends to group `g` and is refused: no ack comes before the answer to the heartbeat
/// sent behind it (B-GEN-1).
fn group_send_refused(c: &mut Client, from: u32, g: u32, seq: u32) {
    c.send_raw(&msg_frame(from, g, 0x11, seq, b"refused"))
        .unwrap();
    c.send(&Pdu::Heartbeat, 0x7777).unwrap();
    loop {
        let f = recv(c);
        assert_ne!(f.module_command(), (3, 2), "a refused group 3/1 was acked");
        if (f.module_command(), f.header.reserved) == ((7, 1), 0x7777) {
            return;
        }
    }
}

/// The next 3/1 `c` gets: (to, payload).
fn next_msg(c: &mut Client) -> (u32, Vec<u8>) {
    let f = recv_mc(c, 3, 1);
    let Pdu::MsgData(m) = f.pdu().unwrap() else {
        panic!()
    };
    (m.to_id.value().unwrap(), m.msg_data.to_vec())
}

/// Alice's group message `g` reaches `c` (user `u`) or not: alice then writes to `u` directly,
/// and `c`'s next 3/1s show whether the group one came first.
fn reaches(alice: &mut Client, a: u32, g: u32, c: &mut Client, u: u32, seq: u32) -> bool {
    group_send(alice, a, g, seq, b"to the group");
    alice
        .send_raw(&msg_frame(a, u, 0x01, seq + 1, b"direct"))
        .unwrap();
    recv_mc(alice, 3, 2);
    let first = next_msg(c);
    if first == (g, b"to the group".to_vec()) {
        assert_eq!(next_msg(c), (u, b"direct".to_vec()));
        true
    } else {
        assert_eq!(first, (u, b"direct".to_vec()));
        false
    }
}

fn members_push(c: &mut Client) -> (u32, Vec<u32>) {
    let f = recv_mc(c, 5, 19);
    let Pdu::NormalGroupMembersChangedNotify(n) = f.pdu().unwrap() else {
        panic!()
    };
    let m = n.member_ids.iter().map(|i| i.value().unwrap()).collect();
    (n.group_id.value().unwrap(), m)
}

fn id_of(v: &Value) -> u32 {
    v["id"].as_u64().unwrap() as u32
}

const USERS: &[(&str, &str)] = &[("alice", "pw"), ("bob", "pw"), ("carol", "pw")];

#[test]
fn admin_create_members_and_delete_reach_the_other_worker() {
    let (srv, ids) = Server::start(USERS);
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let (mut h, mut alice, others) = setup(&srv, &["bob", "carol"]);
    let [mut bob, mut carol]: [Client; 2] = others.try_into().ok().unwrap();

    // Admin create (B-GRP-17): bob, on the other worker, gets 5/18 and the group's messages,
    // and can send to it.
    let grp = h.ok(
        "POST",
        "/v1/groups",
        Some(json!({"name": "ops", "avatar": "", "members": [a, b]})),
        201,
    );
    let g = id_of(&grp);
    recv_mc(&mut bob, 5, 18);
    assert!(reaches(&mut alice, a, g, &mut bob, b, 10));
    group_send(&mut bob, b, g, 20, b"from bob");
    assert_eq!(next_msg(&mut alice), (g, b"from bob".to_vec()));

    // Admin adds carol (B-GRP-18): from the commit on she gets members' and admin messages,
    // and can send.
    h.ok(
        "PUT",
        &format!("/v1/groups/{g}/members"),
        Some(json!({"members": [a, b, c]})),
        200,
    );
    assert_eq!(members_push(&mut carol), (g, vec![a, b, c]));
    assert_eq!(members_push(&mut bob), (g, vec![a, b, c]));
    assert_eq!(members_push(&mut alice), (g, vec![a, b, c]));
    assert!(reaches(&mut alice, a, g, &mut carol, c, 30));
    h.ok(
        "POST",
        "/v1/messages",
        Some(json!({"from": a, "to_group": g, "text": "from the admin"})),
        200,
    );
    assert_eq!(next_msg(&mut carol), (g, b"from the admin".to_vec()));
    group_send(&mut carol, c, g, 40, b"from carol");
    assert_eq!(next_msg(&mut alice), (g, b"from the admin".to_vec()));
    assert_eq!(next_msg(&mut alice), (g, b"from carol".to_vec()));
    for text in ["to the group", "from the admin", "from carol"] {
        assert_eq!(next_msg(&mut bob), (g, text.as_bytes().to_vec()));
    }

    // Admin removes carol (B-GRP-19): nothing more reaches her, and she can no longer send.
    h.ok(
        "PUT",
        &format!("/v1/groups/{g}/members"),
        Some(json!({"members": [a, b]})),
        200,
    );
    assert_eq!(members_push(&mut carol), (g, vec![a, b]));
    assert_eq!(members_push(&mut bob), (g, vec![a, b]));
    assert!(!reaches(&mut alice, a, g, &mut carol, c, 50));
    group_send_refused(&mut carol, c, g, 60);

    // Admin deletes the group: bob gets 5/19 with no members and can no longer send.
    h.ok("DELETE", &format!("/v1/groups/{g}"), None, 204);
    let (gid, left) = members_push(&mut bob);
    assert_eq!((gid, left.len()), (g, 0));
    group_send_refused(&mut bob, b, g, 70);
    group_send_refused(&mut alice, a, g, 80);
}

#[test]
fn temp_group_add_and_remove_reach_the_other_worker() {
    let (srv, ids) = Server::start(USERS);
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let (_h, mut alice, others) = setup(&srv, &["bob", "carol"]);
    let [mut bob, mut carol]: [Client; 2] = others.try_into().ok().unwrap();
    let cs = c.to_string();

    let g = create_temp_group(&mut alice, "t", &[b]);
    recv_mc(&mut bob, 5, 13);
    assert!(reaches(&mut alice, a, g, &mut bob, b, 10));

    let change = |change_type: u32| {
        Pdu::ChangeMemberRequest(ChangeMemberRequest {
            group_id: Id::Num(g),
            change_type,
            user_ids: vec![Id::Raw(cs.as_bytes())],
        })
    };
    // 5/14 add carol (by bob, a member): she gets 5/15 and, from then on, the messages.
    bob.send(&change(0), 2).unwrap();
    recv_mc(&mut bob, 5, 15);
    recv_mc(&mut carol, 5, 15);
    recv_mc(&mut alice, 5, 15);
    assert!(reaches(&mut alice, a, g, &mut carol, c, 20));
    group_send(&mut carol, c, g, 30, b"hi all");
    assert_eq!(next_msg(&mut bob).0, g);
    assert_eq!(next_msg(&mut bob), (g, b"hi all".to_vec()));

    // 5/14 remove carol (by alice, the creator): nothing more reaches her; she cannot send.
    alice.send(&change(1), 3).unwrap();
    recv_mc(&mut alice, 5, 15);
    recv_mc(&mut carol, 5, 15);
    assert!(!reaches(&mut alice, a, g, &mut carol, c, 40));
    group_send_refused(&mut carol, c, g, 50);
}
