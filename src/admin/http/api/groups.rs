//! `/v1/groups` (normal groups, B-ADM-5) and `/v1/messages` (B-ADM-7).

use std::sync::Arc;

use rusqlite::Connection;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{bad, conflict, dedup, internal, label, not_found, parse_body, parse_id, push};
use super::{ApiError, Response};
use crate::admin::check::GROUP_NAME_MAX;
use crate::admin::http::job::{Step, StepResult};
use crate::msg::chat::{Delivery, GROUP_TEXT, P2P_TEXT};
use crate::msg::outlet::AdminDelivery;
use crate::msg::state::State;
use crate::net::Shared;
use crate::proto::group::{NormalGroupCreatedNotify, NormalGroupMembersChangedNotify};
use crate::proto::{Id, Pdu};
use crate::store::groups::{self, Group};
use crate::store::writer::{WriteOp, WriteOut};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupBody {
    name: Option<String>,
    avatar: Option<String>,
    members: Option<Vec<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MembersBody {
    members: Vec<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageBody {
    from: u32,
    to_user: Option<u32>,
    to_group: Option<u32>,
    text: String,
}

fn group_json(g: &Group) -> Value {
    json!({
        "id": g.id,
        "type": g.group_type,
        "name": String::from_utf8_lossy(&g.name),
        "avatar": String::from_utf8_lossy(&g.avatar),
        "creator": g.creator,
        "members": g.members,
        "updated": g.updated,
    })
}

fn load(db: &Connection, id: u32) -> Result<Group, ApiError> {
    groups::get(db, id)?
        .filter(|g| !g.deleted)
        .ok_or_else(|| not_found(format!("no group {id}")))
}

/// A live normal group (temporary -> 409).
fn load_normal(db: &Connection, id: u32) -> Result<Group, ApiError> {
    let g = load(db, id)?;
    if g.group_type != groups::NORMAL {
        return Err(conflict(format!("group {id} is a temporary group")));
    }
    Ok(g)
}

/// The group as stored now, as the answer.
fn answer_group(id: u32, status: u16) -> StepResult {
    Step::read(move |db| Step::done(Response::json(status, &group_json(&load(db, id)?))))
}

fn check_count(st: &State, members: &[u32]) -> Result<(), ApiError> {
    let cap = st.cfg.admin.max_normal_group_members;
    if u32::try_from(members.len()).map_or(true, |n| n > cap) {
        return Err(bad(format!("more than {cap} members")));
    }
    Ok(())
}

fn check_members(st: &State, members: &[u32]) -> Result<Vec<u32>, ApiError> {
    let members = dedup(members);
    check_count(st, &members)?;
    let dir = st.directory.read();
    if let Some(m) = members.iter().find(|m| dir.active(**m).is_none()) {
        return Err(bad(format!("member {m} is not an active user")));
    }
    Ok(members)
}

fn check_name_avatar(name: Option<&str>, avatar: Option<&str>) -> Result<(), ApiError> {
    label("name", name, 1, GROUP_NAME_MAX)?;
    if avatar.is_some_and(|a| a.len() > 256) {
        return Err(bad("avatar must be at most 256 bytes"));
    }
    Ok(())
}

/// 5/19 (B-GRP-18) with `members` to every session of `to`.
fn push_members_changed(st: &State, group: u32, members: &[u32], to: &[u32]) {
    let notify: Shared = Pdu::NormalGroupMembersChangedNotify(NormalGroupMembersChangedNotify {
        group_id: Id::Num(group),
        member_ids: members.iter().map(|m| Id::Num(*m)).collect(),
    })
    .to_frame(0)
    .into();
    push::to_users(st, to.iter().copied(), &notify);
}

pub fn create(st: &Arc<State>, body: &[u8]) -> StepResult {
    let b: GroupBody = parse_body(body)?;
    let Some(name) = b.name else {
        return Err(bad("name is required"));
    };
    let avatar = b.avatar.unwrap_or_default();
    check_name_avatar(Some(&name), Some(&avatar))?;
    let members = check_members(st, &b.members.unwrap_or_default())?;
    let op = WriteOp::CreateNormalGroup {
        name: name.clone().into_bytes(),
        avatar: avatar.clone().into_bytes(),
        members,
    };
    let st = Arc::clone(st);
    Step::write(op, move |out| {
        let WriteOut::GroupCreated { group_id, members } = out else {
            return Err(internal("unexpected write result"));
        };
        // B-GRP-17: after commit, 5/18 to every session of every member.
        let notify: Shared = Pdu::NormalGroupCreatedNotify(NormalGroupCreatedNotify {
            group_id: Id::Num(group_id),
            group_name: name.as_bytes(),
            group_avatar: avatar.as_bytes(),
            member_ids: members.iter().map(|m| Id::Num(*m)).collect(),
        })
        .to_frame(0)
        .into();
        push::to_users(&st, members.iter().copied(), &notify);
        answer_group(group_id, 201)
    })
}

pub fn get(id: &str) -> StepResult {
    answer_group(parse_id(id)?, 200)
}

pub fn patch(id: &str, body: &[u8]) -> StepResult {
    let id = parse_id(id)?;
    let b: GroupBody = parse_body(body)?;
    if b.members.is_some() {
        return Err(bad("use PUT /v1/groups/{id}/members to change members"));
    }
    check_name_avatar(b.name.as_deref(), b.avatar.as_deref())?;
    Step::read(move |db| {
        load_normal(db, id)?;
        let op = WriteOp::RenameNormalGroup {
            group: id,
            name: b.name.map(String::into_bytes),
            avatar: b.avatar.map(String::into_bytes),
        };
        Step::write(op, move |_| answer_group(id, 200))
    })
}

pub fn set_members(st: &Arc<State>, id: &str, body: &[u8]) -> StepResult {
    let id = parse_id(id)?;
    let b: MembersBody = parse_body(body)?;
    let st = Arc::clone(st);
    Step::read(move |db| {
        load_normal(db, id)?;
        let members = dedup(&b.members);
        check_count(&st, &members)?;
        Step::write(
            WriteOp::SetNormalMembers { group: id, members },
            move |out| {
                let WriteOut::GroupChange {
                    members_before,
                    members_after,
                    ..
                } = out
                else {
                    return Err(internal("unexpected write result"));
                };
                if members_before != members_after {
                    let mut to = members_before;
                    to.extend_from_slice(&members_after);
                    push_members_changed(&st, id, &members_after, &dedup(&to));
                }
                answer_group(id, 200)
            },
        )
    })
}

pub fn delete(st: &Arc<State>, id: &str) -> StepResult {
    let id = parse_id(id)?;
    let st = Arc::clone(st);
    Step::read(move |db| {
        load_normal(db, id)?;
        Step::write(WriteOp::DeleteNormalGroup { group: id }, move |out| {
            let WriteOut::GroupChange { members_before, .. } = out else {
                return Err(internal("unexpected write result"));
            };
            push_members_changed(&st, id, &[], &members_before);
            Step::done(Response {
                status: 204,
                body: None,
            })
        })
    })
}

pub fn post_message(st: &Arc<State>, body: &[u8]) -> StepResult {
    let b: MessageBody = parse_body(body)?;
    let len = b.text.len();
    if len == 0 || u32::try_from(len).map_or(true, |n| n > st.cfg.msg.max_text_len) {
        return Err(bad(format!(
            "text must be 1 to {} bytes",
            st.cfg.msg.max_text_len
        )));
    }
    if st.directory.read().active(b.from).is_none() {
        return Err(bad(format!("from {} is not an active user", b.from)));
    }
    let payload: Arc<[u8]> = b.text.as_bytes().into();
    let (op, to, msg_type) = match (b.to_user, b.to_group) {
        (Some(to), None) => {
            if st.directory.read().active(to).is_none() {
                return Err(bad(format!("to_user {to} is not an active user")));
            }
            let op = WriteOp::StoreP2p {
                from: b.from,
                to,
                msg_type: P2P_TEXT,
                data: Arc::clone(&payload),
            };
            (op, to, P2P_TEXT)
        }
        (None, Some(g)) => {
            if st.groups.live(g).is_none() {
                return Err(not_found(format!("no group {g}")));
            }
            let op = WriteOp::StoreGroupMsgAdmin {
                group: g,
                from: b.from,
                msg_type: GROUP_TEXT,
                data: Arc::clone(&payload),
            };
            (op, g, GROUP_TEXT)
        }
        _ => return Err(bad("exactly one of to_user and to_group is required")),
    };
    // B-ADM-7: after commit the 3/1 (seq_no 0, reserved 0), no 3/2; the outlet encodes and
    // sends it in commit order with client messages.
    let deliver = AdminDelivery {
        delivery: Delivery {
            seq_no: 0,
            from: b.from,
            to,
            msg_type,
            payload,
            attach: Box::default(),
        },
        to_group: msg_type == GROUP_TEXT,
    };
    Step::write_with(op, Some(deliver), |out| {
        let WriteOut::Stored {
            msg_id,
            create_time,
        } = out
        else {
            return Err(internal("unexpected write result"));
        };
        Step::done(Response::json(
            200,
            &json!({ "msg_id": msg_id, "create_time": create_time }),
        ))
    })
}
