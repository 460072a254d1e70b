//! The HTTP admin API (behaviour.md section 14, B-ADM) against the real binary, with the tiny
//! HTTP/1.1 client of `common::http`.

mod common;

use std::io::{BufRead, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use ttserver::client::Client;
use ttserver::proto::Pdu;

const TOKEN: &str = ADMIN_TOKEN;

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| u32::try_from(x.as_u64().unwrap()).unwrap())
        .collect()
}

fn members_of(f: &ttserver::client::Frame) -> (u32, Vec<u32>) {
    match f.pdu().unwrap() {
        Pdu::NormalGroupMembersChangedNotify(n) => (
            n.group_id.value().unwrap(),
            n.member_ids.iter().map(|m| m.value().unwrap()).collect(),
        ),
        other => panic!("{other:?}"),
    }
}

fn unread_counts(c: &mut Client) -> Vec<(u32, u32)> {
    c.send(&Pdu::UnreadCountRequest, 3).unwrap();
    let f = recv_mc(c, 3, 8);
    let Pdu::UnreadCountResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    r.counts
        .iter()
        .map(|x| (x.peer_id.value().unwrap(), x.unread_cnt))
        .collect()
}

#[test]
fn health_auth_and_errors() {
    let (srv, _) = Server::start(&[("alice", "a")]);
    let mut h = srv.http();
    let (st, v) = h.req("GET", "/v1/health", None);
    assert_eq!(st, 200);
    assert_eq!(v["status"], "ok");
    assert!(v["version"].is_string());
    assert!(v["uptime_s"].is_u64());

    // 401 without or with a wrong token; nothing happens (B-ADM-2).
    let body = json!({"name": "mallory", "password": "m"}).to_string();
    let (st, v) = h.req_with("POST", "/v1/users", None, &body);
    assert_eq!(st, 401);
    assert_eq!(v["error"], "unauthorized");
    assert!(v["message"].is_string());
    let wrong = [
        TOKEN.to_uppercase(),
        format!("{TOKEN}x"),
        TOKEN.chars().skip(1).collect::<String>(),
    ];
    for t in &wrong {
        let (st, _) = h.req_with("POST", "/v1/users", Some(t), &body);
        assert_eq!(st, 401, "{t}");
        let (st, _) = h.req_with("GET", "/v1/health", Some(t), "");
        assert_eq!(st, 401, "{t}");
    }
    let (st, v) = h.req("GET", "/v1/users?name=mallory", None);
    assert_eq!((st, v), (200, json!([])));

    // 400 on bad JSON, with a message; nothing created.
    let (st, v) = h.req_with("POST", "/v1/users", Some(TOKEN), "{\"name\": \"mallory\", ");
    assert_eq!(st, 400);
    assert_eq!(v["error"], "bad_request");
    assert!(!v["message"].as_str().unwrap().is_empty());
    let (st, v) = h.req("POST", "/v1/users", Some(json!({"name": "mallory"})));
    assert_eq!((st, v["error"].as_str()), (400, Some("bad_request")));
    let (st, v) = h.req("GET", "/v1/users?name=mallory", None);
    assert_eq!((st, v), (200, json!([])));

    // 404, 405
    let (st, v) = h.req("GET", "/v1/users/999", None);
    assert_eq!((st, v["error"].as_str()), (404, Some("not_found")));
    let (st, _) = h.req("GET", "/v1/nothing", None);
    assert_eq!(st, 404);
    let (st, _) = h.req("DELETE", "/v1/users", None);
    assert_eq!(st, 405);

    // 413 for a body over 1 MiB (the server answers from the head and closes).
    let mut big = srv.http();
    let (st, v) = big.raw(
        format!(
            "POST /v1/users HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n",
            2 * 1024 * 1024
        )
        .as_bytes(),
    );
    assert_eq!((st, v["error"].as_str()), (413, Some("too_large")));

    // A slow client (half a request head) does not hold up the others.
    let mut slow = TcpStream::connect(srv.admin).unwrap();
    slow.write_all(b"GET /v1/health HTTP/1.1\r\nAuthoriz")
        .unwrap();
    let mut other = srv.http();
    let (st, _) = other.req("GET", "/v1/health", None);
    assert_eq!(st, 200);

    // Expect: 100-continue gets the interim response, then the answer.
    let mut e = srv.http();
    e.r.get_mut()
        .write_all(
            format!(
                "POST /v1/departments HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\
                 Expect: 100-continue\r\nContent-Length: 2\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    let mut line = String::new();
    e.r.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 100"), "{line}");
    e.r.read_line(&mut line).unwrap();
    let (st, _) = e.raw(b"{}");
    assert_eq!(st, 400);

    // The keep-alive connection still works after all of that.
    let (st, _) = h.req("GET", "/v1/health", None);
    assert_eq!(st, 200);
}

#[test]
fn users_create_login_conflict_disable() {
    let (srv, ids0) = Server::start(&[("alice", "a")]);
    let alice = ids0[0];
    let mut h = srv.http();

    let (st, d) = h.req("POST", "/v1/departments", Some(json!({"title": "HQ"})));
    assert_eq!(st, 201);
    let dep = d["id"].as_u64().unwrap();
    let (st, u) = h.req(
        "POST",
        "/v1/users",
        Some(
            json!({"name": "bob", "password": "secret", "nick": "Bob", "depart_id": dep,
                    "email": "bob@example.com"}),
        ),
    );
    assert_eq!(st, 201, "{u}");
    let bob = u32::try_from(u["id"].as_u64().unwrap()).unwrap();
    assert_eq!(u["name"], "bob");
    assert_eq!(u["nick"], "Bob");
    assert_eq!(u["depart_id"], dep);
    assert_eq!(u["disabled"], false);
    assert_eq!(u["status"], 2);
    assert!(u.get("password").is_none() && u.get("password_hash").is_none());

    // The directory is updated: bob logs in at once (and his status shows).
    let (mut bc, bid) = srv.login("bob", "secret", PC);
    assert_eq!(bid, bob);
    let (st, u) = h.req("GET", &format!("/v1/users/{bob}"), None);
    assert_eq!((st, u["status"].as_u64()), (200, Some(1)));
    let (st, v) = h.req("GET", "/v1/users?name=bob", None);
    assert_eq!(st, 200);
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["id"], bob);

    // Duplicate name -> 409 (B-USER-4).
    let (st, v) = h.req(
        "POST",
        "/v1/users",
        Some(json!({"name": "alice", "password": "x"})),
    );
    assert_eq!((st, v["error"].as_str()), (409, Some("conflict")));

    // PATCH: nick and password.
    let (st, u) = h.req(
        "PATCH",
        &format!("/v1/users/{alice}"),
        Some(json!({"nick": "Al", "password": "new"})),
    );
    assert_eq!((st, u["nick"].as_str()), (200, Some("Al")));
    let mut c = srv.connect();
    assert_ne!(c.login("alice", "a", 1, PC).unwrap().result, 0);
    let (_ac, _) = srv.login("alice", "new", PC);

    // Disabling bob closes his live session (no 1/7) and login then fails (B-ADM-6).
    let (st, u) = h.req(
        "PATCH",
        &format!("/v1/users/{bob}"),
        Some(json!({"disabled": true})),
    );
    assert_eq!((st, u["disabled"].as_bool()), (200, Some(true)));
    bc.set_timeout(Some(Duration::from_secs(5)));
    bc.expect_closed().unwrap();
    let mut c = srv.connect();
    assert_ne!(c.login("bob", "secret", 1, PC).unwrap().result, 0);
}

#[test]
fn departments_create_list_patch() {
    let (srv, _) = Server::start(&[]);
    let mut h = srv.http();
    let (st, a) = h.req(
        "POST",
        "/v1/departments",
        Some(json!({"title": "HQ", "description": "head office"})),
    );
    assert_eq!(st, 201);
    let a_id = a["id"].as_u64().unwrap();
    let (st, b) = h.req(
        "POST",
        "/v1/departments",
        Some(json!({"title": "R&D", "parent_id": a_id, "leader_id": 0})),
    );
    assert_eq!(st, 201);
    assert_eq!(b["parent_id"], a_id);
    let (st, _) = h.req(
        "POST",
        "/v1/departments",
        Some(json!({"title": "x", "parent_id": 999})),
    );
    assert_eq!(st, 400);
    let (st, _) = h.req(
        "PATCH",
        &format!("/v1/departments/{}", b["id"]),
        Some(json!({"disabled": true})),
    );
    assert_eq!(st, 200);
    let (st, list) = h.req("GET", "/v1/departments", None);
    assert_eq!(st, 200);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["title"], "HQ");
    assert_eq!(list[0]["description"], "head office");
    assert_eq!(list[1]["disabled"], true);
    let (st, _) = h.req("PATCH", "/v1/departments/77", Some(json!({"title": "y"})));
    assert_eq!(st, 404);
}

