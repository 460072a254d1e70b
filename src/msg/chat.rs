//! Module 3 (MSG) and 4/1: p2p messages, acks, unread, time, P2P commands (B-MSG, B-UNR, B-CMD).

use std::sync::Arc;

use super::outlet::{submit_read, submit_write, WriteKind};
use super::{Ctx, Effect, MsgConn, Step};
use crate::clock::unix_now;
use crate::net::Shared;
use crate::proto::frame::Header;
use crate::proto::msg::{
    MsgData, MsgDataAck, MsgReadAck, TimeResponse, UnreadCount, UnreadCountResponse, UnreadMsg,
    UnreadMsgRequest, UnreadMsgResponse,
};
use crate::proto::switch::P2PCmd;
use crate::proto::{Id, Pdu};
use crate::stats::bump;
use crate::store::writer::WriteOp;
use crate::store::{messages::StoredMsg, unread};

/// Message types (protocol.md section 8.4).
pub const P2P_TEXT: u8 = 0x01;
pub const P2P_AUDIO: u8 = 0x02;
pub const GROUP_TEXT: u8 = 0x11;
pub const GROUP_AUDIO: u8 = 0x12;

fn session_user(mc: &MsgConn) -> u32 {
    mc.user_id().unwrap_or(0)
}

pub fn time(cx: &Ctx<'_>, mc: &mut MsgConn) -> Step {
    let rsp = Pdu::TimeResponse(TimeResponse {
        server_time: unix_now(),
    })
    .to_frame(cx.reserved);
    cx.respond(mc, vec![Effect::Reply(rsp)])
}

/// B-MSG-1 (b): payload size by type.
fn payload_ok(cx: &Ctx<'_>, msg_type: u8, len: usize) -> bool {
    let cfg = &cx.st.cfg;
    match msg_type {
        P2P_TEXT | GROUP_TEXT => len > 0 && len <= cfg.msg.max_text_len as usize,
        P2P_AUDIO | GROUP_AUDIO => len > 4 && len <= cfg.msg.max_audio_len as usize,
        _ => false,
    }
}

/// A 3/1 as its recipients get it, encoded only once its message has committed, with the
/// stored `create_time` (B-MSG-2 step 5, B-GRP-8): `seq_no`, type, payload and `attach` as the
/// sender sent them, `from` = the session user, `to` = the recipient user or group, reserved 0.
/// The payload is the storage job's own buffer, shared, not copied.
pub struct Delivery {
    pub seq_no: u32,
    pub from: u32,
    pub to: u32,
    pub msg_type: u8,
    pub payload: Arc<[u8]>,
    pub attach: Box<[u8]>,
}

impl Delivery {
    /// The 3/1 of a client's message (`attach` is relayed, never stored, B-MSG-8).
    pub fn of(m: &MsgData<'_>, from: u32, to: u32, payload: Arc<[u8]>) -> Delivery {
        Delivery {
            seq_no: m.seq_no,
            from,
            to,
            msg_type: m.msg_type,
            payload,
            attach: m.attach.into(),
        }
    }

    /// Encoded once, after commit, for every recipient session.
    pub fn encode(&self, create_time: u32) -> Shared {
        Pdu::MsgData(MsgData {
            seq_no: self.seq_no,
            from_id: Id::Num(self.from),
            to_id: Id::Num(self.to),
            create_time,
            msg_type: self.msg_type,
            msg_data: &self.payload,
            attach: &self.attach,
        })
        .to_frame(0)
        .into()
    }
}

