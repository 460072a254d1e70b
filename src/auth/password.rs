//! Password hashing (B-LOGIN-3, B-ADM-5).
//!
//! Clients send md5hex(plain) in 1/3; the store keeps argon2id(md5hex(plain)) as a PHC string
//! (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`) with a random 16-byte salt per user.

use std::fmt;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use md5::{Digest, Md5};

use super::HashCost;

/// Hashing failed (no randomness from the OS, or bad parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordError(String);

impl fmt::Display for PasswordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "password hashing failed: {}", self.0)
    }
}

impl std::error::Error for PasswordError {}

impl PasswordError {
    /// A hashing thread panicked (argon2 does not; kept so callers need no unwrap on join).
    pub fn from_panic() -> PasswordError {
        PasswordError("a hashing thread panicked".into())
    }
}

/// Upper bounds on the parameters `verify` accepts from a stored hash, so that a corrupt or
/// hostile row cannot make one login allocate gigabytes or spin for minutes.
const MAX_M_COST_KIB: u32 = 256 * 1024;
const MAX_T_COST: u32 = 16;
const MAX_P_COST: u32 = 8;

/// md5 of `plain` as 32 lowercase hex digits (what TeamTalk clients send as the password).
pub fn md5_hex(plain: &str) -> String {
    let digest = Md5::digest(plain.as_bytes());
    let mut out = String::with_capacity(32);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn params(cost: HashCost) -> Result<Params, PasswordError> {
    let (m, t, p) = match cost {
        HashCost::Low => (8, 1, 1),
        HashCost::Default => (19_456, 2, 1),
    };
    Params::new(m, t, p, None).map_err(|e| PasswordError(e.to_string()))
}

fn hash_with_salt(md5hex: &[u8], cost: HashCost, salt: &[u8]) -> Result<String, PasswordError> {
    let salt = SaltString::encode_b64(salt).map_err(|e| PasswordError(e.to_string()))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params(cost)?);
    argon
        .hash_password(md5hex, &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError(e.to_string()))
}

/// The argon2id PHC string of `md5hex` (the md5hex string a client sends in 1/3) with a random
/// 16-byte salt. Low = m 8 KiB, t 1, p 1 (load tests); Default = m 19456 KiB, t 2, p 1.
pub fn hash(md5hex: &[u8], cost: HashCost) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| PasswordError(format!("no OS randomness: {e}")))?;
    hash_with_salt(md5hex, cost, &salt)
}

/// Whether `md5hex` matches the stored PHC string. False for a malformed string, another
/// algorithm than argon2id, or out-of-bounds parameters; never panics.
pub fn verify(md5hex: &[u8], phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return false;
    }
    let Ok(p) = Params::try_from(&parsed) else {
        return false;
    };
    if p.m_cost() > MAX_M_COST_KIB || p.t_cost() > MAX_T_COST || p.p_cost() > MAX_P_COST {
        return false;
    }
    Argon2::default().verify_password(md5hex, &parsed).is_ok()
}

/// B-LOGIN-3: a fixed, valid hash per cost (computed once) to verify against when the login
/// name is unknown, so that timing does not reveal whether a name exists. Nothing verifies
/// against it (the hashed input is not an md5hex string).
pub fn dummy_hash(cost: HashCost) -> &'static str {
    static LOW: OnceLock<String> = OnceLock::new();
    static DEFAULT: OnceLock<String> = OnceLock::new();
    let cell = match cost {
        HashCost::Low => &LOW,
        HashCost::Default => &DEFAULT,
    };
    cell.get_or_init(|| {
        hash_with_salt(
            b"ttserver dummy: not an md5hex",
            cost,
            b"ttserver-dummy-salt",
        )
        .unwrap_or_else(|e| {
            log::error!(target: "auth", "computing the dummy hash failed: {e}");
            String::new()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_hex_known_values() {
        assert_eq!(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex("123456"), "e10adc3949ba59abbe56e057f20f883e");
    }

    #[test]
    fn hash_and_verify_low() {
        let pw = md5_hex("secret");
        let h = hash(pw.as_bytes(), HashCost::Low).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{h}");
        assert!(verify(pw.as_bytes(), &h));
        assert!(!verify(md5_hex("Secret").as_bytes(), &h));
        assert!(!verify(b"", &h));
        // a new salt each time
        assert_ne!(h, hash(pw.as_bytes(), HashCost::Low).unwrap());
    }

    #[test]
    fn default_cost_params() {
        let h = hash(b"x", HashCost::Default).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify(b"x", &h));
    }

    #[test]
    fn malformed_phc_is_false() {
        let pw = md5_hex("secret");
        for bad in [
            "",
            "x",
            "$argon2id$",
            "$argon2id$v=19$m=8,t=1,p=1$",
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$",
            "$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$2b$12$abcdefghijklmnopqrstuv",
            "$argon2id$v=19$m=8,t=1,p=1$\u{e9}\u{e9}$\u{e9}",
        ] {
            assert!(!verify(pw.as_bytes(), bad), "{bad}");
        }
        // a truncated real hash
        let h = hash(pw.as_bytes(), HashCost::Low).unwrap();
        assert!(!verify(pw.as_bytes(), h.get(..h.len() - 3).unwrap()));
    }

    #[test]
    fn dummy_is_valid_and_matches_nothing() {
        for cost in [HashCost::Low, HashCost::Default] {
            let d = dummy_hash(cost);
            assert!(d.starts_with("$argon2id$"), "{d}");
            assert_eq!(d, dummy_hash(cost));
            assert!(!verify(md5_hex("").as_bytes(), d));
            assert!(!verify(md5_hex("password").as_bytes(), d));
        }
    }
}
