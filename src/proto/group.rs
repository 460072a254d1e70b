//! Module 5, GROUP (§9.5). 5/1, 5/5 and 5/16 are empty bodies (`Pdu::NormalGroupListRequest`,
//! `Pdu::GroupUnreadCountRequest`, `Pdu::RecentGroupListRequest`).

use super::codec::{tail, Reader, Wire, Writer};
use super::{Id, ProtoError};

wire_struct! {
    /// `GroupInfo` record (§7.5), 5/2. Minimum size 24.
    pub struct GroupInfo<'a> {
        pub group_id: Id<'a>,
        pub name: &'a [u8],
        pub avatar: &'a [u8],
        /// "0" for normal groups.
        pub creator_id: Id<'a>,
        /// 1 normal, 2 temporary.
        pub group_type: u32,
        pub member_ids: Vec<Id<'a>>,
    }
}

wire_struct! {
    /// `RecentGroupInfo` record (§7.5), 5/17. Minimum size 28.
    pub struct RecentGroupInfo<'a> {
        pub group_id: Id<'a>,
        pub name: &'a [u8],
        pub avatar: &'a [u8],
        pub creator_id: Id<'a>,
        pub group_type: u32,
        pub group_updated: u32,
        pub member_ids: Vec<Id<'a>>,
    }
}

wire_struct! {
    /// `GroupMsg` record (§7.5), 5/8. Minimum size 13.
    pub struct GroupMsg<'a> {
        pub from_id: Id<'a>,
        pub create_time: u32,
        pub msg_type: u8,
        pub msg_data: &'a [u8],
    }
}

wire_struct! {
    /// `{idstr group_id, u32 unread_cnt}` (5/6).
    pub struct GroupUnreadCount<'a> {
        pub group_id: Id<'a>,
        pub unread_cnt: u32,
    }
}

wire_struct! {
    /// 5/2 S→C.
    pub struct NormalGroupListResponse<'a> {
        pub groups: Vec<GroupInfo<'a>>,
    }
}

wire_struct! {
    /// 5/3 C→S.
    pub struct GroupInfoRequest<'a> {
        pub group_id: Id<'a>,
    }
}

/// 5/4 S→C. Encode writes `ok` iff it is `Some`; decode reads it iff `result == 0`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfoResponse<'a> {
    pub group_id: Id<'a>,
    /// 0 ok; 1 no such group or not a member; 2 internal error.
    pub result: u32,
    pub ok: Option<GroupInfoOk<'a>>,
}

wire_struct! {
    /// The success tail of 5/4.
    pub struct GroupInfoOk<'a> {
        pub name: &'a [u8],
        pub avatar: &'a [u8],
        pub creator_id: Id<'a>,
        pub group_type: u32,
        pub member_ids: Vec<Id<'a>>,
    }
}

impl<'a> Wire<'a> for GroupInfoResponse<'a> {
    const MIN: usize = 8;
    fn read(r: &mut Reader<'a>) -> Result<Self, ProtoError> {
        let group_id = r.id()?;
        let result = r.u32()?;
        Ok(GroupInfoResponse {
            group_id,
            result,
            ok: tail(result, r)?,
        })
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.id(&self.group_id);
        w.u32(self.result);
        if let Some(ok) = &self.ok {
            ok.write(w);
        }
    }
}

wire_struct! {
    /// 5/6 S→C.
    pub struct GroupUnreadCountResponse<'a> {
        pub counts: Vec<GroupUnreadCount<'a>>,
    }
}

wire_struct! {
    /// 5/7 C→S.
    pub struct GroupUnreadMsgRequest<'a> {
        pub group_id: Id<'a>,
    }
}

wire_struct! {
    /// 5/8 S→C.
    pub struct GroupUnreadMsgResponse<'a> {
        pub group_id: Id<'a>,
        pub msgs: Vec<GroupMsg<'a>>,
    }
}

wire_struct! {
    /// 5/11 C→S. No reply.
    pub struct GroupReadAck<'a> {
        pub group_id: Id<'a>,
    }
}

