//! Which session tokens are valid (B-TOK-2, B-TOK-3).
//!
//! A token authenticates its own user while that user has at least one session and for
//! `TokenGrace` after the user's last session ended; disabling the user revokes it at once.
//! Tokens live in memory only, so a restart invalidates all of them. Time is passed in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

struct UserTokens {
    tokens: Vec<String>,
    sessions: u32,
    /// When the last session ended (None while sessions > 0).
    ended: Option<Instant>,
}

/// One user's token state, as a msg server tells a file server that runs alone
/// (`proto::internal::LinkTokens`). No tokens: revoked or forgotten.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenState {
    pub user: u32,
    pub tokens: Vec<String>,
    pub sessions: u32,
    /// How long ago the last session ended (None while sessions > 0).
    pub ended_ago: Option<Duration>,
}

/// Called with the new state of a user after every change (the link to a separate file role).
pub type TokenObserver = Box<dyn Fn(TokenState) + Send>;

pub struct TokenRegistry {
    grace: Duration,
    owner: HashMap<String, u32>,
    users: HashMap<u32, UserTokens>,
    observer: Option<TokenObserver>,
}

impl TokenRegistry {
    pub fn new(grace: Duration) -> Self {
        TokenRegistry {
            grace,
            owner: HashMap::new(),
            users: HashMap::new(),
            observer: None,
        }
    }

    /// From now on every change is also reported to `f` (while the registry is locked: keep
    /// `f` short, e.g. a channel send).
    pub fn set_observer(&mut self, f: TokenObserver) {
        self.observer = Some(f);
    }

    fn report(&self, user: u32, now: Instant) {
        if let Some(f) = &self.observer {
            f(self.state_of(user, now));
        }
    }

    /// `user`'s current state.
    pub fn state_of(&self, user: u32, now: Instant) -> TokenState {
        match self.users.get(&user) {
            Some(u) => TokenState {
                user,
                tokens: u.tokens.clone(),
                sessions: u.sessions,
                ended_ago: u.ended.map(|t| now.saturating_duration_since(t)),
            },
            None => TokenState {
                user,
                tokens: Vec::new(),
                sessions: 0,
                ended_ago: None,
            },
        }
    }

    /// Every user's state (a newly opened link starts from these).
    pub fn states(&self, now: Instant) -> Vec<TokenState> {
        self.users.keys().map(|&u| self.state_of(u, now)).collect()
    }

    /// Replaces `s.user`'s entry with `s` (the file role's mirror of a msg server's registry).
    pub fn apply(&mut self, s: TokenState, now: Instant) {
        self.prune(now);
        self.revoke_user(s.user);
        if s.tokens.is_empty() {
            return;
        }
        for t in &s.tokens {
            self.owner.insert(t.clone(), s.user);
        }
        let ended = match (s.sessions, s.ended_ago) {
            (0, Some(ago)) => Some(now.checked_sub(ago).unwrap_or(now)),
            (0, None) => Some(now),
            _ => None,
        };
        self.users.insert(
            s.user,
            UserTokens {
                tokens: s.tokens,
                sessions: s.sessions,
                ended,
            },
        );
    }

    /// A session of `user` started with this new token.
    pub fn session_started(&mut self, user: u32, token: String, now: Instant) {
        self.prune(now);
        let u = self.users.entry(user).or_insert(UserTokens {
            tokens: Vec::new(),
            sessions: 0,
            ended: None,
        });
        u.sessions += 1;
        u.ended = None;
        self.owner.insert(token.clone(), user);
        u.tokens.push(token);
        self.report(user, now);
    }

    /// A session of `user` ended (closed, kicked, timed out).
    pub fn session_ended(&mut self, user: u32, now: Instant) {
        if let Some(u) = self.users.get_mut(&user) {
            u.sessions = u.sessions.saturating_sub(1);
            if u.sessions == 0 {
                u.ended = Some(now);
            }
            self.report(user, now);
        }
    }

    /// B-ADM-6: the user was disabled; every token of it stops working now.
    pub fn revoke_user(&mut self, user: u32) {
        if let Some(u) = self.users.remove(&user) {
            for t in u.tokens {
                self.owner.remove(&t);
            }
            self.report(user, Instant::now());
        }
    }

    /// Whether `token` is valid for `user` at `now` (accepted nowhere but 6/1 and msfs).
    pub fn is_valid(&self, token: &[u8], user: u32, now: Instant) -> bool {
        let Ok(token) = std::str::from_utf8(token) else {
            return false;
        };
        if self.owner.get(token) != Some(&user) {
            return false;
        }
        self.users.get(&user).is_some_and(|u| match u.ended {
            None => u.sessions > 0,
            Some(t) => now.saturating_duration_since(t) < self.grace,
        })
    }

