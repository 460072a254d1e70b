//! `/v1/departments`: list, create, patch. After a change the directory is reloaded from the
//! database (departments are few).

use std::sync::Arc;

use rusqlite::Connection;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{bad, internal, label, not_found, parse_body, parse_id};
use super::{ApiError, Response};
use crate::admin::check::LABEL_MAX;
use crate::admin::http::job::{Step, StepResult};
use crate::msg::directory::Directory;
use crate::msg::state::State;
use crate::store::departs::{self, Depart};
use crate::store::users;
use crate::store::writer::{WriteOp, WriteOut};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeptBody {
    title: Option<String>,
    description: Option<String>,
    parent_id: Option<u32>,
    leader_id: Option<u32>,
    disabled: Option<bool>,
}

fn dept_json(d: &Depart) -> Value {
    json!({
        "id": d.id,
        "title": d.title,
        "description": d.description,
        "parent_id": d.parent_id,
        "leader_id": d.leader_id,
        "disabled": d.disabled,
    })
}

/// Reloads the directory after a department change.
fn reload_directory(st: &State, db: &Connection) -> Result<(), ApiError> {
    let d = Directory::new(users::all(db)?, departs::all(db)?);
    *st.directory.write() = d;
    Ok(())
}

fn load(db: &Connection, id: u32) -> Result<Depart, ApiError> {
    departs::by_id(db, id)?.ok_or_else(|| not_found(format!("no department {id}")))
}

pub fn list() -> StepResult {
    Step::read(|db| {
        let all: Vec<Value> = departs::all(db)?.iter().map(dept_json).collect();
        Step::done(Response::json(200, &Value::Array(all)))
    })
}

pub fn create(st: &Arc<State>, body: &[u8]) -> StepResult {
    let b: DeptBody = parse_body(body)?;
    let Some(title) = b.title else {
        return Err(bad("title is required"));
    };
    label("title", Some(&title), 1, LABEL_MAX)?;
    if b.disabled.is_some() {
        return Err(bad("disabled cannot be set on creation"));
    }
    let op = WriteOp::CreateDepart {
        title,
        description: b.description.unwrap_or_default(),
        parent_id: b.parent_id.unwrap_or(0),
        leader_id: b.leader_id.unwrap_or(0),
    };
    let st = Arc::clone(st);
    Step::write(op, move |out| {
        let WriteOut::Created { id } = out else {
            return Err(internal("unexpected write result"));
        };
        Step::read(move |db| {
            reload_directory(&st, db)?;
            Step::done(Response::json(201, &dept_json(&load(db, id)?)))
        })
    })
}

pub fn patch(st: &Arc<State>, id: &str, body: &[u8]) -> StepResult {
    let id = parse_id(id)?;
    let b: DeptBody = parse_body(body)?;
    let st = Arc::clone(st);
    Step::read(move |db| {
        let mut d = load(db, id)?;
        label("title", b.title.as_deref(), 1, LABEL_MAX)?;
        if let Some(t) = b.title {
            d.title = t;
        }
        if let Some(v) = b.description {
            d.description = v;
        }
        if let Some(v) = b.parent_id {
            d.parent_id = v;
        }
        if let Some(v) = b.leader_id {
            d.leader_id = v;
        }
        if let Some(v) = b.disabled {
            d.disabled = v;
        }
        Step::write(WriteOp::UpdateDepart(d.clone()), move |_| {
            Step::read(move |db| {
                reload_directory(&st, db)?;
                Step::done(Response::json(200, &dept_json(&d)))
            })
        })
    })
}
