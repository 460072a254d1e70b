//! Module 3, MSG (§9.3). 3/5 and 3/7 are empty bodies (`Pdu::TimeRequest`,
//! `Pdu::UnreadCountRequest`). 3/1 and 3/2 exist in both directions.

use super::Id;

wire_struct! {
    /// 3/1, both directions. C→S: `create_time` is ignored (send 0). S→C: `create_time` = server
    /// storage time; `seq_no` and `attach` as the sender sent them.
    pub struct MsgData<'a> {
        pub seq_no: u32,
        pub from_id: Id<'a>,
        pub to_id: Id<'a>,
        pub create_time: u32,
        /// 0x01 p2p text, 0x02 p2p audio, 0x11 group text, 0x12 group audio.
        pub msg_type: u8,
        pub msg_data: &'a [u8],
        pub attach: &'a [u8],
    }
}

wire_struct! {
    /// 3/2, both directions: the sender's ack (S→C) or a recipient's receipt (C→S).
    pub struct MsgDataAck<'a> {
        pub seq_no: u32,
        pub from_id: Id<'a>,
    }
}

wire_struct! {
    /// 3/3 C→S. No reply.
    pub struct MsgReadAck<'a> {
        pub peer_id: Id<'a>,
    }
}

wire_struct! {
    /// 3/6 S→C.
    pub struct TimeResponse {
        pub server_time: u32,
    }
}

wire_struct! {
    /// `{idstr peer_id, u32 unread_cnt}` (3/8).
    pub struct UnreadCount<'a> {
        pub peer_id: Id<'a>,
        pub unread_cnt: u32,
    }
}

wire_struct! {
    /// 3/8 S→C.
    pub struct UnreadCountResponse<'a> {
        pub counts: Vec<UnreadCount<'a>>,
    }
}

wire_struct! {
    /// 3/9 C→S.
    pub struct UnreadMsgRequest<'a> {
        pub peer_id: Id<'a>,
    }
}

wire_struct! {
    /// `UnreadMsg` record (§7.5), 3/14. Minimum size 25.
    pub struct UnreadMsg<'a> {
        pub from_id: Id<'a>,
        pub from_name: &'a [u8],
        pub from_nick: &'a [u8],
        pub from_avatar: &'a [u8],
        pub create_time: u32,
        pub msg_type: u8,
        pub msg_data: &'a [u8],
    }
}

