//! Module 5 (GROUP): group lists, info, unread, temporary groups, membership changes (B-GRP,
//! B-PRES-5). Group 3/1 lives in `chat.rs`, 2/12 for groups in `buddy.rs`; the in-memory
//! membership cache that group 3/1 reads is [`super::group_cache`].

use std::collections::HashSet;

use super::outlet::{submit_read, submit_write, WriteKind};
use super::presence::{Class, LEAVE, ONLINE};
use super::{encode_capped, id_echo, Ctx, Effect, MsgConn, Session, Step};
use crate::msg::state::State;
use crate::proto::buddy::{OnlineFriendList, UserStatus};
use crate::proto::group::{
    ChangeMemberRequest, ChangeMemberResponse, CreateTempGroupRequest, CreateTempGroupResponse,
    GroupInfo, GroupInfoOk, GroupInfoRequest, GroupInfoResponse, GroupMsg, GroupReadAck,
    GroupUnreadCount, GroupUnreadCountResponse, GroupUnreadMsgRequest, GroupUnreadMsgResponse,
    NormalGroupListResponse, RecentGroupInfo, RecentGroupListResponse,
};
use crate::proto::{Id, Pdu};
use crate::stats::bump;
use crate::store::groups::{self, Group};
use crate::store::writer::WriteOp;
use crate::store::StoreError;

/// Longest group name and avatar of 5/12 (B-GRP-2).
const MAX_NAME: usize = 256;
const MAX_AVATAR: usize = 256;

/// `list_type` of 2/4.
const FRIEND_LIST: u16 = 2;

/// 5/13 with these fields (`group_id` 0 encodes "0", the failure id).
pub fn create_rsp(
    result: u32,
    group_id: u32,
    name: &[u8],
    members: &[u32],
    reserved: u16,
) -> Vec<u8> {
    Pdu::CreateTempGroupResponse(CreateTempGroupResponse {
        result,
        group_id: Id::Num(group_id),
        group_name: name,
        member_ids: members.iter().map(|m| Id::Num(*m)).collect(),
    })
    .to_frame(reserved)
}

/// 5/15 with these fields; ids are given as their bytes (echoes, P-21).
pub fn change_rsp(
    result: u32,
    group_id: &[u8],
    change_type: u32,
    list: &[&[u8]],
    reserved: u16,
) -> Vec<u8> {
    Pdu::ChangeMemberResponse(ChangeMemberResponse {
        result,
        group_id: Id::Raw(group_id),
        change_type,
        user_ids: list.iter().map(|b| Id::Raw(b)).collect(),
    })
    .to_frame(reserved)
}

fn store_error(st: &State, what: &str, e: &StoreError) {
    bump(&st.counters.store_failures);
    log::error!(target: "store", "{what}: {e}");
}

/// B-PRES-5: the 2/4 that follows 5/2, 5/17 and a successful 5/4, if the session receives
/// presence and some other member of `groups` is online or leave.
fn online_members<'g>(
    st: &State,
    sess: &Session,
    groups: impl IntoIterator<Item = &'g [u32]>,
) -> Option<Effect> {
    if sess.class != Class::Pc && !st.cfg.msg.presence_to_mobile {
        return None;
    }
    let mut seen = HashSet::new();
    let mut users = Vec::new();
    for members in groups {
        for &m in members {
            if m == sess.user_id || !seen.insert(m) {
                continue;
            }
            let status = st.presence.status(m);
            if status == ONLINE || status == LEAVE {
                users.push(UserStatus {
                    user_id: Id::Num(m),
                    status,
                });
            }
        }
    }
    if users.is_empty() {
        return None;
    }
    let frame = encode_capped(st, &users, 0, |p| {
        Pdu::OnlineFriendList(OnlineFriendList {
            list_type: FRIEND_LIST,
            users: p.to_vec(),
        })
    });
    Some(Effect::Reply(frame))
}

fn ids(members: &[u32]) -> Vec<Id<'static>> {
    members.iter().map(|m| Id::Num(*m)).collect()
}

/// 5/1 -> 5/2, then 2/4 (B-GRP-14, B-PRES-5).
pub fn normal_list(cx: &Ctx<'_>, mc: &mut MsgConn) -> Step {
    let limit = cx.st.cfg.msg.max_group_list;
    group_list(
        cx,
        mc,
        limit,
        "normal groups",
        groups::normal_groups_of,
        |st, list, reserved| {
            let items: Vec<GroupInfo<'_>> = list
                .iter()
                .map(|g| GroupInfo {
                    group_id: Id::Num(g.id),
                    name: &g.name,
                    avatar: &g.avatar,
                    creator_id: Id::Num(g.creator),
                    group_type: g.group_type,
                    member_ids: ids(&g.members),
                })
                .collect();
            encode_capped(st, &items, reserved, |p| {
                Pdu::NormalGroupListResponse(NormalGroupListResponse { groups: p.to_vec() })
            })
        },
    )
}

