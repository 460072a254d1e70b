//! The TT 2014 client wire protocol (`shared/spec/protocol.md`): header and framing
//! ([`frame`]), the bounds-checked codec ([`codec`]), one file per module id with the PDU bodies,
//! and [`Pdu`], the one registry of `(module, command)` ids and directions.
//!
//! No I/O here. Decoding borrows from the input (`str`/`bytes` fields are `&[u8]`, ids are
//! [`Id::Raw`]); decoding never panics and never allocates from an unchecked count (P-6 … P-8).

use std::fmt;

/// Defines a PDU body or record struct and its [`codec::Wire`] impl: the fields are read and
/// written in declaration order, `MIN` is the sum of the fields' minimum sizes.
macro_rules! wire_struct {
    (
        $(#[$m:meta])*
        pub struct $name:ident<$lt:lifetime> {
            $( $(#[$fm:meta])* pub $f:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name<$lt> {
            $( $(#[$fm])* pub $f: $ty, )*
        }

        impl<$lt> $crate::proto::codec::Wire<$lt> for $name<$lt> {
            const MIN: usize = 0 $( + <$ty as $crate::proto::codec::Wire<$lt>>::MIN )*;
            fn read(
                r: &mut $crate::proto::codec::Reader<$lt>,
            ) -> ::std::result::Result<Self, $crate::proto::ProtoError> {
                Ok(Self { $( $f: $crate::proto::codec::Wire::read(r)?, )* })
            }
            fn write(&self, w: &mut $crate::proto::codec::Writer<'_>) {
                $( $crate::proto::codec::Wire::write(&self.$f, w); )*
            }
        }
    };
    (
        $(#[$m:meta])*
        pub struct $name:ident {
            $( $(#[$fm:meta])* pub $f:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fm])* pub $f: $ty, )*
        }

        impl<'x> $crate::proto::codec::Wire<'x> for $name {
            const MIN: usize = 0 $( + <$ty as $crate::proto::codec::Wire<'x>>::MIN )*;
            fn read(
                r: &mut $crate::proto::codec::Reader<'x>,
            ) -> ::std::result::Result<Self, $crate::proto::ProtoError> {
                Ok(Self { $( $f: $crate::proto::codec::Wire::read(r)?, )* })
            }
            fn write(&self, w: &mut $crate::proto::codec::Writer<'_>) {
                $( $crate::proto::codec::Wire::write(&self.$f, w); )*
            }
        }
    };
}

pub mod buddy;
pub mod codec;
pub mod file;
pub mod frame;
pub mod group;
pub mod internal;
pub mod login;
pub mod msg;
pub mod other;
pub mod switch;

pub use buddy::*;
pub use file::*;
pub use group::*;
pub use login::*;
pub use msg::*;
pub use other::*;
pub use switch::*;

use codec::{Reader, Wire, Writer};

/// `version` written in every header (P-2).
pub const VERSION: u16 = 1;

/// Module ids (§8.1).
pub const MODULE_LOGIN: u16 = 1;
pub const MODULE_BUDDY_LIST: u16 = 2;
pub const MODULE_MSG: u16 = 3;
pub const MODULE_SWITCH_SERVICE: u16 = 4;
pub const MODULE_GROUP: u16 = 5;
pub const MODULE_FILE: u16 = 6;
pub const MODULE_OTHER: u16 = 7;

/// A protocol error (§5): the connection that sent it is closed (P-11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtoError {
    /// The body ended inside a field (P-6).
    Truncated,
    /// Bytes left after the last field of a known command (P-6).
    Trailing,
    /// Header `length` < 12 or > the maximum PDU size (P-4, P-5).
    BadLength(u32),
    /// A list count larger than the remaining body allows (P-8).
    BadCount,
    /// A `str`/`bytes` length larger than the remaining body (P-7).
    BadStrLen(u32),
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtoError::Truncated => f.write_str("body truncated"),
            ProtoError::Trailing => f.write_str("trailing bytes after body"),
            ProtoError::BadLength(n) => write!(f, "bad PDU length {n}"),
            ProtoError::BadCount => f.write_str("list count exceeds body"),
            ProtoError::BadStrLen(n) => write!(f, "string length {n} exceeds body"),
        }
    }
}

impl std::error::Error for ProtoError {}

/// An id field (`idstr` on the wire). Decoding always yields `Raw`; the server writes `Num`
/// (canonical decimal) or echoes `Raw` bytes (P-21).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Id<'a> {
    Raw(&'a [u8]),
    Num(u32),
}

impl Id<'_> {
    /// The id's value if canonical (P-19): 1–10 ASCII digits, no sign, no leading zero,
    /// 1 ..= u32::MAX. `Num(0)` ("none") and every non-canonical `Raw` give `None` (P-20).
    pub fn value(&self) -> Option<u32> {
        match *self {
            Id::Raw(b) => parse_id(b),
            Id::Num(0) => None,
            Id::Num(n) => Some(n),
        }
    }
}

impl From<u32> for Id<'_> {
    fn from(n: u32) -> Self {
        Id::Num(n)
    }
}

/// Parses a canonical `idstr` (P-19); `None` for anything else, including `"0"`.
///
/// ```
/// use ttserver::proto::parse_id;
/// assert_eq!(parse_id(b"10035"), Some(10035));
/// assert_eq!(parse_id(b"4294967295"), Some(u32::MAX));
/// for bad in [&b""[..], b"0", b"01", b"+1", b"12a", b"4294967296"] {
///     assert_eq!(parse_id(bad), None);
/// }
/// ```
pub fn parse_id(raw: &[u8]) -> Option<u32> {
    if raw.is_empty() || raw.len() > 10 || raw.first() == Some(&b'0') {
        return None;
    }
    let mut v: u64 = 0;
    for &c in raw {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(c - b'0');
    }
    u32::try_from(v).ok()
}

/// Direction of a PDU: which side sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Client to server (what the server decodes).
    ToServer,
    /// Server to client (what a client decodes).
    ToClient,
}

/// Directions a command exists in (registry column "Dir").
#[derive(Clone, Copy)]
enum Dirs {
    C2S,
    S2C,
    Both,
}

impl Dirs {
    fn allows(self, dir: Dir) -> bool {
        matches!(
            (self, dir),
            (Dirs::Both, _) | (Dirs::C2S, Dir::ToServer) | (Dirs::S2C, Dir::ToClient)
        )
    }
}

/// The registry: every `(module, command)` of §9 with its direction, variant and body type.
macro_rules! registry {
    (
        $lt:lifetime;
        empty { $( $um:literal / $uc:literal $udir:ident $uname:ident; )* }
        body { $( $bm:literal / $bc:literal $bdir:ident $bname:ident($bty:ty); )* }
    ) => {
        /// One PDU of protocol.md §9. Variants are named as in the spec's "Name" column;
        /// empty-body commands are unit variants.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Pdu<$lt> {
            $(
                #[doc = concat!(stringify!($um), "/", stringify!($uc), " ", stringify!($udir),
                    " (empty body)")]
                $uname,
            )*
            $(
                #[doc = concat!(stringify!($bm), "/", stringify!($bc), " ", stringify!($bdir))]
                $bname($bty),
            )*
        }

        impl<$lt> Pdu<$lt> {
            /// Decodes a body. `Ok(None)` = unknown `(module, command)` for this direction
            /// (P-12: a command that exists only in the other direction is unknown); the body is
            /// then not looked at. A known command's body must parse to exactly its length (P-6),
            /// except that a client request (`Dir::ToServer`) may end at a field boundary before
            /// its last fields, which then read as zero / empty.
            pub fn decode(
                dir: Dir,
                module: u16,
                command: u16,
                body: &$lt [u8],
            ) -> Result<Option<Pdu<$lt>>, ProtoError> {
                Ok(Self::decode_noting_short(dir, module, command, body)?.map(|(pdu, _)| pdu))
            }

            /// [`Pdu::decode`], also telling whether trailing fields of a client request were
            /// missing and read as zero (P-6, counted `short_requests`).
            pub fn decode_noting_short(
                dir: Dir,
                module: u16,
                command: u16,
                body: &$lt [u8],
            ) -> Result<Option<(Pdu<$lt>, bool)>, ProtoError> {
                let mut r = match dir {
                    Dir::ToServer => Reader::zero_filling(body),
                    Dir::ToClient => Reader::new(body),
                };
                let pdu = match (module, command) {
                    $( ($um, $uc) if Dirs::$udir.allows(dir) => Pdu::$uname, )*
                    $(
                        ($bm, $bc) if Dirs::$bdir.allows(dir) => {
                            Pdu::$bname(<$bty as Wire<$lt>>::read(&mut r)?)
                        }
                    )*
                    _ => return Ok(None),
                };
                let short = r.zero_filled();
                r.finish()?;
                Ok(Some((pdu, short)))
            }

            /// `(module, command)` of this PDU.
            pub fn module_command(&self) -> (u16, u16) {
                match self {
                    $( Pdu::$uname => ($um, $uc), )*
                    $( Pdu::$bname(_) => ($bm, $bc), )*
                }
            }

            /// The spec's name of this PDU (for logs).
            pub fn name(&self) -> &'static str {
                match self {
                    $( Pdu::$uname => stringify!($uname), )*
                    $( Pdu::$bname(_) => stringify!($bname), )*
                }
            }

            /// Appends the body only (no header) to `out`.
            pub fn encode_body(&self, out: &mut Vec<u8>) {
                let mut w = Writer::new(out);
                match self {
                    $( Pdu::$uname => {} )*
                    $( Pdu::$bname(b) => b.write(&mut w), )*
                }
            }
        }

        /// Whether `(module, command)` is a known command in direction `dir` (P-12).
        pub fn is_known(dir: Dir, module: u16, command: u16) -> bool {
            match (module, command) {
                $( ($um, $uc) => Dirs::$udir.allows(dir), )*
                $( ($bm, $bc) => Dirs::$bdir.allows(dir), )*
                _ => false,
            }
        }
    };
}

