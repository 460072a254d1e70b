//! Golden vectors: `tests/vectors/client_pdus.txt` (a copy of `shared/vectors/client_pdus.txt`,
//! protocol.md §10). Every vector is decoded in its direction, compared field by field with the
//! values of its `#` comment, and re-encoded byte for byte.

mod common;

use ttserver::proto::frame::{self, HEADER_LEN};
use ttserver::proto::*;

const VECTORS: &str = include_str!("vectors/client_pdus.txt");

const TOKEN: &[u8] = b"0f8fad5b-d9cb-469f-a165-70867728950e";
const TASK: &[u8] = b"6ba7b810-9dad-11d1-80b4-00c04fd430c8";
const TIME: u32 = 1_700_000_000;

fn id(s: &str) -> Id<'_> {
    Id::Raw(s.as_bytes())
}

/// (direction, reserved, expected PDU) for each vector name.
fn expected(name: &str) -> (Dir, u16, Pdu<'static>) {
    use Dir::{ToClient as S2C, ToServer as C2S};
    match name {
        "heartbeat" => (C2S, 0, Pdu::Heartbeat),
        "msgserv_req" => (C2S, 1, Pdu::MsgServRequest),
        "msgserv_rsp_ok" => (
            S2C,
            1,
            Pdu::MsgServResponse(MsgServResponse {
                result: 0,
                ok: Some(MsgServOk {
                    ip1: b"10.0.0.1",
                    ip2: b"10.0.0.2",
                    port: 8000,
                }),
            }),
        ),
        "msgserv_rsp_fail" => (
            S2C,
            1,
            Pdu::MsgServResponse(MsgServResponse {
                result: 2,
                ok: None,
            }),
        ),
        "login_req" => (
            C2S,
            2,
            Pdu::LoginRequest(LoginRequest {
                user_name: b"alice",
                password: b"e10adc3949ba59abbe56e057f20f883e",
                online_status: 1,
                client_type: 0x01,
                client_version: b"WIN/2.2",
            }),
        ),
        "login_rsp_fail" => (
            S2C,
            2,
            Pdu::LoginResponse(LoginResponse {
                server_time: TIME,
                result: 6,
                ok: None,
            }),
        ),
        "login_rsp_ok" => (
            S2C,
            2,
            Pdu::LoginResponse(LoginResponse {
                server_time: TIME,
                result: 0,
                ok: Some(LoginOk {
                    online_status: 1,
                    user_id: id("10035"),
                    nickname: b"Alice",
                    avatar_url: b"",
                    title: b"Engineer",
                    position: b"HZ",
                    role_status: 0,
                    sex: 0,
                    depart_id: id("1"),
                    job_num: 1001,
                    telephone: b"",
                    email: b"a@x.cn",
                    token: TOKEN,
                }),
            }),
        ),
        "kick" => (
            S2C,
            0,
            Pdu::KickUser(KickUser {
                user_id: 10035,
                reason: 1,
            }),
        ),
        "user_status_req" => (
            C2S,
            3,
            Pdu::UserStatusRequest(UserStatusRequest {
                user_id: id("10036"),
            }),
        ),
        "user_status_rsp" => (
            S2C,
            3,
            Pdu::UserStatusResponse(UserStatusResponse {
                user_id: id("10036"),
                status: 1,
            }),
        ),
        "status_notify" => (
            S2C,
            0,
            Pdu::UserStatusNotify(UserStatusNotify {
                user_id: id("10035"),
                status: 3,
            }),
        ),
        "msg_data_c2s" => (
            C2S,
            7,
            Pdu::MsgData(MsgData {
                seq_no: 7,
                from_id: id("10035"),
                to_id: id("10036"),
                create_time: 0,
                msg_type: 0x01,
                msg_data: b"hi",
                attach: b"",
            }),
        ),
        "msg_data_s2c" => (
            S2C,
            0,
            Pdu::MsgData(MsgData {
                seq_no: 7,
                from_id: id("10035"),
                to_id: id("10036"),
                create_time: TIME,
                msg_type: 0x01,
                msg_data: b"hi",
                attach: b"",
            }),
        ),
        "msg_ack" => (
            S2C,
            7,
            Pdu::MsgDataAck(MsgDataAck {
                seq_no: 7,
                from_id: id("10035"),
            }),
        ),
        "read_ack" => (
            C2S,
            4,
            Pdu::MsgReadAck(MsgReadAck {
                peer_id: id("10035"),
            }),
        ),
        "time_req" => (C2S, 9, Pdu::TimeRequest),
        "time_rsp" => (
            S2C,
            9,
            Pdu::TimeResponse(TimeResponse { server_time: TIME }),
        ),
        "group_msg_c2s" => (
            C2S,
            10,
            Pdu::MsgData(MsgData {
                seq_no: 8,
                from_id: id("10035"),
                to_id: id("42"),
                create_time: 0,
                msg_type: 0x11,
                msg_data: b"ok",
                attach: b"",
            }),
        ),
        "group_info_rsp_fail" => (
            S2C,
            12,
            Pdu::GroupInfoResponse(GroupInfoResponse {
                group_id: id("99"),
                result: 1,
                ok: None,
            }),
        ),
        "create_temp_group_req" => (
            C2S,
            11,
            Pdu::CreateTempGroupRequest(CreateTempGroupRequest {
                group_name: b"team",
                group_avatar: b"",
                member_ids: vec![id("10036"), id("10037")],
            }),
        ),
        "create_temp_group_rsp" => (
            S2C,
            11,
            Pdu::CreateTempGroupResponse(CreateTempGroupResponse {
                result: 0,
                group_id: id("42"),
                group_name: b"team",
                member_ids: vec![id("10035"), id("10036"), id("10037")],
            }),
        ),
        "file_login_req" => (
            C2S,
            0,
            Pdu::FileLogin(FileLogin {
                user_id: id("10035"),
                token: TOKEN,
                task_id: TASK,
                client_mode: 3,
            }),
        ),
        "file_login_rsp" => (
            S2C,
            0,
            Pdu::FileLoginResponse(FileLoginResponse {
                result: 0,
                task_id: TASK,
            }),
        ),
        "status_change" => (
            C2S,
            13,
            Pdu::ServiceSetting(ServiceSetting { key: 2, value: 3 }),
        ),
        other => panic!("no expectation written for vector {other:?}"),
    }
}

