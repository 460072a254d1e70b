//! Frame and PDU decoders on arbitrary bytes. Invariants:
//! - nothing panics, and nothing allocates from an unchecked count (libFuzzer's -rss_limit_mb /
//!   -malloc_limit_mb catch that);
//! - a decoded PDU re-encodes to exactly the body it came from (same header length, module and
//!   command), or, for a short client request (P-6), to that body followed by zero bytes; and
//!   decode(encode(decode(x))) == decode(x).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ttserver::proto::frame::{self, HEADER_LEN};
use ttserver::proto::{Dir, Pdu};

fn check_roundtrip(dir: Dir, module: u16, command: u16, body: &[u8]) {
    let Ok(Some((pdu, short))) = Pdu::decode_noting_short(dir, module, command, body) else {
        return;
    };
    assert_eq!(pdu.module_command(), (module, command));
    let mut again = Vec::new();
    pdu.encode_body(&mut again);
    if short {
        // P-6: a client request that ended at a field boundary; its missing fields read as
        // zero, so it re-encodes to the body followed by zero bytes.
        assert_eq!(dir, Dir::ToServer, "only client requests may be short");
        assert!(again.len() > body.len() && again.starts_with(body));
        assert!(again[body.len()..].iter().all(|b| *b == 0), "short fill is not zero");
    } else {
        assert_eq!(again, body, "body re-encoding differs");
    }
    let whole = pdu.to_frame(7);
    assert_eq!(whole.len(), HEADER_LEN + again.len());
    let (h, back, used) = frame::parse(&whole, dir, u32::MAX)
        .expect("re-encoded frame parses")
        .expect("re-encoded frame is complete");
    assert_eq!(
        (h.module, h.command, h.reserved, used),
        (module, command, 7, whole.len())
    );
    assert_eq!(back.as_ref(), Some(&pdu));
}

/// The server-to-server link PDUs (file role alone): decode, re-encode, compare.
fn check_link(body: &[u8]) {
    use ttserver::proto::codec::Wire;
    use ttserver::proto::internal::{self, LinkDelete, LinkHello, LinkTask, LinkTokens};
    fn one<'a, T: Wire<'a> + PartialEq + std::fmt::Debug>(frame: &'a [u8], body: &[u8]) {
        if let Ok(v) = internal::decode::<T>(frame) {
            let again = internal::frame(1, Some(&v));
            assert_eq!(&again[HEADER_LEN..], body, "link body re-encoding differs");
        }
    }
    let mut frame = vec![0u8; HEADER_LEN];
    frame.extend_from_slice(body);
    one::<LinkHello>(&frame, body);
    one::<LinkTask>(&frame, body);
    one::<LinkTokens>(&frame, body);
    one::<LinkDelete>(&frame, body);
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    if sel & 0xf8 == 0xf8 {
        check_link(rest);
        return;
    }
    let dir = if sel & 1 == 0 {
        Dir::ToServer
    } else {
        Dir::ToClient
    };
    if sel & 2 != 0 {
        // Direct body decode for a chosen (module, command), mostly among the known ones.
        let Some((mc, body)) = rest.split_at_checked(2) else {
            return;
        };
        let module = u16::from(mc[0] % 9);
        let command = u16::from(mc[1] % 64);
        check_roundtrip(dir, module, command, body);
        return;
    }
    // A byte stream: PDUs back to back, as a connection sees them.
    let max_pdu = if sel & 4 != 0 { 64 } else { 1_048_576 };
    let mut buf = rest;
    loop {
        match frame::parse(buf, dir, max_pdu) {
            Ok(Some((h, _pdu, used))) => {
                assert!(used >= HEADER_LEN && used <= buf.len());
                assert_eq!(used, h.length as usize);
                let body = &buf[HEADER_LEN..used];
                check_roundtrip(dir, h.module, h.command, body);
                buf = &buf[used..];
            }
            Ok(None) => {
                if let Ok(Some(h)) = frame::check(buf, max_pdu) {
                    panic!("check says complete {h:?} but parse says incomplete");
                }
                break;
            }
            Err(_) => break,
        }
    }
});
