//! Module 2 (BUDDY_LIST): recent contacts, user info, statuses, departments (B-RC, B-USER, B-PRES-6/7).

use std::collections::HashSet;

use super::outlet::{submit_read, submit_write, WriteKind};
use super::{encode_capped, encode_split, Ctx, Effect, MsgConn, Step};
use crate::proto::buddy::{
    AllUserResponse, ContactEntry, DepartmentResponse, DeptInfo, RecentContactList,
    RemoveSessionRequest, RemoveSessionResponse, UserInfo, UserInfoRequest, UserInfoResponse,
    UserStatus, UserStatusRequest, UserStatusResponse, UsersStatusRequest, UsersStatusResponse,
};
use crate::proto::{Id, Pdu};
use crate::stats::bump;
use crate::store::recent;
use crate::store::users::User;
use crate::store::writer::WriteOp;

/// `session_type` of 2/12 (protocol.md section 8.5).
const SESSION_SINGLE: u32 = 1;
const SESSION_GROUP: u32 = 2;
const SESSION_TEMP_GROUP: u32 = 3;

pub fn user_info_record(u: &User) -> UserInfo<'_> {
    UserInfo {
        user_id: Id::Num(u.id),
        name: u.name.as_bytes(),
        nick_name: u.nick.as_bytes(),
        avatar_url: u.avatar.as_bytes(),
        title: u.title.as_bytes(),
        position: u.position.as_bytes(),
        role_status: u.role_status,
        sex: u.sex,
        depart_id: Id::Num(u.depart_id),
        job_num: u.job_num,
        telephone: u.telephone.as_bytes(),
        email: u.email.as_bytes(),
    }
}

/// 2/1 -> 2/3 (B-RC-2).
pub fn recent_contacts(cx: &Ctx<'_>, mc: &mut MsgConn) -> Step {
    let Some(me) = mc.user_id() else {
        return Step::Now(Vec::new());
    };
    let reserved = cx.reserved;
    let limit = cx.st.cfg.msg.max_recent_contacts;
    submit_read(cx, mc, move |db, st| {
        let rows = match recent::list(db, me, limit) {
            Ok(r) => r,
            Err(e) => {
                bump(&st.counters.store_failures);
                log::error!(target: "store", "recent contacts: {e}");
                return Vec::new();
            }
        };
        let items: Vec<ContactEntry<'_>> = rows
            .iter()
            .map(|(peer, updated)| ContactEntry {
                user_id: Id::Num(*peer),
                updated: *updated,
            })
            .collect();
        let frame = encode_capped(st, &items, reserved, |p| {
            Pdu::RecentContactList(RecentContactList {
                contacts: p.to_vec(),
            })
        });
        vec![Effect::Reply(frame)]
    })
}

fn remove_session_rsp(result: u32, r: &RemoveSessionRequest<'_>, reserved: u16) -> Vec<u8> {
    Pdu::RemoveSessionResponse(RemoveSessionResponse {
        result,
        session_type: r.session_type,
        session_id: r.session_id,
    })
    .to_frame(reserved)
}

/// 2/12 -> 2/13 (B-RC-3..5).
pub fn remove_session(cx: &Ctx<'_>, mc: &mut MsgConn, r: &RemoveSessionRequest<'_>) -> Step {
    let Some(me) = mc.user_id() else {
        return Step::Now(Vec::new());
    };
    let peer = r.session_id.value();
    match (r.session_type, peer) {
        (SESSION_SINGLE, Some(peer)) => {
            let kind = WriteKind::Plain {
                ok: remove_session_rsp(0, r, cx.reserved),
                on_error: remove_session_rsp(1, r, cx.reserved),
            };
            submit_write(cx, mc, WriteOp::HideRecent { owner: me, peer }, kind)
        }
        (SESSION_GROUP | SESSION_TEMP_GROUP, Some(group)) => {
            // B-RC-4: result 0 only if I am a member (decided by the writer).
            let kind = WriteKind::HideGroup {
                ok: remove_session_rsp(0, r, cx.reserved),
                fail: remove_session_rsp(1, r, cx.reserved),
            };
            submit_write(cx, mc, WriteOp::HideGroup { user: me, group }, kind)
        }
        _ => cx.respond(
            mc,
            vec![Effect::Reply(remove_session_rsp(1, r, cx.reserved))],
        ),
    }
}