wire_struct! {
    /// 5/12 C→S.
    pub struct CreateTempGroupRequest<'a> {
        pub group_name: &'a [u8],
        pub group_avatar: &'a [u8],
        pub member_ids: Vec<Id<'a>>,
    }
}

wire_struct! {
    /// 5/13 S→C. No avatar field. Failure: `group_id` "0", empty list.
    pub struct CreateTempGroupResponse<'a> {
        pub result: u32,
        pub group_id: Id<'a>,
        pub group_name: &'a [u8],
        pub member_ids: Vec<Id<'a>>,
    }
}

wire_struct! {
    /// 5/14 C→S.
    pub struct ChangeMemberRequest<'a> {
        pub group_id: Id<'a>,
        /// 0 add, 1 remove.
        pub change_type: u32,
        pub user_ids: Vec<Id<'a>>,
    }
}

wire_struct! {
    /// 5/15 S→C.
    pub struct ChangeMemberResponse<'a> {
        pub result: u32,
        pub group_id: Id<'a>,
        pub change_type: u32,
        pub user_ids: Vec<Id<'a>>,
    }
}

wire_struct! {
    /// 5/17 S→C.
    pub struct RecentGroupListResponse<'a> {
        pub groups: Vec<RecentGroupInfo<'a>>,
    }
}

wire_struct! {
    /// 5/18 S→C push.
    pub struct NormalGroupCreatedNotify<'a> {
        pub group_id: Id<'a>,
        pub group_name: &'a [u8],
        pub group_avatar: &'a [u8],
        pub member_ids: Vec<Id<'a>>,
    }
}

