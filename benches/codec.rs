//! Codec benches (issue #3): what the server does per message on the wire, with no I/O.
//!
//! * `frame`: `frame::check` of a bare 12-byte PDU and of a whole 3/1.
//! * `decode`: `Pdu::decode` of a body (header already checked), as a worker does per PDU.
//! * `encode`: `Pdu::encode` into a reused buffer (cleared each iteration) of the replies and
//!   pushes the server writes; ids are `Id::Num` as the handlers build them.
//! * `stream`: 1,000 back-to-back 3/1 PDUs in one buffer, `frame::check` + `Pdu::decode` in a
//!   loop (a worker's `process` over one large read).
//!
//! Inputs follow `tests/vectors/client_pdus.txt` (ids "10035"/"10036", 100-byte texts); the
//! setup checks some of them against the vectors byte for byte. Run with
//! `cargo bench --bench codec` (or `-- --test` to run each bench once).

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ttserver::config::Config;
use ttserver::proto::frame::{self, HEADER_LEN};
use ttserver::proto::*;

const VECTORS: &str = include_str!("../tests/vectors/client_pdus.txt");

/// The whole PDU of vector `name` (`name M/C hex` lines).
fn vector(name: &str) -> Vec<u8> {
    let hex = VECTORS
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let mut it = l.split_whitespace();
            (it.next() == Some(name)).then(|| it.nth(1)).flatten()
        })
        .unwrap_or_else(|| panic!("no vector {name}"));
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Largest accepted client PDU: the server's default `MaxPduSize`.
fn max_pdu() -> u32 {
    Config::default().net.max_pdu_size
}

/// A 100-byte message text.
fn text() -> Vec<u8> {
    b"hello from 10035 to 10036, "
        .iter()
        .cycle()
        .take(100)
        .copied()
        .collect()
}

/// A client's 3/1 as it arrives (C->S): `create_time` 0, text message, empty attach.
fn msg_c2s<'a>(seq_no: u32, data: &'a [u8]) -> Pdu<'a> {
    Pdu::MsgData(MsgData {
        seq_no,
        from_id: Id::Raw(b"10035"),
        to_id: Id::Raw(b"10036"),
        create_time: 0,
        msg_type: 0x01,
        msg_data: data,
        attach: b"",
    })
}

/// The body of a whole frame.
fn body(frame: &[u8]) -> &[u8] {
    &frame[HEADER_LEN..]
}

/// Decodes a frame's body in `dir`; panics unless it is a known, valid PDU.
fn decode_ok(dir: Dir, frame: &[u8]) -> Pdu<'_> {
    let h = frame::header(frame).expect("header");
    assert_eq!(h.length as usize, frame.len());
    Pdu::decode(dir, h.module, h.command, body(frame))
        .expect("valid")
        .expect("known")
}

/// The `UserInfo` record of user `i` as the server builds it (`user_info_record`).
fn user_info<'a>(i: u32, name: &'a str, email: &'a str) -> UserInfo<'a> {
    UserInfo {
        user_id: Id::Num(10_000 + i),
        name: name.as_bytes(),
        nick_name: "Nick·昵称".as_bytes(),
        avatar_url: b"/avatar/default.jpg",
        title: b"Engineer",
        position: b"HZ",
        role_status: 0,
        sex: i % 2,
        depart_id: Id::Num(1 + i % 20),
        job_num: 1_000 + i,
        telephone: b"13800000000",
        email: email.as_bytes(),
    }
}

/// Login names and emails of `n` users (owned, the records borrow them).
fn user_strings(n: u32) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("user{i:05}"), format!("user{i:05}@example.com")))
        .collect()
}

fn users<'a>(strings: &'a [(String, String)]) -> Vec<UserInfo<'a>> {
    strings
        .iter()
        .zip(0u32..)
        .map(|((name, email), i)| user_info(i, name, email))
        .collect()
}

