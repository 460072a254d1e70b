//! Bridges storage threads and workers: submitting jobs for a connection, and turning finished
//! jobs into effects on that connection's worker.

use std::ops::ControlFlow;
use std::sync::Arc;

use rusqlite::Connection;

use super::chat::Delivery;
use super::group::{change_rsp, create_rsp};
use super::group_cache::GroupCache;
use super::presence::Presence;
use super::service::WorkerMsg;
use super::{Ctx, Effect, MsgConn, Step};
use crate::msg::state::State;
use crate::net::{ConnId, Shared, Workers};
use crate::stats::{bump, Counters};
use crate::store::writer::{Outlet, WriteJob, WriteOp, WriteOut};
use crate::store::StoreError;

/// What the worker needs to answer a write once it committed.
pub enum WriteKind {
    /// 3/1: the sender's ack, and the delivery, encoded here after commit with the stored
    /// time, once for every session.
    P2p { ack: Vec<u8>, delivery: Delivery },
    /// Group 3/1 (B-GRP-8): like `P2p`; the delivery (`to` = the group) goes to the group's
    /// members after commit.
    GroupMsg { ack: Vec<u8>, delivery: Delivery },
    /// 5/12 (B-GRP-3): the requested name and the request's `reserved`.
    CreateGroup { name: Vec<u8>, reserved: u16 },
    /// 5/14 (B-GRP-5): the request's `group_id` bytes, `change_type` and list as sent (failure
    /// echoes), and its `reserved`.
    ChangeMembers {
        group_echo: Vec<u8>,
        change_type: u32,
        list: Vec<Vec<u8>>,
        reserved: u16,
    },
    /// 2/12 for a group (B-RC-4): 2/13 result 0 if the user was a member, else `fail`.
    HideGroup { ok: Vec<u8>, fail: Vec<u8> },
    /// A write whose success reply was encoded up front (or none, if empty); `on_error` replaces
    /// it when the write fails (B-GEN-5).
    Plain { ok: Vec<u8>, on_error: Vec<u8> },
    /// A write of the HTTP admin API (B-ADM-4): the result goes back to the admin thread on
    /// `reply`, nothing to any worker (the tag's `conn` is a dummy).
    Admin {
        reply: crossbeam_channel::Sender<Result<WriteOut, StoreError>>,
        cache: AdminCache,
        /// A message of `POST /v1/messages`, delivered from here after commit like a client's
        /// (B-ADM-7), so it keeps commit order with them (B-GRP-9).
        deliver: Option<AdminDelivery>,
    },
}

impl WriteKind {
    /// A write answered by nothing (3/3, 5/11): only its slot's place in the order matters.
    pub fn silent() -> WriteKind {
        WriteKind::Plain {
            ok: Vec::new(),
            on_error: Vec::new(),
        }
    }
}

/// The 3/1 of an admin message (B-ADM-7): to every session of the recipient and of the sender,
/// or, with `to_group`, to every session of every member of group `delivery.to`.
pub struct AdminDelivery {
    pub delivery: Delivery,
    pub to_group: bool,
}

/// How a committed admin write changes the group cache. Applied by the outlet right after the
/// commit, before any later write's effects, so group deliveries follow membership exactly
/// (B-GRP-19).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminCache {
    /// Not a membership change.
    Nothing,
    /// `CreateNormalGroup`: put the new normal group.
    CreateNormal,
    /// `SetNormalMembers`: the members after the change.
    SetMembers,
    /// `DeleteNormalGroup`: the group is gone.
    Delete,
}

impl AdminCache {
    /// What `op` does to the group cache once committed. Derived from the write itself, so no
    /// membership change of the admin API can leave the cache (and with it every worker's
    /// group deliveries and sender checks) behind the database.
    pub fn of(op: &WriteOp) -> AdminCache {
        match op {
            WriteOp::CreateNormalGroup { .. } => AdminCache::CreateNormal,
            WriteOp::SetNormalMembers { .. } => AdminCache::SetMembers,
            WriteOp::DeleteNormalGroup { .. } => AdminCache::Delete,
            _ => AdminCache::Nothing,
        }
    }
}