#[test]
fn normal_groups_push_18_and_19() {
    let (srv, ids) = Server::start(&[("a", "a"), ("b", "b"), ("c", "c")]);
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let (mut ac, _) = srv.login("a", "a", PC);
    let (mut bc, _) = srv.login("b", "b", PC);
    let (mut cc, _) = srv.login("c", "c", PC);
    let mut h = srv.http();

    let (st, g) = h.req(
        "POST",
        "/v1/groups",
        Some(json!({"name": "ops", "avatar": "", "members": [a, b]})),
    );
    assert_eq!(st, 201, "{g}");
    let gid = u32::try_from(g["id"].as_u64().unwrap()).unwrap();
    assert_eq!(g["type"], 1);
    assert_eq!(g["creator"], 0);
    assert_eq!(ids_of(&g["members"]), vec![a, b]);
    for cl in [&mut ac, &mut bc] {
        let f = recv_mc(cl, 5, 18);
        assert_eq!(f.header.reserved, 0);
        let Pdu::NormalGroupCreatedNotify(n) = f.pdu().unwrap() else {
            panic!()
        };
        assert_eq!(n.group_id.value(), Some(gid));
        assert_eq!(n.group_name, b"ops");
        let m: Vec<u32> = n.member_ids.iter().map(|x| x.value().unwrap()).collect();
        assert_eq!(m, vec![a, b]);
    }
    sync(&mut cc);
    assert_silent(&mut cc, Duration::from_millis(200));

    // Inactive member -> 400.
    let (st, _) = h.req(
        "POST",
        "/v1/groups",
        Some(json!({"name": "x", "members": [a, 999]})),
    );
    assert_eq!(st, 400);

    // B-GRP-20: users and groups take their ids from one sequence. The group's id follows the
    // users', a user's id is no group, and the next user follows the group (the refused
    // group used up no id).
    assert!(gid > a.max(b).max(c), "{gid} {ids:?}");
    let (st, _) = h.req("GET", &format!("/v1/groups/{a}"), None);
    assert_eq!(st, 404);
    let (st, u) = h.req(
        "POST",
        "/v1/users",
        Some(json!({"name": "d", "password": "d"})),
    );
    assert_eq!(st, 201, "{u}");
    assert_eq!(u["id"].as_u64(), Some(u64::from(gid) + 1));
    let (st, _) = h.req("GET", &format!("/v1/users/{gid}"), None);
    assert_eq!(st, 404);

    // PUT members [b, c]: 5/19 with the new list to a, b, c (old ∪ new).
    let (st, g) = h.req(
        "PUT",
        &format!("/v1/groups/{gid}/members"),
        Some(json!({"members": [b, c]})),
    );
    assert_eq!(st, 200, "{g}");
    assert_eq!(ids_of(&g["members"]), vec![b, c]);
    for cl in [&mut ac, &mut bc, &mut cc] {
        let f = recv_mc(cl, 5, 19);
        assert_eq!(members_of(&f), (gid, vec![b, c]));
    }

    // Unchanged list: no push.
    let (st, _) = h.req(
        "PUT",
        &format!("/v1/groups/{gid}/members"),
        Some(json!({"members": [b, c]})),
    );
    assert_eq!(st, 200);

    // Rename (no push).
    let (st, g) = h.req(
        "PATCH",
        &format!("/v1/groups/{gid}"),
        Some(json!({"name": "dev"})),
    );
    assert_eq!((st, g["name"].as_str()), (200, Some("dev")));
    let (st, g) = h.req("GET", &format!("/v1/groups/{gid}"), None);
    assert_eq!((st, g["name"].as_str()), (200, Some("dev")));

    // DELETE: 5/19 with an empty list to the members at deletion (b, c), not to a.
    let (st, v) = h.req("DELETE", &format!("/v1/groups/{gid}"), None);
    assert_eq!((st, v), (204, Value::Null));
    for cl in [&mut bc, &mut cc] {
        let f = recv_mc(cl, 5, 19);
        assert_eq!(members_of(&f), (gid, vec![]));
    }
    sync(&mut ac);
    assert_silent(&mut ac, Duration::from_millis(200));
    let (st, _) = h.req("GET", &format!("/v1/groups/{gid}"), None);
    assert_eq!(st, 404);
    let (st, _) = h.req("DELETE", &format!("/v1/groups/{gid}"), None);
    assert_eq!(st, 404);
}

