//! Malformed input (P-4 .. P-14): only the offending connection closes, the server and the other
//! sessions go on.

mod common;

use std::time::Duration;

use common::*;
use ttserver::client::Client;
use ttserver::proto::msg::MsgData;
use ttserver::proto::{Id, Pdu};

fn header(length: u32, module: u16, command: u16) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&length.to_be_bytes());
    v.extend_from_slice(&module.to_be_bytes());
    v.extend_from_slice(&command.to_be_bytes());
    v.extend_from_slice(&1u16.to_be_bytes());
    v.extend_from_slice(&0u16.to_be_bytes());
    v
}

/// A logged-in pair that must keep chatting through every bad connection.
struct Witness {
    alice: Client,
    bob: Client,
    a: u32,
    b: u32,
    seq: u32,
}

impl Witness {
    fn still_chatting(&mut self) {
        self.seq += 1;
        let (sa, sb) = (self.a.to_string(), self.b.to_string());
        self.alice
            .send(
                &Pdu::MsgData(MsgData {
                    seq_no: self.seq,
                    from_id: Id::Raw(sa.as_bytes()),
                    to_id: Id::Raw(sb.as_bytes()),
                    create_time: 0,
                    msg_type: 1,
                    msg_data: b"still here",
                    attach: b"",
                }),
                1,
            )
            .unwrap();
        recv_mc(&mut self.alice, 3, 2);
        let f = recv_mc(&mut self.bob, 3, 1);
        let Pdu::MsgData(m) = f.pdu().unwrap() else {
            panic!()
        };
        assert_eq!(m.seq_no, self.seq);
    }
}

#[test]
fn bad_frames_close_only_their_connection() {
    let (srv, ids) = Server::start_with(
        "MaxPduSize=65536",
        &[("alice", "a"), ("bob", "b"), ("eve", "e")],
    );
    let (alice, _) = srv.login("alice", "a", PC);
    let (bob, _) = srv.login("bob", "b", PC);
    let mut w = Witness {
        alice,
        bob,
        a: ids[0],
        b: ids[1],
        seq: 0,
    };

    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("length < 12", header(11, 7, 1)),
        ("length 0", header(0, 7, 1)),
        ("length > MaxPduSize", header(65537, 3, 1)),
        ("length 0xFFFFFFFF", header(u32::MAX, 3, 1)),
    ];
    // Truncated body: a 2/8 whose idstr claims 5 bytes but the frame holds 2.
    let mut t = header(12 + 4 + 2, 2, 8);
    t.extend_from_slice(&[0, 0, 0, 5, b'1', b'2']);
    cases.push(("truncated body", t));
    // Trailing bytes: a 3/5 (empty body) with one byte.
    let mut t = header(13, 3, 5);
    t.push(0);
    cases.push(("trailing byte", t));
    // List count larger than the body: 2/11 claiming 0xFFFFFFFF ids.
    let mut t = header(12 + 4, 2, 11);
    t.extend_from_slice(&u32::MAX.to_be_bytes());
    cases.push(("list count", t));
    // A 3/1 with a msg_data length beyond the body.
    let body: &[u8] = &[
        0, 0, 0, 1, 0, 0, 0, 1, b'1', 0, 0, 0, 1, b'2', 0, 0, 0, 0, 1, 0, 0, 0, 9, b'x',
    ];
    let mut t = header(12 + body.len() as u32, 3, 1);
    t.extend_from_slice(body);
    cases.push(("str beyond body", t));
    // P-6: a body may end early only at a field boundary; a 2/1 cut inside its u32 is an error.
    let mut t = header(12 + 2, 2, 1);
    t.extend_from_slice(&[0, 0]);
    cases.push(("field cut in the middle", t));

    // Before login only 1/3 and 7/1 bodies are parsed (P-13); header checks apply to all.
    let mut pre: Vec<(&str, Vec<u8>)> = cases.iter().take(4).cloned().collect();
    let mut t = header(13, 7, 1);
    t.push(0);
    pre.push(("7/1 with a body byte", t));
    let mut t = header(12 + 4 + 1, 1, 3);
    t.extend_from_slice(&[0, 0, 0, 9, b'a']);
    pre.push(("1/3 truncated", t));
    for (what, bytes) in &pre {
        let mut c = srv.connect();
        c.send_raw(bytes).unwrap();
        c.expect_closed()
            .unwrap_or_else(|e| panic!("{what} before login: {e}"));
        w.still_chatting();
    }
    for (what, bytes) in &cases {
        let (mut e, _) = srv.login("eve", "e", PC);
        e.send_raw(bytes).unwrap();
        e.expect_closed()
            .unwrap_or_else(|err| panic!("{what} after login: {err}"));
        w.still_chatting();
    }
}

