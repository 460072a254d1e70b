//! Module 2, BUDDY_LIST (§9.2). 2/14 and 2/18 are empty bodies (`Pdu::AllUserRequest`,
//! `Pdu::DepartmentRequest`).

use super::Id;

wire_struct! {
    /// `UserInfo` record (§7.5), 2/10 and 2/15. Minimum size 48.
    pub struct UserInfo<'a> {
        pub user_id: Id<'a>,
        /// Login name.
        pub name: &'a [u8],
        pub nick_name: &'a [u8],
        pub avatar_url: &'a [u8],
        pub title: &'a [u8],
        pub position: &'a [u8],
        pub role_status: u32,
        pub sex: u32,
        pub depart_id: Id<'a>,
        pub job_num: u32,
        pub telephone: &'a [u8],
        pub email: &'a [u8],
    }
}

wire_struct! {
    /// `DeptInfo` record (§7.5), 2/19. Minimum size 24.
    pub struct DeptInfo<'a> {
        pub depart_id: Id<'a>,
        pub title: &'a [u8],
        pub description: &'a [u8],
        /// "0" = top level.
        pub parent_depart_id: Id<'a>,
        /// "0" = none.
        pub leader_id: Id<'a>,
        /// 0 = active.
        pub status: u32,
    }
}

wire_struct! {
    /// `{idstr user_id, u32 status}` (2/4, 2/17).
    pub struct UserStatus<'a> {
        pub user_id: Id<'a>,
        pub status: u32,
    }
}

wire_struct! {
    /// `{idstr user_id, u32 updated}` (2/3).
    pub struct ContactEntry<'a> {
        pub user_id: Id<'a>,
        pub updated: u32,
    }
}

wire_struct! {
    /// 2/1 C→S. `req_type` is ignored.
    pub struct RecentContactRequest {
        pub req_type: u32,
    }
}

wire_struct! {
    /// 2/3 S→C.
    pub struct RecentContactList<'a> {
        pub contacts: Vec<ContactEntry<'a>>,
    }
}

wire_struct! {
    /// 2/4 S→C push.
    pub struct OnlineFriendList<'a> {
        /// Always 2.
        pub list_type: u16,
        pub users: Vec<UserStatus<'a>>,
    }
}

wire_struct! {
    /// 2/5 S→C push.
    pub struct UserStatusNotify<'a> {
        pub user_id: Id<'a>,
        pub status: u32,
    }
}

wire_struct! {
    /// 2/8 C→S.
    pub struct UserStatusRequest<'a> {
        pub user_id: Id<'a>,
    }
}

wire_struct! {
    /// 2/9 S→C.
    pub struct UserStatusResponse<'a> {
        pub user_id: Id<'a>,
        pub status: u32,
    }
}

wire_struct! {
    /// 2/10 S→C.
    pub struct UserInfoResponse<'a> {
        pub users: Vec<UserInfo<'a>>,
    }
}

wire_struct! {
    /// 2/11 C→S.
    pub struct UserInfoRequest<'a> {
        pub user_ids: Vec<Id<'a>>,
    }
}

wire_struct! {
    /// 2/12 C→S.
    pub struct RemoveSessionRequest<'a> {
        /// 1 single user, 2 group, 3 temporary group.
        pub session_type: u32,
        pub session_id: Id<'a>,
    }
}

wire_struct! {
    /// 2/13 S→C.
    pub struct RemoveSessionResponse<'a> {
        pub result: u32,
        pub session_type: u32,
        pub session_id: Id<'a>,
    }
}

wire_struct! {
    /// 2/15 S→C.
    pub struct AllUserResponse<'a> {
        pub users: Vec<UserInfo<'a>>,
    }
}

wire_struct! {
    /// 2/16 C→S.
    pub struct UsersStatusRequest<'a> {
        pub user_ids: Vec<Id<'a>>,
    }
}

wire_struct! {
    /// 2/17 S→C.
    pub struct UsersStatusResponse<'a> {
        pub users: Vec<UserStatus<'a>>,
    }
}

