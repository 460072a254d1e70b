//! Module 7, OTHER (§9.7): 7/1 heartbeat (empty body, both directions: `Pdu::Heartbeat`) and
//! 7/61 status change. 7/53 is not implemented (unknown, P-12).

wire_struct! {
    /// 7/61 C→S. `key` 2 = set my online status to `value` (1 or 3); key 1 is ignored.
    pub struct ServiceSetting {
        pub key: u32,
        pub value: u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::testutil::{fails, roundtrip, unknown_in};
    use crate::proto::{Dir, Pdu, ProtoError};

    #[test]
    fn heartbeat_both_directions() {
        roundtrip(Dir::ToServer, &Pdu::Heartbeat);
        roundtrip(Dir::ToClient, &Pdu::Heartbeat);
        fails(Dir::ToServer, 7, 1, &[0], ProtoError::Trailing);
        fails(Dir::ToClient, 7, 1, &[0], ProtoError::Trailing);
    }

    #[test]
    fn service_setting() {
        let p = Pdu::ServiceSetting(ServiceSetting { key: 2, value: 3 });
        assert_eq!(roundtrip(Dir::ToServer, &p).len(), 20);
        unknown_in(Dir::ToClient, 7, 61);
        // P-6: cut inside `value` is an error; cut before it, `value` reads as 0.
        fails(
            Dir::ToServer,
            7,
            61,
            &[0, 0, 0, 2, 0],
            ProtoError::Truncated,
        );
        assert_eq!(
            Pdu::decode_noting_short(Dir::ToServer, 7, 61, &[0, 0, 0, 2]),
            Ok(Some((
                Pdu::ServiceSetting(ServiceSetting { key: 2, value: 0 }),
                true
            )))
        );
    }

    #[test]
    fn db_query_is_unknown() {
        unknown_in(Dir::ToServer, 7, 53);
        unknown_in(Dir::ToClient, 7, 53);
    }
}