pub struct WriteTag {
    pub conn: ConnId,
    pub seq: u64,
    pub kind: WriteKind,
}

impl WriteTag {
    /// The tag of a write whose result goes back on `reply`, not to a connection (the admin
    /// API, the stop's barrier): its `conn` names no worker.
    pub fn admin(
        reply: crossbeam_channel::Sender<Result<WriteOut, StoreError>>,
        cache: AdminCache,
        deliver: Option<AdminDelivery>,
    ) -> WriteTag {
        WriteTag {
            conn: ConnId {
                worker: u16::MAX,
                slot: 0,
                generation: 0,
            },
            seq: 0,
            kind: WriteKind::Admin {
                reply,
                cache,
                deliver,
            },
        }
    }
}

/// Submits a write job for this connection (pending slot + writer queue).
pub fn submit_write(cx: &Ctx<'_>, mc: &mut MsgConn, op: WriteOp, kind: WriteKind) -> Step {
    let seq = mc.begin_job(true);
    let tag = WriteTag {
        conn: cx.conn,
        seq,
        kind,
    };
    match cx.jobs.write(WriteJob { op, tag }) {
        Ok(()) => Step::Queued,
        Err(super::Refused::Full) => {
            // Back-pressure: hold this PDU until the queue drains.
            mc.abort_job(seq);
            Step::Wait
        }
        Err(super::Refused::Closed) => {
            mc.abort_job(seq);
            bump(&cx.st.counters.store_failures);
            Step::Now(Vec::new())
        }
    }
}

/// Submits a read job; `f` runs on a reader thread and returns the effects for this connection.
pub fn submit_read(
    cx: &Ctx<'_>,
    mc: &mut MsgConn,
    f: impl FnOnce(&Connection, &State) -> Vec<Effect> + Send + 'static,
) -> Step {
    let seq = mc.begin_job(false);
    let conn = cx.conn;
    let st = Arc::clone(cx.st);
    let job = Box::new(move |db: &Connection| {
        let done = f(db, &st);
        if let Some(h) = st.workers().get(conn.worker) {
            h.send(WorkerMsg::Done { conn, seq, done });
        }
    });
    match cx.jobs.read(job) {
        Ok(()) => Step::Queued,
        Err(_) => {
            mc.abort_job(seq);
            Step::Wait
        }
    }
}

/// The writer's outlet: results go to the owning worker's channel; each touched worker is woken
/// once per batch.
/// It holds the counters and the group cache, not the whole state: the state owns the writer's
/// channel, and the writer must see that channel close at shutdown.
pub struct WorkerOutlet {
    pub workers: Workers<WorkerMsg>,
    pub counters: Arc<Counters>,
    /// Updated here after each committed membership change, before its effects are sent
    /// (B-GRP-19); group deliveries take their members from it at commit time.
    pub groups: Arc<GroupCache>,
    /// Committed messages are delivered from here, in commit order: p2p ones to each
    /// recipient session's worker, group ones as one Fanout per worker (B-GRP-9, B-MSG-4).
    pub presence: Arc<Presence>,
    touched: Vec<bool>,
}

impl WorkerOutlet {
    pub fn new(
        workers: Workers<WorkerMsg>,
        counters: Arc<Counters>,
        groups: Arc<GroupCache>,
        presence: Arc<Presence>,
    ) -> Self {
        let n = workers.all().len();
        WorkerOutlet {
            workers,
            counters,
            groups,
            presence,
            touched: vec![false; n],
        }
    }

