//! The endpoints of the HTTP admin API (behaviour.md section 14): routing, JSON bodies, the
//! writes through the storage writer, cache updates and client pushes after commit.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use rusqlite::Connection;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::admin::check::{self, GROUP_NAME_MAX, LABEL_MAX, LOGIN_NAME_MAX};
use crate::auth::password;
use crate::msg::chat::{Delivery, GROUP_TEXT, P2P_TEXT};
use crate::msg::directory::Directory;
use crate::msg::outlet::{AdminCache, AdminDelivery, WriteTag};
use crate::msg::service::WorkerMsg;
use crate::msg::state::State;
use crate::net::Shared;
use crate::proto::group::{NormalGroupCreatedNotify, NormalGroupMembersChangedNotify};
use crate::proto::{Id, Pdu};
use crate::store::departs::{self, Depart};
use crate::store::groups::{self, Group};
use crate::store::users::{self, NewUser, User};
use crate::store::writer::{WriteJob, WriteOp, WriteOut};
use crate::store::StoreError;

/// An HTTP response: status and JSON body (none for 204).
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Option<String>,
}

impl Response {
    fn json(status: u16, v: &Value) -> Response {
        Response {
            status,
            body: Some(v.to_string()),
        }
    }

    /// The B-ADM-3 error shape.
    pub fn error(status: u16, code: &str, message: &str) -> Response {
        Response::json(status, &json!({ "error": code, "message": message }))
    }

    /// The bytes on the wire.
    pub fn encode(&self, close: bool) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            201 => "Created",
            204 => "No Content",
            400 => "Bad Request",
            401 => "Unauthorized",
            404 => "Not Found",
            405 => "Method Not Allowed",
            409 => "Conflict",
            413 => "Payload Too Large",
            _ => "Internal Server Error",
        };
        let mut out = format!("HTTP/1.1 {} {reason}\r\n", self.status);
        if let Some(b) = &self.body {
            out.push_str("Content-Type: application/json\r\n");
            out.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        if self.status == 401 {
            out.push_str("WWW-Authenticate: Bearer\r\n");
        }
        if close {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        if let Some(b) = &self.body {
            out.push_str(b);
        }
        out.into_bytes()
    }
}

/// A failed request.
struct ApiError(Response);

type ApiResult = Result<Response, ApiError>;

fn bad(msg: impl AsRef<str>) -> ApiError {
    ApiError(Response::error(400, "bad_request", msg.as_ref()))
}

fn not_found(msg: impl AsRef<str>) -> ApiError {
    ApiError(Response::error(404, "not_found", msg.as_ref()))
}

fn conflict(msg: impl AsRef<str>) -> ApiError {
    ApiError(Response::error(409, "conflict", msg.as_ref()))
}

fn internal(msg: impl AsRef<str>) -> ApiError {
    ApiError(Response::error(500, "internal", msg.as_ref()))
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => conflict(m),
            StoreError::NotFound(m) => not_found(m),
            StoreError::Invalid(m) => bad(m),
            other => {
                log::error!(target: "admin", "storage error: {other}");
                internal(other.to_string())
            }
        }
    }
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeptBody {
    title: Option<String>,
    description: Option<String>,
    parent_id: Option<u32>,
    leader_id: Option<u32>,
    disabled: Option<bool>,
}

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

fn parse_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad(format!("bad JSON body: {e}")))
}

/// The `{id}` of a path: canonical decimal as on the wire (P-19), else 400. Rust's `parse`
/// alone would take `+1` and `01` as aliases of 1.
fn parse_id(s: &str) -> Result<u32, ApiError> {
    crate::proto::parse_id(s.as_bytes()).ok_or_else(|| {
        bad(format!(
            "bad id {s:?}: expected 1 to 4294967295 in decimal, without sign or leading zero"
        ))
    })
}

/// [`check::label`] as a 400.
fn label(what: &str, v: Option<&str>, min: usize, max: usize) -> Result<(), ApiError> {
    v.map_or(Ok(()), |v| check::label(what, v, min, max).map_err(bad))
}

