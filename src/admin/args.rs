//! A tiny option parser: positional words and `--flag value` pairs.

use super::AdminError;

/// Parsed command-line words after the verb.
pub(super) struct Parsed<'a> {
    pub positional: Vec<&'a str>,
    flags: Vec<(&'a str, &'a str)>,
}

impl<'a> Parsed<'a> {
    /// Splits `words`; every `--x` must be one of `allowed` and be followed by a value;
    /// a flag given twice is an error.
    pub fn new(words: &[&'a str], allowed: &[&str]) -> Result<Parsed<'a>, AdminError> {
        let mut positional = Vec::new();
        let mut flags: Vec<(&str, &str)> = Vec::new();
        let mut it = words.iter();
        while let Some(&w) = it.next() {
            if let Some(name) = w.strip_prefix("--") {
                if !allowed.contains(&name) {
                    return Err(AdminError::Usage(format!("unknown option --{name}")));
                }
                let Some(&value) = it.next() else {
                    return Err(AdminError::Usage(format!("option --{name} needs a value")));
                };
                if flags.iter().any(|(n, _)| *n == name) {
                    return Err(AdminError::Usage(format!("option --{name} given twice")));
                }
                flags.push((name, value));
            } else {
                positional.push(w);
            }
        }
        Ok(Parsed { positional, flags })
    }

    pub fn flag(&self, name: &str) -> Option<&'a str> {
        self.flags.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    /// A numeric flag (decimal u32), `default` when absent.
    pub fn flag_u32(&self, name: &str, default: u32) -> Result<u32, AdminError> {
        match self.flag(name) {
            None => Ok(default),
            Some(v) => parse_u32(v)
                .ok_or_else(|| AdminError::Usage(format!("--{name} {v:?}: not a number"))),
        }
    }

    /// Exactly one positional word.
    pub fn single(&self, what: &str) -> Result<&'a str, AdminError> {
        match self.positional.as_slice() {
            [one] => Ok(one),
            [] => Err(AdminError::Usage(format!("{what}: missing argument"))),
            _ => Err(AdminError::Usage(format!("{what}: too many arguments"))),
        }
    }
}

/// Exactly one positional word and no options.
pub(super) fn one_positional<'a>(words: &[&'a str], what: &str) -> Result<&'a str, AdminError> {
    Parsed::new(words, &[])?.single(what)
}

/// A plain decimal u32 (no sign, no spaces).
pub(super) fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_and_positionals() {
        let p = Parsed::new(&["a", "--x", "1", "b", "--y", "--z"], &["x", "y"]).unwrap();
        assert_eq!(p.positional, ["a", "b"]);
        assert_eq!(p.flag("x"), Some("1"));
        assert_eq!(p.flag("y"), Some("--z"));
        assert_eq!(p.flag_u32("x", 0).unwrap(), 1);
        assert_eq!(p.flag_u32("w", 7).unwrap(), 7);
        assert!(Parsed::new(&["--x", "1", "--x", "2"], &["x"]).is_err());
        assert!(Parsed::new(&["--q", "1"], &["x"]).is_err());
        assert!(Parsed::new(&["--x"], &["x"]).is_err());
        assert_eq!(parse_u32("42"), Some(42));
        for bad in ["", "-1", "+1", " 1", "4294967296", "1x"] {
            assert_eq!(parse_u32(bad), None, "{bad}");
        }
    }
}