fn ids_of(v: &Value) -> Vec<u32> {
    ids(v)
}

#[test]
fn messages_deliver_and_stay_unread() {
    let (srv, ids) = Server::start(&[("a", "a"), ("b", "b"), ("c", "c")]);
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let (mut bc, _) = srv.login("b", "b", PC);
    let (mut ac, _) = srv.login("a", "a", PC);
    let mut h = srv.http();

    // To an online user: b gets the 3/1 (seq_no 0, from a), so does a's own session; no 3/2.
    let (st, v) = h.req(
        "POST",
        "/v1/messages",
        Some(json!({"from": a, "to_user": b, "text": "hello"})),
    );
    assert_eq!(st, 200, "{v}");
    assert!(v["msg_id"].as_u64().unwrap() > 0);
    let t = v["create_time"].as_u64().unwrap();
    for cl in [&mut bc, &mut ac] {
        let f = recv_mc(cl, 3, 1);
        assert_eq!(f.header.reserved, 0);
        let Pdu::MsgData(m) = f.pdu().unwrap() else {
            panic!()
        };
        assert_eq!(m.seq_no, 0);
        assert_eq!(m.from_id.value(), Some(a));
        assert_eq!(m.to_id.value(), Some(b));
        assert_eq!(m.msg_data, b"hello");
        assert_eq!(u64::from(m.create_time), t);
    }
    assert_eq!(unread_counts(&mut bc), vec![(a, 1)]);

    // To an offline user: unread when it logs in.
    let (st, _) = h.req(
        "POST",
        "/v1/messages",
        Some(json!({"from": b, "to_user": c, "text": "later"})),
    );
    assert_eq!(st, 200);
    // b's own session gets the copy (sessions of `from`, B-ADM-7).
    let f = recv_mc(&mut bc, 3, 1);
    let Pdu::MsgData(m) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!((m.from_id.value(), m.to_id.value()), (Some(b), Some(c)));
    let (mut cc, _) = srv.login("c", "c", PC);
    assert_eq!(unread_counts(&mut cc), vec![(b, 1)]);

    // Bad requests.
    for body in [
        json!({"from": a, "to_user": b, "text": ""}),
        json!({"from": a, "to_user": 999, "text": "x"}),
        json!({"from": a, "text": "x"}),
        json!({"from": a, "to_user": b, "to_group": 1, "text": "x"}),
    ] {
        let (st, _) = h.req("POST", "/v1/messages", Some(body));
        assert_eq!(st, 400);
    }

    // A group message reaches every member session.
    let (st, g) = h.req(
        "POST",
        "/v1/groups",
        Some(json!({"name": "g", "members": [a, b]})),
    );
    assert_eq!(st, 201);
    let gid = u32::try_from(g["id"].as_u64().unwrap()).unwrap();
    let (st, _) = h.req(
        "POST",
        "/v1/messages",
        Some(json!({"from": c, "to_group": gid, "text": "hi all"})),
    );
    assert_eq!(st, 200);
    for cl in [&mut ac, &mut bc] {
        let f = recv_mc(cl, 3, 1);
        let Pdu::MsgData(m) = f.pdu().unwrap() else {
            panic!()
        };
        assert_eq!((m.from_id.value(), m.to_id.value()), (Some(c), Some(gid)));
        assert_eq!(m.msg_type, 0x11);
    }

    // Stats: counters and live figures.
    let (st, s) = h.req("GET", "/v1/stats", None);
    assert_eq!(st, 200);
    assert_eq!(s["counters"]["msgs_p2p"], 2);
    assert_eq!(s["counters"]["msgs_group"], 1);
    for k in [
        "proto_errors",
        "login_failures",
        "msg_rejected",
        "store_failures",
    ] {
        assert!(s["counters"][k].is_u64(), "{k}");
    }
    assert_eq!(s["sessions"], 3);
    assert_eq!(s["online_users"], 3);
    assert!(s["connections"]["msg"].as_u64().unwrap() >= 3);
    assert!(s["connections"]["login"].is_u64());
}

