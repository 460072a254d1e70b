//! Module 1, LOGIN (§9.1): 1/1 … 1/4 and 1/7. 1/1 is an empty body (`Pdu::MsgServRequest`).

use super::codec::{tail, Reader, Wire, Writer};
use super::{Id, ProtoError};

/// 1/2 S→C (login port). Encode writes `ok` iff it is `Some`; decode reads it iff `result == 0`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgServResponse<'a> {
    /// 0 ok; 1 no msg server available; 2 all msg servers full.
    pub result: u32,
    pub ok: Option<MsgServOk<'a>>,
}

wire_struct! {
    /// The success tail of 1/2.
    pub struct MsgServOk<'a> {
        pub ip1: &'a [u8],
        pub ip2: &'a [u8],
        pub port: u16,
    }
}

impl<'a> Wire<'a> for MsgServResponse<'a> {
    const MIN: usize = 4;
    fn read(r: &mut Reader<'a>) -> Result<Self, ProtoError> {
        let result = r.u32()?;
        Ok(MsgServResponse {
            result,
            ok: tail(result, r)?,
        })
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.u32(self.result);
        if let Some(ok) = &self.ok {
            ok.write(w);
        }
    }
}

wire_struct! {
    /// 1/3 C→S.
    pub struct LoginRequest<'a> {
        pub user_name: &'a [u8],
        /// Lowercase hex MD5 of the password (32 chars).
        pub password: &'a [u8],
        /// 3 = leave, anything else = online.
        pub online_status: u32,
        pub client_type: u32,
        pub client_version: &'a [u8],
    }
}

/// 1/4 S→C. Encode writes `ok` iff it is `Some`; decode reads it iff `result == 0`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginResponse<'a> {
    pub server_time: u32,
    pub result: u32,
    pub ok: Option<LoginOk<'a>>,
}

wire_struct! {
    /// The success tail of 1/4.
    pub struct LoginOk<'a> {
        pub online_status: u32,
        pub user_id: Id<'a>,
        pub nickname: &'a [u8],
        pub avatar_url: &'a [u8],
        pub title: &'a [u8],
        pub position: &'a [u8],
        pub role_status: u32,
        pub sex: u32,
        pub depart_id: Id<'a>,
        pub job_num: u32,
        pub telephone: &'a [u8],
        pub email: &'a [u8],
        /// 36 chars (B-TOK-1).
        pub token: &'a [u8],
    }
}

impl<'a> Wire<'a> for LoginResponse<'a> {
    const MIN: usize = 8;
    fn read(r: &mut Reader<'a>) -> Result<Self, ProtoError> {
        let server_time = r.u32()?;
        let result = r.u32()?;
        Ok(LoginResponse {
            server_time,
            result,
            ok: tail(result, r)?,
        })
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.u32(self.server_time);
        w.u32(self.result);
        if let Some(ok) = &self.ok {
            ok.write(w);
        }
    }
}

wire_struct! {
    /// 1/7 S→C push. `user_id` is a number here (P-22).
    pub struct KickUser {
        pub user_id: u32,
        /// 1 = duplicate login.
        pub reason: u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::testutil::{fails, id, roundtrip, s, unknown_in};
    use crate::proto::{Dir, Pdu};

    fn login_ok() -> LoginOk<'static> {
        LoginOk {
            online_status: 1,
            user_id: id("10710"),
            nickname: "Nick001·探针".as_bytes(),
            avatar_url: s("/avatar/probe.jpg"),
            title: s("probe"),
            position: s("lab"),
            role_status: 0,
            sex: 1,
            depart_id: id("1042"),
            job_num: 7,
            telephone: s("123"),
            email: s("tptr25731001@probe.test"),
            token: s("0f8fad5b-d9cb-469f-a165-70867728950e"),
        }
    }

    #[test]
    fn msg_serv_response() {
        let ok = Pdu::MsgServResponse(MsgServResponse {
            result: 0,
            ok: Some(MsgServOk {
                ip1: s("127.0.0.1"),
                ip2: s("127.0.0.1"),
                port: 8300,
            }),
        });
        let b = roundtrip(Dir::ToClient, &ok);
        // layout captured from a TeamTalk 2014 login server
        assert_eq!(b.len(), 44);
        assert_eq!(&b[12..16], &[0, 0, 0, 0]);
        assert_eq!(&b[42..44], &[0x20, 0x6c]);
        let fail = Pdu::MsgServResponse(MsgServResponse {
            result: 2,
            ok: None,
        });
        assert_eq!(roundtrip(Dir::ToClient, &fail).len(), 16);
        unknown_in(Dir::ToServer, 1, 2);
        // result 0 without the tail is truncated
        fails(Dir::ToClient, 1, 2, &[0, 0, 0, 0], ProtoError::Truncated);
        // result != 0 with a tail is trailing
        fails(Dir::ToClient, 1, 2, &[0, 0, 0, 1, 0], ProtoError::Trailing);
    }

    #[test]
    fn login_request() {
        let p = Pdu::LoginRequest(LoginRequest {
            user_name: s("alice"),
            password: s("e10adc3949ba59abbe56e057f20f883e"),
            online_status: 1,
            client_type: 0x11,
            client_version: s("WIN/2.2"),
        });
        assert_eq!(roundtrip(Dir::ToServer, &p).len(), 76);
        unknown_in(Dir::ToClient, 1, 3);
        // user_name length beyond the body
        fails(
            Dir::ToServer,
            1,
            3,
            &[0, 0, 1, 0, b'a'],
            ProtoError::BadStrLen(256),
        );
    }

    #[test]
    fn login_response() {
        let ok = Pdu::LoginResponse(LoginResponse {
            server_time: 1_700_000_000,
            result: 0,
            ok: Some(login_ok()),
        });
        // layout captured from a TeamTalk 2014 msg server: length 183
        let b = roundtrip(Dir::ToClient, &ok);
        assert_eq!(b.len(), 183);
        assert_eq!(&b[24..33], b"\0\0\0\x0510710");
        assert_eq!(&b[97..105], b"\0\0\0\x041042");
        assert_eq!(&b[105..109], &[0, 0, 0, 7]);
        assert_eq!(&b[143..147], &[0, 0, 0, 0x24]);
        let fail = Pdu::LoginResponse(LoginResponse {
            server_time: 1_700_000_000,
            result: 6,
            ok: None,
        });
        assert_eq!(roundtrip(Dir::ToClient, &fail).len(), 20);
        unknown_in(Dir::ToServer, 1, 4);
        fails(
            Dir::ToClient,
            1,
            4,
            &[0, 0, 0, 1, 0, 0, 0, 0],
            ProtoError::Truncated,
        );
    }

    #[test]
    fn kick_user() {
        let p = Pdu::KickUser(KickUser {
            user_id: 10710,
            reason: 1,
        });
        let b = roundtrip(Dir::ToClient, &p);
        assert_eq!(
            b,
            [0, 0, 0, 0x14, 0, 1, 0, 7, 0, 1, 0x12, 0x34, 0, 0, 0x29, 0xd6, 0, 0, 0, 1]
        );
        unknown_in(Dir::ToServer, 1, 7);
    }

    #[test]
    fn msg_serv_request_only_to_server() {
        roundtrip(Dir::ToServer, &Pdu::MsgServRequest);
        unknown_in(Dir::ToClient, 1, 1);
    }
}
