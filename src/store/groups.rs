//! Groups (B-GRP): the `groups`, `group_members` and `group_messages` tables.
//!
//! A membership row carries the member's join order (`seq`), the hidden flag of 5/17 (B-RC-4)
//! and one read cursor per family (B-GRP-10: the id of the last group message read). Unread
//! messages of a member in a family = the group's messages with an id above that cursor not sent
//! by the member. Storing a message is O(1) row writes (the message, the group, the sender's
//! cursor) plus un-hiding the members who hid the group (a partial index holds those only).
//!
//! Queries are `pub` (reader threads); changes are `pub(crate)` and run inside the writer's
//! transaction (see `writer.rs`): every check comes before the first write, so a refused change
//! (a result code) writes nothing even without a savepoint.

use std::collections::HashSet;

use rusqlite::{named_params, Connection, OptionalExtension, Row};

use super::{Family, StoreError};

/// `group_type` of a normal group (admin-made, creator 0).
pub const NORMAL: u32 = 1;
/// `group_type` of a temporary group (made by a client with 5/12).
pub const TEMP: u32 = 2;

/// A group with its current members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub id: u32,
    pub group_type: u32,
    pub name: Vec<u8>,
    pub avatar: Vec<u8>,
    /// 0 for normal groups; a temporary group's creator even after it left (B-GRP-6).
    pub creator: u32,
    pub created: u32,
    /// Latest of creation, last message, last membership change (B-GRP-15).
    pub updated: u32,
    /// Id of the newest message, 0 when none.
    pub last_msg_id: u64,
    /// Deleted by an admin (B-GRP-18); such a group has no members.
    pub deleted: bool,
    /// Current members in join order.
    pub members: Vec<u32>,
}

/// A stored group message. `data` is byte-identical to what was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMsg {
    pub id: u64,
    pub group_id: u32,
    pub from_id: u32,
    pub create_time: u32,
    pub msg_type: u8,
    pub data: Vec<u8>,
}

/// The outcome of a membership change (5/14, admin re-membering or deletion). `result` is the
/// 5/15 result code (0 = done); on a refusal nothing changed and `members_before` =
/// `members_after` = the current members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberChange {
    pub result: u32,
    pub group_id: u32,
    /// The requested ids, deduplicated, in request order (B-GRP-5).
    pub listed: Vec<u32>,
    pub members_before: Vec<u32>,
    pub members_after: Vec<u32>,
}

/// 5/15 result codes (protocol.md 8.6).
const RESULT_INVALID: u32 = 1;
const RESULT_NOT_PERMITTED: u32 = 2;
const RESULT_TOO_MANY: u32 = 3;

/// 5/14 `change_type`s.
const CHANGE_ADD: u32 = 0;
const CHANGE_REMOVE: u32 = 1;

/// The cursor column of a family.
fn cursor_col(family: Family) -> &'static str {
    match family {
        Family::Pc => "read_pc",
        Family::Ios => "read_ios",
        Family::Android => "read_android",
    }
}

/// Columns for [`group_from_row`], on `groups` aliased as `g`.
const GROUP_COLUMNS: &str =
    "g.id, g.type, g.name, g.avatar, g.creator, g.created, g.updated, g.last_msg_id, g.deleted";

/// A group row without its members.
fn group_from_row(r: &Row<'_>) -> rusqlite::Result<Group> {
    Ok(Group {
        id: r.get("id")?,
        group_type: r.get("type")?,
        name: r.get("name")?,
        avatar: r.get("avatar")?,
        creator: r.get("creator")?,
        created: r.get("created")?,
        updated: r.get("updated")?,
        last_msg_id: r.get("last_msg_id")?,
        deleted: r.get("deleted")?,
        members: Vec::new(),
    })
}

const MSG_COLUMNS: &str = "gm.id, gm.group_id, gm.from_id, gm.create_time, gm.msg_type, gm.data";

fn msg_from_row(r: &Row<'_>) -> rusqlite::Result<GroupMsg> {
    Ok(GroupMsg {
        id: r.get("id")?,
        group_id: r.get("group_id")?,
        from_id: r.get("from_id")?,
        create_time: r.get("create_time")?,
        msg_type: r.get("msg_type")?,
        data: r.get("data")?,
    })
}

/// The group row alone (members left empty), deleted or not.
fn row(conn: &Connection, id: u32) -> Result<Option<Group>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {GROUP_COLUMNS} FROM groups g WHERE g.id = :id"
    ))?;
    Ok(st
        .query_row(named_params! { ":id": id }, group_from_row)
        .optional()?)
}

/// The current members of a group in join order (empty for an unknown group).
pub fn members(conn: &Connection, group: u32) -> Result<Vec<u32>, StoreError> {
    let mut st = conn
        .prepare_cached("SELECT user_id FROM group_members WHERE group_id = :group ORDER BY seq")?;
    let rows = st.query_map(named_params! { ":group": group }, |r| r.get(0))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Fills in the members of each group.
fn with_members(conn: &Connection, mut groups: Vec<Group>) -> Result<Vec<Group>, StoreError> {
    for g in &mut groups {
        g.members = members(conn, g.id)?;
    }
    Ok(groups)
}

/// One group with its members, deleted ones too (then `deleted` is set and `members` empty).
pub fn get(conn: &Connection, id: u32) -> Result<Option<Group>, StoreError> {
    match row(conn, id)? {
        None => Ok(None),
        Some(mut g) => {
            g.members = members(conn, id)?;
            Ok(Some(g))
        }
    }
}

/// Every group that is not deleted, with its members, id ascending (the server's membership
/// cache at start-up).
pub fn all_live(conn: &Connection) -> Result<Vec<Group>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {GROUP_COLUMNS} FROM groups g WHERE g.deleted = 0 ORDER BY g.id"
    ))?;
    let mut groups = st
        .query_map([], group_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    // One pass over all memberships instead of one query per group.
    let mut st = conn.prepare_cached(
        "SELECT m.group_id, m.user_id FROM group_members m
         JOIN groups g ON g.id = m.group_id
         WHERE g.deleted = 0 ORDER BY m.group_id, m.seq",
    )?;
    let mut rows = st.query([])?;
    let mut at = 0usize;
    while let Some(r) = rows.next()? {
        let group: u32 = r.get(0)?;
        let user: u32 = r.get(1)?;
        // both sequences are in group id order
        while groups.get(at).is_some_and(|g| g.id < group) {
            at += 1;
        }
        match groups.get_mut(at) {
            Some(g) if g.id == group => g.members.push(user),
            _ => {
                return Err(StoreError::Invalid(format!(
                    "membership of group {group} without a group row"
                )))
            }
        }
    }
    Ok(groups)
}

