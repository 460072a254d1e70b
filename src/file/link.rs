//! The file role's side of a link with msg servers when it runs alone (`ttserver file`):
//! the token mirror (B-TOK-2 as the msg server knows it) and the "upload complete" notice that
//! goes back over the links. The PDUs are in [`crate::proto::internal`]; the worker reads them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use parking_lot::Mutex;

use super::hub::{ReadyNotice, Task, TokenCheck, TransMode};
use super::FileMsg;
use crate::auth::token_registry::{TokenRegistry, TokenState};
use crate::proto::internal::{self, LinkTask, LinkTokens, STILL_ONLINE};

/// The msg servers' token registries as told over the links.
pub struct MirrorTokens {
    reg: Mutex<TokenRegistry>,
}

impl MirrorTokens {
    pub fn new(grace: Duration) -> Arc<MirrorTokens> {
        Arc::new(MirrorTokens {
            reg: Mutex::new(TokenRegistry::new(grace)),
        })
    }

    /// A 4 Tokens PDU.
    pub fn apply(&self, t: &LinkTokens<'_>) {
        let state = TokenState {
            user: t.user,
            tokens: t
                .tokens
                .iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect(),
            sessions: t.sessions,
            ended_ago: (t.ended_ms_ago != STILL_ONLINE)
                .then(|| Duration::from_millis(u64::from(t.ended_ms_ago))),
        };
        self.reg.lock().apply(state, Instant::now());
    }
}

impl TokenCheck for MirrorTokens {
    fn valid_for(&self, token: &[u8], user: u32) -> bool {
        self.reg.lock().is_valid(token, user, Instant::now())
    }
}

/// The notice of a finished upload, routed to the worker, which sends it over every link.
pub struct LinkNotice {
    pub(super) tx: Sender<FileMsg>,
    pub(super) waker: Arc<mio::Waker>,
}

impl ReadyNotice for LinkNotice {
    fn upload_complete(&self, task: &Task) {
        if self.tx.send(FileMsg::Ready(task.clone())).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

/// The 4 Tokens PDU for a registry state (msg side).
pub fn tokens_frame(s: &TokenState) -> Vec<u8> {
    let ended = s.ended_ago.map_or(STILL_ONLINE, |d| {
        u32::try_from(d.as_millis()).unwrap_or(STILL_ONLINE - 1)
    });
    let body = LinkTokens {
        user: s.user,
        sessions: s.sessions,
        ended_ms_ago: ended,
        tokens: s.tokens.iter().map(String::as_bytes).collect(),
    };
    internal::frame(internal::TOKENS, Some(&body))
}

/// A task as a 3 Task or 6 Ready PDU.
pub fn task_frame(command: u16, t: &Task) -> Vec<u8> {
    let body = LinkTask {
        task_id: t.id.as_bytes(),
        from: t.from,
        to: t.to,
        name: &t.name,
        size: t.size,
        mode: t.mode as u32,
    };
    internal::frame(command, Some(&body))
}

/// A task from a 3 Task or 6 Ready PDU; `None` unless the id has the server-id layout.
pub fn task_of(t: &LinkTask<'_>) -> Option<Task> {
    let mode = match t.mode {
        1 => TransMode::Online,
        2 => TransMode::Offline,
        _ => return None,
    };
    let id = std::str::from_utf8(t.task_id)
        .ok()
        .filter(|id| super::hub::is_server_id(id.as_bytes()))?;
    Some(Task {
        id: id.to_string(),
        from: t.from,
        to: t.to,
        name: t.name.to_vec(),
        size: t.size,
        mode,
    })
}
