//! The login role on `ClientListen`: 1/1 -> 1/2 with the msg server's addresses, then close
//! (B-LS-1, B-LS-2). Standalone: the msg server is this process, and the msg workers serve the
//! login port beside the msg port (`msg::service`); this module only builds the answer.

use crate::proto::frame::Header;
use crate::proto::login::{MsgServOk, MsgServResponse};
use crate::proto::Pdu;

/// 1/2 result codes (protocol.md section 8.6).
pub const RESULT_OK: u32 = 0;
pub const RESULT_FULL: u32 = 2;

/// The msg server a login-port client is sent to.
pub struct MsgServer<'a> {
    pub ip1: &'a [u8],
    pub ip2: &'a [u8],
    pub port: u16,
    /// It has no room for another session (`MaxConnCnt`).
    pub full: bool,
}

/// The 1/2 frame answering the one request of a login-port connection, which then closes.
/// `None` for anything but a 1/1.
pub fn answer(h: &Header, pdu: &Pdu<'_>, srv: &MsgServer<'_>) -> Option<Vec<u8>> {
    if !matches!(pdu, Pdu::MsgServRequest) {
        return None;
    }
    let rsp = if srv.full {
        MsgServResponse {
            result: RESULT_FULL,
            ok: None,
        }
    } else {
        MsgServResponse {
            result: RESULT_OK,
            ok: Some(MsgServOk {
                ip1: srv.ip1,
                ip2: srv.ip2,
                port: srv.port,
            }),
        }
    };
    Some(Pdu::MsgServResponse(rsp).to_frame(h.reserved))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            length: 12,
            module: 1,
            command: 1,
            version: 1,
            reserved: 7,
        }
    }

    #[test]
    fn answers_a_1_1_with_the_address_or_full() {
        let srv = MsgServer {
            ip1: b"10.0.0.1",
            ip2: b"10.0.0.2",
            port: 8000,
            full: false,
        };
        let frame = answer(&header(), &Pdu::MsgServRequest, &srv).unwrap();
        let (h, pdu, _) = crate::proto::frame::parse(&frame, Dir::ToClient, 1 << 20)
            .unwrap()
            .unwrap();
        assert_eq!((h.module, h.command, h.reserved), (1, 2, 7));
        let Some(Pdu::MsgServResponse(r)) = pdu else {
            panic!("not a 1/2: {pdu:?}");
        };
        assert_eq!(r.result, RESULT_OK);
        let ok = r.ok.unwrap();
        assert_eq!(
            (ok.ip1, ok.ip2, ok.port),
            (&b"10.0.0.1"[..], &b"10.0.0.2"[..], 8000)
        );
        let full = MsgServer { full: true, ..srv };
        let frame = answer(&header(), &Pdu::MsgServRequest, &full).unwrap();
        let (_, pdu, _) = crate::proto::frame::parse(&frame, Dir::ToClient, 1 << 20)
            .unwrap()
            .unwrap();
        assert!(matches!(
            pdu,
            Some(Pdu::MsgServResponse(MsgServResponse {
                result: RESULT_FULL,
                ok: None
            }))
        ));
        assert!(answer(&header(), &Pdu::Heartbeat, &srv).is_none());
    }

    use crate::proto::Dir;
}