/// Names and titles with control characters are refused with 400 and never stored.
#[test]
fn control_characters_in_names_are_refused() {
    let (srv, ids) = Server::start(&[("alice", "a")]);
    let alice = ids[0];
    let mut h = srv.http();

    // NUL in a new user's name: 400, and no user of that name exists afterwards.
    let (st, v) = h.req(
        "POST",
        "/v1/users",
        Some(json!({"name": "eve\u{0}", "password": "x"})),
    );
    assert_eq!((st, v["error"].as_str()), (400, Some("bad_request")), "{v}");
    assert!(v["message"].as_str().unwrap().contains("control"), "{v}");
    let (st, v) = h.req("GET", "/v1/users?name=eve%00", None);
    assert_eq!((st, v), (200, json!([])));
    for name in ["a\nb", "a\tb", "\u{7f}x", "x\u{85}", "\r"] {
        let (st, v) = h.req(
            "POST",
            "/v1/users",
            Some(json!({"name": name, "password": "x"})),
        );
        assert_eq!(st, 400, "{name:?}: {v}");
    }

    // PATCH of name and nick: 400 and the user is unchanged.
    for body in [
        json!({"name": "al\u{0}ice"}),
        json!({"name": "al\nice"}),
        json!({"nick": "Al\tice"}),
        json!({"nick": "\u{0}"}),
    ] {
        let (st, v) = h.req("PATCH", &format!("/v1/users/{alice}"), Some(body.clone()));
        assert_eq!(st, 400, "{body}: {v}");
    }
    let (st, u) = h.req("GET", &format!("/v1/users/{alice}"), None);
    assert_eq!((st, u["name"].as_str()), (200, Some("alice")));
    assert_eq!(u["nick"], "alice");
    let (st, v) = h.req(
        "POST",
        "/v1/users",
        Some(json!({"name": "eve", "password": "x", "nick": "E\nve"})),
    );
    assert_eq!(st, 400, "{v}");
    let (st, v) = h.req("GET", "/v1/users?name=eve", None);
    assert_eq!((st, v), (200, json!([])));

    // Department titles and group names.
    let (st, _) = h.req("POST", "/v1/departments", Some(json!({"title": "R\u{0}D"})));
    assert_eq!(st, 400);
    let (st, d) = h.req("POST", "/v1/departments", Some(json!({"title": "HQ"})));
    assert_eq!(st, 201);
    let (st, _) = h.req(
        "PATCH",
        &format!("/v1/departments/{}", d["id"]),
        Some(json!({"title": "H\nQ"})),
    );
    assert_eq!(st, 400);
    let (st, list) = h.req("GET", "/v1/departments", None);
    assert_eq!(st, 200);
    let titles: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["HQ"]);
    let (st, _) = h.req(
        "POST",
        "/v1/groups",
        Some(json!({"name": "o\u{0}ps", "members": [alice]})),
    );
    assert_eq!(st, 400);
    let (st, g) = h.req(
        "POST",
        "/v1/groups",
        Some(json!({"name": "ops", "members": [alice]})),
    );
    assert_eq!(st, 201);
    let (st, _) = h.req(
        "PATCH",
        &format!("/v1/groups/{}", g["id"]),
        Some(json!({"name": "o\tps"})),
    );
    assert_eq!(st, 400);
    let (st, g) = h.req("GET", &format!("/v1/groups/{}", g["id"]), None);
    assert_eq!((st, g["name"].as_str()), (200, Some("ops")));

    // Printable non-ASCII is fine.
    let (st, v) = h.req(
        "POST",
        "/v1/users",
        Some(json!({"name": "zoë", "password": "x", "nick": "Zoë 王"})),
    );
    assert_eq!((st, v["nick"].as_str()), (201, Some("Zoë 王")), "{v}");
}