/// B-GRP-14 (5/2): the normal, not deleted groups `user` is a member of, id ascending, at most
/// `limit`, each with all members in join order.
pub fn normal_groups_of(
    conn: &Connection,
    user: u32,
    limit: u32,
) -> Result<Vec<Group>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {GROUP_COLUMNS} FROM group_members m JOIN groups g ON g.id = m.group_id
         WHERE m.user_id = :user AND g.type = {NORMAL} AND g.deleted = 0
         ORDER BY g.id LIMIT :limit"
    ))?;
    let groups = st
        .query_map(
            named_params! { ":user": user, ":limit": limit },
            group_from_row,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    with_members(conn, groups)
}

/// B-GRP-15 (5/17): the groups of both types `user` is a member of and has not hidden, not
/// deleted, `updated` descending (ties: id ascending), at most `limit`, with members.
pub fn recent_groups_of(
    conn: &Connection,
    user: u32,
    limit: u32,
) -> Result<Vec<Group>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {GROUP_COLUMNS} FROM group_members m JOIN groups g ON g.id = m.group_id
         WHERE m.user_id = :user AND m.hidden = 0 AND g.deleted = 0
         ORDER BY g.updated DESC, g.id ASC LIMIT :limit"
    ))?;
    let groups = st
        .query_map(
            named_params! { ":user": user, ":limit": limit },
            group_from_row,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    with_members(conn, groups)
}

/// B-GRP-11 (5/6): (group, min(unread, `cap`)) for every group of `user` with unread > 0 in
/// `family`, the group with the newest message first (ties: id ascending), at most `limit`.
/// Unread = the group's messages after the user's cursor not sent by the user (B-GRP-10).
///
/// Cost: groups whose newest message is not after the cursor are skipped from the group row;
/// for the others at most `cap` matching index entries of that group are counted (the index
/// holds `from_id`, so no message row is read).
pub fn unread_counts(
    conn: &Connection,
    user: u32,
    family: Family,
    cap: u32,
    limit: u32,
) -> Result<Vec<(u32, u32)>, StoreError> {
    let col = cursor_col(family);
    let mut st = conn.prepare_cached(&format!(
        "SELECT group_id, cnt FROM (
             SELECT m.group_id AS group_id, g.last_msg_id AS last,
                    (SELECT count(*) FROM (
                         SELECT 1 FROM group_messages gm
                         WHERE gm.group_id = m.group_id AND gm.id > m.{col}
                           AND gm.from_id <> :user
                         LIMIT :cap)) AS cnt
             FROM group_members m JOIN groups g ON g.id = m.group_id
             WHERE m.user_id = :user AND g.deleted = 0 AND g.last_msg_id > m.{col}
         )
         WHERE cnt > 0
         ORDER BY last DESC, group_id ASC
         LIMIT :limit"
    ))?;
    let rows = st.query_map(
        named_params! { ":user": user, ":cap": cap, ":limit": limit },
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// B-GRP-12 (5/8): `user`'s unread messages of `group` in `family`, newest first, at most
/// `limit`; empty for a non-member (and for a deleted group, which has no members).
/// Changes nothing.
pub fn unread_messages(
    conn: &Connection,
    user: u32,
    group: u32,
    family: Family,
    limit: u32,
) -> Result<Vec<GroupMsg>, StoreError> {
    let col = cursor_col(family);
    let mut st = conn.prepare_cached(&format!(
        "SELECT {MSG_COLUMNS} FROM group_members m
         JOIN group_messages gm ON gm.group_id = m.group_id AND gm.id > m.{col}
         WHERE m.group_id = :group AND m.user_id = :user AND gm.from_id <> :user
         ORDER BY gm.id DESC LIMIT :limit"
    ))?;
    let rows = st.query_map(
        named_params! { ":user": user, ":group": group, ":limit": limit },
        msg_from_row,
    )?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// One group message by id.
pub fn message(conn: &Connection, id: u64) -> Result<Option<GroupMsg>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {MSG_COLUMNS} FROM group_messages gm WHERE gm.id = :id"
    ))?;
    Ok(st
        .query_row(named_params! { ":id": id }, msg_from_row)
        .optional()?)
}

// ---------------------------------------------------------------------------------------------
// Changes (writer thread, inside its transaction)

/// `ids` without repeats, first occurrence kept.
fn dedup(ids: &[u32]) -> Vec<u32> {
    let mut seen = HashSet::with_capacity(ids.len());
    ids.iter().copied().filter(|id| seen.insert(*id)).collect()
}

/// Whether `id` is an active user (exists, not disabled).
fn is_active_user(conn: &Connection, id: u32) -> Result<bool, StoreError> {
    let mut st = conn.prepare_cached("SELECT 1 FROM users WHERE id = :id AND disabled = 0")?;
    Ok(st.exists(named_params! { ":id": id })?)
}

/// `Invalid` naming the first id of `ids` that is not an active user.
fn check_active(conn: &Connection, ids: &[u32]) -> Result<(), StoreError> {
    for &id in ids {
        if !is_active_user(conn, id)? {
            return Err(StoreError::Invalid(format!(
                "user {id} is not an active user"
            )));
        }
    }
    Ok(())
}

/// Appends `users` (none of them a member yet) to the group in this order, every cursor at
/// `cursor` (the group's latest message, B-GRP-10), not hidden.
fn insert_members(
    conn: &Connection,
    group: u32,
    users: &[u32],
    cursor: u64,
) -> Result<(), StoreError> {
    if users.is_empty() {
        return Ok(());
    }
    let mut seq: i64 = conn
        .prepare_cached("SELECT IFNULL(max(seq), 0) FROM group_members WHERE group_id = :group")?
        .query_row(named_params! { ":group": group }, |r| r.get(0))?;
    let mut st = conn.prepare_cached(
        "INSERT INTO group_members (group_id, user_id, seq, hidden, read_pc, read_ios, read_android)
         VALUES (:group, :user, :seq, 0, :cursor, :cursor, :cursor)",
    )?;
    for &user in users {
        seq += 1;
        st.execute(
            named_params! { ":group": group, ":user": user, ":seq": seq, ":cursor": cursor },
        )?;
    }
    Ok(())
}

fn delete_member(conn: &Connection, group: u32, user: u32) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM group_members WHERE group_id = :group AND user_id = :user")?
        .execute(named_params! { ":group": group, ":user": user })?;
    Ok(())
}

