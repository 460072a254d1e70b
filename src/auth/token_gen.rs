//! Session tokens (behaviour.md B-TOK-1): 128 bits from the OS CSPRNG, written as 36 lowercase
//! characters in the 8-4-4-4-12 hex layout. All 128 bits are random (no UUID version bits).

/// Length of a token string.
pub const TOKEN_LEN: usize = 36;

/// A new random token, e.g. `3f2a9c1e-07b4-4d5e-a1c2-9e8f7a6b5c4d`. Fails only if the OS
/// random source does.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(format_token(&bytes))
}

fn format_token(bytes: &[u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(TOKEN_LEN);
    for (i, &b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        for nibble in [b >> 4, b & 0x0f] {
            s.push(char::from(
                HEX.get(usize::from(nibble)).copied().unwrap_or(b'0'),
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn well_formed(t: &str) -> bool {
        let groups: Vec<&str> = t.split('-').collect();
        t.len() == TOKEN_LEN
            && groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
            && groups.iter().all(|g| {
                g.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
    }

    #[test]
    fn layout() {
        let bytes = [
            0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54,
            0x32, 0x10,
        ];
        assert_eq!(format_token(&bytes), "01234567-89ab-cdef-fedc-ba9876543210");
        assert!(well_formed(&new_token().unwrap()));
    }

    #[test]
    fn unique_over_10k() {
        let tokens: HashSet<String> = (0..10_000).map(|_| new_token().unwrap()).collect();
        assert_eq!(tokens.len(), 10_000);
        assert!(tokens.iter().all(|t| well_formed(t)));
    }
}
