//! `group add` and `group members` (normal groups, B-GRP-1, B-GRP-18).
//!
//! The CLI writes the database directly, so no 5/18 or 5/19 reaches online clients (use the
//! HTTP admin API while a server runs, architecture.md section 5).

use std::collections::HashSet;

use rusqlite::{Connection, TransactionBehavior};

use super::args::{parse_u32, Parsed};
use super::check::{self, GROUP_NAME_MAX};
use super::AdminError;
use crate::clock::unix_now;
use crate::store::{groups, StoreError};

/// `MaxNormalGroupMembers` at its behaviour.md default: the CLI reads no conf keys beyond the
/// DataDir, so it applies the default.
pub(super) const MAX_NORMAL_GROUP_MEMBERS: usize = 5000;

/// Avatars (URLs) are at most 256 bytes.
const MAX_AVATAR_LEN: usize = 256;

pub(super) struct AddArgs<'a> {
    name: &'a str,
    avatar: &'a str,
    members: Vec<u32>,
}

impl<'a> AddArgs<'a> {
    pub fn parse(words: &[&'a str]) -> Result<AddArgs<'a>, AdminError> {
        let p = Parsed::new(words, &["members", "avatar"])?;
        let name = p.single("group add NAME")?;
        check::label(&format!("group name {name:?}"), name, 1, GROUP_NAME_MAX)
            .map_err(AdminError::Usage)?;
        let avatar = p.flag("avatar").unwrap_or("");
        if avatar.len() > MAX_AVATAR_LEN {
            return Err(AdminError::Usage(format!(
                "--avatar must be at most {MAX_AVATAR_LEN} bytes"
            )));
        }
        let Some(list) = p.flag("members") else {
            return Err(AdminError::Usage("group add: --members is required".into()));
        };
        Ok(AddArgs {
            name,
            avatar,
            members: parse_ids(list, "--members")?,
        })
    }
}

pub(super) struct MembersArgs {
    group: u32,
    members: Vec<u32>,
}

impl MembersArgs {
    pub fn parse(words: &[&str]) -> Result<MembersArgs, AdminError> {
        let p = Parsed::new(words, &["set"])?;
        let id = p.single("group members ID")?;
        let group = parse_u32(id)
            .ok_or_else(|| AdminError::Usage(format!("group id {id:?}: not a number")))?;
        let Some(list) = p.flag("set") else {
            return Err(AdminError::Usage("group members: --set is required".into()));
        };
        Ok(MembersArgs {
            group,
            members: parse_ids(list, "--set")?,
        })
    }
}

/// `ID,ID,...` (an empty string is the empty list).
fn parse_ids(list: &str, what: &str) -> Result<Vec<u32>, AdminError> {
    if list.is_empty() {
        return Ok(Vec::new());
    }
    list.split(',')
        .map(|s| {
            parse_u32(s).ok_or_else(|| AdminError::Usage(format!("{what}: {s:?} is not a user id")))
        })
        .collect()
}

fn check_count(members: &[u32]) -> Result<(), StoreError> {
    let n = members.iter().collect::<HashSet<_>>().len();
    if n > MAX_NORMAL_GROUP_MEMBERS {
        return Err(StoreError::Invalid(format!(
            "{n} members, at most {MAX_NORMAL_GROUP_MEMBERS} (MaxNormalGroupMembers)"
        )));
    }
    Ok(())
}

/// Creates a normal group; every member must be an active user. Returns its id.
pub(super) fn add(conn: &mut Connection, a: &AddArgs<'_>) -> Result<u32, AdminError> {
    check_count(&a.members)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (id, _) = groups::create_normal(
        &tx,
        a.name.as_bytes(),
        a.avatar.as_bytes(),
        &a.members,
        unix_now(),
    )?;
    tx.commit()?;
    Ok(id)
}

/// Replaces a normal group's members; new ones must be active users. Returns the member count.
pub(super) fn set_members(conn: &mut Connection, a: &MembersArgs) -> Result<usize, AdminError> {
    check_count(&a.members)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let change = groups::set_normal_members(&tx, a.group, &a.members, unix_now())?;
    tx.commit()?;
    Ok(change.members_after.len())
}

#[cfg(test)]
mod tests {
    use crate::admin::testutil::admin;
    use crate::admin::AdminError;
    use crate::store::testutil::TempDb;
    use crate::store::{db_path, groups, open, users, DbSync, StoreError};

    fn setup(t: &TempDb, n: u32) {
        for i in 1..=n {
            let name = format!("u{i}");
            assert_eq!(
                admin(t, &["user", "add", &name, "--password", "p"]).unwrap(),
                format!("{i}\n")
            );
        }
    }

    #[test]
    fn group_add_prints_the_id_and_checks_members() {
        let t = TempDb::new("admin-group-add");
        setup(&t, 3);
        // users and groups share one id sequence (B-GRP-20): the groups follow users 1..3
        assert_eq!(
            admin(&t, &["group", "add", "Staff", "--members", "2,1,2,3"]).unwrap(),
            "4\n"
        );
        assert_eq!(
            admin(
                &t,
                &[
                    "group",
                    "add",
                    "Empty",
                    "--members",
                    "",
                    "--avatar",
                    "a.png"
                ]
            )
            .unwrap(),
            "5\n"
        );
        // unknown and disabled users are refused, nothing created
        let err = admin(&t, &["group", "add", "X", "--members", "1,9"]).unwrap_err();
        assert!(
            matches!(err, AdminError::Store(StoreError::Invalid(_))),
            "{err}"
        );
        assert!(err.to_string().contains("user 9"), "{err}");
        {
            let conn = open(&db_path(&t.dir), DbSync::Normal).unwrap();
            users::set_disabled(&conn, 3, true).unwrap();
        }
        assert!(admin(&t, &["group", "add", "X", "--members", "3"]).is_err());
        // more than MaxNormalGroupMembers (distinct ids)
        let many: Vec<String> = (1..=5001).map(|i| i.to_string()).collect();
        let err = admin(&t, &["group", "add", "X", "--members", &many.join(",")]).unwrap_err();
        assert!(err.to_string().contains("at most 5000"), "{err}");

        let conn = open(&db_path(&t.dir), DbSync::Normal).unwrap();
        let g = groups::get(&conn, 4).unwrap().unwrap();
        assert_eq!(
            (g.group_type, g.creator, g.name.as_slice(), g.members),
            (groups::NORMAL, 0, &b"Staff"[..], vec![2, 1, 3])
        );
        let e = groups::get(&conn, 5).unwrap().unwrap();
        assert_eq!((e.avatar.as_slice(), e.members.len()), (&b"a.png"[..], 0));
        assert_eq!(groups::all_live(&conn).unwrap().len(), 2);
        // the refused adds used up no id: the next user is 6
        assert_eq!(
            admin(&t, &["user", "add", "u6", "--password", "p"]).unwrap(),
            "6\n"
        );
    }

    #[test]
    fn group_members_replaces_the_list() {
        let t = TempDb::new("admin-group-members");
        setup(&t, 4);
        assert_eq!(
            admin(&t, &["group", "add", "G", "--members", "1,2,3"]).unwrap(),
            "5\n" // after users 1..4: one id sequence (B-GRP-20)
        );
        assert_eq!(
            admin(&t, &["group", "members", "5", "--set", "4,3,4"]).unwrap(),
            "2\n"
        );
        {
            let conn = open(&db_path(&t.dir), DbSync::Normal).unwrap();
            assert_eq!(groups::members(&conn, 5).unwrap(), vec![3, 4]);
        }
        // unknown new member: refused, list unchanged
        assert!(admin(&t, &["group", "members", "5", "--set", "3,7"]).is_err());
        // unknown group, and a user's id, which is never a group's
        for id in ["9", "1"] {
            let err = admin(&t, &["group", "members", id, "--set", "1"]).unwrap_err();
            assert!(
                matches!(err, AdminError::Store(StoreError::NotFound(_))),
                "{err}"
            );
        }
        // empty list
        assert_eq!(
            admin(&t, &["group", "members", "5", "--set", ""]).unwrap(),
            "0\n"
        );
        // a temporary group is refused
        {
            let conn = open(&db_path(&t.dir), DbSync::Normal).unwrap();
            let (temp, _) = groups::create_temp(&conn, 1, b"t", b"", &[2], 10, 1)
                .unwrap()
                .unwrap();
            assert_eq!(temp, 6);
        }
        let err = admin(&t, &["group", "members", "6", "--set", "1"]).unwrap_err();
        assert!(err.to_string().contains("temporary"), "{err}");
        let conn = open(&db_path(&t.dir), DbSync::Normal).unwrap();
        assert!(groups::members(&conn, 5).unwrap().is_empty());
        assert_eq!(groups::members(&conn, 6).unwrap(), vec![1, 2]);
    }
}
