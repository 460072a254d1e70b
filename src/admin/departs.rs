//! `depart add`.

use rusqlite::Connection;

use super::args::Parsed;
use super::check::{self, LABEL_MAX};
use super::AdminError;
use crate::store::departs;

pub(super) struct AddArgs<'a> {
    title: &'a str,
    description: &'a str,
    parent: u32,
    leader: u32,
}

impl<'a> AddArgs<'a> {
    pub fn parse(words: &[&'a str]) -> Result<AddArgs<'a>, AdminError> {
        let p = Parsed::new(words, &["parent", "description", "leader"])?;
        let title = p.single("depart add TITLE")?;
        check::label("depart add: title", title, 1, LABEL_MAX).map_err(AdminError::Usage)?;
        Ok(AddArgs {
            title,
            description: p.flag("description").unwrap_or(""),
            parent: p.flag_u32("parent", 0)?,
            leader: p.flag_u32("leader", 0)?,
        })
    }
}

/// Creates the department; returns its id.
pub(super) fn add(conn: &Connection, a: &AddArgs<'_>) -> Result<u32, AdminError> {
    Ok(departs::insert(
        conn,
        a.title,
        a.description,
        a.parent,
        a.leader,
    )?)
}

#[cfg(test)]
mod tests {
    use crate::admin::testutil::admin;
    use crate::store::testutil::TempDb;
    use crate::store::{db_path, departs, open, DbSync};

    #[test]
    fn depart_add_with_parent() {
        let t = TempDb::new("admin-depart");
        assert_eq!(admin(&t, &["depart", "add", "HQ"]).unwrap(), "1\n");
        assert_eq!(
            admin(
                &t,
                &[
                    "depart",
                    "add",
                    "R&D",
                    "--parent",
                    "1",
                    "--description",
                    "lab"
                ]
            )
            .unwrap(),
            "2\n"
        );
        let err = admin(&t, &["depart", "add", "X", "--parent", "9"]).unwrap_err();
        assert!(err.to_string().contains("parent department 9"), "{err}");
        let conn = open(&db_path(&t.dir), DbSync::Normal).unwrap();
        let all = departs::all(&conn).unwrap();
        assert_eq!(all.len(), 2);
        let rd = all.get(1).unwrap();
        assert_eq!(
            (rd.title.as_str(), rd.description.as_str(), rd.parent_id),
            ("R&D", "lab", 1)
        );
    }
}