    /// Effects of a committed group write (`Break`); other kinds and failures `Continue`.
    fn group_reply(
        &mut self,
        conn: ConnId,
        kind: WriteKind,
        result: Result<WriteOut, StoreError>,
    ) -> ControlFlow<Vec<Effect>, (WriteKind, Result<WriteOut, StoreError>)> {
        match (kind, result) {
            (WriteKind::GroupMsg { ack, delivery }, Ok(WriteOut::Stored { create_time, .. })) => {
                bump(&self.counters.msgs_group);
                // The members after this commit (B-GRP-8, B-GRP-19); one buffer for all, sent
                // now so every member session gets the group's messages in commit order.
                if let Some(g) = self.groups.live(delivery.to) {
                    self.fanout(
                        Arc::clone(&g.members),
                        delivery.encode(create_time),
                        Some(conn),
                    );
                }
                ControlFlow::Break(vec![Effect::Reply(ack)])
            }
            (WriteKind::GroupMsg { delivery, .. }, Err(StoreError::Invalid(e))) => {
                let group = delivery.to;
                // The sender left (or was removed, or the group deleted) after the check but
                // before the commit: a rejected message (B-GRP-7, B-GRP-19), not a storage fault.
                bump(&self.counters.msg_rejected);
                log::info!(target: "msg", "conn={conn:?} group {group} 3/1 refused at commit: {e}");
                ControlFlow::Break(Vec::new())
            }
            (
                WriteKind::CreateGroup { name, reserved },
                Ok(WriteOut::GroupCreated { group_id, members }),
            ) => {
                self.groups
                    .put(group_id, crate::store::groups::TEMP, &members);
                let mine = create_rsp(0, group_id, &name, &members, reserved);
                let push: Shared = create_rsp(0, group_id, &name, &members, 0).into();
                ControlFlow::Break(vec![
                    Effect::Reply(mine),
                    Effect::DeliverMembers {
                        members: members.into(),
                        bytes: push,
                        skip: Some(conn),
                    },
                ])
            }
            (
                WriteKind::CreateGroup { name, reserved },
                Ok(WriteOut::GroupChange { result, .. }),
            ) => ControlFlow::Break(vec![Effect::Reply(create_rsp(
                result,
                0,
                &name,
                &[],
                reserved,
            ))]),
            (
                WriteKind::ChangeMembers {
                    group_echo,
                    change_type,
                    list,
                    reserved,
                },
                Ok(WriteOut::GroupChange {
                    result,
                    group_id,
                    listed,
                    members_before,
                    members_after,
                }),
            ) => {
                if result != 0 {
                    let raw: Vec<&[u8]> = list.iter().map(Vec::as_slice).collect();
                    return ControlFlow::Break(vec![Effect::Reply(change_rsp(
                        result,
                        &group_echo,
                        change_type,
                        &raw,
                        reserved,
                    ))]);
                }
                if members_after != members_before {
                    self.groups.set_members(group_id, &members_after);
                }
                let ids: Vec<String> = listed.iter().map(u32::to_string).collect();
                let raw: Vec<&[u8]> = ids.iter().map(String::as_bytes).collect();
                let gid = group_id.to_string();
                let mine = change_rsp(0, gid.as_bytes(), change_type, &raw, reserved);
                let push: Shared = change_rsp(0, gid.as_bytes(), change_type, &raw, 0).into();
                // Members after the change, then listed users who are not (removed ones).
                let mut to: Vec<u32> = members_after.clone();
                let after: std::collections::HashSet<u32> = members_after.into_iter().collect();
                to.extend(listed.iter().copied().filter(|u| !after.contains(u)));
                ControlFlow::Break(vec![
                    Effect::Reply(mine),
                    Effect::DeliverMembers {
                        members: to.into(),
                        bytes: push,
                        skip: Some(conn),
                    },
                ])
            }
            (WriteKind::HideGroup { ok, fail }, Ok(WriteOut::Hidden { ok: member })) => {
                ControlFlow::Break(vec![Effect::Reply(if member { ok } else { fail })])
            }
            (kind, result) => ControlFlow::Continue((kind, result)),
        }
    }
}

impl WorkerOutlet {
    fn mark(&mut self, worker: u16) {
        if let Some(t) = self.touched.get_mut(usize::from(worker)) {
            *t = true;
        }
    }