/// Decodes `%XX` and `+` of a query value.
fn url_decode(s: &str) -> Result<String, ApiError> {
    let mut out = Vec::with_capacity(s.len());
    let mut it = s.bytes();
    while let Some(c) = it.next() {
        match c {
            b'%' => {
                let hex = [it.next(), it.next()];
                let v = match hex {
                    [Some(h), Some(l)] => std::str::from_utf8(&[h, l])
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok()),
                    _ => None,
                };
                out.push(v.ok_or_else(|| bad("bad percent-encoding in the query"))?);
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
    }
    String::from_utf8(out).map_err(|_| bad("query is not UTF-8"))
}

/// Members without repeats, first occurrence kept.
fn dedup(ids: &[u32]) -> Vec<u32> {
    let mut seen = HashSet::new();
    ids.iter().copied().filter(|id| seen.insert(*id)).collect()
}

/// The API state of the admin thread.
pub struct Api {
    st: Arc<State>,
    db: Connection,
    started: Instant,
}

impl Api {
    pub fn new(st: Arc<State>, db: Connection) -> Api {
        Api {
            st,
            db,
            started: Instant::now(),
        }
    }

    pub fn authorized(&self, header: Option<&[u8]>) -> bool {
        // `ttserver run` always sets the token; without one nothing matches.
        let token = self.st.cfg.admin.admin_token.as_deref().unwrap_or_default();
        super::token_matches(header, token)
    }

    /// Answers one authenticated request.
    pub fn handle(&mut self, method: &str, target: &str, body: &[u8]) -> Response {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let r = match (method, segs.as_slice()) {
            ("GET", ["v1", "health"]) => Ok(self.health()),
            ("GET", ["v1", "stats"]) => Ok(self.stats()),
            ("POST", ["v1", "users"]) => self.create_user(body),
            ("GET", ["v1", "users"]) => self.find_user(query),
            ("GET", ["v1", "users", id]) => self.get_user(id),
            ("PATCH", ["v1", "users", id]) => self.patch_user(id, body),
            ("GET", ["v1", "departments"]) => self.list_departs(),
            ("POST", ["v1", "departments"]) => self.create_depart(body),
            ("PATCH", ["v1", "departments", id]) => self.patch_depart(id, body),
            ("POST", ["v1", "groups"]) => self.create_group(body),
            ("GET", ["v1", "groups", id]) => self.get_group(id),
            ("PATCH", ["v1", "groups", id]) => self.patch_group(id, body),
            ("PUT", ["v1", "groups", id, "members"]) => self.set_members(id, body),
            ("DELETE", ["v1", "groups", id]) => self.delete_group(id),
            ("POST", ["v1", "messages"]) => self.post_message(body),
            (_, s) if known_path(s) => Err(ApiError(Response::error(
                405,
                "method_not_allowed",
                &format!("{method} is not allowed on {path}"),
            ))),
            _ => Err(not_found(format!("no endpoint {path}"))),
        };
        r.unwrap_or_else(|ApiError(resp)| resp)
    }

    /// Submits a write to the single writer and waits for its commit (B-ADM-4).
    fn write(&self, op: WriteOp) -> Result<WriteOut, ApiError> {
        self.write_with(op, None)
    }

    /// Like `write`; `deliver` is sent by the outlet right after the commit (commit order).
    /// A membership change updates the group cache there too, before any later write's effects
    /// ([`AdminCache::of`]).
    fn write_with(
        &self,
        op: WriteOp,
        deliver: Option<AdminDelivery>,
    ) -> Result<WriteOut, ApiError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let tag = WriteTag::admin(tx, AdminCache::of(&op), deliver);
        self.st
            .writer
            .send(WriteJob { op, tag })
            .map_err(|_| internal("the storage writer has stopped"))?;
        match rx.recv() {
            Ok(r) => Ok(r?),
            Err(_) => Err(internal("the storage writer has stopped")),
        }
    }

    /// Queues `bytes` once on every session of `users` (each session once), one wake per worker.
    fn push(&self, users: impl IntoIterator<Item = u32>, bytes: &Shared) {
        let mut conns = HashSet::new();
        for u in users {
            for s in self.st.presence.sessions(u) {
                conns.insert(s.conn);
            }
        }
        let workers = self.st.workers();
        let mut touched = HashSet::new();
        for conn in conns {
            if let Some(h) = workers.get(conn.worker) {
                h.send_quiet(WorkerMsg::Push {
                    conn,
                    bytes: Arc::clone(bytes),
                });
                touched.insert(conn.worker);
            }
        }
        for w in touched {
            if let Some(h) = workers.get(w) {
                h.wake();
            }
        }
    }

    fn health(&self) -> Response {
        Response::json(
            200,
            &json!({
                "status": "ok",
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_s": self.started.elapsed().as_secs(),
            }),
        )
    }

    fn stats(&self) -> Response {
        use std::sync::atomic::Ordering::Relaxed;
        let counters: serde_json::Map<String, Value> = self
            .st
            .counters
            .snapshot()
            .into_iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let ids: Vec<u32> = self
            .st
            .directory
            .read()
            .active_users()
            .map(|u| u.id)
            .collect();
        // Sessions per msg worker: shows how the kernel spread them (SO_REUSEPORT).
        let mut per_worker = vec![0u64; self.st.workers().all().len()];
        let mut sessions = 0usize;
        for s in ids.iter().flat_map(|id| self.st.presence.sessions(*id)) {
            sessions += 1;
            if let Some(n) = per_worker.get_mut(usize::from(s.conn.worker)) {
                *n += 1;
            }
        }
        Response::json(
            200,
            &json!({
                "connections": {
                    "login": self.st.login_conns.load(Relaxed),
                    "msg": self.st.msg_conns.load(Relaxed),
                    "file": 0,
                },
                "sessions": sessions,
                "worker_sessions": per_worker,
                "online_users": self.st.presence.online_users(),
                "counters": counters,
            }),
        )
    }

    // ---- users ----

    fn user_json(&self, u: &User) -> Value {
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
            "status": self.st.presence.status(u.id),
        })
    }

    fn load_user(&self, id: u32) -> Result<User, ApiError> {
        users::by_id(&self.db, id)?.ok_or_else(|| not_found(format!("no user {id}")))
    }

    fn hash(&self, plain: &str) -> Result<String, ApiError> {
        password::hash(
            password::md5_hex(plain).as_bytes(),
            self.st.cfg.auth.password_hash_cost,
        )
        .map_err(|e| internal(e.to_string()))
    }

    fn check_user_fields(&self, b: &UserBody) -> Result<(), ApiError> {
        label("name", b.name.as_deref(), 1, LOGIN_NAME_MAX)?;
        label("nick", b.nick.as_deref(), 0, LABEL_MAX)?;
        label("title", b.title.as_deref(), 0, LABEL_MAX)?;
        label("position", b.position.as_deref(), 0, LABEL_MAX)?;
        if let Some(d) = b.depart_id.filter(|d| *d != 0) {
            if !departs::exists(&self.db, d)? {
                return Err(bad(format!("no department {d}")));
            }
        }
        Ok(())
    }

    fn create_user(&mut self, body: &[u8]) -> ApiResult {
        let b: UserBody = parse_body(body)?;
        let (Some(name), Some(pw)) = (b.name.clone(), b.password.as_deref()) else {
            return Err(bad("name and password are required"));
        };
        if b.disabled.is_some() {
            return Err(bad("disabled cannot be set on creation"));
        }
        self.check_user_fields(&b)?;
        let nu = NewUser {
            name,
            password_hash: self.hash(pw)?,
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
        let WriteOut::Created { id } = self.write(WriteOp::CreateUser(nu))? else {
            return Err(internal("unexpected write result"));
        };
        let u = self.load_user(id)?;
        self.st.directory.write().put_user(u.clone());
        Ok(Response::json(201, &self.user_json(&u)))
    }

    fn get_user(&self, id: &str) -> ApiResult {
        let u = self.load_user(parse_id(id)?)?;
        Ok(Response::json(200, &self.user_json(&u)))
    }

    fn find_user(&self, query: &str) -> ApiResult {
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
        let found: Vec<Value> = users::by_name(&self.db, name.as_bytes())?
            .iter()
            .map(|u| self.user_json(u))
            .collect();
        Ok(Response::json(200, &Value::Array(found)))
    }

    fn patch_user(&mut self, id: &str, body: &[u8]) -> ApiResult {
        let id = parse_id(id)?;
        let b: UserBody = parse_body(body)?;
        let mut u = self.load_user(id)?;
        self.check_user_fields(&b)?;
        if let Some(pw) = &b.password {
            u.password_hash = self.hash(pw)?;
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
        self.write(WriteOp::UpdateUser(u.clone()))?;
        self.st.directory.write().put_user(u.clone());
        if b.disabled == Some(true) {
            // B-ADM-6, B-TOK-2: every session closes at once (no 1/7), tokens are revoked.
            self.st.tokens.lock().revoke_user(id);
            for s in self.st.presence.sessions(id) {
                if let Some(h) = self.st.workers().get(s.conn.worker) {
                    h.send(WorkerMsg::Close { conn: s.conn });
                }
            }
        }
        Ok(Response::json(200, &self.user_json(&u)))
    }

    // ---- departments ----

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

    /// Reloads the directory after a department change (departments are few).
    fn reload_directory(&self) -> Result<(), ApiError> {
        let d = Directory::new(users::all(&self.db)?, departs::all(&self.db)?);
        *self.st.directory.write() = d;
        Ok(())
    }

    fn list_departs(&self) -> ApiResult {
        let all: Vec<Value> = departs::all(&self.db)?
            .iter()
            .map(Self::dept_json)
            .collect();
        Ok(Response::json(200, &Value::Array(all)))
    }

    fn load_depart(&self, id: u32) -> Result<Depart, ApiError> {
        departs::by_id(&self.db, id)?.ok_or_else(|| not_found(format!("no department {id}")))
    }

    fn create_depart(&mut self, body: &[u8]) -> ApiResult {
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
        let WriteOut::Created { id } = self.write(op)? else {
            return Err(internal("unexpected write result"));
        };
        self.reload_directory()?;
        let d = self.load_depart(id)?;
        Ok(Response::json(201, &Self::dept_json(&d)))
    }

    fn patch_depart(&mut self, id: &str, body: &[u8]) -> ApiResult {
        let id = parse_id(id)?;
        let b: DeptBody = parse_body(body)?;
        let mut d = self.load_depart(id)?;
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
        self.write(WriteOp::UpdateDepart(d.clone()))?;
        self.reload_directory()?;
        Ok(Response::json(200, &Self::dept_json(&d)))
    }

    // ---- groups ----

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

    fn load_group(&self, id: u32) -> Result<Group, ApiError> {
        groups::get(&self.db, id)?
            .filter(|g| !g.deleted)
            .ok_or_else(|| not_found(format!("no group {id}")))
    }

    /// A live normal group (temporary -> 409).
    fn load_normal(&self, id: u32) -> Result<Group, ApiError> {
        let g = self.load_group(id)?;
        if g.group_type != groups::NORMAL {
            return Err(conflict(format!("group {id} is a temporary group")));
        }
        Ok(g)
    }

    fn check_members(&self, members: &[u32]) -> Result<Vec<u32>, ApiError> {
        let members = dedup(members);
        let cap = self.st.cfg.admin.max_normal_group_members;
        if u32::try_from(members.len()).map_or(true, |n| n > cap) {
            return Err(bad(format!("more than {cap} members")));
        }
        let dir = self.st.directory.read();
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

    fn create_group(&mut self, body: &[u8]) -> ApiResult {
        let b: GroupBody = parse_body(body)?;
        let Some(name) = b.name else {
            return Err(bad("name is required"));
        };
        let avatar = b.avatar.unwrap_or_default();
        Self::check_name_avatar(Some(&name), Some(&avatar))?;
        let members = self.check_members(&b.members.unwrap_or_default())?;
        let op = WriteOp::CreateNormalGroup {
            name: name.clone().into_bytes(),
            avatar: avatar.clone().into_bytes(),
            members,
        };
        let WriteOut::GroupCreated { group_id, members } = self.write(op)? else {
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
        self.push(members.iter().copied(), &notify);
        let g = self.load_group(group_id)?;
        Ok(Response::json(201, &Self::group_json(&g)))
    }

    fn get_group(&self, id: &str) -> ApiResult {
        let g = self.load_group(parse_id(id)?)?;
        Ok(Response::json(200, &Self::group_json(&g)))
    }

    fn patch_group(&mut self, id: &str, body: &[u8]) -> ApiResult {
        let id = parse_id(id)?;
        let b: GroupBody = parse_body(body)?;
        if b.members.is_some() {
            return Err(bad("use PUT /v1/groups/{id}/members to change members"));
        }
        Self::check_name_avatar(b.name.as_deref(), b.avatar.as_deref())?;
        self.load_normal(id)?;
        self.write(WriteOp::RenameNormalGroup {
            group: id,
            name: b.name.map(String::into_bytes),
            avatar: b.avatar.map(String::into_bytes),
        })?;
        let g = self.load_group(id)?;
        Ok(Response::json(200, &Self::group_json(&g)))
    }

    /// 5/19 (B-GRP-18) with `members` to every session of `to`.
    fn push_members_changed(&self, group: u32, members: &[u32], to: &[u32]) {
        let notify: Shared =
            Pdu::NormalGroupMembersChangedNotify(NormalGroupMembersChangedNotify {
                group_id: Id::Num(group),
                member_ids: members.iter().map(|m| Id::Num(*m)).collect(),
            })
            .to_frame(0)
            .into();
        self.push(to.iter().copied(), &notify);
    }

    fn set_members(&mut self, id: &str, body: &[u8]) -> ApiResult {
        let id = parse_id(id)?;
        let b: MembersBody = parse_body(body)?;
        self.load_normal(id)?;
        let members = dedup(&b.members);
        let cap = self.st.cfg.admin.max_normal_group_members;
        if u32::try_from(members.len()).map_or(true, |n| n > cap) {
            return Err(bad(format!("more than {cap} members")));
        }
        let out = self.write(WriteOp::SetNormalMembers { group: id, members })?;
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
            self.push_members_changed(id, &members_after, &dedup(&to));
        }
        let g = self.load_group(id)?;
        Ok(Response::json(200, &Self::group_json(&g)))
    }

    fn delete_group(&mut self, id: &str) -> ApiResult {
        let id = parse_id(id)?;
        self.load_normal(id)?;
        let WriteOut::GroupChange { members_before, .. } =
            self.write(WriteOp::DeleteNormalGroup { group: id })?
        else {
            return Err(internal("unexpected write result"));
        };
        self.push_members_changed(id, &[], &members_before);
        Ok(Response {
            status: 204,
            body: None,
        })
    }

    // ---- messages ----

    fn post_message(&mut self, body: &[u8]) -> ApiResult {
        let b: MessageBody = parse_body(body)?;
        let len = b.text.len();
        if len == 0 || u32::try_from(len).map_or(true, |n| n > self.st.cfg.msg.max_text_len) {
            return Err(bad(format!(
                "text must be 1 to {} bytes",
                self.st.cfg.msg.max_text_len
            )));
        }
        if self.st.directory.read().active(b.from).is_none() {
            return Err(bad(format!("from {} is not an active user", b.from)));
        }
        let payload: Arc<[u8]> = b.text.as_bytes().into();
        let (op, to, msg_type) = match (b.to_user, b.to_group) {
            (Some(to), None) => {
                if self.st.directory.read().active(to).is_none() {
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
                if self.st.groups.live(g).is_none() {
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
        let WriteOut::Stored {
            msg_id,
            create_time,
        } = self.write_with(op, Some(deliver))?
        else {
            return Err(internal("unexpected write result"));
        };
        Ok(Response::json(
            200,
            &json!({ "msg_id": msg_id, "create_time": create_time }),
        ))
    }
}

fn known_path(segs: &[&str]) -> bool {
    matches!(
        segs,
        [
            "v1",
            "health" | "stats" | "users" | "departments" | "groups" | "messages"
        ] | ["v1", "users" | "departments" | "groups", _]
            | ["v1", "groups", _, "members"]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(url_decode("a%20b+c%2B").ok().unwrap(), "a b c+");
        assert!(url_decode("%zz").is_err());
        assert_eq!(dedup(&[3, 1, 3, 2, 1]), vec![3, 1, 2]);
        for bad in ["0", "x", "+1", "01", "4294967296", "%31", ""] {
            let Err(ApiError(r)) = parse_id(bad) else {
                panic!("{bad:?} accepted")
            };
            assert_eq!(r.status, 400, "{bad:?}");
        }
        assert_eq!(parse_id("12").ok(), Some(12));
        assert_eq!(parse_id("4294967295").ok(), Some(u32::MAX));
        assert!(known_path(&["v1", "groups", "3", "members"]));
        assert!(!known_path(&["v2"]));
        let r = Response::error(404, "not_found", "x").encode(true);
        let s = String::from_utf8(r).unwrap();
        assert!(s.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(s.contains("Connection: close\r\n"));
        assert!(s.ends_with("{\"error\":\"not_found\",\"message\":\"x\"}"));
        let r = Response {
            status: 204,
            body: None,
        }
        .encode(false);
        assert_eq!(r, b"HTTP/1.1 204 No Content\r\n\r\n");
    }
}