registry! {
    'a;
    empty {
        1/1 C2S MsgServRequest;
        2/14 C2S AllUserRequest;
        2/18 C2S DepartmentRequest;
        3/5 C2S TimeRequest;
        3/7 C2S UnreadCountRequest;
        5/1 C2S NormalGroupListRequest;
        5/5 C2S GroupUnreadCountRequest;
        5/16 C2S RecentGroupListRequest;
        6/16 C2S OfflineFileListRequest;
        7/1 Both Heartbeat;
    }
    body {
        1/2 S2C MsgServResponse(MsgServResponse<'a>);
        1/3 C2S LoginRequest(LoginRequest<'a>);
        1/4 S2C LoginResponse(LoginResponse<'a>);
        1/7 S2C KickUser(KickUser);

        2/1 C2S RecentContactRequest(RecentContactRequest);
        2/3 S2C RecentContactList(RecentContactList<'a>);
        2/4 S2C OnlineFriendList(OnlineFriendList<'a>);
        2/5 S2C UserStatusNotify(UserStatusNotify<'a>);
        2/8 C2S UserStatusRequest(UserStatusRequest<'a>);
        2/9 S2C UserStatusResponse(UserStatusResponse<'a>);
        2/10 S2C UserInfoResponse(UserInfoResponse<'a>);
        2/11 C2S UserInfoRequest(UserInfoRequest<'a>);
        2/12 C2S RemoveSessionRequest(RemoveSessionRequest<'a>);
        2/13 S2C RemoveSessionResponse(RemoveSessionResponse<'a>);
        2/15 S2C AllUserResponse(AllUserResponse<'a>);
        2/16 C2S UsersStatusRequest(UsersStatusRequest<'a>);
        2/17 S2C UsersStatusResponse(UsersStatusResponse<'a>);
        2/19 S2C DepartmentResponse(DepartmentResponse<'a>);

        3/1 Both MsgData(MsgData<'a>);
        3/2 Both MsgDataAck(MsgDataAck<'a>);
        3/3 C2S MsgReadAck(MsgReadAck<'a>);
        3/6 S2C TimeResponse(TimeResponse);
        3/8 S2C UnreadCountResponse(UnreadCountResponse<'a>);
        3/9 C2S UnreadMsgRequest(UnreadMsgRequest<'a>);
        3/14 S2C UnreadMsgResponse(UnreadMsgResponse<'a>);

        4/1 Both P2PCmd(P2PCmd<'a>);

        5/2 S2C NormalGroupListResponse(NormalGroupListResponse<'a>);
        5/3 C2S GroupInfoRequest(GroupInfoRequest<'a>);
        5/4 S2C GroupInfoResponse(GroupInfoResponse<'a>);
        5/6 S2C GroupUnreadCountResponse(GroupUnreadCountResponse<'a>);
        5/7 C2S GroupUnreadMsgRequest(GroupUnreadMsgRequest<'a>);
        5/8 S2C GroupUnreadMsgResponse(GroupUnreadMsgResponse<'a>);
        5/11 C2S GroupReadAck(GroupReadAck<'a>);
        5/12 C2S CreateTempGroupRequest(CreateTempGroupRequest<'a>);
        5/13 S2C CreateTempGroupResponse(CreateTempGroupResponse<'a>);
        5/14 C2S ChangeMemberRequest(ChangeMemberRequest<'a>);
        5/15 S2C ChangeMemberResponse(ChangeMemberResponse<'a>);
        5/17 S2C RecentGroupListResponse(RecentGroupListResponse<'a>);
        5/18 S2C NormalGroupCreatedNotify(NormalGroupCreatedNotify<'a>);
        5/19 S2C NormalGroupMembersChangedNotify(NormalGroupMembersChangedNotify<'a>);

        6/1 C2S FileLogin(FileLogin<'a>);
        6/2 S2C FileLoginResponse(FileLoginResponse<'a>);
        6/3 Both FileState(FileState<'a>);
        6/4 Both PullDataRequest(PullDataRequest<'a>);
        6/5 Both PullDataResponse(PullDataResponse<'a>);
        6/10 C2S FileRequest(FileRequest<'a>);
        6/11 S2C FileResponse(FileResponse<'a>);
        6/12 S2C FileNotify(FileNotify<'a>);
        6/17 S2C OfflineFileListResponse(OfflineFileListResponse<'a>);
        6/18 C2S AddOfflineFile(AddOfflineFile<'a>);
        6/19 C2S DeleteOfflineFile(DeleteOfflineFile<'a>);

        7/61 C2S ServiceSetting(ServiceSetting);
    }
}

impl Pdu<'_> {
    /// Appends the whole PDU to `out`: the 12-byte header (`length`, module, command,
    /// `version` = 1, `reserved`) and the body (P-1, P-2).
    pub fn encode(&self, reserved: u16, out: &mut Vec<u8>) {
        let start = out.len();
        let (module, command) = self.module_command();
        let mut w = Writer::new(out);
        w.u32(0);
        w.u16(module);
        w.u16(command);
        w.u16(VERSION);
        w.u16(reserved);
        self.encode_body(out);
        let len = u32::try_from(out.len().saturating_sub(start)).unwrap_or(u32::MAX);
        if let Some(slot) = out.get_mut(start..start.saturating_add(4)) {
            slot.copy_from_slice(&len.to_be_bytes());
        }
    }

    /// The whole PDU as a new vector.
    pub fn to_frame(&self, reserved: u16) -> Vec<u8> {
        // Most PDUs fit; starting empty cost five reallocations for a 150-byte 3/1.
        let mut out = Vec::with_capacity(256);
        self.encode(reserved, &mut out);
        out
    }
}

/// Shared checks for the per-module tests.
#[cfg(test)]
pub(crate) mod testutil {
    use super::frame::{self, HEADER_LEN};
    use super::*;

    /// Encodes `pdu`, checks the header, decodes it back in `dir` and compares; checks that the
    /// body plus one byte is an error and that every strict prefix is one too, except, for a
    /// client request, a prefix ending at a field boundary, which decodes short (P-6). Returns
    /// the frame.
    pub fn roundtrip(dir: Dir, pdu: &Pdu<'_>) -> Vec<u8> {
        let bytes = pdu.to_frame(0x1234);
        let h = frame::header(&bytes).unwrap();
        assert_eq!(h.length as usize, bytes.len(), "{pdu:?}");
        assert_eq!((h.module, h.command), pdu.module_command());
        assert_eq!((h.version, h.reserved), (VERSION, 0x1234));
        let body = &bytes[HEADER_LEN..];
        let back = Pdu::decode(dir, h.module, h.command, body)
            .unwrap()
            .unwrap();
        // Decoding yields `Id::Raw`, so a value built with `Id::Num` compares by its encoding
        // (checked just below) rather than structurally.
        if !format!("{pdu:?}").contains("Num(") {
            assert_eq!(&back, pdu);
        }
        // decode(encode(decode(x))) == decode(x)
        assert_eq!(back.to_frame(0x1234), bytes);
        for cut in 0..body.len() {
            let prefix = &body[..cut];
            match (
                dir,
                Pdu::decode_noting_short(dir, h.module, h.command, prefix),
            ) {
                (_, Err(_)) => {}
                // P-6: a client request cut at a field boundary reads the missing fields as
                // zero, so it re-encodes to the prefix followed by zero bytes only.
                (Dir::ToServer, Ok(Some((short, true)))) => {
                    let mut again = Vec::new();
                    short.encode_body(&mut again);
                    assert_eq!(&again[..cut], prefix, "{} prefix {cut}", pdu.name());
                    assert!(
                        again[cut..].iter().all(|b| *b == 0) && again.len() > cut,
                        "{} prefix {cut} re-encodes to {again:02x?}",
                        pdu.name()
                    );
                }
                (_, other) => panic!("{} prefix {cut}: {other:?}", pdu.name()),
            }
        }
        if dir == Dir::ToServer && !body.is_empty() {
            // An empty body is the shortest request there is: every field zero.
            assert!(matches!(
                Pdu::decode_noting_short(dir, h.module, h.command, &[]),
                Ok(Some((_, true)))
            ));
        }
        let mut longer = body.to_vec();
        longer.push(0);
        assert_eq!(
            Pdu::decode(dir, h.module, h.command, &longer),
            Err(ProtoError::Trailing),
            "{}",
            pdu.name()
        );
        bytes
    }

    /// The command is unknown in `dir` (P-12): `Ok(None)` whatever the body.
    pub fn unknown_in(dir: Dir, module: u16, command: u16) {
        assert_eq!(Pdu::decode(dir, module, command, &[]), Ok(None));
        assert_eq!(Pdu::decode(dir, module, command, &[0xFF; 3]), Ok(None));
        assert!(!is_known(dir, module, command));
    }

    /// Decoding `body` for `(module, command)` in `dir` fails with `err`.
    pub fn fails(dir: Dir, module: u16, command: u16, body: &[u8], err: ProtoError) {
        assert_eq!(Pdu::decode(dir, module, command, body), Err(err));
    }

    /// Hex digits to bytes; whitespace and `|` are ignored, `xx` (a masked byte) is not allowed.
    pub fn hex(text: &str) -> Vec<u8> {
        masked(text)
            .into_iter()
            .map(|b| b.expect("masked byte"))
            .collect()
    }

    /// Hex digits to bytes with `xx` = any byte (`None`).
    pub fn masked(text: &str) -> Vec<Option<u8>> {
        let digits: Vec<char> = text
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '|')
            .collect();
        assert_eq!(digits.len() % 2, 0, "odd hex");
        digits
            .chunks(2)
            .map(|p| {
                let pair: String = p.iter().collect();
                if pair == "xx" {
                    None
                } else {
                    Some(u8::from_str_radix(&pair, 16).expect("hex"))
                }
            })
            .collect()
    }

    /// `got` equals the captured `pattern` except at masked (`xx`) positions.
    pub fn assert_matches_capture(got: &[u8], pattern: &str) {
        let want = masked(pattern);
        assert_eq!(got.len(), want.len(), "length");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            if let Some(w) = w {
                assert_eq!(g, w, "byte {i}");
            }
        }
    }

    pub fn s(v: &str) -> &[u8] {
        v.as_bytes()
    }

    pub fn id(v: &str) -> Id<'_> {
        Id::Raw(v.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_ids() {
        for bad in [
            "",
            "0",
            "01",
            "+1",
            "-1",
            " 1",
            "1 ",
            "4294967296",
            "12a",
            "99999999999",
        ] {
            assert_eq!(parse_id(bad.as_bytes()), None, "{bad:?}");
            assert_eq!(Id::Raw(bad.as_bytes()).value(), None, "{bad:?}");
        }
        assert_eq!(Id::Raw(b"4294967295").value(), Some(u32::MAX));
        assert_eq!(Id::Raw(b"1").value(), Some(1));
        assert_eq!(Id::Raw(b"10035").value(), Some(10035));
        assert_eq!(Id::Num(0).value(), None);
        assert_eq!(Id::Num(7).value(), Some(7));
        assert_eq!(Id::from(7), Id::Num(7));
    }

    #[test]
    fn empty_commands_roundtrip_and_reject_one_byte() {
        let c2s = [
            Pdu::MsgServRequest,
            Pdu::AllUserRequest,
            Pdu::DepartmentRequest,
            Pdu::TimeRequest,
            Pdu::UnreadCountRequest,
            Pdu::NormalGroupListRequest,
            Pdu::GroupUnreadCountRequest,
            Pdu::RecentGroupListRequest,
            Pdu::OfflineFileListRequest,
            Pdu::Heartbeat,
        ];
        for p in &c2s {
            let bytes = testutil::roundtrip(Dir::ToServer, p);
            assert_eq!(bytes.len(), 12);
            let (m, c) = p.module_command();
            testutil::fails(Dir::ToServer, m, c, &[0], ProtoError::Trailing);
            if *p != Pdu::Heartbeat {
                testutil::unknown_in(Dir::ToClient, m, c);
            }
        }
        testutil::roundtrip(Dir::ToClient, &Pdu::Heartbeat);
    }

    #[test]
    fn unknown_commands() {
        for (m, c) in [
            (7, 53),
            (0, 0),
            (1, 5),
            (8, 1),
            (3, 4),
            (6, 13),
            (0xFFFF, 0xFFFF),
        ] {
            testutil::unknown_in(Dir::ToServer, m, c);
            testutil::unknown_in(Dir::ToClient, m, c);
        }
    }

    #[test]
    fn both_direction_commands() {
        for (m, c) in [(3, 1), (3, 2), (4, 1), (6, 3), (6, 4), (6, 5), (7, 1)] {
            assert!(is_known(Dir::ToServer, m, c));
            assert!(is_known(Dir::ToClient, m, c));
        }
    }

    #[test]
    fn error_display() {
        assert_eq!(ProtoError::BadLength(5).to_string(), "bad PDU length 5");
        let e: Box<dyn std::error::Error> = Box::new(ProtoError::Truncated);
        assert!(!e.to_string().is_empty());
    }
}