fn set_updated(conn: &Connection, group: u32, time: u32) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE groups SET updated = :time WHERE id = :group")?
        .execute(named_params! { ":group": group, ":time": time })?;
    Ok(())
}

/// A new group row, its id from the sequence shared with users (B-GRP-20).
fn insert_group(
    conn: &Connection,
    group_type: u32,
    name: &[u8],
    avatar: &[u8],
    creator: u32,
    time: u32,
) -> Result<u32, StoreError> {
    // B-GRP-20: the id comes from the sequence shared with users, in this transaction.
    let id = super::next_id(conn)?;
    conn.prepare_cached(
        "INSERT INTO groups (id, type, name, avatar, creator, created, updated, last_msg_id,
                             deleted)
         VALUES (:id, :type, :name, :avatar, :creator, :time, :time, 0, 0)",
    )?
    .execute(named_params! {
        ":id": id,
        ":type": group_type,
        ":name": name,
        ":avatar": avatar,
        ":creator": creator,
        ":time": time,
    })?;
    Ok(id)
}

/// B-GRP-2 (5/12): a temporary group of `creator` then `listed` in order without repeats (the
/// creator not again). The caller checked name, avatar and that every listed id is an active
/// user. `Ok(None)` (nothing stored) when that is more than `max_members` members; otherwise the
/// new id and the members. Every cursor starts at 0 (a new group has no messages).
pub(crate) fn create_temp(
    conn: &Connection,
    creator: u32,
    name: &[u8],
    avatar: &[u8],
    listed: &[u32],
    max_members: u32,
    time: u32,
) -> Result<Option<(u32, Vec<u32>)>, StoreError> {
    let mut all = Vec::with_capacity(listed.len() + 1);
    all.push(creator);
    all.extend_from_slice(listed);
    let members = dedup(&all);
    if members.len() > max_members as usize {
        return Ok(None);
    }
    let id = insert_group(conn, TEMP, name, avatar, creator, time)?;
    insert_members(conn, id, &members, 0)?;
    Ok(Some((id, members)))
}

/// B-GRP-1, B-GRP-17 (admin): a normal group (creator 0) with `members` in the given order
/// without repeats; each must be an active user (`Invalid` otherwise). The caller checks
/// `MaxNormalGroupMembers`. Returns the new id and the members.
pub(crate) fn create_normal(
    conn: &Connection,
    name: &[u8],
    avatar: &[u8],
    members: &[u32],
    time: u32,
) -> Result<(u32, Vec<u32>), StoreError> {
    let members = dedup(members);
    check_active(conn, &members)?;
    let id = insert_group(conn, NORMAL, name, avatar, 0, time)?;
    insert_members(conn, id, &members, 0)?;
    Ok((id, members))
}

/// B-GRP-4, B-GRP-5 (5/14): adds or removes `users` of temporary group `group` for
/// `requester`. The checks run in the order of B-GRP-4; the first failure decides and nothing
/// changes. A current member may add and may leave (list = itself); any other removal needs
/// the creator, who must still be a member. Adding a member or removing a non-member is a no-op
/// that stays listed. New members' cursors start at the group's latest message; `updated` =
/// `time` when the membership changed.
pub(crate) fn change_members(
    conn: &Connection,
    group: u32,
    requester: u32,
    change_type: u32,
    users: &[u32],
    max_members: u32,
    time: u32,
) -> Result<MemberChange, StoreError> {
    let listed = dedup(users);
    let g = match row(conn, group)? {
        Some(g) if !g.deleted => g,
        _ => {
            return Ok(MemberChange {
                result: RESULT_INVALID,
                group_id: group,
                listed,
                members_before: Vec::new(),
                members_after: Vec::new(),
            })
        }
    };
    let before = members(conn, group)?;
    let refuse = |result: u32, listed: Vec<u32>, before: Vec<u32>| MemberChange {
        result,
        group_id: group,
        listed,
        members_after: before.clone(),
        members_before: before,
    };
    if g.group_type != TEMP {
        return Ok(refuse(RESULT_NOT_PERMITTED, listed, before));
    }
    if !(change_type == CHANGE_ADD || change_type == CHANGE_REMOVE) || listed.is_empty() {
        return Ok(refuse(RESULT_INVALID, listed, before));
    }
    if change_type == CHANGE_ADD {
        for &u in &listed {
            if !is_active_user(conn, u)? {
                return Ok(refuse(RESULT_INVALID, listed, before));
            }
        }
    }
    let current: HashSet<u32> = before.iter().copied().collect();
    let is_member = current.contains(&requester);
    let permitted = is_member
        && (change_type == CHANGE_ADD
            || listed.as_slice() == [requester]
            || requester == g.creator);
    if !permitted {
        return Ok(refuse(RESULT_NOT_PERMITTED, listed, before));
    }
    let after: Vec<u32> = if change_type == CHANGE_ADD {
        let new: Vec<u32> = listed
            .iter()
            .copied()
            .filter(|u| !current.contains(u))
            .collect();
        if before.len() + new.len() > max_members as usize {
            return Ok(refuse(RESULT_TOO_MANY, listed, before));
        }
        insert_members(conn, group, &new, g.last_msg_id)?;
        before.iter().chain(&new).copied().collect()
    } else {
        let gone: HashSet<u32> = listed.iter().copied().collect();
        for &u in &listed {
            if current.contains(&u) {
                delete_member(conn, group, u)?;
            }
        }
        before
            .iter()
            .copied()
            .filter(|u| !gone.contains(u))
            .collect()
    };
    if after != before {
        set_updated(conn, group, time)?;
    }
    Ok(MemberChange {
        result: 0,
        group_id: group,
        listed,
        members_before: before,
        members_after: after,
    })
}

/// B-GRP-18 (admin): replaces normal group `group`'s members by `new_members` (deduplicated).
/// Kept members keep their join order, cursors and hidden flag; new ones follow in the given
/// order, cursors at the latest message, and must be active users (`Invalid`; a kept disabled
/// member may stay, B-USER-5). Unknown or deleted group: `NotFound`; temporary: `Invalid`.
/// `updated` = `time` when the list changed.
pub(crate) fn set_normal_members(
    conn: &Connection,
    group: u32,
    new_members: &[u32],
    time: u32,
) -> Result<MemberChange, StoreError> {
    let g = live_normal(conn, group)?;
    let listed = dedup(new_members);
    let before = members(conn, group)?;
    let current: HashSet<u32> = before.iter().copied().collect();
    let wanted: HashSet<u32> = listed.iter().copied().collect();
    let added: Vec<u32> = listed
        .iter()
        .copied()
        .filter(|u| !current.contains(u))
        .collect();
    check_active(conn, &added)?;
    let mut after = Vec::with_capacity(listed.len());
    for &u in &before {
        if wanted.contains(&u) {
            after.push(u);
        } else {
            delete_member(conn, group, u)?;
        }
    }
    insert_members(conn, group, &added, g.last_msg_id)?;
    after.extend_from_slice(&added);
    if after != before {
        set_updated(conn, group, time)?;
    }
    Ok(MemberChange {
        result: 0,
        group_id: group,
        listed,
        members_before: before,
        members_after: after,
    })
}