fn hex(s: &str) -> Vec<u8> {
    assert_eq!(s.len() % 2, 0, "odd hex");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// (comment, name, "M/C", bytes) for every vector line.
fn vectors() -> Vec<(String, String, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut comment = String::new();
    for line in VECTORS.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            comment = c.trim().to_string();
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(parts.len(), 3, "bad vector line {line:?}");
        out.push((
            comment.clone(),
            parts[0].to_string(),
            parts[1].to_string(),
            hex(parts[2]),
        ));
    }
    out
}

#[test]
fn every_vector_decodes_and_reencodes() {
    let all = vectors();
    assert_eq!(all.len(), 24, "vector count");
    for (comment, name, mc, bytes) in &all {
        let (dir, reserved, want) = expected(name);
        // the comment states the vector's name, M/C, direction and reserved
        assert!(
            comment.starts_with(&format!("{name} {mc} ")),
            "{name}: {comment}"
        );
        let arrow = if dir == Dir::ToServer { "C->S" } else { "S->C" };
        assert!(comment.contains(arrow), "{name}: direction");
        assert!(
            comment.contains(&format!("reserved={reserved};")),
            "{name}: reserved"
        );

        let h = frame::header(bytes).expect("header");
        assert_eq!(format!("{}/{}", h.module, h.command), *mc, "{name}");
        assert_eq!(h.length as usize, bytes.len(), "{name}");
        assert_eq!((h.version, h.reserved), (VERSION, reserved), "{name}");
        let (h2, pdu, used) = frame::parse(bytes, dir, 1_048_576)
            .expect("parse")
            .expect("complete");
        assert_eq!((h2, used), (h, bytes.len()));
        let pdu = pdu.unwrap_or_else(|| panic!("{name}: unknown"));
        assert_eq!(pdu, want, "{name}");
        assert_eq!(pdu.module_command(), (h.module, h.command));

        // re-encode, from the decoded value and from the expectation
        assert_eq!(pdu.to_frame(reserved), *bytes, "{name}: re-encode");
        let mut out = vec![0xAA];
        want.encode(reserved, &mut out);
        assert_eq!(&out[1..], &bytes[..], "{name}: encode");

        // commands valid in both directions decode the same way in the other one
        let other = if dir == Dir::ToServer {
            Dir::ToClient
        } else {
            Dir::ToServer
        };
        let again = Pdu::decode(other, h.module, h.command, &bytes[HEADER_LEN..]).expect("body");
        if is_known(other, h.module, h.command) {
            assert_eq!(again, Some(want), "{name}: other direction");
        } else {
            assert_eq!(again, None, "{name}: P-12");
        }
    }
}

#[test]
fn vectors_back_to_back_in_one_stream() {
    let all = vectors();
    let stream: Vec<u8> = all.iter().flat_map(|v| v.3.clone()).collect();
    let mut rest = &stream[..];
    let mut n = 0;
    while !rest.is_empty() {
        let (_, _, used) = frame::parse(rest, Dir::ToServer, 1_048_576)
            .expect("parse")
            .expect("complete");
        rest = &rest[used..];
        n += 1;
    }
    assert_eq!(n, all.len());
}

#[test]
fn in_repo_copy_matches_shared() {
    common::check_shared_copy("client_pdus.txt", VECTORS);
}
