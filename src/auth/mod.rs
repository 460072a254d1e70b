//! Authentication: password hashing, login throttling, session tokens ([`token_gen`] makes
//! them, [`token_registry`] knows which are valid).

pub mod hashers;
pub mod password;
pub mod throttle;
pub mod token_gen;
pub mod token_registry;

/// argon2id cost level (`PasswordHashCost` conf key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashCost {
    /// m = 8 KiB, t = 1, p = 1: for load tests only.
    Low,
    /// m = 19 MiB, t = 2, p = 1 (behaviour.md section 0).
    Default,
}

/// Whether `given` equals `expected`, in time that depends on the lengths only (secrets,
/// bearer tokens). An empty `expected` never matches.
pub fn secret_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len() || expected.is_empty());
    for (i, b) in given.iter().enumerate() {
        diff |= b ^ expected.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn secret_eq_compares_whole_values() {
        use super::secret_eq;
        assert!(secret_eq(b"abc", b"abc"));
        assert!(!secret_eq(b"abd", b"abc"));
        assert!(!secret_eq(b"ab", b"abc"));
        assert!(!secret_eq(b"abcd", b"abc"));
        assert!(!secret_eq(b"", b""), "empty never matches");
    }
}
