//! The TeamTalk Android app of November 2014, replayed byte for byte against the real server:
//! `tests/vectors/android2014_client_pdus.txt` holds its requests exactly as it sends them.
//! Right after login it writes seven requests back to back, one of them a 2/1 with an empty body
//! (no `req_type`); P-6 says such a request is served with the missing fields zero. The app
//! reconnects at once whenever the server closes, so one close means it never gets past login.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use ttserver::client::{Client, Frame};
use ttserver::proto::frame::{self, HEADER_LEN};
use ttserver::proto::{Dir, Pdu};

const VECTORS: &str = include_str!("vectors/android2014_client_pdus.txt");

/// (name, "M/C", bytes) of every vector, in file order.
fn vectors() -> Vec<(String, String, Vec<u8>)> {
    VECTORS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(parts.len(), 3, "bad vector line {l:?}");
            let hex = parts[2];
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            (parts[0].to_string(), parts[1].to_string(), bytes)
        })
        .collect()
}

fn vector(name: &str) -> Vec<u8> {
    vectors()
        .into_iter()
        .find(|v| v.0 == name)
        .unwrap_or_else(|| panic!("no vector {name}"))
        .2
}

/// The post-login burst: the seven `app_*` vectors between the heartbeat and the message.
const BURST: [(&str, (u16, u16), u16); 7] = [
    ("app_departments_req", (2, 19), 10),
    ("app_all_users_req", (2, 15), 11),
    ("app_recent_contacts_req", (2, 3), 12),
    ("app_unread_count_req", (3, 8), 13),
    ("app_normal_groups_req", (5, 2), 14),
    ("app_recent_groups_req", (5, 17), 15),
    ("app_group_unread_count_req", (5, 6), 16),
];

fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

#[test]
fn vectors_are_what_the_file_says() {
    let all = vectors();
    assert_eq!(all.len(), 11);
    for (name, mc, bytes) in &all {
        let h = frame::header(bytes).unwrap();
        assert_eq!(h.length as usize, bytes.len(), "{name}");
        assert_eq!(format!("{}/{}", h.module, h.command), *mc, "{name}");
        // Every one decodes as a client request; only the 2/1 is short.
        let (_, short) =
            Pdu::decode_noting_short(Dir::ToServer, h.module, h.command, &bytes[HEADER_LEN..])
                .unwrap()
                .unwrap_or_else(|| panic!("{name} unknown"));
        assert_eq!(short, name == "app_recent_contacts_req", "{name}");
    }
    let rc = vector("app_recent_contacts_req");
    assert_eq!(rc.len(), HEADER_LEN, "the 2/1 really has no body");
}

#[test]
fn login_then_the_whole_burst_on_one_connection() {
    let (srv, ids) = Server::start(&[("alice", "123456"), ("bob", "123456")]);
    // The message vector is from user "1" to user "2".
    assert_eq!(ids, vec![1, 2]);

    // Something for the burst to report: bob wrote to alice while she was away.
    let (mut bob, _) = srv.login("bob", "123456", PC);
    bob.send_text(1, 2, 1, b"are you there?", 1).unwrap();
    recv_mc(&mut bob, 3, 2);

    // 1/1 on the login port, as the app sends it.
    let mut lc = Client::connect(srv.login).unwrap();
    lc.send_raw(&vector("app_msgserv_req")).unwrap();
    let f = recv(&mut lc);
    assert_eq!((f.module_command(), f.header.reserved), ((1, 2), 1));
    let Pdu::MsgServResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!(r.result, 0);

    // 1/3 as the app sends it (Android, md5hex("123456")).
    let mut app = srv.connect();
    app.send_raw(&vector("app_login_req")).unwrap();
    let f = recv(&mut app);
    assert_eq!((f.module_command(), f.header.reserved), ((1, 4), 3));
    let Pdu::LoginResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!(r.result, 0);
    assert_eq!(r.ok.unwrap().user_id.value(), Some(1));

    // The seven requests in ONE write, then a heartbeat behind them.
    let mut burst = Vec::new();
    for (name, _, _) in BURST {
        burst.extend(vector(name));
    }
    burst.extend(vector("app_heartbeat"));
    app.send_raw(&burst).unwrap();

    // Seven replies, in request order, each with its request's reserved, each readable.
    let replies: Vec<Frame> = (0..BURST.len()).map(|_| recv(&mut app)).collect();
    for ((name, mc, reserved), f) in BURST.iter().zip(&replies) {
        assert_eq!(
            (f.module_command(), f.header.reserved),
            (*mc, *reserved),
            "reply to {name}"
        );
        f.pdu().unwrap_or_else(|e| panic!("reply to {name}: {e}"));
    }
    // The empty-body 2/1 was served like a 2/1 with req_type 0: bob is a recent contact.
    let Pdu::RecentContactList(rc) = replies[2].pdu().unwrap() else {
        panic!()
    };
    let contacts: Vec<_> = rc.contacts.iter().map(|c| c.user_id.value()).collect();
    assert_eq!(contacts, vec![Some(2)]);
    let Pdu::UnreadCountResponse(uc) = replies[3].pdu().unwrap() else {
        panic!()
    };
    let counts: Vec<_> = uc
        .counts
        .iter()
        .map(|c| (c.peer_id.value(), c.unread_cnt))
        .collect();
    assert_eq!(counts, vec![(Some(2), 1)]);

    // The connection is still open: the heartbeat behind the burst is answered.
    let f = recv(&mut app);
    assert_eq!((f.module_command(), f.header.reserved), ((7, 1), 5));
    // The empty 2/1 was counted as a short request, and nothing was a protocol error.
    let stats = srv.http().ok("GET", "/v1/stats", None, 200);
    assert_eq!(stats["counters"]["short_requests"], 1, "{stats}");
    assert_eq!(stats["counters"]["proto_errors"], 0, "{stats}");

    // And it chats: the app's 3/1 (its own clock in create_time) is acked and delivered with
    // the server's time.
    let before = now();
    app.send_raw(&vector("app_msg_data")).unwrap();
    let ack = recv_mc(&mut app, 3, 2);
    assert_eq!(ack.header.reserved, 20);
    let d = recv_mc(&mut bob, 3, 1);
    let after = now();
    let Pdu::MsgData(m) = d.pdu().unwrap() else {
        panic!()
    };
    assert_eq!((m.from_id.value(), m.to_id.value()), (Some(1), Some(2)));
    assert_eq!(m.msg_data, "hello bob, 你好 👋".as_bytes());
    assert!(
        (before..=after).contains(&m.create_time),
        "{}",
        m.create_time
    );
    sync(&mut app);
}

#[test]
fn in_repo_copy_matches_shared() {
    check_shared_copy("android2014_client_pdus.txt", VECTORS);
}