    /// The user `token` authenticates at `now` (same rule as [`TokenRegistry::is_valid`]), for
    /// callers that are not told the user id (msfs uploads, B-MSFS-5).
    pub fn owner_of(&self, token: &[u8], now: Instant) -> Option<u32> {
        let user = *self.owner.get(std::str::from_utf8(token).ok()?)?;
        self.is_valid(token, user, now).then_some(user)
    }

    /// Number of tokens held (for tests and stats).
    pub fn len(&self) -> usize {
        self.owner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.owner.is_empty()
    }

    /// Forgets users whose grace has passed; called on every new session, so memory follows
    /// the number of users online within the last `TokenGrace`.
    fn prune(&mut self, now: Instant) {
        let grace = self.grace;
        let owner = &mut self.owner;
        self.users.retain(|_, u| {
            let keep = match u.ended {
                None => true,
                Some(t) => now.saturating_duration_since(t) < grace,
            };
            if !keep {
                for t in &u.tokens {
                    owner.remove(t);
                }
            }
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_for_its_user_while_a_session_lives_and_during_grace() {
        let t0 = Instant::now();
        let mut r = TokenRegistry::new(Duration::from_secs(60));
        r.session_started(7, "tok-a".into(), t0);
        r.session_started(7, "tok-b".into(), t0);
        assert!(r.is_valid(b"tok-a", 7, t0));
        assert!(!r.is_valid(b"tok-a", 8, t0), "only its own user");
        assert!(!r.is_valid(b"nope", 7, t0));
        r.session_ended(7, t0);
        assert!(
            r.is_valid(b"tok-a", 7, t0 + Duration::from_secs(3600)),
            "one session left"
        );
        r.session_ended(7, t0 + Duration::from_secs(10));
        assert!(r.is_valid(b"tok-b", 7, t0 + Duration::from_secs(69)));
        assert!(!r.is_valid(b"tok-b", 7, t0 + Duration::from_secs(70)));
        // A new session of someone else prunes the expired user.
        r.session_started(9, "tok-c".into(), t0 + Duration::from_secs(71));
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn a_mirror_fed_by_the_observer_agrees() {
        use std::sync::mpsc;
        let t0 = Instant::now();
        let (tx, rx) = mpsc::channel();
        let mut r = TokenRegistry::new(Duration::from_secs(60));
        r.set_observer(Box::new(move |s| tx.send(s).unwrap()));
        let mut mirror = TokenRegistry::new(Duration::from_secs(60));
        let sync = |m: &mut TokenRegistry, now| {
            while let Ok(s) = rx.try_recv() {
                m.apply(s, now);
            }
        };
        r.session_started(7, "tok".into(), t0);
        sync(&mut mirror, t0);
        assert!(mirror.is_valid(b"tok", 7, t0));
        r.session_ended(7, t0 + Duration::from_secs(10));
        sync(&mut mirror, t0 + Duration::from_secs(10));
        assert!(mirror.is_valid(b"tok", 7, t0 + Duration::from_secs(69)));
        assert!(
            !mirror.is_valid(b"tok", 7, t0 + Duration::from_secs(70)),
            "grace"
        );
        r.session_started(7, "tok2".into(), t0 + Duration::from_secs(20));
        r.revoke_user(7);
        sync(&mut mirror, t0 + Duration::from_secs(20));
        assert!(
            !mirror.is_valid(b"tok2", 7, t0 + Duration::from_secs(20)),
            "revoked"
        );
        assert!(mirror.is_empty());
    }

    #[test]
    fn owner_of_follows_the_validity_rule() {
        let t0 = Instant::now();
        let mut r = TokenRegistry::new(Duration::from_secs(60));
        r.session_started(7, "tok-a".into(), t0);
        r.session_started(8, "tok-b".into(), t0);
        assert_eq!(r.owner_of(b"tok-a", t0), Some(7));
        assert_eq!(r.owner_of(b"tok-b", t0), Some(8));
        assert_eq!(r.owner_of(b"tok-c", t0), None);
        assert_eq!(r.owner_of(b"", t0), None);
        assert_eq!(r.owner_of(b"\xff\xfe", t0), None);
        r.session_ended(7, t0 + Duration::from_secs(10));
        assert_eq!(r.owner_of(b"tok-a", t0 + Duration::from_secs(69)), Some(7));
        assert_eq!(r.owner_of(b"tok-a", t0 + Duration::from_secs(70)), None);
        r.revoke_user(8);
        assert_eq!(r.owner_of(b"tok-b", t0), None);
    }

    #[test]
    fn revoking_a_user_invalidates_at_once() {
        let t0 = Instant::now();
        let mut r = TokenRegistry::new(Duration::from_secs(60));
        r.session_started(7, "tok".into(), t0);
        r.revoke_user(7);
        assert!(!r.is_valid(b"tok", 7, t0));
        assert!(r.is_empty());
    }
}