#[test]
fn requests_ending_at_a_field_boundary_are_served() {
    // P-6: missing trailing fields read as zero / empty; the reply is the normal one.
    let (srv, ids) = Server::start(&[("alice", "a"), ("bob", "b")]);
    let (a, b) = (ids[0].to_string(), ids[1].to_string());
    let (mut alice, _) = srv.login("alice", "a", PC);
    let (mut bob, _) = srv.login("bob", "b", PC);
    // 2/1 without req_type (the 2014 Android app sends it so).
    alice.send_raw(&header(12, 2, 1)).unwrap();
    let f = recv(&mut alice);
    assert_eq!(f.module_command(), (2, 3));
    // 3/1 without its trailing attach: stored, acked, delivered with an empty attach.
    let mut body = Vec::new();
    body.extend_from_slice(&5u32.to_be_bytes());
    for id in [&a, &b] {
        body.extend_from_slice(&(id.len() as u32).to_be_bytes());
        body.extend_from_slice(id.as_bytes());
    }
    body.extend_from_slice(&[0, 0, 0, 0, 1, 0, 0, 0, 2, b'h', b'i']);
    let mut t = header(12 + body.len() as u32, 3, 1);
    t.extend_from_slice(&body);
    alice.send_raw(&t).unwrap();
    let ack = recv(&mut alice);
    assert_eq!(ack.module_command(), (3, 2));
    let f = recv_mc(&mut bob, 3, 1);
    let Pdu::MsgData(m) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!((m.seq_no, m.msg_data, m.attach), (5, &b"hi"[..], &b""[..]));
    // 2/8 with no body at all: the id is empty, so unknown: status 2 (P-20).
    alice.send_raw(&header(12, 2, 8)).unwrap();
    let f = recv(&mut alice);
    let Pdu::UserStatusResponse(r) = f.pdu().unwrap() else {
        panic!()
    };
    assert_eq!((r.user_id, r.status), (Id::Raw(b""), 2));
    sync(&mut alice);
}

#[test]
fn requests_before_a_bad_frame_are_still_answered() {
    // P-11 with B-GEN-1: what the server accepted before the bad frame is answered (storage
    // reads in flight included), then the connection closes; nothing behind it is processed.
    let (srv, _) = Server::start(&[("alice", "a")]);
    for round in 0..20u16 {
        let (mut c, _) = srv.login("alice", "a", PC);
        let mut burst = Vec::new();
        for (i, (m, cmd)) in [(2u16, 18u16), (2, 14), (2, 1), (3, 7), (5, 1)]
            .iter()
            .enumerate()
        {
            let mut h = header(12, *m, *cmd);
            h[10..12].copy_from_slice(&(round * 16 + i as u16).to_be_bytes());
            burst.extend(h);
        }
        burst.extend(header(11, 7, 1)); // length < 12
        burst.extend(header(12, 3, 5)); // behind the bad frame: never answered
        c.send_raw(&burst).unwrap();
        for (i, mc) in [(2u16, 19u16), (2, 15), (2, 3), (3, 8), (5, 2)]
            .iter()
            .enumerate()
        {
            let f = c
                .recv()
                .unwrap_or_else(|e| panic!("round {round}: reply {i} lost: {e}"));
            assert_eq!(
                (f.module_command(), f.header.reserved),
                (*mc, round * 16 + i as u16),
                "round {round}"
            );
        }
        c.expect_closed().unwrap();
    }
}

