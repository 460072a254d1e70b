//! Checks of the text the admin CLI and the HTTP admin API store (behaviour.md section 14): login
//! names, nicks, titles and group names. One function for both front ends, so a name the API
//! refuses cannot come in through the CLI.

/// Login names: 1..=64 bytes (`POST /v1/users`).
pub const LOGIN_NAME_MAX: usize = 64;
/// Group names: 1..=256 bytes (as 5/12, B-GRP-2).
pub const GROUP_NAME_MAX: usize = 256;
/// Nicks, user titles and positions, department titles: at most 256 bytes.
pub const LABEL_MAX: usize = 256;

/// A name or title shown to people: `min..=max` bytes of UTF-8 without control characters
/// (`char::is_control`: NUL, tab, newline, DEL, the C1 range ...). Clients display these
/// verbatim, and a NUL or newline in a login name makes one account look like another or cuts
/// it short in C clients. `Err` is the message for the operator, naming `what`.
pub fn label(what: &str, v: &str, min: usize, max: usize) -> Result<(), String> {
    if v.len() < min || v.len() > max {
        return Err(if min == 0 {
            format!("{what} must be at most {max} bytes")
        } else {
            format!("{what} must be {min} to {max} bytes")
        });
    }
    if let Some(c) = v.chars().find(|c| c.is_control()) {
        return Err(format!(
            "{what} must not contain control characters (found U+{:04X})",
            u32::from(c)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert!(label("name", "alice", 1, 64).is_ok());
        assert!(label("name", "Zoë 王", 1, 64).is_ok());
        assert!(label("nick", "", 0, 64).is_ok());
        assert_eq!(
            label("name", "", 1, 64).unwrap_err(),
            "name must be 1 to 64 bytes"
        );
        assert!(label("name", &"a".repeat(65), 1, 64).is_err());
        assert_eq!(
            label("nick", &"a".repeat(65), 0, 64).unwrap_err(),
            "nick must be at most 64 bytes"
        );
        for bad in ["a\0b", "a\nb", "\tx", "x\r", "\u{7f}", "x\u{85}", "\u{9f}"] {
            let e = label("name", bad, 1, 64).unwrap_err();
            assert!(
                e.starts_with("name must not contain control characters"),
                "{e}"
            );
        }
        assert!(label("name", "a\0", 1, 64).unwrap_err().contains("U+0000"));
    }
}