/// Ids in paths are canonical decimal (P-19): anything else is 400, a canonical id that names
/// nothing is 404.
#[test]
fn path_ids_must_be_canonical() {
    let (srv, ids) = Server::start(&[("alice", "a")]);
    let alice = ids[0];
    assert_eq!(alice, 1, "the first user gets id 1");
    let mut h = srv.http();
    let (st, g) = h.req(
        "POST",
        "/v1/groups",
        Some(json!({"name": "ops", "members": [alice]})),
    );
    assert_eq!(st, 201);
    let gid = g["id"].as_u64().unwrap();
    let (st, d) = h.req("POST", "/v1/departments", Some(json!({"title": "HQ"})));
    assert_eq!(st, 201);
    let did = d["id"].as_u64().unwrap();

    let bad = [
        "+1".to_string(),
        "01".to_string(),
        "0".to_string(),
        "00".to_string(),
        "-1".to_string(),
        "4294967296".to_string(),
        "99999999999".to_string(),
        "%31".to_string(),
        "1a".to_string(),
        "1%20".to_string(),
        format!("0{gid}"),
        format!("+{did}"),
    ];
    for id in &bad {
        for (method, path, body) in [
            ("GET", format!("/v1/users/{id}"), None),
            (
                "PATCH",
                format!("/v1/users/{id}"),
                Some(json!({"nick": "x"})),
            ),
            (
                "PATCH",
                format!("/v1/departments/{id}"),
                Some(json!({"title": "x"})),
            ),
            ("GET", format!("/v1/groups/{id}"), None),
            (
                "PATCH",
                format!("/v1/groups/{id}"),
                Some(json!({"name": "x"})),
            ),
            (
                "PUT",
                format!("/v1/groups/{id}/members"),
                Some(json!({"members": [alice]})),
            ),
            ("DELETE", format!("/v1/groups/{id}"), None),
        ] {
            let (st, v) = h.req(method, &path, body);
            assert_eq!(
                (st, v["error"].as_str()),
                (400, Some("bad_request")),
                "{method} {path}: {v}"
            );
        }
    }
    // Nothing changed through a non-canonical alias.
    let (st, u) = h.req("GET", "/v1/users/1", None);
    assert_eq!((st, u["nick"].as_str()), (200, Some("alice")));
    let (st, g) = h.req("GET", &format!("/v1/groups/{gid}"), None);
    assert_eq!((st, g["name"].as_str()), (200, Some("ops")));

    // Canonical but absent: 404; the largest canonical id is still an id.
    for path in [
        "/v1/users/4294967295",
        "/v1/users/2",
        "/v1/groups/4294967295",
    ] {
        let (st, v) = h.req("GET", path, None);
        assert_eq!(
            (st, v["error"].as_str()),
            (404, Some("not_found")),
            "{path}"
        );
    }
    let (st, _) = h.req(
        "PATCH",
        "/v1/departments/4294967295",
        Some(json!({"title": "x"})),
    );
    assert_eq!(st, 404);
    // Canonical ids work.
    let (st, u) = h.req("PATCH", "/v1/users/1", Some(json!({"nick": "Al"})));
    assert_eq!((st, u["nick"].as_str()), (200, Some("Al")), "{u}");
    let (st, _) = h.req(
        "PATCH",
        &format!("/v1/departments/{did}"),
        Some(json!({"title": "Head office"})),
    );
    assert_eq!(st, 200);
    let (st, _) = h.req("DELETE", &format!("/v1/groups/{gid}"), None);
    assert_eq!(st, 204);
}