/// 3/1 from a client: checks (B-MSG-1), then one write; ack and deliveries after commit (B-MSG-2).
pub fn msg_data(cx: &Ctx<'_>, mc: &mut MsgConn, hdr: &Header, m: &MsgData<'_>) -> Step {
    let st = cx.st;
    let me = session_user(mc);
    if m.from_id.value() != Some(me) {
        bump(&st.counters.identity_rejects);
        log::info!(target: "msg", "conn={:?} user={me} 3/1 with a foreign from_id", cx.conn);
        return Step::Now(Vec::new());
    }
    match m.msg_type {
        P2P_TEXT | P2P_AUDIO => {}
        GROUP_TEXT | GROUP_AUDIO => return group_msg(cx, mc, hdr, m, me),
        _ => {
            bump(&st.counters.msg_rejected);
            return Step::Now(Vec::new());
        }
    }
    let to = m
        .to_id
        .value()
        .filter(|id| st.directory.read().active(*id).is_some());
    let (Some(to), true, true) = (
        to,
        payload_ok(cx, m.msg_type, m.msg_data.len()),
        hdr.length <= st.cfg.msg.max_out_pdu_size,
    ) else {
        bump(&st.counters.msg_rejected);
        return Step::Now(Vec::new());
    };
    // P-21: the ack echoes the request's from_id bytes.
    let ack = Pdu::MsgDataAck(MsgDataAck {
        seq_no: m.seq_no,
        from_id: m.from_id,
    })
    .to_frame(cx.reserved);
    let payload: Arc<[u8]> = m.msg_data.into();
    let kind = WriteKind::P2p {
        ack,
        delivery: Delivery::of(m, me, to, Arc::clone(&payload)),
    };
    let op = WriteOp::StoreP2p {
        from: me,
        to,
        msg_type: m.msg_type,
        data: payload,
    };
    submit_write(cx, mc, op, kind)
}

/// Group 3/1 (B-GRP-7, B-GRP-8): checks against the membership cache, one write; after commit
/// the ack, then one encoded delivery shared by every member session but this connection.
fn group_msg(cx: &Ctx<'_>, mc: &mut MsgConn, hdr: &Header, m: &MsgData<'_>, me: u32) -> Step {
    let st = cx.st;
    let Some(family) = mc.session.as_ref().map(|s| s.family) else {
        return Step::Now(Vec::new());
    };
    let group = m
        .to_id
        .value()
        .filter(|g| st.groups.live(*g).is_some_and(|e| e.is_member(me)));
    let (Some(group), true, true) = (
        group,
        payload_ok(cx, m.msg_type, m.msg_data.len()),
        hdr.length <= st.cfg.msg.max_out_pdu_size,
    ) else {
        bump(&st.counters.msg_rejected);
        log::info!(target: "msg", "conn={:?} user={me} group 3/1 rejected", cx.conn);
        return Step::Now(Vec::new());
    };
    let ack = Pdu::MsgDataAck(MsgDataAck {
        seq_no: m.seq_no,
        from_id: m.from_id,
    })
    .to_frame(cx.reserved);
    let payload: Arc<[u8]> = m.msg_data.into();
    let kind = WriteKind::GroupMsg {
        ack,
        delivery: Delivery::of(m, me, group, Arc::clone(&payload)),
    };
    let op = WriteOp::StoreGroupMsg {
        group,
        from: me,
        msg_type: m.msg_type,
        data: payload,
        family,
    };
    submit_write(cx, mc, op, kind)
}

/// 4/1: forwarded to the recipient's sessions and the sender's other sessions (B-CMD).
pub fn p2p_cmd(cx: &Ctx<'_>, mc: &mut MsgConn, hdr: &Header, c: &P2PCmd<'_>) -> Step {
    let st = cx.st;
    let me = session_user(mc);
    if c.from_id.value() != Some(me) {
        bump(&st.counters.identity_rejects);
        return Step::Now(Vec::new());
    }
    let to = c
        .to_id
        .value()
        .filter(|id| *id != me && st.directory.read().active(*id).is_some());
    let (Some(to), true) = (to, hdr.length <= st.cfg.msg.max_out_pdu_size) else {
        bump(&st.counters.cmd_rejected);
        return Step::Now(Vec::new());
    };
    let bytes: Shared = Pdu::P2PCmd(P2PCmd {
        seq_no: c.seq_no,
        from_id: Id::Num(me),
        to_id: Id::Num(to),
        cmd_data: c.cmd_data,
    })
    .to_frame(0)
    .into();
    let effects = vec![
        Effect::Deliver {
            user: to,
            bytes: bytes.clone(),
            skip: None,
        },
        Effect::Deliver {
            user: me,
            bytes,
            skip: Some(cx.conn),
        },
    ];
    cx.respond(mc, effects)
}