/// B-GRP-18 (admin): marks normal group `group` deleted and removes every membership (cursors
/// and hidden flags go with them); messages stay. Unknown or already deleted: `NotFound`;
/// temporary: `Invalid`.
pub(crate) fn delete_normal(
    conn: &Connection,
    group: u32,
    time: u32,
) -> Result<MemberChange, StoreError> {
    live_normal(conn, group)?;
    let before = members(conn, group)?;
    conn.prepare_cached("DELETE FROM group_members WHERE group_id = :group")?
        .execute(named_params! { ":group": group })?;
    conn.prepare_cached("UPDATE groups SET deleted = 1, updated = :time WHERE id = :group")?
        .execute(named_params! { ":group": group, ":time": time })?;
    Ok(MemberChange {
        result: 0,
        group_id: group,
        listed: Vec::new(),
        members_before: before,
        members_after: Vec::new(),
    })
}

/// The row of a normal group that is not deleted, or the admin errors.
fn live_normal(conn: &Connection, group: u32) -> Result<Group, StoreError> {
    match row(conn, group)? {
        Some(g) if !g.deleted && g.group_type == NORMAL => Ok(g),
        Some(g) if !g.deleted => Err(StoreError::Invalid(format!(
            "group {group} is a temporary group"
        ))),
        _ => Err(StoreError::NotFound(format!("group {group}"))),
    }
}

/// Who stores a group message (B-GRP-8 or B-ADM-7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sender {
    /// A client session of this family: must be a current member; its cursor in that family
    /// moves to the message.
    Client(Family),
    /// The admin API (B-ADM-7): no membership check, no cursor moves.
    Admin,
}

/// B-GRP-8: stores a message of `from` in `group` (`create_time` = `time`): the group's
/// `last_msg_id` and `updated` follow it, every member who hid the group sees it again (B-RC-4)
/// and, for a client, the sender's cursor in its family moves to it. A client sender that is not
/// a current member, and a deleted or unknown group, are `Invalid` (the authoritative guard;
/// the worker checks its cache first). Returns the message id.
pub(crate) fn store_msg(
    conn: &Connection,
    group: u32,
    from: u32,
    msg_type: u8,
    data: &[u8],
    sender: Sender,
    time: u32,
) -> Result<u64, StoreError> {
    let live = conn
        .prepare_cached("SELECT 1 FROM groups WHERE id = :group AND deleted = 0")?
        .exists(named_params! { ":group": group })?;
    if !live {
        return Err(StoreError::Invalid(format!("no group {group}")));
    }
    if matches!(sender, Sender::Client(_)) && !is_member(conn, group, from)? {
        return Err(StoreError::Invalid(format!(
            "user {from} is not a member of group {group}"
        )));
    }
    conn.prepare_cached(
        "INSERT INTO group_messages (group_id, from_id, create_time, msg_type, data)
         VALUES (:group, :from, :time, :msg_type, :data)",
    )?
    .execute(named_params! {
        ":group": group,
        ":from": from,
        ":time": time,
        ":msg_type": msg_type,
        ":data": data,
    })?;
    let rowid = conn.last_insert_rowid();
    let id = u64::try_from(rowid)
        .map_err(|_| StoreError::Invalid(format!("negative group message id {rowid}")))?;
    conn.prepare_cached("UPDATE groups SET last_msg_id = :id, updated = :time WHERE id = :group")?
        .execute(named_params! { ":group": group, ":id": id, ":time": time })?;
    // Only the hidden rows, through the partial index (sql/002_groups.sql).
    conn.prepare_cached(
        "UPDATE group_members INDEXED BY group_members_hidden SET hidden = 0
         WHERE group_id = :group AND hidden = 1",
    )?
    .execute(named_params! { ":group": group })?;
    if let Sender::Client(family) = sender {
        let col = cursor_col(family);
        conn.prepare_cached(&format!(
            "UPDATE group_members SET {col} = :id WHERE group_id = :group AND user_id = :user"
        ))?
        .execute(named_params! { ":group": group, ":user": from, ":id": id })?;
    }
    Ok(id)
}

fn is_member(conn: &Connection, group: u32, user: u32) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM group_members WHERE group_id = :group AND user_id = :user")?
        .exists(named_params! { ":group": group, ":user": user })?)
}

/// B-GRP-13 (5/11): a member's cursor for `family` moves to the group's latest message; other
/// families untouched. Non-member: no-op.
pub(crate) fn read_ack(
    conn: &Connection,
    user: u32,
    group: u32,
    family: Family,
) -> Result<(), StoreError> {
    let col = cursor_col(family);
    conn.prepare_cached(&format!(
        "UPDATE group_members
         SET {col} = (SELECT last_msg_id FROM groups WHERE id = :group)
         WHERE group_id = :group AND user_id = :user"
    ))?
    .execute(named_params! { ":group": group, ":user": user })?;
    Ok(())
}

