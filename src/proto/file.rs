//! Module 6, FILE (§9.6). File port: 6/1 … 6/5 (6/3, 6/4, 6/5 in both directions). Msg port:
//! 6/10 … 6/19; 6/16 is an empty body (`Pdu::OfflineFileListRequest`).

use super::Id;

wire_struct! {
    /// `Addr` record (§7.5), 6/11, 6/12, 6/17. Minimum size 6.
    pub struct Addr<'a> {
        pub ip: &'a [u8],
        pub port: u16,
    }
}

wire_struct! {
    /// `OfflineFile` record (§7.5), 6/17. Minimum size 16.
    pub struct OfflineFile<'a> {
        pub from_id: Id<'a>,
        pub task_id: &'a [u8],
        pub file_name: &'a [u8],
        pub file_size: u32,
    }
}

wire_struct! {
    /// 6/1 C→S (file port).
    pub struct FileLogin<'a> {
        pub user_id: Id<'a>,
        /// From this user's 1/4.
        pub token: &'a [u8],
        pub task_id: &'a [u8],
        /// 1 realtime sender, 2 realtime receiver, 3 offline upload, 4 offline download.
        pub client_mode: u32,
    }
}

wire_struct! {
    /// 6/2 S→C (file port). result ≠ 0 → the server closes after sending.
    pub struct FileLoginResponse<'a> {
        pub result: u32,
        pub task_id: &'a [u8],
    }
}

wire_struct! {
    /// 6/3, both directions.
    pub struct FileState<'a> {
        /// 0 peer ready, 1 cancel, 2 refuse, 3 done.
        pub state: u32,
        pub task_id: &'a [u8],
        pub user_id: Id<'a>,
    }
}

wire_struct! {
    /// 6/4, both directions: asks for `size` bytes at `offset`.
    pub struct PullDataRequest<'a> {
        pub task_id: &'a [u8],
        pub user_id: Id<'a>,
        /// 1 online, 2 offline.
        pub mode: u32,
        pub offset: u32,
        pub size: u32,
    }
}

wire_struct! {
    /// 6/5, both directions: the answer to one 6/4.
    pub struct PullDataResponse<'a> {
        pub result: u32,
        pub task_id: &'a [u8],
        pub user_id: Id<'a>,
        pub offset: u32,
        pub data: &'a [u8],
    }
}

wire_struct! {
    /// 6/10 C→S (msg port).
    pub struct FileRequest<'a> {
        pub from_id: Id<'a>,
        pub to_id: Id<'a>,
        pub file_name: &'a [u8],
        pub file_size: u32,
        /// 1 online, 2 offline.
        pub trans_mode: u32,
    }
}

wire_struct! {
    /// 6/11 S→C: always the full layout (failure: `task_id` "", no addrs, `trans_mode` 0).
    pub struct FileResponse<'a> {
        pub result: u32,
        pub from_id: Id<'a>,
        pub to_id: Id<'a>,
        pub file_name: &'a [u8],
        pub task_id: &'a [u8],
        pub addrs: Vec<Addr<'a>>,
        pub trans_mode: u32,
    }
}

wire_struct! {
    /// 6/12 S→C push to every session of the receiver.
    pub struct FileNotify<'a> {
        pub from_id: Id<'a>,
        pub to_id: Id<'a>,
        pub file_name: &'a [u8],
        pub file_size: u32,
        pub task_id: &'a [u8],
        pub addrs: Vec<Addr<'a>>,
        pub trans_mode: u32,
        /// 0 task created, 1 offline upload complete and stored.
        pub offline_ready: u32,
    }
}

wire_struct! {
    /// 6/17 S→C: the address list appears once, after the whole file list.
    pub struct OfflineFileListResponse<'a> {
        pub files: Vec<OfflineFile<'a>>,
        pub addrs: Vec<Addr<'a>>,
    }
}

wire_struct! {
    /// 6/18 C→S: the sender's "upload finished" (informational).
    pub struct AddOfflineFile<'a> {
        pub from_id: Id<'a>,
        pub to_id: Id<'a>,
        pub task_id: &'a [u8],
        pub file_name: &'a [u8],
        pub file_size: u32,
    }
}

