//! The 12-byte header (§3) and framing (§4): PDUs back to back on a byte stream, the `length`
//! limits checked from the header alone before any body is buffered (P-3 … P-5).

use super::codec::Reader;
use super::{Dir, Pdu, ProtoError};

/// Size of the header; an empty-body PDU is exactly this long (P-1).
pub const HEADER_LEN: usize = 12;

/// A PDU header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Size of the whole PDU, header included.
    pub length: u32,
    pub module: u16,
    pub command: u16,
    /// Ignored on receipt (P-2).
    pub version: u16,
    /// Request correlation number (§6).
    pub reserved: u16,
}

impl Header {
    /// Body length (`length` − 12, 0 if `length` is below 12).
    pub fn body_len(&self) -> usize {
        (self.length as usize).saturating_sub(HEADER_LEN)
    }
}

/// The header at the front of `buf`; `None` if fewer than 12 bytes. No limit checks.
pub fn header(buf: &[u8]) -> Option<Header> {
    let mut r = Reader::new(buf.get(..HEADER_LEN)?);
    Some(Header {
        length: r.u32().ok()?,
        module: r.u16().ok()?,
        command: r.u16().ok()?,
        version: r.u16().ok()?,
        reserved: r.u16().ok()?,
    })
}

/// Looks at the front of `buf`. `Ok(None)`: fewer than 12 bytes, or the PDU is not complete yet.
/// `Err(BadLength)`: `length` < 12 or > `max_pdu` (P-4, P-5), decided from the 12 header bytes
/// alone. `Ok(Some(header))`: `buf` holds the whole PDU (`header.length` bytes).
pub fn check(buf: &[u8], max_pdu: u32) -> Result<Option<Header>, ProtoError> {
    let Some(h) = header(buf) else {
        return Ok(None);
    };
    if (h.length as usize) < HEADER_LEN || h.length > max_pdu {
        return Err(ProtoError::BadLength(h.length));
    }
    if buf.len() < h.length as usize {
        return Ok(None);
    }
    Ok(Some(h))
}