/// 2/8 -> 2/9 (B-PRES-6).
pub fn user_status(cx: &Ctx<'_>, mc: &mut MsgConn, r: &UserStatusRequest<'_>) -> Step {
    let status = r
        .user_id
        .value()
        .map_or(super::presence::OFFLINE, |id| cx.st.presence.status(id));
    let rsp = Pdu::UserStatusResponse(UserStatusResponse {
        user_id: r.user_id,
        status,
    })
    .to_frame(cx.reserved);
    cx.respond(mc, vec![Effect::Reply(rsp)])
}

/// 2/16 -> 2/17 (B-PRES-7): one entry per requested id, in order, ids echoed.
pub fn users_status(cx: &Ctx<'_>, mc: &mut MsgConn, r: &UsersStatusRequest<'_>) -> Step {
    let items: Vec<UserStatus<'_>> = r
        .user_ids
        .iter()
        .map(|id| UserStatus {
            user_id: *id,
            status: id
                .value()
                .map_or(super::presence::OFFLINE, |v| cx.st.presence.status(v)),
        })
        .collect();
    let frame = encode_capped(cx.st, &items, cx.reserved, |p| {
        Pdu::UsersStatusResponse(UsersStatusResponse { users: p.to_vec() })
    });
    cx.respond(mc, vec![Effect::Reply(frame)])
}

/// 2/11 -> 2/10 (B-USER-1): active users among the requested ids, first occurrence order.
pub fn user_info(cx: &Ctx<'_>, mc: &mut MsgConn, r: &UserInfoRequest<'_>) -> Step {
    let dir = cx.st.directory.read();
    let mut seen = HashSet::new();
    let users: Vec<&User> = r
        .user_ids
        .iter()
        .filter_map(|id| id.value())
        .filter(|id| seen.insert(*id))
        .filter_map(|id| dir.active(id).map(|u| &**u))
        .collect();
    let items: Vec<UserInfo<'_>> = users.iter().map(|u| user_info_record(u)).collect();
    let frame = encode_capped(cx.st, &items, cx.reserved, |p| {
        Pdu::UserInfoResponse(UserInfoResponse { users: p.to_vec() })
    });
    drop(dir);
    cx.respond(mc, vec![Effect::Reply(frame)])
}

/// 2/14 -> 2/15 (B-USER-2).
pub fn all_users(cx: &Ctx<'_>, mc: &mut MsgConn) -> Step {
    let dir = cx.st.directory.read();
    let items: Vec<UserInfo<'_>> = dir
        .active_users()
        .take(cx.st.cfg.msg.max_all_users as usize)
        .map(|u| user_info_record(u))
        .collect();
    // B-USER-2: whole users in id order, in as many frames as they need (the 2014 Android app
    // merges every 2/15), or one frame cut to what fits.
    let frames = if cx.st.cfg.msg.all_users_split {
        encode_split(cx.st, &items, cx.reserved, |p| {
            Pdu::AllUserResponse(AllUserResponse { users: p.to_vec() })
        })
    } else {
        vec![encode_capped(cx.st, &items, cx.reserved, |p| {
            Pdu::AllUserResponse(AllUserResponse { users: p.to_vec() })
        })]
    };
    drop(dir);
    cx.respond(mc, frames.into_iter().map(Effect::Reply).collect())
}

/// 2/18 -> 2/19 (B-USER-3).
pub fn departments(cx: &Ctx<'_>, mc: &mut MsgConn) -> Step {
    let dir = cx.st.directory.read();
    let items: Vec<DeptInfo<'_>> = dir
        .active_departs()
        .map(|d| DeptInfo {
            depart_id: Id::Num(d.id),
            title: d.title.as_bytes(),
            description: d.description.as_bytes(),
            parent_depart_id: Id::Num(d.parent_id),
            leader_id: Id::Num(d.leader_id),
            status: 0,
        })
        .collect();
    let frame = encode_capped(cx.st, &items, cx.reserved, |p| {
        Pdu::DepartmentResponse(DepartmentResponse {
            departments: p.to_vec(),
        })
    });
    drop(dir);
    cx.respond(mc, vec![Effect::Reply(frame)])
}