/// Without `AdminToken` in the conf, `ttserver run` creates `DataDir/admin.token` (mode 0600, a
/// random token) and reuses it on the next start; a bad token file stops the start.
#[test]
fn token_file_in_data_dir() {
    use std::os::unix::fs::PermissionsExt;

    let (mut srv, _) = Server::start_with("# AdminToken=", &[("alice", "a")]);
    let path = srv.data_dir().join("admin.token");
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    let token = text.trim().to_string();
    assert_eq!(token.len(), 32, "{text:?}");
    assert!(token
        .bytes()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));

    let mut h = srv.http();
    let (st, v) = h.req_with("GET", "/v1/health", Some(&token), "");
    assert_eq!((st, v["status"].as_str()), (200, Some("ok")));
    for wrong in [TOKEN, "0123456789abcdef0123456789abcdef", &token[..31]] {
        let (st, v) = h.req_with("GET", "/v1/users?name=alice", Some(wrong), "");
        assert_eq!((st, v["error"].as_str()), (401, Some("unauthorized")));
    }
    let (st, _) = h.req_with("GET", "/v1/health", None, "");
    assert_eq!(st, 401);

    // The next start reads the same file: the token is unchanged.
    assert!(srv.terminate());
    srv.spawn();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    let mut h = srv.http();
    let (st, v) = h.req_with("GET", "/v1/users?name=alice", Some(&token), "");
    assert_eq!((st, v[0]["name"].as_str()), (200, Some("alice")));
    assert!(srv.terminate());

    // A token file that breaks the rules stops the start, naming the file.
    for bad in [
        "short\n",
        "",
        "demo-admin-token-change-me\n",
        "with space inside 0123\n",
    ] {
        std::fs::write(&path, bad).unwrap();
        let err = srv.run_refused();
        assert!(err.contains(&path.display().to_string()), "{bad:?}: {err}");
        assert!(err.contains("AdminToken"), "{bad:?}: {err}");
    }
}