wire_struct! {
    /// 5/19 S→C push: the complete new member list (empty when the group was deleted).
    pub struct NormalGroupMembersChangedNotify<'a> {
        pub group_id: Id<'a>,
        pub member_ids: Vec<Id<'a>>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::testutil::{assert_matches_capture, fails, id, roundtrip, s, unknown_in};
    use crate::proto::{Dir, Pdu};

    fn members() -> Vec<Id<'static>> {
        vec![id("10710"), id("10711"), id("10712")]
    }

    #[test]
    fn record_minimums() {
        assert_eq!(<GroupInfo as Wire>::MIN, 24);
        assert_eq!(<RecentGroupInfo as Wire>::MIN, 28);
        assert_eq!(<GroupMsg as Wire>::MIN, 13);
        assert_eq!(<GroupUnreadCount as Wire>::MIN, 8);
    }

    #[test]
    fn normal_group_list() {
        roundtrip(Dir::ToServer, &Pdu::NormalGroupListRequest);
        unknown_in(Dir::ToClient, 5, 1);
        let p = Pdu::NormalGroupListResponse(NormalGroupListResponse {
            groups: vec![
                GroupInfo {
                    group_id: id("1"),
                    name: s("all"),
                    avatar: s(""),
                    creator_id: id("0"),
                    group_type: 1,
                    member_ids: members(),
                },
                GroupInfo {
                    group_id: id("2"),
                    name: s("empty"),
                    avatar: s("a.png"),
                    creator_id: id("0"),
                    group_type: 1,
                    member_ids: vec![],
                },
            ],
        });
        roundtrip(Dir::ToClient, &p);
        unknown_in(Dir::ToServer, 5, 2);
        // a group's member count larger than what is left
        let bad = [
            0, 0, 0, 1, 0, 0, 0, 1, b'1', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, b'0', 0, 0, 0, 1,
            0xFF, 0xFF, 0xFF, 0xFF,
        ];
        fails(Dir::ToClient, 5, 2, &bad, ProtoError::BadCount);
        fails(
            Dir::ToClient,
            5,
            2,
            &[0x7F, 0xFF, 0xFF, 0xFF],
            ProtoError::BadCount,
        );
    }

    #[test]
    fn group_info() {
        let q = Pdu::GroupInfoRequest(GroupInfoRequest {
            group_id: id("104282"),
        });
        roundtrip(Dir::ToServer, &q);
        unknown_in(Dir::ToClient, 5, 3);
        let ok = Pdu::GroupInfoResponse(GroupInfoResponse {
            group_id: id("104282"),
            result: 0,
            ok: Some(GroupInfoOk {
                name: s("grp"),
                avatar: s(""),
                creator_id: id("10710"),
                group_type: 2,
                member_ids: members(),
            }),
        });
        let b = roundtrip(Dir::ToClient, &ok);
        let mut b0 = b.clone();
        b0[10..12].copy_from_slice(&[0, 0x0a]);
        assert_matches_capture(
            &b0,
            "00 00 00 51 | 00 05 | 00 04 | 00 01 | 00 0a
             00 00 00 06 31 30 34 32 38 32 00 00 00 00 00 00
             00 03 67 72 70 00 00 00 00 00 00 00 05 31 30 37
             31 30 00 00 00 02 00 00 00 03 00 00 00 05 31 30
             37 31 30 00 00 00 05 31 30 37 31 31 00 00 00 05
             31 30 37 31 32",
        );
        let fail = Pdu::GroupInfoResponse(GroupInfoResponse {
            group_id: id("99"),
            result: 1,
            ok: None,
        });
        assert_eq!(roundtrip(Dir::ToClient, &fail).len(), 22);
        unknown_in(Dir::ToServer, 5, 4);
        fails(
            Dir::ToClient,
            5,
            4,
            &[0, 0, 0, 1, b'9', 0, 0, 0, 0],
            ProtoError::Truncated,
        );
    }

    #[test]
    fn group_unread() {
        roundtrip(Dir::ToServer, &Pdu::GroupUnreadCountRequest);
        unknown_in(Dir::ToClient, 5, 5);
        let p = Pdu::GroupUnreadCountResponse(GroupUnreadCountResponse {
            counts: vec![GroupUnreadCount {
                group_id: id("42"),
                unread_cnt: 150,
            }],
        });
        roundtrip(Dir::ToClient, &p);
        unknown_in(Dir::ToServer, 5, 6);
        fails(
            Dir::ToClient,
            5,
            6,
            &[0xFF, 0xFF, 0xFF, 0xFF],
            ProtoError::BadCount,
        );
        let q = Pdu::GroupUnreadMsgRequest(GroupUnreadMsgRequest { group_id: id("42") });
        roundtrip(Dir::ToServer, &q);
        unknown_in(Dir::ToClient, 5, 7);
        let r = Pdu::GroupUnreadMsgResponse(GroupUnreadMsgResponse {
            group_id: id("42"),
            msgs: vec![
                GroupMsg {
                    from_id: id("10035"),
                    create_time: 2,
                    msg_type: 0x11,
                    msg_data: s("ok"),
                },
                GroupMsg {
                    from_id: id("10036"),
                    create_time: 1,
                    msg_type: 0x12,
                    msg_data: &[0, 0, 0, 3, 9, 9],
                },
            ],
        });
        roundtrip(Dir::ToClient, &r);
        unknown_in(Dir::ToServer, 5, 8);
        // 2 messages need at least 26 bytes; 25 are left
        let mut bad = vec![0, 0, 0, 2, b'4', b'2', 0, 0, 0, 2];
        bad.extend_from_slice(&[0; 25]);
        fails(Dir::ToClient, 5, 8, &bad, ProtoError::BadCount);
        let a = Pdu::GroupReadAck(GroupReadAck { group_id: id("42") });
        roundtrip(Dir::ToServer, &a);
        unknown_in(Dir::ToClient, 5, 11);
    }

    #[test]
    fn create_temp_group() {
        let q = Pdu::CreateTempGroupRequest(CreateTempGroupRequest {
            group_name: s("team"),
            group_avatar: s(""),
            member_ids: vec![id("10036"), id("10037")],
        });
        assert_eq!(roundtrip(Dir::ToServer, &q).len(), 46);
        unknown_in(Dir::ToClient, 5, 12);
        fails(
            Dir::ToServer,
            5,
            12,
            &[0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF],
            ProtoError::BadCount,
        );
        let r = Pdu::CreateTempGroupResponse(CreateTempGroupResponse {
            result: 0,
            group_id: Id::Num(104282),
            group_name: s("grp"),
            member_ids: members(),
        });
        let b = roundtrip(Dir::ToClient, &r);
        let mut b0 = b.clone();
        b0[10..12].copy_from_slice(&[0, 9]);
        assert_matches_capture(
            &b0,
            "00 00 00 40 | 00 05 | 00 0d | 00 01 | 00 09
             00 00 00 00 00 00 00 06 31 30 34 32 38 32 00 00
             00 03 67 72 70 00 00 00 03 00 00 00 05 31 30 37
             31 30 00 00 00 05 31 30 37 31 31 00 00 00 05 31
             30 37 31 32",
        );
        let fail = Pdu::CreateTempGroupResponse(CreateTempGroupResponse {
            result: 1,
            group_id: Id::Num(0),
            group_name: s("team"),
            member_ids: vec![],
        });
        roundtrip(Dir::ToClient, &fail);
        unknown_in(Dir::ToServer, 5, 13);
    }

    #[test]
    fn change_member() {
        let q = Pdu::ChangeMemberRequest(ChangeMemberRequest {
            group_id: id("104282"),
            change_type: 0,
            user_ids: vec![id("10713")],
        });
        roundtrip(Dir::ToServer, &q);
        unknown_in(Dir::ToClient, 5, 14);
        let r = Pdu::ChangeMemberResponse(ChangeMemberResponse {
            result: 0,
            group_id: id("104282"),
            change_type: 0,
            user_ids: vec![id("10713")],
        });
        let b = roundtrip(Dir::ToClient, &r);
        let mut b0 = b.clone();
        b0[10..12].copy_from_slice(&[0, 0x0b]);
        assert_matches_capture(
            &b0,
            "00 00 00 2b | 00 05 | 00 0f | 00 01 | 00 0b
             00 00 00 00 00 00 00 06 31 30 34 32 38 32 00 00
             00 00 00 00 00 01 00 00 00 05 31 30 37 31 33",
        );
        unknown_in(Dir::ToServer, 5, 15);
    }

    #[test]
    fn recent_group_list() {
        roundtrip(Dir::ToServer, &Pdu::RecentGroupListRequest);
        unknown_in(Dir::ToClient, 5, 16);
        let p = Pdu::RecentGroupListResponse(RecentGroupListResponse {
            groups: vec![RecentGroupInfo {
                group_id: id("104282"),
                name: s("grp"),
                avatar: s(""),
                creator_id: id("10710"),
                group_type: 2,
                group_updated: 1_700_000_000,
                member_ids: members(),
            }],
        });
        roundtrip(Dir::ToClient, &p);
        unknown_in(Dir::ToServer, 5, 17);
        let mut bad = vec![0, 0, 0, 1];
        bad.extend_from_slice(&[0; 27]);
        fails(Dir::ToClient, 5, 17, &bad, ProtoError::BadCount);
    }

    #[test]
    fn normal_group_notifies() {
        let c = Pdu::NormalGroupCreatedNotify(NormalGroupCreatedNotify {
            group_id: Id::Num(7),
            group_name: s("ops"),
            group_avatar: s(""),
            member_ids: members(),
        });
        roundtrip(Dir::ToClient, &c);
        unknown_in(Dir::ToServer, 5, 18);
        let m = Pdu::NormalGroupMembersChangedNotify(NormalGroupMembersChangedNotify {
            group_id: Id::Num(7),
            member_ids: vec![],
        });
        roundtrip(Dir::ToClient, &m);
        unknown_in(Dir::ToServer, 5, 19);
        fails(
            Dir::ToClient,
            5,
            19,
            &[0, 0, 0, 1, b'7', 0, 0, 0, 1],
            ProtoError::BadCount,
        );
    }
}