/// [`check`] then [`Pdu::decode`] of the first PDU in `buf`. `Ok(None)`: incomplete.
/// `Ok(Some((header, pdu, consumed)))`: `pdu` is `None` for an unknown command (P-12), which the
/// caller skips by `consumed` bytes.
pub fn parse<'a>(
    buf: &'a [u8],
    dir: Dir,
    max_pdu: u32,
) -> Result<Option<(Header, Option<Pdu<'a>>, usize)>, ProtoError> {
    let Some(h) = check(buf, max_pdu)? else {
        return Ok(None);
    };
    let len = h.length as usize;
    let body = buf.get(HEADER_LEN..len).ok_or(ProtoError::Truncated)?;
    let pdu = Pdu::decode(dir, h.module, h.command, body)?;
    Ok(Some((h, pdu, len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Id, MsgData, MsgDataAck};

    const MAX: u32 = 1_048_576;

    fn sample() -> Vec<u8> {
        Pdu::MsgData(MsgData {
            seq_no: 7,
            from_id: Id::Num(10035),
            to_id: Id::Num(10036),
            create_time: 0,
            msg_type: 1,
            msg_data: b"hi",
            attach: b"",
        })
        .to_frame(7)
    }

    #[test]
    fn header_fields() {
        let b = sample();
        assert_eq!(
            header(&b),
            Some(Header {
                length: 49,
                module: 3,
                command: 1,
                version: 1,
                reserved: 7
            })
        );
        assert_eq!(header(&b).unwrap().body_len(), 37);
        assert_eq!(header(&b[..11]), None);
    }

    #[test]
    fn split_header() {
        let b = sample();
        for cut in 0..HEADER_LEN {
            assert_eq!(check(&b[..cut], MAX), Ok(None));
            assert_eq!(parse(&b[..cut], Dir::ToServer, MAX), Ok(None));
        }
    }

    #[test]
    fn split_body() {
        let b = sample();
        for cut in HEADER_LEN..b.len() {
            assert_eq!(check(&b[..cut], MAX), Ok(None), "{cut}");
            assert_eq!(parse(&b[..cut], Dir::ToServer, MAX), Ok(None));
        }
        let (h, pdu, used) = parse(&b, Dir::ToServer, MAX).unwrap().unwrap();
        assert_eq!(used, b.len());
        assert_eq!(h.length as usize, b.len());
        assert!(matches!(pdu, Some(Pdu::MsgData(m)) if m.msg_data == b"hi"));
    }

    #[test]
    fn two_pdus_in_one_buffer() {
        let mut b = sample();
        let first = b.len();
        Pdu::MsgDataAck(MsgDataAck {
            seq_no: 7,
            from_id: Id::Num(10035),
        })
        .encode(7, &mut b);
        Pdu::Heartbeat.encode(0, &mut b);
        let (_, p1, n1) = parse(&b, Dir::ToClient, MAX).unwrap().unwrap();
        assert_eq!(n1, first);
        assert!(matches!(p1, Some(Pdu::MsgData(_))));
        let rest = &b[n1..];
        let (h2, p2, n2) = parse(rest, Dir::ToClient, MAX).unwrap().unwrap();
        assert_eq!((h2.module, h2.command, n2), (3, 2, 25));
        assert!(matches!(p2, Some(Pdu::MsgDataAck(_))));
        let rest = &rest[n2..];
        let (_, p3, n3) = parse(rest, Dir::ToClient, MAX).unwrap().unwrap();
        assert_eq!((p3, n3), (Some(Pdu::Heartbeat), 12));
        assert_eq!(parse(&rest[n3..], Dir::ToClient, MAX), Ok(None));
    }

    #[test]
    fn too_long_detected_from_header_only() {
        let mut h = vec![0, 0x10, 0, 1, 0, 3, 0, 1, 0, 1, 0, 0];
        assert_eq!(check(&h, MAX), Err(ProtoError::BadLength(0x0010_0001)));
        assert_eq!(
            parse(&h, Dir::ToServer, MAX),
            Err(ProtoError::BadLength(0x0010_0001))
        );
        // exactly max is fine (incomplete)
        h[..4].copy_from_slice(&MAX.to_be_bytes());
        assert_eq!(check(&h, MAX), Ok(None));
        h[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(check(&h, MAX), Err(ProtoError::BadLength(u32::MAX)));
    }

    #[test]
    fn too_short_length() {
        for len in 0..12u32 {
            let mut h = len.to_be_bytes().to_vec();
            h.extend_from_slice(&[0, 7, 0, 1, 0, 1, 0, 0]);
            assert_eq!(check(&h, MAX), Err(ProtoError::BadLength(len)));
            h.extend_from_slice(&[0; 20]);
            assert_eq!(check(&h, MAX), Err(ProtoError::BadLength(len)));
        }
    }

    #[test]
    fn unknown_command_is_skipped_by_length() {
        let mut b = vec![0, 0, 0, 15, 0, 7, 0, 53, 0, 1, 0, 0, 1, 2, 3];
        Pdu::Heartbeat.encode(0, &mut b);
        let (h, pdu, n) = parse(&b, Dir::ToServer, MAX).unwrap().unwrap();
        assert_eq!((h.module, h.command, pdu, n), (7, 53, None, 15));
        // a command of the other direction is unknown too (P-12)
        let kick = vec![0, 0, 0, 12, 0, 2, 0, 3, 0, 1, 0, 0];
        let (_, pdu, _) = parse(&kick, Dir::ToServer, MAX).unwrap().unwrap();
        assert_eq!(pdu, None);
    }

    #[test]
    fn bad_body_is_an_error() {
        // 3/5 with one body byte
        let b = [0, 0, 0, 13, 0, 3, 0, 5, 0, 1, 0, 0, 0];
        assert_eq!(parse(&b, Dir::ToServer, MAX), Err(ProtoError::Trailing));
        // 3/3 with a str length beyond the body
        let b = [0, 0, 0, 18, 0, 3, 0, 3, 0, 1, 0, 0, 0, 0, 0, 9, b'1', b'2'];
        assert_eq!(parse(&b, Dir::ToServer, MAX), Err(ProtoError::BadStrLen(9)));
    }
}