    /// Queues one shared buffer on every session of `user` except `skip`.
    fn push_user(&mut self, user: u32, bytes: &Shared, skip: Option<ConnId>) {
        for s in self.presence.sessions(user) {
            if Some(s.conn) == skip {
                continue;
            }
            if let Some(h) = self.workers.get(s.conn.worker) {
                h.send_quiet(WorkerMsg::Push {
                    conn: s.conn,
                    bytes: Arc::clone(bytes),
                });
                self.mark(s.conn.worker);
            }
        }
    }

    /// One Fanout per worker; each delivers to its own member sessions.
    fn fanout(&mut self, members: Arc<[u32]>, bytes: Shared, skip: Option<ConnId>) {
        for i in 0..self.workers.all().len() {
            if let Some(h) = self.workers.all().get(i) {
                h.send_quiet(WorkerMsg::Fanout {
                    members: Arc::clone(&members),
                    bytes: Arc::clone(&bytes),
                    skip,
                });
            }
            if let Some(t) = self.touched.get_mut(i) {
                *t = true;
            }
        }
    }
}

impl Outlet for WorkerOutlet {
    type Tag = WriteTag;

    fn reply(&mut self, tag: WriteTag, result: Result<WriteOut, StoreError>) {
        let tag = match tag.kind {
            WriteKind::Admin {
                reply,
                cache,
                deliver,
            } => {
                if let Ok(out) = &result {
                    self.admin_cache(cache, out);
                }
                if let (Some(d), Ok(WriteOut::Stored { create_time, .. })) = (deliver, &result) {
                    self.admin_deliver(d, *create_time);
                }
                // The admin thread pushes to clients itself, after this commit.
                let _ = reply.send(result);
                return;
            }
            kind => WriteTag { kind, ..tag },
        };
        let (kind, result) = match self.group_reply(tag.conn, tag.kind, result) {
            ControlFlow::Break(done) => {
                self.send_done(tag.conn, tag.seq, done);
                return;
            }
            ControlFlow::Continue(pair) => pair,
        };
        let done = match (kind, result) {
            (WriteKind::P2p { ack, delivery }, Ok(WriteOut::Stored { create_time, .. })) => {
                bump(&self.counters.msgs_p2p);
                // Delivered now, in commit order (B-MSG-4, B-GEN-1); the ack follows through
                // the sender's worker, behind its earlier requests.
                self.deliver_p2p(&delivery, create_time, Some(tag.conn));
                vec![Effect::Reply(ack)]
            }
            (WriteKind::Plain { ok, .. }, Ok(_)) => vec![Effect::Reply(ok)],
            (kind, result) => {
                bump(&self.counters.store_failures);
                if let Err(e) = result {
                    log::error!(target: "store", "conn={:?} write failed: {e}", tag.conn);
                }
                match kind {
                    WriteKind::Plain { on_error, .. } => vec![Effect::Reply(on_error)],
                    WriteKind::HideGroup { fail, .. } => vec![Effect::Reply(fail)],
                    // B-GEN-5: 5/13 and 5/15 result 1 on a storage failure.
                    WriteKind::CreateGroup { name, reserved } => {
                        vec![Effect::Reply(create_rsp(1, 0, &name, &[], reserved))]
                    }
                    WriteKind::ChangeMembers {
                        group_echo,
                        change_type,
                        list,
                        reserved,
                    } => {
                        let raw: Vec<&[u8]> = list.iter().map(Vec::as_slice).collect();
                        vec![Effect::Reply(change_rsp(
                            1,
                            &group_echo,
                            change_type,
                            &raw,
                            reserved,
                        ))]
                    }
                    WriteKind::P2p { .. }
                    | WriteKind::GroupMsg { .. }
                    | WriteKind::Admin { .. } => Vec::new(),
                }
            }
        };
        self.send_done(tag.conn, tag.seq, done);
    }

    fn flush(&mut self) {
        self.wake_touched();
    }
}

impl WorkerOutlet {
    /// A committed p2p message to every session of its recipient and of its sender, except
    /// `skip` (the sending connection).
    fn deliver_p2p(&mut self, d: &Delivery, create_time: u32, skip: Option<ConnId>) {
        let bytes = d.encode(create_time);
        self.push_user(d.to, &bytes, skip);
        if d.from != d.to {
            self.push_user(d.from, &bytes, skip);
        }
    }

