//! Authentication: password hashing, login throttling, session tokens.

pub mod password;
pub mod throttle;
pub mod token;
pub mod tokens;

/// argon2id cost level (`PasswordHashCost` conf key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashCost {
    /// m = 8 KiB, t = 1, p = 1: for load tests only.
    Low,
    /// m = 19 MiB, t = 2, p = 1 (behaviour.md section 0).
    Default,
}
