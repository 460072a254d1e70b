//! Module 4, SWITCH_SERVICE (§9.4): 4/1, an opaque client-to-client signal.

use super::Id;

wire_struct! {
    /// 4/1, both directions. Not stored, not acked (B-CMD).
    pub struct P2PCmd<'a> {
        pub seq_no: u32,
        pub from_id: Id<'a>,
        pub to_id: Id<'a>,
        pub cmd_data: &'a [u8],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::testutil::{fails, id, roundtrip, unknown_in};
    use crate::proto::{Dir, Pdu, ProtoError};

    #[test]
    fn p2p_cmd_both_directions() {
        let p = Pdu::P2PCmd(P2PCmd {
            seq_no: 3,
            from_id: id("10035"),
            to_id: Id::Num(10036),
            cmd_data: &[0, 1, 2, 0xFF],
        });
        let b = roundtrip(Dir::ToServer, &p);
        assert_eq!(b.len(), 12 + 4 + 9 + 9 + 8);
        let back = Pdu::decode(Dir::ToClient, 4, 1, &b[12..]).unwrap().unwrap();
        assert!(matches!(back, Pdu::P2PCmd(c) if c.to_id == id("10036")));
        fails(
            Dir::ToServer,
            4,
            1,
            &[
                0, 0, 0, 1, 0, 0, 0, 1, b'1', 0, 0, 0, 1, b'2', 0xFF, 0xFF, 0xFF, 0xFF,
            ],
            ProtoError::BadStrLen(u32::MAX),
        );
        unknown_in(Dir::ToServer, 4, 2);
    }
}