    fn admin_deliver(&mut self, d: AdminDelivery, create_time: u32) {
        if d.to_group {
            bump(&self.counters.msgs_group);
            if let Some(e) = self.groups.live(d.delivery.to) {
                self.fanout(Arc::clone(&e.members), d.delivery.encode(create_time), None);
            }
        } else {
            bump(&self.counters.msgs_p2p);
            self.deliver_p2p(&d.delivery, create_time, None);
        }
    }

    fn admin_cache(&self, cache: AdminCache, out: &WriteOut) {
        match (cache, out) {
            (AdminCache::CreateNormal, WriteOut::GroupCreated { group_id, members }) => {
                self.groups
                    .put(*group_id, crate::store::groups::NORMAL, members);
            }
            (
                AdminCache::SetMembers,
                WriteOut::GroupChange {
                    group_id,
                    members_before,
                    members_after,
                    ..
                },
            ) if members_before != members_after => {
                self.groups.set_members(*group_id, members_after);
            }
            (AdminCache::Delete, WriteOut::GroupChange { group_id, .. }) => {
                self.groups.delete(*group_id);
            }
            _ => {}
        }
    }

    fn send_done(&mut self, conn: ConnId, seq: u64, done: Vec<Effect>) {
        if let Some(h) = self.workers.get(conn.worker) {
            h.send_quiet(WorkerMsg::Done { conn, seq, done });
            if let Some(t) = self.touched.get_mut(usize::from(conn.worker)) {
                *t = true;
            }
        }
    }

    fn wake_touched(&mut self) {
        for (i, t) in self.touched.iter_mut().enumerate() {
            if std::mem::take(t) {
                if let Some(h) = self.workers.all().get(i) {
                    h.wake();
                }
            }
        }
    }
}

#[cfg(test)]
mod admin_tests {
    use super::*;

    fn admin_reply(
        o: &mut WorkerOutlet,
        cache: AdminCache,
        result: Result<WriteOut, StoreError>,
    ) -> Result<WriteOut, StoreError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        o.reply(WriteTag::admin(tx, cache, None), result);
        o.flush();
        rx.try_recv().unwrap()
    }

    #[test]
    fn admin_results_go_back_and_update_the_group_cache() {
        let groups = Arc::new(GroupCache::new(Vec::new()));
        let mut o = WorkerOutlet::new(
            Workers::default(),
            Arc::new(Counters::default()),
            Arc::clone(&groups),
            Arc::new(Presence::default()),
        );
        let created = WriteOut::GroupCreated {
            group_id: 4,
            members: vec![1, 2],
        };
        let r = admin_reply(&mut o, AdminCache::CreateNormal, Ok(created.clone()));
        assert_eq!(r.unwrap(), created);
        let g = groups.live(4).unwrap();
        assert_eq!((g.group_type, &g.members[..]), (1, &[1, 2][..]));
        let change = WriteOut::GroupChange {
            result: 0,
            group_id: 4,
            listed: vec![2, 3],
            members_before: vec![1, 2],
            members_after: vec![2, 3],
        };
        admin_reply(&mut o, AdminCache::SetMembers, Ok(change)).unwrap();
        assert_eq!(&groups.live(4).unwrap().members[..], &[2, 3][..]);
        // A failure changes nothing and is passed on.
        let r = admin_reply(
            &mut o,
            AdminCache::Delete,
            Err(StoreError::NotFound("x".into())),
        );
        assert!(matches!(r, Err(StoreError::NotFound(_))));
        assert!(groups.live(4).is_some());
        let gone = WriteOut::GroupChange {
            result: 0,
            group_id: 4,
            listed: vec![],
            members_before: vec![2, 3],
            members_after: vec![],
        };
        admin_reply(&mut o, AdminCache::Delete, Ok(gone)).unwrap();
        assert!(groups.live(4).is_none());
        assert_eq!(
            o.counters
                .store_failures
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }
}