/// 3/3: everything from the peer becomes read in this session's family (B-UNR-4).
pub fn read_ack(cx: &Ctx<'_>, mc: &mut MsgConn, r: &MsgReadAck<'_>) -> Step {
    let Some(sess) = mc.session.clone() else {
        return Step::Now(Vec::new());
    };
    let peer = r
        .peer_id
        .value()
        .filter(|id| cx.st.directory.read().user(*id).is_some());
    let Some(peer) = peer else {
        return Step::Now(Vec::new());
    };
    let op = WriteOp::MarkRead {
        reader: sess.user_id,
        peer,
        family: sess.family,
    };
    submit_write(cx, mc, op, WriteKind::silent())
}

/// 3/7 -> 3/8 (B-UNR-2).
pub fn unread_count(cx: &Ctx<'_>, mc: &mut MsgConn) -> Step {
    let Some(sess) = mc.session.clone() else {
        return Step::Now(Vec::new());
    };
    let reserved = cx.reserved;
    let limit = cx.st.cfg.msg.max_unread_peers;
    submit_read(cx, mc, move |db, st| {
        let counts = match unread::counts(db, sess.user_id, sess.family, limit) {
            Ok(c) => c,
            Err(e) => {
                bump(&st.counters.store_failures);
                log::error!(target: "store", "unread counts: {e}");
                return Vec::new();
            }
        };
        let items: Vec<UnreadCount<'_>> = counts
            .iter()
            .map(|(peer, n)| UnreadCount {
                peer_id: Id::Num(*peer),
                unread_cnt: *n,
            })
            .collect();
        let frame = super::encode_capped(st, &items, reserved, |p| {
            Pdu::UnreadCountResponse(UnreadCountResponse { counts: p.to_vec() })
        });
        vec![Effect::Reply(frame)]
    })
}

/// 3/9 -> 3/14 (B-UNR-3): newest first, with the peer's current name, nick and avatar.
pub fn unread_msgs(cx: &Ctx<'_>, mc: &mut MsgConn, r: &UnreadMsgRequest<'_>) -> Step {
    let Some(sess) = mc.session.clone() else {
        return Step::Now(Vec::new());
    };
    let reserved = cx.reserved;
    let echo = super::id_echo(&r.peer_id);
    let peer = r.peer_id.value();
    let limit = cx.st.cfg.msg.max_unread_msgs;
    submit_read(cx, mc, move |db, st| {
        let msgs: Vec<StoredMsg> = match peer {
            Some(peer) => match unread::messages(db, sess.user_id, peer, sess.family, limit) {
                Ok(m) => m,
                Err(e) => {
                    bump(&st.counters.store_failures);
                    log::error!(target: "store", "unread messages: {e}");
                    return Vec::new();
                }
            },
            None => Vec::new(),
        };
        let sender = peer.and_then(|p| st.directory.read().user(p).cloned());
        let (name, nick, avatar) = sender.as_ref().map_or((&b""[..], &b""[..], &b""[..]), |u| {
            (u.name.as_bytes(), u.nick.as_bytes(), u.avatar.as_bytes())
        });
        let items: Vec<UnreadMsg<'_>> = msgs
            .iter()
            .map(|m| UnreadMsg {
                from_id: Id::Num(m.from_id),
                from_name: name,
                from_nick: nick,
                from_avatar: avatar,
                create_time: m.create_time,
                msg_type: m.msg_type,
                msg_data: &m.data,
            })
            .collect();
        let frame = super::encode_capped(st, &items, reserved, |p| {
            Pdu::UnreadMsgResponse(UnreadMsgResponse {
                peer_id: Id::Raw(&echo),
                msgs: p.to_vec(),
            })
        });
        vec![Effect::Reply(frame)]
    })
}
