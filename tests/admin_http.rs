//! The HTTP admin API (behaviour.md section 14, B-ADM) against the real binary, with a tiny
//! HTTP/1.1 client on std::net.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use ttserver::client::Client;
use ttserver::proto::Pdu;

const TOKEN: &str = "test-token";

/// One keep-alive HTTP connection.
struct Http {
    r: BufReader<TcpStream>,
}

impl Http {
    fn connect(addr: SocketAddr) -> Http {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Http {
            r: BufReader::new(s),
        }
    }

    /// Sends a raw request and reads one response: (status, body as JSON or Null).
    fn raw(&mut self, req: &[u8]) -> (u16, Value) {
        self.r.get_mut().write_all(req).unwrap();
        let mut line = String::new();
        self.r.read_line(&mut line).unwrap();
        let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            self.r.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0u8; len];
        self.r.read_exact(&mut body).unwrap();
        let v = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap()
        };
        (status, v)
    }

    fn req_with(
        &mut self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: &str,
    ) -> (u16, Value) {
        let mut r = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n");
        if let Some(t) = auth {
            r.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if !body.is_empty() {
            r.push_str("Content-Type: application/json\r\n");
        }
        r.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        self.raw(r.as_bytes())
    }

    fn req(&mut self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let b = body.map(|v| v.to_string()).unwrap_or_default();
        self.req_with(method, path, Some(TOKEN), &b)
    }
}

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
    let mut h = Http::connect(srv.admin);
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
    let (st, _) = h.req_with("POST", "/v1/users", Some("test-tokeN"), &body);
    assert_eq!(st, 401);
    let (st, _) = h.req_with("GET", "/v1/health", Some("test-token-longer"), "");
    assert_eq!(st, 401);
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
    let mut big = Http::connect(srv.admin);
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
    let mut other = Http::connect(srv.admin);
    let (st, _) = other.req("GET", "/v1/health", None);
    assert_eq!(st, 200);

    // Expect: 100-continue gets the interim response, then the answer.
    let mut e = Http::connect(srv.admin);
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
    let mut h = Http::connect(srv.admin);

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
    let mut h = Http::connect(srv.admin);
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
    let mut h = Http::connect(srv.admin);

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
    let mut h = Http::connect(srv.admin);

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