/// 5/16 -> 5/17, then 2/4 (B-GRP-15, B-PRES-5).
pub fn recent_list(cx: &Ctx<'_>, mc: &mut MsgConn) -> Step {
    let limit = cx.st.cfg.msg.max_recent_groups;
    group_list(
        cx,
        mc,
        limit,
        "recent groups",
        groups::recent_groups_of,
        |st, list, reserved| {
            let items: Vec<RecentGroupInfo<'_>> = list
                .iter()
                .map(|g| RecentGroupInfo {
                    group_id: Id::Num(g.id),
                    name: &g.name,
                    avatar: &g.avatar,
                    creator_id: Id::Num(g.creator),
                    group_type: g.group_type,
                    group_updated: g.updated,
                    member_ids: ids(&g.members),
                })
                .collect();
            encode_capped(st, &items, reserved, |p| {
                Pdu::RecentGroupListResponse(RecentGroupListResponse { groups: p.to_vec() })
            })
        },
    )
}

type FetchGroups = fn(&rusqlite::Connection, u32, u32) -> Result<Vec<Group>, StoreError>;

/// A group list request: `fetch` on a reader, the list encoded by `encode`, then the 2/4 of the
/// listed groups' online members (B-PRES-5).
fn group_list(
    cx: &Ctx<'_>,
    mc: &mut MsgConn,
    limit: u32,
    what: &'static str,
    fetch: FetchGroups,
    encode: fn(&State, &[Group], u16) -> Vec<u8>,
) -> Step {
    let Some(sess) = mc.session.clone() else {
        return Step::Now(Vec::new());
    };
    let reserved = cx.reserved;
    submit_read(cx, mc, move |db, st| {
        let list = match fetch(db, sess.user_id, limit) {
            Ok(l) => l,
            Err(e) => {
                store_error(st, what, &e);
                return Vec::new();
            }
        };
        let mut out = vec![Effect::Reply(encode(st, &list, reserved))];
        out.extend(online_members(
            st,
            &sess,
            list.iter().map(|g| g.members.as_slice()),
        ));
        out
    })
}

/// 5/3 -> 5/4, then 2/4 on success (B-GRP-16, B-PRES-5).
pub fn info(cx: &Ctx<'_>, mc: &mut MsgConn, r: &GroupInfoRequest<'_>) -> Step {
    let Some(sess) = mc.session.clone() else {
        return Step::Now(Vec::new());
    };
    let reserved = cx.reserved;
    let echo = id_echo(&r.group_id);
    let group = r.group_id.value();
    submit_read(cx, mc, move |db, st| {
        let fail = |result: u32| {
            Pdu::GroupInfoResponse(GroupInfoResponse {
                group_id: Id::Raw(&echo),
                result,
                ok: None,
            })
            .to_frame(reserved)
        };
        let g = match group.map(|id| groups::get(db, id)) {
            None | Some(Ok(None)) => return vec![Effect::Reply(fail(1))],
            Some(Err(e)) => {
                store_error(st, "group info", &e);
                return vec![Effect::Reply(fail(2))];
            }
            Some(Ok(Some(g))) => g,
        };
        if g.deleted || !g.members.contains(&sess.user_id) {
            return vec![Effect::Reply(fail(1))];
        }
        let frame = Pdu::GroupInfoResponse(GroupInfoResponse {
            group_id: Id::Raw(&echo),
            result: 0,
            ok: Some(GroupInfoOk {
                name: &g.name,
                avatar: &g.avatar,
                creator_id: Id::Num(g.creator),
                group_type: g.group_type,
                member_ids: ids(&g.members),
            }),
        })
        .to_frame(reserved);
        let mut out = vec![Effect::Reply(frame)];
        out.extend(online_members(st, &sess, [g.members.as_slice()]));
        out
    })
}

/// 5/5 -> 5/6 (B-GRP-11).
pub fn unread_count(cx: &Ctx<'_>, mc: &mut MsgConn) -> Step {
    let Some(sess) = mc.session.clone() else {
        return Step::Now(Vec::new());
    };
    let reserved = cx.reserved;
    let cap = cx.st.cfg.msg.max_group_unread;
    submit_read(cx, mc, move |db, st| {
        let counts = match groups::unread_counts(db, sess.user_id, sess.family, cap, u32::MAX) {
            Ok(c) => c,
            Err(e) => {
                store_error(st, "group unread counts", &e);
                return Vec::new();
            }
        };
        let items: Vec<GroupUnreadCount<'_>> = counts
            .iter()
            .map(|(g, n)| GroupUnreadCount {
                group_id: Id::Num(*g),
                unread_cnt: *n,
            })
            .collect();
        let frame = encode_capped(st, &items, reserved, |p| {
            Pdu::GroupUnreadCountResponse(GroupUnreadCountResponse { counts: p.to_vec() })
        });
        vec![Effect::Reply(frame)]
    })
}