wire_struct! {
    /// 3/14 S→C. `peer_id` = the requested peer (the sender of the listed messages).
    pub struct UnreadMsgResponse<'a> {
        pub peer_id: Id<'a>,
        pub msgs: Vec<UnreadMsg<'a>>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::codec::Wire;
    use crate::proto::testutil::{assert_matches_capture, fails, id, roundtrip, s, unknown_in};
    use crate::proto::{Dir, Pdu, ProtoError};

    fn msg() -> MsgData<'static> {
        MsgData {
            seq_no: 7,
            from_id: id("10710"),
            to_id: id("10711"),
            create_time: 1_700_000_000,
            msg_type: 1,
            msg_data: s("hi"),
            attach: s(""),
        }
    }

    #[test]
    fn msg_data_both_directions() {
        let p = Pdu::MsgData(msg());
        let b = roundtrip(Dir::ToClient, &p);
        roundtrip(Dir::ToServer, &p);
        let mut b0 = b.clone();
        b0[10..12].copy_from_slice(&[0, 0]);
        assert_matches_capture(
            &b0,
            "00 00 00 31 | 00 03 | 00 01 | 00 01 | 00 00
             00 00 00 07 00 00 00 05 31 30 37 31 30 00 00 00
             05 31 30 37 31 31 xx xx xx xx 01 00 00 00 02 68
             69 00 00 00 00",
        );
        // msg_data length beyond the body
        let mut bad = b[12..].to_vec();
        let at = 4 + 9 + 9 + 4 + 1;
        bad[at..at + 4].copy_from_slice(&[0, 0, 0, 3]);
        assert_eq!(
            Pdu::decode(Dir::ToServer, 3, 1, &bad[..bad.len() - 4]),
            Err(ProtoError::BadStrLen(3))
        );
    }

    #[test]
    fn msg_data_ack_both_directions() {
        let p = Pdu::MsgDataAck(MsgDataAck {
            seq_no: 7,
            from_id: id("10710"),
        });
        assert_eq!(roundtrip(Dir::ToClient, &p).len(), 25);
        roundtrip(Dir::ToServer, &p);
    }

    #[test]
    fn read_ack_and_time() {
        let p = Pdu::MsgReadAck(MsgReadAck {
            peer_id: id("10035"),
        });
        assert_eq!(roundtrip(Dir::ToServer, &p).len(), 21);
        unknown_in(Dir::ToClient, 3, 3);
        roundtrip(Dir::ToServer, &Pdu::TimeRequest);
        unknown_in(Dir::ToClient, 3, 5);
        let t = Pdu::TimeResponse(TimeResponse {
            server_time: 1_700_000_000,
        });
        assert_eq!(roundtrip(Dir::ToClient, &t).len(), 16);
        unknown_in(Dir::ToServer, 3, 6);
        fails(Dir::ToClient, 3, 6, &[1, 2, 3], ProtoError::Truncated);
        fails(Dir::ToClient, 3, 6, &[1, 2, 3, 4, 5], ProtoError::Trailing);
    }

    #[test]
    fn unread_counts() {
        roundtrip(Dir::ToServer, &Pdu::UnreadCountRequest);
        unknown_in(Dir::ToClient, 3, 7);
        let p = Pdu::UnreadCountResponse(UnreadCountResponse {
            counts: vec![UnreadCount {
                peer_id: id("10710"),
                unread_cnt: 2,
            }],
        });
        let b = roundtrip(Dir::ToClient, &p);
        let mut b0 = b.clone();
        b0[10..12].copy_from_slice(&[0, 2]);
        assert_matches_capture(
            &b0,
            "00 00 00 1d | 00 03 | 00 08 | 00 01 | 00 02
             00 00 00 01 00 00 00 05 31 30 37 31 30 00 00 00
             02",
        );
        unknown_in(Dir::ToServer, 3, 8);
        fails(
            Dir::ToClient,
            3,
            8,
            &[0xFF, 0xFF, 0xFF, 0xFF],
            ProtoError::BadCount,
        );
    }

    #[test]
    fn unread_msgs() {
        assert_eq!(<UnreadMsg as Wire>::MIN, 25);
        let q = Pdu::UnreadMsgRequest(UnreadMsgRequest {
            peer_id: id("10710"),
        });
        roundtrip(Dir::ToServer, &q);
        unknown_in(Dir::ToClient, 3, 9);
        let m = |text: &'static str| UnreadMsg {
            from_id: id("10710"),
            from_name: s("tptr25731001"),
            from_nick: "Nick001·探针".as_bytes(),
            from_avatar: s("/avatar/probe.jpg"),
            create_time: 1_700_000_000,
            msg_type: 1,
            msg_data: s(text),
        };
        let p = Pdu::UnreadMsgResponse(UnreadMsgResponse {
            peer_id: id("10710"),
            msgs: vec![m("two"), m("one")],
        });
        let b = roundtrip(Dir::ToClient, &p);
        unknown_in(Dir::ToServer, 3, 14);
        // the 3/14 captured from a TeamTalk 2014 server (reserved 3, times masked)
        let mut b0 = b.clone();
        b0[10..12].copy_from_slice(&[0, 3]);
        assert_matches_capture(
            &b0,
            "00 00 00 b3 | 00 03 | 00 0e | 00 01 | 00 03
             00 00 00 05 31 30 37 31 30 00 00 00 02 00 00 00
             05 31 30 37 31 30 00 00 00 0c 74 70 74 72 32 35
             37 33 31 30 30 31 00 00 00 0f 4e 69 63 6b 30 30
             31 c2 b7 e6 8e a2 e9 92 88 00 00 00 11 2f 61 76
             61 74 61 72 2f 70 72 6f 62 65 2e 6a 70 67 xx xx
             xx xx 01 00 00 00 03 74 77 6f 00 00 00 05 31 30
             37 31 30 00 00 00 0c 74 70 74 72 32 35 37 33 31
             30 30 31 00 00 00 0f 4e 69 63 6b 30 30 31 c2 b7
             e6 8e a2 e9 92 88 00 00 00 11 2f 61 76 61 74 61
             72 2f 70 72 6f 62 65 2e 6a 70 67 xx xx xx xx 01
             00 00 00 03 6f 6e 65",
        );
        // a count of 2 messages with 49 bytes left (< 2 × 25)
        let mut bad = vec![0, 0, 0, 1, b'1', 0, 0, 0, 2];
        bad.extend_from_slice(&[0; 49]);
        fails(Dir::ToClient, 3, 14, &bad, ProtoError::BadCount);
    }
}