fn bench_frame(c: &mut Criterion) {
    let max = max_pdu();
    let mut g = c.benchmark_group("frame");
    g.throughput(Throughput::Elements(1));

    // A whole empty-body PDU is exactly the 12-byte header.
    let hb = vector("heartbeat");
    assert_eq!(hb.len(), HEADER_LEN);
    assert!(frame::check(&hb, max).expect("valid").is_some());
    g.bench_function("check_header_12B", |b| {
        b.iter(|| frame::check(black_box(&hb), black_box(max)))
    });

    let data = text();
    let m = msg_c2s(7, &data).to_frame(7);
    assert!(frame::check(&m, max).expect("valid").is_some());
    g.bench_function("check_3_1", |b| {
        b.iter(|| frame::check(black_box(&m), black_box(max)))
    });
    g.finish();
}

fn bench_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");

    // 3/1 C->S with a 100-byte text; the builder matches the vector's layout.
    assert_eq!(
        msg_c2s(7, b"hi").to_frame(7),
        vector("msg_data_c2s"),
        "3/1 builder"
    );
    let data = text();
    let m = msg_c2s(7, &data).to_frame(7);
    decode_ok(Dir::ToServer, &m);
    g.throughput(Throughput::Elements(1));
    g.bench_function("3_1_msg_data", |b| {
        let body = body(&m);
        b.iter(|| Pdu::decode(Dir::ToServer, 3, 1, black_box(body)))
    });

    // 1/3 C->S: the vector itself.
    let login = vector("login_req");
    decode_ok(Dir::ToServer, &login);
    g.throughput(Throughput::Elements(1));
    g.bench_function("1_3_login_req", |b| {
        let body = body(&login);
        b.iter(|| Pdu::decode(Dir::ToServer, 1, 3, black_box(body)))
    });

    // 2/11 C->S with 100 ids.
    let ids: Vec<Id<'_>> = (0..100).map(|i| Id::Num(10_000 + i)).collect();
    let req = Pdu::UserInfoRequest(UserInfoRequest { user_ids: ids }).to_frame(3);
    assert!(matches!(
        decode_ok(Dir::ToServer, &req),
        Pdu::UserInfoRequest(r) if r.user_ids.len() == 100
    ));
    g.throughput(Throughput::Bytes(req.len() as u64));
    g.bench_function("2_11_user_info_req_100_ids", |b| {
        let body = body(&req);
        b.iter(|| Pdu::decode(Dir::ToServer, 2, 11, black_box(body)))
    });

    // 3/14 S->C (what a client decodes) with 100 messages of 100 bytes.
    let msgs: Vec<UnreadMsg<'_>> = (0..100)
        .map(|i| UnreadMsg {
            from_id: Id::Raw(b"10035"),
            from_name: b"alice",
            from_nick: b"Alice",
            from_avatar: b"",
            create_time: 1_700_000_000 + i,
            msg_type: 0x01,
            msg_data: &data,
        })
        .collect();
    let unread = Pdu::UnreadMsgResponse(UnreadMsgResponse {
        peer_id: Id::Raw(b"10035"),
        msgs,
    })
    .to_frame(5);
    assert!(matches!(
        decode_ok(Dir::ToClient, &unread),
        Pdu::UnreadMsgResponse(r) if r.msgs.len() == 100
    ));
    g.throughput(Throughput::Bytes(unread.len() as u64));
    g.bench_function("3_14_unread_msg_rsp_100_msgs", |b| {
        let body = body(&unread);
        b.iter(|| Pdu::decode(Dir::ToClient, 3, 14, black_box(body)))
    });
    g.finish();
}

/// Benches `pdu.encode(reserved, buf)` into one buffer, cleared each iteration.
fn encode_into(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    reserved: u16,
    pdu: &Pdu<'_>,
) {
    let mut buf = Vec::new();
    g.bench_function(name, |b| {
        b.iter(|| {
            buf.clear();
            black_box(pdu).encode(black_box(reserved), &mut buf);
            black_box(buf.len())
        })
    });
}