/// 5/7 -> 5/8 (B-GRP-12): newest first; empty for a non-member.
pub fn unread_msgs(cx: &Ctx<'_>, mc: &mut MsgConn, r: &GroupUnreadMsgRequest<'_>) -> Step {
    let Some(sess) = mc.session.clone() else {
        return Step::Now(Vec::new());
    };
    let reserved = cx.reserved;
    let echo = id_echo(&r.group_id);
    let group = r.group_id.value();
    let limit = cx.st.cfg.msg.max_group_unread;
    submit_read(cx, mc, move |db, st| {
        let msgs = match group {
            Some(g) => match groups::unread_messages(db, sess.user_id, g, sess.family, limit) {
                Ok(m) => m,
                Err(e) => {
                    store_error(st, "group unread messages", &e);
                    return Vec::new();
                }
            },
            None => Vec::new(),
        };
        let items: Vec<GroupMsg<'_>> = msgs
            .iter()
            .map(|m| GroupMsg {
                from_id: Id::Num(m.from_id),
                create_time: m.create_time,
                msg_type: m.msg_type,
                msg_data: &m.data,
            })
            .collect();
        let frame = encode_capped(st, &items, reserved, |p| {
            Pdu::GroupUnreadMsgResponse(GroupUnreadMsgResponse {
                group_id: Id::Raw(&echo),
                msgs: p.to_vec(),
            })
        });
        vec![Effect::Reply(frame)]
    })
}

/// 5/11 (B-GRP-13): moves my cursor in my family; no reply. A non-member (per the cache) is
/// ignored without a write; the writer still checks membership authoritatively.
pub fn read_ack(cx: &Ctx<'_>, mc: &mut MsgConn, r: &GroupReadAck<'_>) -> Step {
    let (Some(sess), Some(group)) = (mc.session.clone(), r.group_id.value()) else {
        return Step::Now(Vec::new());
    };
    if !cx
        .st
        .groups
        .live(group)
        .is_some_and(|g| g.is_member(sess.user_id))
    {
        return Step::Now(Vec::new());
    }
    let op = WriteOp::GroupReadAck {
        user: sess.user_id,
        group,
        family: sess.family,
    };
    submit_write(cx, mc, op, WriteKind::silent())
}

/// 5/12 -> 5/13 (B-GRP-2, B-GRP-3).
pub fn create_temp(cx: &Ctx<'_>, mc: &mut MsgConn, r: &CreateTempGroupRequest<'_>) -> Step {
    let Some(me) = mc.user_id() else {
        return Step::Now(Vec::new());
    };
    let st = cx.st;
    let name_ok = !r.group_name.is_empty() && r.group_name.len() <= MAX_NAME;
    let members: Option<Vec<u32>> = {
        let dir = st.directory.read();
        r.member_ids
            .iter()
            .map(|id| id.value().filter(|v| dir.active(*v).is_some()))
            .collect()
    };
    let (true, true, Some(members)) = (name_ok, r.group_avatar.len() <= MAX_AVATAR, members) else {
        let rsp = create_rsp(1, 0, r.group_name, &[], cx.reserved);
        return cx.respond(mc, vec![Effect::Reply(rsp)]);
    };
    let op = WriteOp::CreateTempGroup {
        creator: me,
        name: r.group_name.to_vec(),
        avatar: r.group_avatar.to_vec(),
        members,
        max_members: st.cfg.msg.max_temp_group_members,
    };
    let kind = WriteKind::CreateGroup {
        name: r.group_name.to_vec(),
        reserved: cx.reserved,
    };
    submit_write(cx, mc, op, kind)
}

/// 5/14 -> 5/15 (B-GRP-4, B-GRP-5). Every check runs in the writer, in the order of B-GRP-4.
pub fn change_members(cx: &Ctx<'_>, mc: &mut MsgConn, r: &ChangeMemberRequest<'_>) -> Step {
    let Some(me) = mc.user_id() else {
        return Step::Now(Vec::new());
    };
    let group_echo = id_echo(&r.group_id);
    let list: Vec<Vec<u8>> = r.user_ids.iter().map(id_echo).collect();
    let Some(group) = r.group_id.value() else {
        // No such group (1).
        let raw: Vec<&[u8]> = list.iter().map(Vec::as_slice).collect();
        let rsp = change_rsp(1, &group_echo, r.change_type, &raw, cx.reserved);
        return cx.respond(mc, vec![Effect::Reply(rsp)]);
    };
    // A non-canonical id names nobody: 0 is no user (an add then fails with 1, B-GRP-4).
    let users: Vec<u32> = r
        .user_ids
        .iter()
        .map(|id| id.value().unwrap_or(0))
        .collect();
    let op = WriteOp::ChangeMembers {
        group,
        requester: me,
        change_type: r.change_type,
        users,
        max_members: cx.st.cfg.msg.max_temp_group_members,
    };
    let kind = WriteKind::ChangeMembers {
        group_echo,
        change_type: r.change_type,
        list,
        reserved: cx.reserved,
    };
    submit_write(cx, mc, op, kind)
}
