//! The login role on `ClientListen`: 1/1 -> 1/2 with the msg server's addresses, then close
//! (B-LS-1, B-LS-2). Standalone: the msg server is this process.

use std::sync::atomic::Ordering;

use crate::msg::state::State;
use crate::msg::Effect;
use crate::proto::frame::Header;
use crate::proto::login::{MsgServOk, MsgServResponse};
use crate::proto::Pdu;

/// 1/2 result codes (protocol.md section 8.6).
pub const RESULT_OK: u32 = 0;
pub const RESULT_FULL: u32 = 2;

/// The one request of a login-port connection.
pub fn on_pdu(st: &State, h: &Header, pdu: &Pdu<'_>) -> Vec<Effect> {
    if !matches!(pdu, Pdu::MsgServRequest) {
        return Vec::new();
    }
    let full = st.msg_conns.load(Ordering::Relaxed) >= st.cfg.net.max_conn_cnt;
    let rsp = if full {
        MsgServResponse {
            result: RESULT_FULL,
            ok: None,
        }
    } else {
        MsgServResponse {
            result: RESULT_OK,
            ok: Some(MsgServOk {
                ip1: st.cfg.login.ip_addr1.as_bytes(),
                ip2: st.cfg.ip_addr2().as_bytes(),
                port: st.msg_addr.port(),
            }),
        }
    };
    vec![
        Effect::Reply(Pdu::MsgServResponse(rsp).to_frame(h.reserved)),
        Effect::CloseAfterFlush,
    ]
}