fn bench_encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    let data = text();

    // 3/1 delivery as `msg::chat` builds it (ids as numbers, create_time patched later).
    let delivery = Pdu::MsgData(MsgData {
        seq_no: 7,
        from_id: Id::Num(10035),
        to_id: Id::Num(10036),
        create_time: 0,
        msg_type: 0x01,
        msg_data: &data,
        attach: b"",
    });
    assert_eq!(delivery.to_frame(0), msg_c2s(7, &data).to_frame(0));
    g.throughput(Throughput::Elements(1));
    encode_into(&mut g, "3_1_delivery", 0, &delivery);
    // The same through `to_frame` (a fresh Vec per PDU), which is what the handlers call.
    g.bench_function("3_1_delivery_to_frame", |b| {
        b.iter(|| black_box(&delivery).to_frame(black_box(0)))
    });

    // 3/2 ack echoing the request's from_id bytes.
    let ack = Pdu::MsgDataAck(MsgDataAck {
        seq_no: 7,
        from_id: Id::Raw(b"10035"),
    });
    assert_eq!(ack.to_frame(7), vector("msg_ack"));
    g.throughput(Throughput::Elements(1));
    encode_into(&mut g, "3_2_ack", 7, &ack);

    // 1/4 login response, the vector's values.
    let token = b"0f8fad5b-d9cb-469f-a165-70867728950e";
    let login = Pdu::LoginResponse(LoginResponse {
        server_time: 1_700_000_000,
        result: 0,
        ok: Some(LoginOk {
            online_status: 1,
            user_id: Id::Num(10035),
            nickname: b"Alice",
            avatar_url: b"",
            title: b"Engineer",
            position: b"HZ",
            role_status: 0,
            sex: 0,
            depart_id: Id::Num(1),
            job_num: 1001,
            telephone: b"",
            email: b"a@x.cn",
            token,
        }),
    });
    assert_eq!(login.to_frame(2), vector("login_rsp_ok"));
    g.throughput(Throughput::Elements(1));
    encode_into(&mut g, "1_4_login_rsp", 2, &login);

    // 2/15 with 1,000 records, 2/10 with 100.
    let strings = user_strings(1_000);
    let all = users(&strings);
    let all_rsp = Pdu::AllUserResponse(AllUserResponse { users: all.clone() });
    g.throughput(Throughput::Bytes(all_rsp.to_frame(0).len() as u64));
    encode_into(&mut g, "2_15_all_users_1000", 0, &all_rsp);

    let info_rsp = Pdu::UserInfoResponse(UserInfoResponse {
        users: all[..100].to_vec(),
    });
    g.throughput(Throughput::Bytes(info_rsp.to_frame(0).len() as u64));
    encode_into(&mut g, "2_10_user_info_100", 0, &info_rsp);
    g.finish();
}

fn bench_stream(c: &mut Criterion) {
    const N: u32 = 1_000;
    let max = max_pdu();
    let data = text();
    let mut buf = Vec::new();
    for seq in 0..N {
        msg_c2s(seq, &data).encode(seq as u16, &mut buf);
    }

    /// What a worker does over one read: whole PDUs from the front, decoded in turn.
    fn drain(buf: &[u8], max: u32) -> u32 {
        let mut pos = 0;
        let mut n = 0;
        while let Ok(Some(h)) = frame::check(&buf[pos..], max) {
            let len = h.length as usize;
            let body = &buf[pos + HEADER_LEN..pos + len];
            match Pdu::decode(Dir::ToServer, h.module, h.command, body) {
                Ok(Some(p)) => {
                    black_box(p);
                }
                _ => break,
            }
            pos += len;
            n += 1;
        }
        n
    }
    assert_eq!(drain(&buf, max), N);

    let mut g = c.benchmark_group("stream");
    g.throughput(Throughput::Elements(u64::from(N)));
    g.bench_function("3_1_x1000_check_decode", |b| {
        b.iter(|| drain(black_box(&buf), black_box(max)))
    });
    g.finish();
}

/// Short runs: `cargo bench --bench codec` should finish in well under two minutes.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_frame, bench_decode, bench_encode, bench_stream
}
criterion_main!(benches);
