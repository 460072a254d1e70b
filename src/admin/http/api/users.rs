//! `/v1/users`: create, find by name, get, patch (B-ADM-5, B-ADM-6).

use std::sync::Arc;

use rusqlite::Connection;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{bad, internal, label, not_found, parse_body, parse_id, push, url_decode};
use super::{ApiError, Response};
use crate::admin::check::{LABEL_MAX, LOGIN_NAME_MAX};
use crate::admin::http::job::{Step, StepResult};
use crate::auth::{password, HashCost};
use crate::msg::state::State;
use crate::store::departs;
use crate::store::users::{self, NewUser, User};
use crate::store::writer::{WriteOp, WriteOut};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct UserBody {
    name: Option<String>,
    password: Option<String>,
    nick: Option<String>,
    avatar: Option<String>,
    title: Option<String>,
    position: Option<String>,
    sex: Option<u32>,
    role_status: Option<u32>,
    depart_id: Option<u32>,
    job_num: Option<u32>,
    telephone: Option<String>,
    email: Option<String>,
    disabled: Option<bool>,
}

fn user_json(st: &State, u: &User) -> Value {
    json!({
        "id": u.id,
        "name": u.name,
        "nick": u.nick,
        "avatar": u.avatar,
        "title": u.title,
        "position": u.position,
        "sex": u.sex,
        "role_status": u.role_status,
        "depart_id": u.depart_id,
        "job_num": u.job_num,
        "telephone": u.telephone,
        "email": u.email,
        "disabled": u.disabled,
        "status": st.presence.status(u.id),
    })
}

fn load(db: &Connection, id: u32) -> Result<User, ApiError> {
    users::by_id(db, id)?.ok_or_else(|| not_found(format!("no user {id}")))
}

/// The stored hash of a password (on a reader thread: hashing is slow on purpose).
fn hash(plain: &str, cost: HashCost) -> Result<String, ApiError> {
    password::hash(password::md5_hex(plain).as_bytes(), cost).map_err(|e| internal(e.to_string()))
}

fn check_fields(db: &Connection, b: &UserBody) -> Result<(), ApiError> {
    label("name", b.name.as_deref(), 1, LOGIN_NAME_MAX)?;
    label("nick", b.nick.as_deref(), 0, LABEL_MAX)?;
    label("title", b.title.as_deref(), 0, LABEL_MAX)?;
    label("position", b.position.as_deref(), 0, LABEL_MAX)?;
    if let Some(d) = b.depart_id.filter(|d| *d != 0) {
        if !departs::exists(db, d)? {
            return Err(bad(format!("no department {d}")));
        }
    }
    Ok(())
}

pub fn create(st: &Arc<State>, body: &[u8]) -> StepResult {
    let b: UserBody = parse_body(body)?;
    let (Some(name), Some(pw)) = (b.name.clone(), b.password.clone()) else {
        return Err(bad("name and password are required"));
    };
    if b.disabled.is_some() {
        return Err(bad("disabled cannot be set on creation"));
    }
    let st = Arc::clone(st);
    Step::read(move |db| {
        check_fields(db, &b)?;
        let nu = NewUser {
            name,
            password_hash: hash(&pw, st.cfg.auth.password_hash_cost)?,
            nick: b.nick.unwrap_or_default(),
            avatar: b.avatar.unwrap_or_default(),
            title: b.title.unwrap_or_default(),
            position: b.position.unwrap_or_default(),
            sex: b.sex.unwrap_or(0),
            role_status: b.role_status.unwrap_or(0),
            depart_id: b.depart_id.unwrap_or(0),
            job_num: b.job_num.unwrap_or(0),
            telephone: b.telephone.unwrap_or_default(),
            email: b.email.unwrap_or_default(),
        };
        Step::write(WriteOp::CreateUser(nu), move |out| {
            let WriteOut::Created { id } = out else {
                return Err(internal("unexpected write result"));
            };
            Step::read(move |db| {
                let u = load(db, id)?;
                st.directory.write().put_user(u.clone());
                Step::done(Response::json(201, &user_json(&st, &u)))
            })
        })
    })
}

pub fn get(st: &Arc<State>, id: &str) -> StepResult {
    let id = parse_id(id)?;
    let st = Arc::clone(st);
    Step::read(move |db| Step::done(Response::json(200, &user_json(&st, &load(db, id)?))))
}

pub fn find(st: &Arc<State>, query: &str) -> StepResult {
    let mut name = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == "name" {
            name = Some(url_decode(v)?);
        } else {
            return Err(bad(format!("unknown query parameter {k:?}")));
        }
    }
    let Some(name) = name else {
        return Err(bad("query parameter name is required"));
    };
    let st = Arc::clone(st);
    Step::read(move |db| {
        let found: Vec<Value> = users::by_name(db, name.as_bytes())?
            .iter()
            .map(|u| user_json(&st, u))
            .collect();
        Step::done(Response::json(200, &Value::Array(found)))
    })
}

pub fn patch(st: &Arc<State>, id: &str, body: &[u8]) -> StepResult {
    let id = parse_id(id)?;
    let b: UserBody = parse_body(body)?;
    let st = Arc::clone(st);
    Step::read(move |db| {
        let mut u = load(db, id)?;
        check_fields(db, &b)?;
        if let Some(pw) = &b.password {
            u.password_hash = hash(pw, st.cfg.auth.password_hash_cost)?;
        }
        macro_rules! set {
            ($($f:ident),*) => { $(if let Some(v) = b.$f.clone() { u.$f = v; })* };
        }
        set!(
            name,
            nick,
            avatar,
            title,
            position,
            sex,
            role_status,
            depart_id,
            job_num,
            telephone,
            email,
            disabled
        );
        let disable = b.disabled == Some(true);
        Step::write(WriteOp::UpdateUser(u.clone()), move |_| {
            st.directory.write().put_user(u.clone());
            if disable {
                // B-ADM-6, B-TOK-2: every session closes at once (no 1/7), tokens are revoked.
                st.tokens.lock().revoke_user(id);
                push::close_sessions(&st, id);
            }
            Step::done(Response::json(200, &user_json(&st, &u)))
        })
    })
}