#[test]
fn large_pdus_before_login_are_refused_at_the_header() {
    // MaxPduSizeBeforeLogin (default 4096): a header claiming more, before the connection's
    // login request, is a protocol error at once, on every port, before any body is buffered.
    // 100 such connections that then hold their sockets open are all closed by the server.
    let (srv, ids) = Server::start(&[("alice", "a"), ("bob", "b")]);
    let mut held = Vec::new();
    for (i, addr) in [srv.msg, srv.login, srv.file]
        .iter()
        .cycle()
        .take(100)
        .enumerate()
    {
        let mut c = Client::connect(*addr).unwrap();
        let m = [3u16, 1, 6][i % 3];
        c.send_raw(&header(1_000_000, m, 1)).unwrap();
        held.push(c);
    }
    let mut h = srv.http();
    wait_until(
        "every oversized pre-login connection closed",
        Duration::from_secs(10),
        || {
            let v = h.ok("GET", "/v1/stats", None, 200);
            v["connections"]["msg"] == 0
                && v["connections"]["login"] == 0
                && v["counters"]["proto_errors"] == 100
        },
    );
    for mut c in held {
        c.expect_closed().unwrap();
    }
    // After login the full MaxPduSize applies: a 3/1 of 8,000 bytes is stored and acked.
    let (mut alice, _) = srv.login("alice", "a", PC);
    alice
        .send_raw(&msg_frame(ids[0], ids[1], 0x01, 1, &[b'x'; 8000]))
        .unwrap();
    recv_mc(&mut alice, 3, 2);
}

#[test]
fn unknown_commands_are_skipped_and_the_connection_stays() {
    // P-12: unknown M/C, wrong direction (2/3 from a client), other port (6/1 on msg), 7/53.
    let (srv, _) = Server::start(&[("alice", "a")]);
    let (mut c, _) = srv.login("alice", "a", PC);
    for (m, cmd) in [(9u16, 9u16), (2, 3), (6, 1), (7, 53), (3, 14)] {
        let mut f = header(12 + 3, m, cmd);
        f.extend_from_slice(b"abc");
        c.send_raw(&f).unwrap();
    }
    sync(&mut c);
}

#[test]
fn random_bytes_never_take_the_server_down() {
    // P-11 with garbage: a fixed-seed generator, many connections before and after login; the
    // server must have taken every one of them in and closed it, and still serve a login.
    let (mut srv, _) = Server::start(&[("alice", "a"), ("eve", "e")]);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..128 {
        // Odd rounds after a login, so that the garbage reaches the session's handlers too.
        let mut c = if round % 2 == 1 {
            srv.login("eve", "e", PC).0
        } else {
            srv.connect()
        };
        let len = (next() % 4096) as usize + 1;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if round % 4 < 2 && len >= 8 {
            // Half the rounds carry a plausible header so bodies get parsed too.
            let l = (len as u32).max(12);
            bytes[..4].copy_from_slice(&l.to_be_bytes());
            bytes[4..6].copy_from_slice(&((next() % 8) as u16).to_be_bytes());
            bytes[6..8].copy_from_slice(&((next() % 20) as u16).to_be_bytes());
        }
        let _ = c.send_raw(&bytes);
        // Dropped here: the server reads the bytes, then the end of the stream.
    }
    // Synchronise on the server, not on time: every garbage connection has been read to its
    // end and closed (a worker that died would keep its connections forever).
    let mut h = srv.http();
    wait_until(
        "every garbage connection closed",
        std::time::Duration::from_secs(20),
        || h.ok("GET", "/v1/stats", None, 200)["connections"]["msg"] == 0,
    );
    let (mut c, _) = srv.login("alice", "a", PC);
    sync(&mut c);
    assert!(srv.is_running());
}