/// B-RC-4 (2/12 with session type 2 or 3): a member hides the group from its 5/17. Returns
/// false (nothing changed) for a non-member or an unknown group.
pub(crate) fn hide(conn: &Connection, user: u32, group: u32) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE group_members SET hidden = 1 WHERE group_id = :group AND user_id = :user",
        )?
        .execute(named_params! { ":group": group, ":user": user })?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{mem, users};

    const ALL: [Family; 3] = [Family::Pc, Family::Ios, Family::Android];
    const MAX: u32 = 1000;

    /// A temporary group of `creator` + `listed` at `time`.
    fn temp(c: &Connection, creator: u32, listed: &[u32], time: u32) -> u32 {
        create_temp(c, creator, b"t", b"", listed, MAX, time)
            .unwrap()
            .unwrap()
            .0
    }

    fn send(c: &Connection, g: u32, from: u32, family: Family, text: &str, time: u32) -> u64 {
        store_msg(
            c,
            g,
            from,
            0x11,
            text.as_bytes(),
            Sender::Client(family),
            time,
        )
        .unwrap()
    }

    fn change(c: &Connection, g: u32, req: u32, ct: u32, users: &[u32]) -> MemberChange {
        change_members(c, g, req, ct, users, MAX, 500).unwrap()
    }

    fn count(c: &Connection, user: u32, f: Family) -> Vec<(u32, u32)> {
        unread_counts(c, user, f, 150, 1000).unwrap()
    }

    fn texts(c: &Connection, user: u32, g: u32, f: Family) -> Vec<String> {
        unread_messages(c, user, g, f, 150)
            .unwrap()
            .into_iter()
            .map(|m| String::from_utf8(m.data).unwrap())
            .collect()
    }

    fn ids(groups: &[Group]) -> Vec<u32> {
        groups.iter().map(|g| g.id).collect()
    }

    #[test]
    fn create_temp_members_and_get() {
        let c = mem();
        users(&c, 4);
        // creator listed again, repeats: removed; order kept
        let (id, members) = create_temp(&c, 2, b"name\xff", b"av", &[3, 2, 1, 3], MAX, 77)
            .unwrap()
            .unwrap();
        assert_eq!(members, vec![2, 3, 1]);
        let g = get(&c, id).unwrap().unwrap();
        assert_eq!(
            g,
            Group {
                id,
                group_type: TEMP,
                name: b"name\xff".to_vec(),
                avatar: b"av".to_vec(),
                creator: 2,
                created: 77,
                updated: 77,
                last_msg_id: 0,
                deleted: false,
                members: vec![2, 3, 1],
            }
        );
        // an empty list gives a creator-only group
        let solo = temp(&c, 4, &[], 78);
        assert_eq!(get(&c, solo).unwrap().unwrap().members, vec![4]);
        assert_eq!(get(&c, 999).unwrap(), None);
        // the cap counts the creator: 3 members with a cap of 2 -> nothing stored
        assert_eq!(create_temp(&c, 1, b"x", b"", &[2, 3], 2, 79).unwrap(), None);
        assert_eq!(
            create_temp(&c, 1, b"x", b"", &[2, 2, 1], 2, 79)
                .unwrap()
                .unwrap()
                .1,
            vec![1, 2]
        );
        let n: i64 = c
            .query_row("SELECT count(*) FROM groups", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
        // an unknown user is refused by the foreign key (the caller checks first)
        assert!(create_temp(&c, 1, b"x", b"", &[42], MAX, 80).is_err());
    }

    #[test]
    fn permissions_of_b_grp_4() {
        let c = mem();
        users(&c, 6);
        // creator 1; members 1, 2, 3; 4 and 5 outsiders
        let g = temp(&c, 1, &[2, 3], 10);
        let ok = |r: &MemberChange| r.result == 0;

        // member adds: ok (adding an existing member is a listed no-op)
        let r = change(&c, g, 2, 0, &[4, 4, 1]);
        assert!(ok(&r), "{r:?}");
        assert_eq!(r.listed, vec![4, 1]);
        assert_eq!(r.members_before, vec![1, 2, 3]);
        assert_eq!(r.members_after, vec![1, 2, 3, 4]);
        assert_eq!(members(&c, g).unwrap(), vec![1, 2, 3, 4]);
        assert_eq!(get(&c, g).unwrap().unwrap().updated, 500);

        // non-member adds: 2
        assert_eq!(change(&c, g, 5, 0, &[5]).result, 2);
        // member removes another: 2
        assert_eq!(change(&c, g, 2, 1, &[3]).result, 2);
        assert_eq!(change(&c, g, 2, 1, &[2, 3]).result, 2);
        // non-member "leaves": 2
        assert_eq!(change(&c, g, 5, 1, &[5]).result, 2);
        assert_eq!(members(&c, g).unwrap(), vec![1, 2, 3, 4]);

        // member leaves (a repeated self still counts as leaving): ok
        let r = change(&c, g, 4, 1, &[4, 4]);
        assert!(ok(&r), "{r:?}");
        assert_eq!(
            (r.listed.clone(), r.members_after.clone()),
            (vec![4], vec![1, 2, 3])
        );

        // creator removes others, with a non-member listed (no-op, listed): ok
        let r = change(&c, g, 1, 1, &[3, 5]);
        assert!(ok(&r), "{r:?}");
        assert_eq!(r.listed, vec![3, 5]);
        assert_eq!(r.members_after, vec![1, 2]);

        // creator removes itself with another: ok; creator id stays (B-GRP-6)
        let r = change(&c, g, 1, 1, &[1, 2]);
        assert!(ok(&r), "{r:?}");
        assert!(r.members_after.is_empty());
        let left = get(&c, g).unwrap().unwrap();
        assert_eq!(
            (left.creator, left.members.len(), left.deleted),
            (1, 0, false)
        );
        // nobody is a member any more: nobody can add
        assert_eq!(change(&c, g, 1, 0, &[2]).result, 2);

        // a creator who left cannot remove others
        let g2 = temp(&c, 1, &[2, 3], 10);
        assert!(ok(&change(&c, g2, 1, 1, &[1])));
        assert_eq!(change(&c, g2, 1, 1, &[3]).result, 2);
        assert_eq!(members(&c, g2).unwrap(), vec![2, 3]);
    }

    #[test]
    fn result_codes_and_their_order() {
        let c = mem();
        users(&c, 5);
        c.execute("UPDATE users SET disabled = 1 WHERE id = 5", [])
            .unwrap();
        let g = temp(&c, 1, &[2], 10);
        let (normal, _) = create_normal(&c, b"n", b"", &[1, 2], 10).unwrap();

        // no such group: 1 (before everything else)
        let r = change(&c, 99, 1, 7, &[]);
        assert_eq!((r.result, r.members_before.len()), (1, 0));
        // normal group: 2 (before bad change_type / empty list / unknown user)
        assert_eq!(change(&c, normal, 1, 0, &[3]).result, 2);
        assert_eq!(change(&c, normal, 1, 7, &[]).result, 2);
        assert_eq!(change(&c, normal, 1, 0, &[42]).result, 2);
        // bad change_type, empty list: 1 (before permission)
        assert_eq!(change(&c, g, 4, 2, &[3]).result, 1);
        assert_eq!(change(&c, g, 4, 0, &[]).result, 1);
        assert_eq!(change(&c, g, 1, 1, &[]).result, 1);
        // unknown or disabled user in an add: 1 (before permission and cap)
        assert_eq!(change(&c, g, 4, 0, &[42]).result, 1);
        assert_eq!(change(&c, g, 1, 0, &[3, 5]).result, 1);
        assert_eq!(
            change_members(&c, g, 4, 0, &[3, 42], 1, 500)
                .unwrap()
                .result,
            1
        );
        // ... but in a removal an unknown id is just a listed no-op
        let r = change(&c, g, 1, 1, &[42]);
        assert_eq!((r.result, r.listed.clone()), (0, vec![42]));
        // permission before cap: 2
        assert_eq!(change_members(&c, g, 4, 0, &[3], 2, 500).unwrap().result, 2);
        // cap: 3; re-adding members does not count, only new ones
        let r = change_members(&c, g, 1, 0, &[3, 4], 3, 500).unwrap();
        assert_eq!(r.result, 3);
        assert_eq!(
            (r.members_before.clone(), r.members_after.clone()),
            (vec![1, 2], vec![1, 2])
        );
        assert_eq!(
            change_members(&c, g, 1, 0, &[2, 3], 3, 500).unwrap().result,
            0
        );
        assert_eq!(
            change_members(&c, g, 1, 0, &[1, 2, 3], 3, 500)
                .unwrap()
                .result,
            0
        );
        assert_eq!(change_members(&c, g, 1, 0, &[4], 3, 500).unwrap().result, 3);
        // failures changed nothing; updated moved only with the successful add
        let now = get(&c, g).unwrap().unwrap();
        assert_eq!(now.members, vec![1, 2, 3]);
        assert_eq!(get(&c, normal).unwrap().unwrap().members, vec![1, 2]);
        // a listed no-op does not move `updated`
        let r = change_members(&c, g, 1, 0, &[2], 3, 900).unwrap();
        assert_eq!((r.result, r.members_after == r.members_before), (0, true));
        assert_eq!(get(&c, g).unwrap().unwrap().updated, now.updated);
    }

    #[test]
    fn cursors_unread_and_read_ack() {
        let c = mem();
        users(&c, 4);
        let g = temp(&c, 1, &[2], 10);
        send(&c, g, 1, Family::Pc, "a", 11);
        send(&c, g, 1, Family::Pc, "b", 12);
        // own messages are never unread
        for f in ALL {
            assert!(count(&c, 1, f).is_empty());
            assert!(texts(&c, 1, g, f).is_empty());
            assert_eq!(count(&c, 2, f), vec![(g, 2)]);
            assert_eq!(texts(&c, 2, g, f), ["b", "a"]);
        }
        // a new member does not see older messages as unread (B-GRP-10)
        assert_eq!(change(&c, g, 2, 0, &[3]).result, 0);
        for f in ALL {
            assert!(count(&c, 3, f).is_empty());
            assert!(texts(&c, 3, g, f).is_empty());
        }
        // sending moves only the sender's cursor, only in its family
        send(&c, g, 2, Family::Ios, "c", 13);
        assert!(count(&c, 2, Family::Ios).is_empty());
        assert_eq!(count(&c, 2, Family::Pc), vec![(g, 2)]);
        assert_eq!(texts(&c, 2, g, Family::Android), ["b", "a"]);
        assert_eq!(count(&c, 1, Family::Pc), vec![(g, 1)]);
        assert_eq!(texts(&c, 3, g, Family::Pc), ["c"]);
        // read ack in pc leaves ios unread
        read_ack(&c, 3, g, Family::Pc).unwrap();
        assert!(count(&c, 3, Family::Pc).is_empty());
        assert_eq!(count(&c, 3, Family::Ios), vec![(g, 1)]);
        // a non-member's ack and query: no-op, empty
        read_ack(&c, 4, g, Family::Pc).unwrap();
        assert!(texts(&c, 4, g, Family::Pc).is_empty());
        assert!(count(&c, 4, Family::Pc).is_empty());
        // unread_messages changes nothing; the limit keeps the newest
        assert_eq!(texts(&c, 3, g, Family::Ios), ["c"]);
        assert_eq!(texts(&c, 3, g, Family::Ios), ["c"]);
        assert_eq!(texts(&c, 1, g, Family::Pc), ["c"]);
        send(&c, g, 1, Family::Pc, "d", 14);
        assert_eq!(texts(&c, 2, g, Family::Pc), ["d", "b", "a"]);
        let two = unread_messages(&c, 2, g, Family::Pc, 2).unwrap();
        assert_eq!(two.len(), 2);
        let m = two.first().unwrap();
        assert_eq!(
            (m.group_id, m.from_id, m.create_time, m.msg_type),
            (g, 1, 14, 0x11)
        );
        assert_eq!(message(&c, m.id).unwrap().as_ref(), Some(m));
        // a removed member has no unread any more, and a re-added one starts at the latest
        assert_eq!(change(&c, g, 2, 1, &[2]).result, 0);
        assert!(count(&c, 2, Family::Pc).is_empty());
        assert!(texts(&c, 2, g, Family::Pc).is_empty());
        assert_eq!(change(&c, g, 1, 0, &[2]).result, 0);
        assert!(count(&c, 2, Family::Pc).is_empty());
        assert_eq!(members(&c, g).unwrap(), vec![1, 3, 2]);
    }

    #[test]
    fn unread_counts_order_cap_and_limit() {
        let c = mem();
        users(&c, 3);
        let g1 = temp(&c, 1, &[2], 10);
        let g2 = temp(&c, 1, &[2], 10);
        let g3 = temp(&c, 1, &[2], 10);
        for i in 0..5 {
            send(&c, g1, 1, Family::Pc, &format!("{i}"), 11);
        }
        send(&c, g3, 1, Family::Pc, "x", 12);
        send(&c, g2, 1, Family::Pc, "y", 13);
        // own message newest in g1: it orders the group but does not count
        send(&c, g1, 2, Family::Android, "mine", 14);
        assert_eq!(count(&c, 2, Family::Pc), vec![(g1, 5), (g2, 1), (g3, 1)]);
        assert_eq!(
            unread_counts(&c, 2, Family::Pc, 3, 10).unwrap(),
            vec![(g1, 3), (g2, 1), (g3, 1)]
        );
        assert_eq!(
            unread_counts(&c, 2, Family::Pc, 150, 2).unwrap(),
            vec![(g1, 5), (g2, 1)]
        );
        // the sender's android cursor in g1 moved to its own message: g1 read there
        assert_eq!(count(&c, 2, Family::Android), vec![(g2, 1), (g3, 1)]);
        assert_eq!(count(&c, 1, Family::Pc), vec![(g1, 1)]);
        // deleted groups have no members, so no unread
        let (n, _) = create_normal(&c, b"n", b"", &[1, 2], 20).unwrap();
        store_msg(&c, n, 1, 0x11, b"z", Sender::Client(Family::Pc), 21).unwrap();
        assert_eq!(count(&c, 2, Family::Pc).first(), Some(&(n, 1)));
        delete_normal(&c, n, 22).unwrap();
        assert_eq!(count(&c, 2, Family::Pc), vec![(g1, 5), (g2, 1), (g3, 1)]);
    }

    #[test]
    fn store_msg_guards_and_group_fields() {
        let c = mem();
        users(&c, 3);
        let g = temp(&c, 1, &[2], 10);
        let id = send(&c, g, 2, Family::Pc, "hi", 30);
        let row = get(&c, g).unwrap().unwrap();
        assert_eq!((row.last_msg_id, row.updated, row.created), (id, 30, 10));
        // non-member, unknown group, empty payload: refused, nothing stored
        assert!(matches!(
            store_msg(&c, g, 3, 0x11, b"x", Sender::Client(Family::Pc), 31),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            store_msg(&c, 77, 1, 0x11, b"x", Sender::Client(Family::Pc), 31),
            Err(StoreError::Invalid(_))
        ));
        assert!(store_msg(&c, g, 1, 0x11, b"", Sender::Client(Family::Pc), 31).is_err());
        // the admin path (B-ADM-7) skips the membership check and moves no cursor
        let admin = store_msg(&c, g, 3, 0x11, b"notice", Sender::Admin, 32).unwrap();
        assert!(admin > id);
        assert_eq!(count(&c, 2, Family::Pc), vec![(g, 1)]);
        assert_eq!(count(&c, 1, Family::Pc), vec![(g, 2)]);
        let n: i64 = c
            .query_row("SELECT count(*) FROM group_messages", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
        // a deleted group accepts no messages, not even from the admin
        let (normal, _) = create_normal(&c, b"n", b"", &[1], 40).unwrap();
        delete_normal(&c, normal, 41).unwrap();
        assert!(store_msg(&c, normal, 1, 0x11, b"x", Sender::Admin, 42).is_err());
    }

    #[test]
    fn hide_and_unhide_by_next_message() {
        let c = mem();
        users(&c, 3);
        let g1 = temp(&c, 1, &[2, 3], 10);
        let g2 = temp(&c, 1, &[2], 20);
        assert_eq!(ids(&recent_groups_of(&c, 2, 100).unwrap()), [g2, g1]);
        assert!(hide(&c, 2, g2).unwrap());
        assert!(hide(&c, 3, g1).unwrap());
        assert!(hide(&c, 2, g2).unwrap()); // again: still a member, ok
        assert!(!hide(&c, 3, g2).unwrap()); // not a member
        assert!(!hide(&c, 2, 99).unwrap()); // no group
        assert_eq!(ids(&recent_groups_of(&c, 2, 100).unwrap()), [g1]);
        assert_eq!(ids(&recent_groups_of(&c, 1, 100).unwrap()), [g2, g1]); // others untouched
        assert!(recent_groups_of(&c, 3, 100).unwrap().is_empty());
        // a message in g1 un-hides it for 3 only; g2 stays hidden for 2
        send(&c, g1, 1, Family::Pc, "m", 30);
        assert_eq!(ids(&recent_groups_of(&c, 3, 100).unwrap()), [g1]);
        assert_eq!(ids(&recent_groups_of(&c, 2, 100).unwrap()), [g1]);
        send(&c, g2, 1, Family::Pc, "m", 31);
        assert_eq!(ids(&recent_groups_of(&c, 2, 100).unwrap()), [g2, g1]);
        // the un-hide uses the partial index, not a scan of the group's members
        let plan: String = c
            .query_row(
                "EXPLAIN QUERY PLAN UPDATE group_members INDEXED BY group_members_hidden
                 SET hidden = 0 WHERE group_id = 1 AND hidden = 1",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("group_members_hidden"), "{plan}");
    }

    #[test]
    fn normal_and_recent_lists_order_and_limits() {
        let c = mem();
        users(&c, 4);
        let (n1, _) = create_normal(&c, b"n1", b"a1", &[3, 1, 2], 50).unwrap();
        let t1 = temp(&c, 1, &[2], 40);
        let (n2, _) = create_normal(&c, b"n2", b"", &[1], 30).unwrap();
        let (n3, _) = create_normal(&c, b"n3", b"", &[2], 60).unwrap();
        let t2 = temp(&c, 2, &[1], 50);
        // 5/2: normal only, member only, id ascending, members in join order
        let list = normal_groups_of(&c, 1, 200).unwrap();
        assert_eq!(ids(&list), [n1, n2]);
        let first = list.first().unwrap();
        assert_eq!(
            (first.members.clone(), first.creator, first.group_type),
            (vec![3, 1, 2], 0, NORMAL)
        );
        assert_eq!(first.avatar, b"a1");
        assert_eq!(ids(&normal_groups_of(&c, 1, 1).unwrap()), [n1]);
        assert_eq!(ids(&normal_groups_of(&c, 2, 200).unwrap()), [n1, n3]);
        assert!(normal_groups_of(&c, 4, 200).unwrap().is_empty());
        // 5/17: both types, updated desc, ties id asc
        assert_eq!(
            ids(&recent_groups_of(&c, 1, 100).unwrap()),
            [n1, t2, t1, n2]
        );
        assert_eq!(ids(&recent_groups_of(&c, 1, 2).unwrap()), [n1, t2]);
        // a message and a membership change move `updated`
        send(&c, n2, 1, Family::Pc, "x", 70);
        assert_eq!(
            change_members(&c, t1, 1, 0, &[4], MAX, 65).unwrap().result,
            0
        );
        assert_eq!(
            ids(&recent_groups_of(&c, 1, 100).unwrap()),
            [n2, t1, n1, t2]
        );
        // deleted groups disappear from both lists
        delete_normal(&c, n2, 80).unwrap();
        assert_eq!(ids(&normal_groups_of(&c, 1, 200).unwrap()), [n1]);
        assert_eq!(ids(&recent_groups_of(&c, 1, 100).unwrap()), [t1, n1, t2]);
    }

    #[test]
    fn admin_create_set_delete() {
        let c = mem();
        users(&c, 5);
        c.execute("UPDATE users SET disabled = 1 WHERE id = 5", [])
            .unwrap();
        // create: deduplicated, order kept, inactive members refused
        let (g, m) = create_normal(&c, b"staff", b"av", &[2, 1, 2, 3], 10).unwrap();
        assert_eq!(m, vec![2, 1, 3]);
        assert!(matches!(
            create_normal(&c, b"x", b"", &[1, 5], 10),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            create_normal(&c, b"x", b"", &[1, 9], 10),
            Err(StoreError::Invalid(_))
        ));
        let n: i64 = c
            .query_row("SELECT count(*) FROM groups", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);

        // messages: 1 reads up to here in pc
        store_msg(&c, g, 2, 0x11, b"old", Sender::Client(Family::Pc), 11).unwrap();
        read_ack(&c, 1, g, Family::Pc).unwrap();
        store_msg(&c, g, 2, 0x11, b"new", Sender::Client(Family::Pc), 12).unwrap();
        c.execute("UPDATE users SET disabled = 1 WHERE id = 3", [])
            .unwrap();

        // set: 2 leaves, 1 and (disabled) 3 stay with their cursors, 4 joins at the latest
        let r = set_normal_members(&c, g, &[4, 3, 1, 4], 20).unwrap();
        assert_eq!(r.result, 0);
        assert_eq!(r.listed, vec![4, 3, 1]);
        assert_eq!(r.members_before, vec![2, 1, 3]);
        assert_eq!(r.members_after, vec![1, 3, 4]);
        assert_eq!(get(&c, g).unwrap().unwrap().members, vec![1, 3, 4]);
        assert_eq!(get(&c, g).unwrap().unwrap().updated, 20);
        assert_eq!(texts(&c, 1, g, Family::Pc), ["new"]);
        assert_eq!(texts(&c, 1, g, Family::Ios), ["new", "old"]);
        assert_eq!(texts(&c, 3, g, Family::Pc), ["new", "old"]);
        assert!(texts(&c, 4, g, Family::Pc).is_empty());
        // unchanged list: no `updated` change
        set_normal_members(&c, g, &[1, 3, 4], 25).unwrap();
        assert_eq!(get(&c, g).unwrap().unwrap().updated, 20);
        // a new inactive member is refused, nothing changed
        assert!(matches!(
            set_normal_members(&c, g, &[1, 5], 26),
            Err(StoreError::Invalid(_))
        ));
        assert_eq!(members(&c, g).unwrap(), vec![1, 3, 4]);
        // temporary or missing groups
        let t = temp(&c, 1, &[], 10);
        assert!(matches!(
            set_normal_members(&c, t, &[1], 27),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            set_normal_members(&c, 99, &[1], 27),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            delete_normal(&c, t, 27),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            delete_normal(&c, 99, 27),
            Err(StoreError::NotFound(_))
        ));

        // delete: members gone, flag set, row kept; a second delete or set is NotFound
        let r = delete_normal(&c, g, 30).unwrap();
        assert_eq!(
            (r.members_before.clone(), r.members_after.len()),
            (vec![1, 3, 4], 0)
        );
        let gone = get(&c, g).unwrap().unwrap();
        assert!(gone.deleted && gone.members.is_empty());
        assert!(matches!(
            delete_normal(&c, g, 31),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            set_normal_members(&c, g, &[1], 31),
            Err(StoreError::NotFound(_))
        ));
        assert!(!hide(&c, 1, g).unwrap());
        assert_eq!(change(&c, g, 1, 0, &[2]).result, 1);
        // all_live leaves it out, keeps the others with members in join order
        let live = all_live(&c).unwrap();
        assert_eq!(ids(&live), [t]);
        assert_eq!(live.first().unwrap().members, vec![1]);
    }

    #[test]
    fn all_live_with_members() {
        let c = mem();
        users(&c, 4);
        let a = temp(&c, 3, &[1, 2], 10);
        let empty = temp(&c, 4, &[], 10);
        assert_eq!(change(&c, empty, 4, 1, &[4]).result, 0);
        let (b, _) = create_normal(&c, b"b", b"", &[4, 2], 10).unwrap();
        let (d, _) = create_normal(&c, b"d", b"", &[1], 10).unwrap();
        delete_normal(&c, d, 11).unwrap();
        let live = all_live(&c).unwrap();
        let got: Vec<(u32, Vec<u32>)> = live.into_iter().map(|g| (g.id, g.members)).collect();
        assert_eq!(
            got,
            vec![(a, vec![3, 1, 2]), (empty, vec![]), (b, vec![4, 2])]
        );
    }

    #[test]
    fn a_thousand_member_group() {
        let c = mem();
        users(&c, 1000);
        let listed: Vec<u32> = (2..=1000).collect();
        let t = std::time::Instant::now();
        let (g, m) = create_temp(&c, 1, b"big", b"", &listed, 1000, 10)
            .unwrap()
            .unwrap();
        assert_eq!(m.len(), 1000);
        assert_eq!(
            create_temp(&c, 1, b"too big", b"", &listed, 999, 10).unwrap(),
            None
        );
        // some members hid it; the message un-hides them
        for u in [5, 500, 999] {
            assert!(hide(&c, u, g).unwrap());
        }
        send(&c, g, 7, Family::Pc, "hello all", 11);
        assert_eq!(count(&c, 500, Family::Ios), vec![(g, 1)]);
        assert_eq!(texts(&c, 1000, g, Family::Android), ["hello all"]);
        assert!(count(&c, 7, Family::Pc).is_empty());
        assert_eq!(recent_groups_of(&c, 999, 100).unwrap().len(), 1);
        assert_eq!(get(&c, g).unwrap().unwrap().members.len(), 1000);
        // full: one more is refused with 3
        let extra = users_more(&c, 1001);
        assert_eq!(extra, g + 1); // one id sequence for users and groups (B-GRP-20)
        assert_eq!(
            change_members(&c, g, 1, 0, &[extra], 1000, 12)
                .unwrap()
                .result,
            3
        );
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            t.elapsed()
        );
    }

    /// One more user named u`n`; returns its id.
    fn users_more(c: &Connection, n: u32) -> u32 {
        let u = crate::store::users::NewUser {
            name: format!("u{n}"),
            password_hash: "x".into(),
            ..Default::default()
        };
        crate::store::users::insert(c, &u).unwrap()
    }

    #[test]
    fn count_reads_only_the_index_and_one_group() {
        let c = mem();
        let plan: Vec<String> = c
            .prepare(&format!(
                "EXPLAIN QUERY PLAN SELECT count(*) FROM (
                     SELECT 1 FROM group_messages gm
                     WHERE gm.group_id = 1 AND gm.id > 5 AND gm.from_id <> 2 LIMIT {})",
                150
            ))
            .unwrap()
            .query_map([], |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter()
                .any(|p| p.contains("COVERING INDEX group_messages_by_group (group_id=? AND id>?)")),
            "{plan:?}"
        );
    }
}