wire_struct! {
    /// 2/19 S→C.
    pub struct DepartmentResponse<'a> {
        pub departments: Vec<DeptInfo<'a>>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::codec::Wire;
    use crate::proto::testutil::{fails, id, roundtrip, s, unknown_in};
    use crate::proto::{Dir, Pdu, ProtoError};

    fn user(n: &'static str) -> UserInfo<'static> {
        UserInfo {
            user_id: id(n),
            name: s("tptr25731002"),
            nick_name: "Nick002·探针".as_bytes(),
            avatar_url: s("/avatar/probe.jpg"),
            title: s("probe"),
            position: s("lab"),
            role_status: 0,
            sex: 1,
            depart_id: id("1042"),
            job_num: 7,
            telephone: s("123"),
            email: s("tptr25731002@probe.test"),
        }
    }

    #[test]
    fn record_minimums() {
        assert_eq!(<UserInfo as Wire>::MIN, 48);
        assert_eq!(<DeptInfo as Wire>::MIN, 24);
        assert_eq!(<UserStatus as Wire>::MIN, 8);
        assert_eq!(<ContactEntry as Wire>::MIN, 8);
    }

    #[test]
    fn recent_contacts() {
        roundtrip(
            Dir::ToServer,
            &Pdu::RecentContactRequest(RecentContactRequest { req_type: 3 }),
        );
        unknown_in(Dir::ToClient, 2, 1);
        let p = Pdu::RecentContactList(RecentContactList {
            contacts: vec![
                ContactEntry {
                    user_id: id("10713"),
                    updated: 1,
                },
                ContactEntry {
                    user_id: id("10711"),
                    updated: 2,
                },
            ],
        });
        // captured layout: length 42
        assert_eq!(roundtrip(Dir::ToClient, &p).len(), 42);
        roundtrip(
            Dir::ToClient,
            &Pdu::RecentContactList(RecentContactList { contacts: vec![] }),
        );
        unknown_in(Dir::ToServer, 2, 3);
        fails(
            Dir::ToClient,
            2,
            3,
            &[0xFF, 0xFF, 0xFF, 0xFF],
            ProtoError::BadCount,
        );
        // 2 entries need at least 16 bytes; 15 are present
        let mut b = vec![0, 0, 0, 2];
        b.extend_from_slice(&[0; 15]);
        fails(Dir::ToClient, 2, 3, &b, ProtoError::BadCount);
    }

    #[test]
    fn online_friend_list() {
        let p = Pdu::OnlineFriendList(OnlineFriendList {
            list_type: 2,
            users: vec![UserStatus {
                user_id: id("10035"),
                status: 1,
            }],
        });
        assert_eq!(roundtrip(Dir::ToClient, &p).len(), 12 + 2 + 4 + 9 + 4);
        unknown_in(Dir::ToServer, 2, 4);
        fails(
            Dir::ToClient,
            2,
            4,
            &[0, 2, 0xFF, 0xFF, 0xFF, 0xFF],
            ProtoError::BadCount,
        );
    }

    #[test]
    fn user_status() {
        let n = Pdu::UserStatusNotify(UserStatusNotify {
            user_id: id("10711"),
            status: 2,
        });
        assert_eq!(roundtrip(Dir::ToClient, &n).len(), 25);
        unknown_in(Dir::ToServer, 2, 5);
        let q = Pdu::UserStatusRequest(UserStatusRequest {
            user_id: id("10036"),
        });
        assert_eq!(roundtrip(Dir::ToServer, &q).len(), 21);
        unknown_in(Dir::ToClient, 2, 8);
        let r = Pdu::UserStatusResponse(UserStatusResponse {
            user_id: id("10711"),
            status: 1,
        });
        assert_eq!(roundtrip(Dir::ToClient, &r).len(), 25);
        unknown_in(Dir::ToServer, 2, 9);
        fails(
            Dir::ToServer,
            2,
            8,
            &[0, 0, 0, 6, b'1'],
            ProtoError::BadStrLen(6),
        );
    }

    #[test]
    fn user_info() {
        let q = Pdu::UserInfoRequest(UserInfoRequest {
            user_ids: vec![id("10711"), Id::Num(1), id("")],
        });
        roundtrip(Dir::ToServer, &q);
        unknown_in(Dir::ToClient, 2, 11);
        fails(
            Dir::ToServer,
            2,
            11,
            &[0xFF, 0xFF, 0xFF, 0xFF],
            ProtoError::BadCount,
        );
        let r = Pdu::UserInfoResponse(UserInfoResponse {
            users: vec![user("10711")],
        });
        let b = roundtrip(Dir::ToClient, &r);
        unknown_in(Dir::ToServer, 2, 10);
        // byte for byte the 2/10 captured from a TeamTalk 2014 server (reserved 5)
        let captured = "00000097 0002 000a 0001 0005
            00000001 00000005 3130373131 0000000c 747074723235373331303032
            0000000f 4e69636b303032c2b7e68ea2e99288 00000011 2f6176617461722f70726f62652e6a7067
            00000005 70726f6265 00000003 6c6162 00000000 00000001 00000004 31303432 00000007
            00000003 313233 00000017 7470747232353733313030324070726f62652e74657374";
        let want = crate::proto::testutil::hex(captured);
        let mut got = b.clone();
        got[10..12].copy_from_slice(&[0, 5]);
        assert_eq!(got, want);
        // one user needs at least 48 bytes
        let mut b = vec![0, 0, 0, 1];
        b.extend_from_slice(&[0; 47]);
        fails(Dir::ToClient, 2, 10, &b, ProtoError::BadCount);
    }

    #[test]
    fn remove_session() {
        let q = Pdu::RemoveSessionRequest(RemoveSessionRequest {
            session_type: 1,
            session_id: id("10036"),
        });
        roundtrip(Dir::ToServer, &q);
        unknown_in(Dir::ToClient, 2, 12);
        let r = Pdu::RemoveSessionResponse(RemoveSessionResponse {
            result: 0,
            session_type: 1,
            session_id: id("0010036"),
        });
        roundtrip(Dir::ToClient, &r);
        unknown_in(Dir::ToServer, 2, 13);
    }

    #[test]
    fn all_users() {
        let r = Pdu::AllUserResponse(AllUserResponse {
            users: vec![user("1"), user("2")],
        });
        roundtrip(Dir::ToClient, &r);
        roundtrip(
            Dir::ToClient,
            &Pdu::AllUserResponse(AllUserResponse { users: vec![] }),
        );
        unknown_in(Dir::ToServer, 2, 15);
        unknown_in(Dir::ToClient, 2, 14);
        fails(Dir::ToClient, 2, 15, &[0, 0, 0x10, 0], ProtoError::BadCount);
    }

    #[test]
    fn users_status() {
        let q = Pdu::UsersStatusRequest(UsersStatusRequest {
            user_ids: vec![id("1"), id("01")],
        });
        roundtrip(Dir::ToServer, &q);
        unknown_in(Dir::ToClient, 2, 16);
        let r = Pdu::UsersStatusResponse(UsersStatusResponse {
            users: vec![
                UserStatus {
                    user_id: id("1"),
                    status: 1,
                },
                UserStatus {
                    user_id: id("01"),
                    status: 2,
                },
            ],
        });
        roundtrip(Dir::ToClient, &r);
        unknown_in(Dir::ToServer, 2, 17);
        fails(
            Dir::ToServer,
            2,
            16,
            &[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0],
            ProtoError::BadCount,
        );
    }

    #[test]
    fn departments() {
        let r = Pdu::DepartmentResponse(DepartmentResponse {
            departments: vec![
                DeptInfo {
                    depart_id: id("1"),
                    title: s("HQ"),
                    description: s(""),
                    parent_depart_id: id("0"),
                    leader_id: id("0"),
                    status: 0,
                },
                DeptInfo {
                    depart_id: id("2"),
                    title: s("R&D"),
                    description: s("labs"),
                    parent_depart_id: id("1"),
                    leader_id: id("10035"),
                    status: 0,
                },
            ],
        });
        roundtrip(Dir::ToClient, &r);
        unknown_in(Dir::ToServer, 2, 19);
        unknown_in(Dir::ToClient, 2, 18);
        let mut b = vec![0, 0, 0, 1];
        b.extend_from_slice(&[0; 23]);
        fails(Dir::ToClient, 2, 19, &b, ProtoError::BadCount);
    }
}