/// A short, empty or shipped-demo `AdminToken` in the conf stops `ttserver run`, naming the
/// file, the line and the key.
#[test]
fn weak_admin_token_in_conf_refused() {
    for (value, what) in [
        ("x", "at least 16"),
        ("0123456789abcde", "at least 16"),
        ("", "empty"),
        ("demo-admin-token-change-me", "example"),
    ] {
        let srv = Server::prepare(&format!("AdminToken={value}"));
        let err = srv.run_refused();
        let at = format!("{}:1: AdminToken: ", srv.conf.display());
        assert!(err.contains(&at), "{value:?}: {err}");
        assert!(err.contains(what), "{value:?}: {err}");
    }
}

/// A connection that sends nothing is closed when its first request is overdue (5 s after the
/// accept), not after the 60 s keep-alive idle time (it used to start counting at the first
/// byte).
#[test]
fn a_silent_admin_connection_is_closed_at_the_request_deadline() {
    use std::io::Read;
    let (srv, _) = Server::start(&[]);
    let mut s = TcpStream::connect(srv.admin).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut b = [0u8; 16];
    let r = s.read(&mut b);
    let timed_out = matches!(&r, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut));
    assert!(!timed_out, "the silent connection is still open after 20 s");
    assert!(matches!(r, Ok(0) | Err(_)), "unexpected bytes: {r:?}");
}
