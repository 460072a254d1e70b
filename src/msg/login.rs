//! 1/3 -> 1/4: login on the msg port (B-LOGIN, B-TOK, B-KICK).
//!
//! The argon2id check runs on the hashing pool (it takes tens of milliseconds at the default
//! cost); the worker registers the session only when the verdict comes back, in order.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use super::presence::{Class, SessionRef, LEAVE, ONLINE};
use super::service::WorkerMsg;
use super::{Ctx, Effect, MsgConn, Phase, Session, Step};
use crate::auth::password;
use crate::auth::token_gen::new_token;
use crate::clock::unix_now;
use crate::msg::state::State;
use crate::net::ConnId;
use crate::proto::login::{KickUser, LoginOk, LoginRequest, LoginResponse};
use crate::proto::{Id, Pdu};
use crate::stats::bump;
use crate::store::users::User;
use crate::store::Family;

/// 1/4 result codes (protocol.md section 8.6).
pub const RESULT_UNAVAILABLE: u32 = 3;
pub const RESULT_REFUSED: u32 = 6;

/// The outcome of a password check, applied on the worker.
pub struct Verdict {
    /// The user, if the name exists, is active and the password verified.
    pub user: Option<Arc<User>>,
    pub name: Vec<u8>,
    pub ip: IpAddr,
    pub reserved: u16,
    pub online_status: u32,
    pub client_type: u32,
}

/// Class and unread family of a `client_type` (protocol.md section 8.2).
pub fn classify(client_type: u32) -> (Class, Family) {
    match client_type {
        0x11 => (Class::Mobile, Family::Ios),
        0x12 => (Class::Mobile, Family::Android),
        t if t & 0x10 != 0 => (Class::Mobile, Family::Android),
        _ => (Class::Pc, Family::Pc),
    }
}

pub fn failure_frame(result: u32, reserved: u16) -> Vec<u8> {
    Pdu::LoginResponse(LoginResponse {
        server_time: unix_now(),
        result,
        ok: None,
    })
    .to_frame(reserved)
}

fn refuse(mc: &mut MsgConn, result: u32, reserved: u16) -> Vec<Effect> {
    mc.phase = Phase::Ended;
    vec![
        Effect::Reply(failure_frame(result, reserved)),
        Effect::CloseAfterFlush,
    ]
}

pub fn on_login_request(cx: &Ctx<'_>, mc: &mut MsgConn, req: &LoginRequest<'_>) -> Step {
    let st = cx.st;
    let ip = cx.peer.ip();
    if st.throttle.lock().is_locked(req.user_name, ip, cx.now) {
        bump(&st.counters.login_throttled);
        log::info!(target: "login", "conn={:?} throttled login for {:?}", cx.conn, String::from_utf8_lossy(req.user_name));
        return Step::Now(refuse(mc, RESULT_REFUSED, cx.reserved));
    }
    let user = st.directory.read().by_name(req.user_name).cloned();
    let verdict = Verdict {
        user: None,
        name: req.user_name.to_vec(),
        ip,
        reserved: cx.reserved,
        online_status: req.online_status,
        client_type: req.client_type,
    };
    let presented = req.password.to_vec();
    let cost = st.cfg.auth.password_hash_cost;
    let conn = cx.conn;
    mc.phase = Phase::Verifying;
    let seq = mc.begin_job(false);
    let state = Arc::clone(st);
    let job = Box::new(move || {
        let mut verdict = verdict;
        // B-LOGIN-3: always verify something, so timing does not tell whether the name exists.
        let ok = match &user {
            Some(u) => password::verify(&presented, &u.password_hash) && !u.disabled,
            None => {
                let _ = password::verify(&presented, password::dummy_hash(cost));
                false
            }
        };
        verdict.user = if ok { user } else { None };
        if let Some(h) = state.workers().get(conn.worker) {
            h.send(WorkerMsg::Done {
                conn,
                seq,
                done: vec![Effect::FinishLogin(Box::new(verdict))],
            });
        }
    });
    match cx.jobs.hash(job) {
        Ok(()) => Step::Queued,
        Err(_) => {
            mc.abort_job(seq);
            bump(&st.counters.store_failures);
            Step::Now(refuse(mc, RESULT_UNAVAILABLE, cx.reserved))
        }
    }
}

/// Applies a verdict on the worker: registers the session (kicking a same-class one) and
/// answers 1/4, or refuses and closes.
pub fn finish(st: &State, conn: ConnId, mc: &mut MsgConn, v: Verdict, now: Instant) -> Vec<Effect> {
    let Some(user) = v.user else {
        st.throttle.lock().record_failure(&v.name, v.ip, now);
        bump(&st.counters.login_failures);
        log::info!(target: "login", "conn={conn:?} login refused for {:?}", String::from_utf8_lossy(&v.name));
        return refuse(mc, RESULT_REFUSED, v.reserved);
    };
    st.throttle.lock().record_success(&v.name);
    let token = match new_token() {
        Ok(t) => t,
        Err(e) => {
            log::error!(target: "login", "no random token: {e}");
            return refuse(mc, RESULT_UNAVAILABLE, v.reserved);
        }
    };
    st.tokens
        .lock()
        .session_started(user.id, token.clone(), now);
    let status = if v.online_status == LEAVE {
        LEAVE
    } else {
        ONLINE
    };
    let (class, family) = classify(v.client_type);
    let (replaced, change) = st.presence.login(
        user.id,
        SessionRef {
            conn,
            class,
            status,
        },
    );
    let mut effects = Vec::with_capacity(3);
    if let Some(old) = replaced {
        bump(&st.counters.kicks);
        let kick = Pdu::KickUser(KickUser {
            user_id: user.id,
            reason: 1,
        })
        .to_frame(0);
        effects.push(Effect::Kick {
            conn: old.conn,
            bytes: kick.into(),
        });
    }
    let rsp = Pdu::LoginResponse(LoginResponse {
        server_time: unix_now(),
        result: 0,
        ok: Some(LoginOk {
            online_status: status,
            user_id: Id::Num(user.id),
            nickname: user.nick.as_bytes(),
            avatar_url: user.avatar.as_bytes(),
            title: user.title.as_bytes(),
            position: user.position.as_bytes(),
            role_status: user.role_status,
            sex: user.sex,
            depart_id: Id::Num(user.depart_id),
            job_num: user.job_num,
            telephone: user.telephone.as_bytes(),
            email: user.email.as_bytes(),
            token: token.as_bytes(),
        }),
    })
    .to_frame(v.reserved);
    effects.push(Effect::Reply(rsp));
    if let Some(c) = change {
        effects.push(Effect::StatusChanged(c));
    }
    log::info!(target: "login", "conn={conn:?} user={} logged in (client_type {:#x})", user.id, v.client_type);
    mc.phase = Phase::LoggedIn;
    mc.session = Some(Session {
        user_id: user.id,
        class,
        family,
        client_type: v.client_type,
    });
    effects
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_types_map_to_class_and_family() {
        assert_eq!(classify(0x01), (Class::Pc, Family::Pc));
        assert_eq!(classify(0x02), (Class::Pc, Family::Pc));
        assert_eq!(classify(0x11), (Class::Mobile, Family::Ios));
        assert_eq!(classify(0x12), (Class::Mobile, Family::Android));
        assert_eq!(classify(0x1F), (Class::Mobile, Family::Android));
        assert_eq!(classify(0x07), (Class::Pc, Family::Pc));
    }
}
