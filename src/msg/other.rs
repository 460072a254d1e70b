//! Module 7 (OTHER): heartbeat and status change (B-HB-1, B-PRES-4).

use super::presence::{LEAVE, ONLINE};
use super::{Ctx, Effect, MsgConn, Step};
use crate::proto::buddy::UserStatusNotify;
use crate::proto::other::ServiceSetting;
use crate::proto::{Id, Pdu};
use crate::stats::bump;

/// 7/61 key for the online status.
const KEY_ONLINE_STATUS: u32 = 2;

pub fn heartbeat(cx: &Ctx<'_>, mc: &mut MsgConn) -> Step {
    cx.respond(
        mc,
        vec![Effect::Reply(Pdu::Heartbeat.to_frame(cx.reserved))],
    )
}

/// The 2/5 push for a status.
pub fn status_notify(user: u32, status: u32, reserved: u16) -> Vec<u8> {
    Pdu::UserStatusNotify(UserStatusNotify {
        user_id: Id::Num(user),
        status,
    })
    .to_frame(reserved)
}

/// 7/61: key 2 with value 1 or 3 sets this session's status; echo to the requester (its
/// reserved), copies to the user's other sessions (reserved 0), then watchers (B-PRES-3).
pub fn service_setting(cx: &Ctx<'_>, mc: &mut MsgConn, s: &ServiceSetting) -> Step {
    let st = cx.st;
    let Some(me) = mc.user_id() else {
        return Step::Now(Vec::new());
    };
    if s.key != KEY_ONLINE_STATUS || !(s.value == ONLINE || s.value == LEAVE) {
        bump(&st.counters.ignored_settings);
        return Step::Now(Vec::new());
    }
    let Some(change) = st.presence.set_status(me, cx.conn, s.value) else {
        return Step::Now(Vec::new());
    };
    let mut effects = vec![
        Effect::Reply(status_notify(me, s.value, cx.reserved)),
        Effect::Deliver {
            user: me,
            bytes: status_notify(me, s.value, 0).into(),
            skip: Some(cx.conn),
        },
    ];
    if let Some(c) = change {
        effects.push(Effect::StatusChanged(c));
    }
    cx.respond(mc, effects)
}