wire_struct! {
    /// 6/19 C→S: the receiver's "download finished".
    pub struct DeleteOfflineFile<'a> {
        pub from_id: Id<'a>,
        pub to_id: Id<'a>,
        pub task_id: &'a [u8],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::codec::Wire;
    use crate::proto::testutil::{assert_matches_capture, fails, id, roundtrip, s, unknown_in};
    use crate::proto::{Dir, Pdu, ProtoError};

    const TASK: &str = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
    const TOKEN: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

    fn addr() -> Addr<'static> {
        Addr {
            ip: s("127.0.0.1"),
            port: 8500,
        }
    }

    #[test]
    fn record_minimums() {
        assert_eq!(<Addr as Wire>::MIN, 6);
        assert_eq!(<OfflineFile as Wire>::MIN, 16);
    }

    #[test]
    fn file_login() {
        let q = Pdu::FileLogin(FileLogin {
            user_id: id("10035"),
            token: s(TOKEN),
            task_id: s(TASK),
            client_mode: 3,
        });
        assert_eq!(roundtrip(Dir::ToServer, &q).len(), 105);
        unknown_in(Dir::ToClient, 6, 1);
        let r = Pdu::FileLoginResponse(FileLoginResponse {
            result: 0,
            task_id: s(TASK),
        });
        assert_eq!(roundtrip(Dir::ToClient, &r).len(), 56);
        unknown_in(Dir::ToServer, 6, 2);
        fails(
            Dir::ToClient,
            6,
            2,
            &[0, 0, 0, 0, 0, 0, 0, 37],
            ProtoError::BadStrLen(37),
        );
    }

    #[test]
    fn file_state_both_directions() {
        let p = Pdu::FileState(FileState {
            state: 3,
            task_id: s(TASK),
            user_id: id("10035"),
        });
        roundtrip(Dir::ToServer, &p);
        roundtrip(Dir::ToClient, &p);
    }

    #[test]
    fn pull_data_both_directions() {
        let q = Pdu::PullDataRequest(PullDataRequest {
            task_id: s(TASK),
            user_id: id("10710"),
            mode: 2,
            offset: 0,
            size: 40,
        });
        let b = roundtrip(Dir::ToClient, &q);
        roundtrip(Dir::ToServer, &q);
        assert_matches_capture(&b[..10], "00 00 00 49 | 00 06 | 00 04 | 00 01");
        assert_eq!(&b[52..], &hex_tail_6_4()[..]);
        let r = Pdu::PullDataResponse(PullDataResponse {
            result: 0,
            task_id: s(TASK),
            user_id: id("10710"),
            offset: 0,
            data: &[
                0xba, 0x66, 0xcc, 0x67, 0x86, 0x02, 0x3c, 0x8f, 0xb6, 0xab, 0x71, 0x9c, 0xdb, 0x8e,
                0xa7, 0xd0,
            ],
        });
        let b = roundtrip(Dir::ToServer, &r);
        roundtrip(Dir::ToClient, &r);
        let mut b0 = b.clone();
        b0[10..12].copy_from_slice(&[0, 2]);
        assert_matches_capture(
            &b0,
            "00 00 00 59 | 00 06 | 00 05 | 00 01 | 00 02
             00 00 00 00 00 00 00 24 xx xx xx xx xx xx xx xx
             xx xx xx xx xx xx xx xx xx xx xx xx xx xx xx xx
             xx xx xx xx xx xx xx xx xx xx xx xx 00 00 00 05
             31 30 37 31 30 00 00 00 00 00 00 00 10 ba 66 cc
             67 86 02 3c 8f b6 ab 71 9c db 8e a7 d0",
        );
        let err = Pdu::PullDataResponse(PullDataResponse {
            result: 5,
            task_id: s(""),
            user_id: id(""),
            offset: 0,
            data: s(""),
        });
        assert_eq!(roundtrip(Dir::ToClient, &err).len(), 12 + 20);
    }

    fn hex_tail_6_4() -> Vec<u8> {
        crate::proto::testutil::hex(
            "00 00 00 05 31 30 37 31 30 00 00 00 02 00 00 00 00 00 00 00 28",
        )
    }

    #[test]
    fn file_request_response() {
        let q = Pdu::FileRequest(FileRequest {
            from_id: id("10710"),
            to_id: id("10711"),
            file_name: s("t.bin"),
            file_size: 40,
            trans_mode: 2,
        });
        roundtrip(Dir::ToServer, &q);
        unknown_in(Dir::ToClient, 6, 10);
        let r = Pdu::FileResponse(FileResponse {
            result: 0,
            from_id: Id::Num(10710),
            to_id: Id::Num(10711),
            file_name: s("t.bin"),
            task_id: s(TASK),
            addrs: vec![addr()],
            trans_mode: 2,
        });
        let b = roundtrip(Dir::ToClient, &r);
        unknown_in(Dir::ToServer, 6, 11);
        // the 6/11 captured from a TeamTalk 2014 server (reserved 12, task id masked)
        let mut b0 = b.clone();
        b0[10..12].copy_from_slice(&[0, 0x0c]);
        assert_matches_capture(
            &b0,
            "00 00 00 6a | 00 06 | 00 0b | 00 01 | 00 0c
             00 00 00 00 00 00 00 05 31 30 37 31 30 00 00 00
             05 31 30 37 31 31 00 00 00 05 74 2e 62 69 6e 00
             00 00 24 xx xx xx xx xx xx xx xx xx xx xx xx xx
             xx xx xx xx xx xx xx xx xx xx xx xx xx xx xx xx
             xx xx xx xx xx xx xx 00 00 00 01 00 00 00 09 31
             32 37 2e 30 2e 30 2e 31 21 34 00 00 00 02",
        );
        let fail = Pdu::FileResponse(FileResponse {
            result: 2,
            from_id: id("10710"),
            to_id: id("10711"),
            file_name: s("t.bin"),
            task_id: s(""),
            addrs: vec![],
            trans_mode: 0,
        });
        roundtrip(Dir::ToClient, &fail);
        // address count beyond the body
        let mut bad = b[12..83].to_vec();
        bad.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        fails(Dir::ToClient, 6, 11, &bad, ProtoError::BadCount);
    }

    #[test]
    fn file_notify() {
        let p = Pdu::FileNotify(FileNotify {
            from_id: id("10710"),
            to_id: id("10711"),
            file_name: s("t.bin"),
            file_size: 40,
            task_id: s(TASK),
            addrs: vec![addr(), addr()],
            trans_mode: 1,
            offline_ready: 0,
        });
        roundtrip(Dir::ToClient, &p);
        unknown_in(Dir::ToServer, 6, 12);
    }

    #[test]
    fn offline_files() {
        roundtrip(Dir::ToServer, &Pdu::OfflineFileListRequest);
        unknown_in(Dir::ToClient, 6, 16);
        let p = Pdu::OfflineFileListResponse(OfflineFileListResponse {
            files: vec![
                OfflineFile {
                    from_id: id("10710"),
                    task_id: s(TASK),
                    file_name: s("t.bin"),
                    file_size: 40,
                },
                OfflineFile {
                    from_id: id("10712"),
                    task_id: s(TASK),
                    file_name: s("u.bin"),
                    file_size: 0,
                },
            ],
            addrs: vec![addr()],
        });
        roundtrip(Dir::ToClient, &p);
        roundtrip(
            Dir::ToClient,
            &Pdu::OfflineFileListResponse(OfflineFileListResponse {
                files: vec![],
                addrs: vec![],
            }),
        );
        unknown_in(Dir::ToServer, 6, 17);
        fails(
            Dir::ToClient,
            6,
            17,
            &[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0],
            ProtoError::BadCount,
        );
        let add = Pdu::AddOfflineFile(AddOfflineFile {
            from_id: id("10710"),
            to_id: id("10711"),
            task_id: s(TASK),
            file_name: s("t.bin"),
            file_size: 40,
        });
        roundtrip(Dir::ToServer, &add);
        unknown_in(Dir::ToClient, 6, 18);
        let del = Pdu::DeleteOfflineFile(DeleteOfflineFile {
            from_id: id("10710"),
            to_id: id("10711"),
            task_id: s(TASK),
        });
        roundtrip(Dir::ToServer, &del);
        unknown_in(Dir::ToClient, 6, 19);
    }
}
