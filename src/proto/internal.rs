//! Server-to-server PDUs (never seen by clients): the link between a msg server and a file
//! server that runs alone (`ttserver file`). Module [`LINK_MODULE`]; same 12-byte header and
//! codec as client PDUs, but outside the client registry, so on every client port they stay
//! unknown commands (P-12) unless the connection opened a link with the cluster secret.
//!
//! | cmd | direction | body |
//! |---|---|---|
//! | 1 Hello | msg → file | `bytes secret` (`ClusterSecret`); a wrong secret closes the link |
//! | 2 Welcome | file → msg | *(empty)* |
//! | 3 Task | msg → file | a new task (6/10, B-FILE-3) |
//! | 4 Tokens | msg → file | one user's token state (B-TOK-2), replacing the previous one |
//! | 5 Delete | msg → file | 6/19 (B-FILE-14), with a sequence number |
//! | 6 Ready | file → msg | an offline upload is stored: push 6/12 `offline_ready` 1 (B-FILE-9) |
//! | 7 Deleted | file → msg | the Delete with this sequence number has been applied |

use super::codec::{Reader, Wire, Writer};
use super::frame::HEADER_LEN;
use super::ProtoError;

/// Module id of link PDUs (far from the client modules 1-7).
pub const LINK_MODULE: u16 = 0x0f01;
pub const HELLO: u16 = 1;
pub const WELCOME: u16 = 2;
pub const TASK: u16 = 3;
pub const TOKENS: u16 = 4;
pub const DELETE: u16 = 5;
pub const READY: u16 = 6;
pub const DELETED: u16 = 7;
/// `LinkTokens::ended_ms_ago` when the user still has a session.
pub const STILL_ONLINE: u32 = u32::MAX;

wire_struct! {
    /// 1 Hello.
    pub struct LinkHello<'a> {
        pub secret: &'a [u8],
    }
}

wire_struct! {
    /// 3 Task and 6 Ready: a task as the file role needs it.
    pub struct LinkTask<'a> {
        pub task_id: &'a [u8],
        pub from: u32,
        pub to: u32,
        pub name: &'a [u8],
        pub size: u32,
        /// 1 online, 2 offline.
        pub mode: u32,
    }
}

wire_struct! {
    /// 4 Tokens: every token of `user`, its live session count and, without sessions, how
    /// long ago the last one ended. No tokens = revoked or forgotten.
    pub struct LinkTokens<'a> {
        pub user: u32,
        pub sessions: u32,
        pub ended_ms_ago: u32,
        pub tokens: Vec<&'a [u8]>,
    }
}

wire_struct! {
    /// 5 Delete.
    pub struct LinkDelete<'a> {
        pub task_id: &'a [u8],
        pub from: u32,
        pub to: u32,
        /// Echoed in 7 Deleted.
        pub seq: u32,
    }
}

wire_struct! {
    /// 7 Deleted.
    pub struct LinkDeleted {
        pub seq: u32,
    }
}

/// A whole link frame: header (reserved 0, version 1) + body.
pub fn frame<'a, T: Wire<'a>>(command: u16, body: Option<&T>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    let mut w = Writer::new(&mut out);
    w.u32(0);
    w.u16(LINK_MODULE);
    w.u16(command);
    w.u16(1);
    w.u16(0);
    if let Some(b) = body {
        b.write(&mut w);
    }
    let len = u32::try_from(out.len()).unwrap_or(u32::MAX);
    if let Some(slot) = out.get_mut(..4) {
        slot.copy_from_slice(&len.to_be_bytes());
    }
    out
}

/// Decodes a link body; the body must be used exactly (P-6).
pub fn decode<'a, T: Wire<'a>>(raw_frame: &'a [u8]) -> Result<T, ProtoError> {
    let body = raw_frame.get(HEADER_LEN..).unwrap_or_default();
    let mut r = Reader::new(body);
    let v = T::read(&mut r)?;
    r.finish()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame;

    #[test]
    fn link_pdus_round_trip() {
        let t = LinkTask {
            task_id: b"6ba7b810-9dad-11d1-80b4-00c04fd430c8",
            from: 7,
            to: 9,
            name: b"a.txt",
            size: 10,
            mode: 2,
        };
        let f = frame(TASK, Some(&t));
        let h = frame::header(&f).unwrap();
        assert_eq!(
            (h.module, h.command, h.length as usize),
            (LINK_MODULE, TASK, f.len())
        );
        assert_eq!(decode::<LinkTask>(&f).unwrap(), t);
        let k = LinkTokens {
            user: 7,
            sessions: 0,
            ended_ms_ago: 1500,
            tokens: vec![b"a", b"b"],
        };
        assert_eq!(decode::<LinkTokens>(&frame(TOKENS, Some(&k))).unwrap(), k);
        let mut bad = frame(TOKENS, Some(&k));
        bad.push(0);
        assert!(decode::<LinkTokens>(&bad).is_err(), "trailing byte");
        let huge = frame(
            TOKENS,
            Some(&LinkHello {
                secret: &[0, 0, 0, 7, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
            }),
        );
        assert!(
            decode::<LinkTokens>(&huge).is_err(),
            "list count past the end"
        );
        let w = frame::<LinkHello>(WELCOME, None);
        assert_eq!(w.len(), HEADER_LEN);
    }
}
