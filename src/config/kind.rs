//! The kinds of conf values: how a value is parsed and range-checked, how the reference in
//! `docs/configuration.md` names its type, and how a typed value is written back in conf syntax
//! (for the default column and the demo conf check).
//!
//! A kind is a small value (`Int { min, max }`, `Secs { .. }`, ...) written once per key in the
//! table (`table.rs`); [`Kind<T>`] ties it to the Rust type of the key's field, so a kind that
//! does not fit its field is a compile error, not a runtime surprise.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{
    check_admin_token, MAX_ADMIN_TOKEN_LEN, MAX_DURATION_SECS, MIN_ADMIN_TOKEN_LEN,
    MIN_CLUSTER_SECRET_LEN,
};

/// How values of one key are read into a `T`, described and written back.
pub trait Kind<T> {
    /// Parses the trimmed value; `Err` is the problem's message (without `file:line: Key:`).
    fn parse(&self, v: &str) -> Result<T, String>;
    /// The type column of the reference, e.g. `integer 1–100` or `duration 1 s – 1 year`.
    fn describe(&self) -> String;
    /// `value` as it would be written in a conf file (empty for an unset optional value).
    fn show(&self, value: &T) -> String;
}

/// `host:port` with a numeric IP.
pub struct Addr;
/// An IP address or host name handed to clients.
pub struct Host;
/// `;`-separated hosts, at least one.
pub struct HostList;
/// An `http://` or `https://` URL; a trailing `/` is dropped.
pub struct Url;
/// A directory path; relative = from the current directory.
pub struct Dir;
/// `true` or `false`.
pub struct Bool;
/// `AdminToken`: given, it must pass [`check_admin_token`]; not given (`None`), `ttserver run`
/// takes the token from `DataDir/admin.token`. Hence no "empty = unset" here.
pub struct AdminToken;
/// A shared secret (`ClusterSecret`): printable ASCII, at least [`MIN_CLUSTER_SECRET_LEN`].
pub struct Secret;
/// The inner kind, or empty = unset (`None`).
pub struct Opt<K>(pub K);
/// One of a few words, each naming a value.
pub struct OneOf<T: 'static>(pub &'static [(&'static str, T)]);

/// A plain decimal integer in `min..=max`; `size` words it as bytes in the reference.
pub struct Int {
    pub min: u64,
    pub max: u64,
    pub size: bool,
}

/// Whole seconds in `min..=max`.
pub struct Secs {
    pub min: u64,
    pub max: u64,
}

/// An integer key (`integer min–max` in the reference).
pub const fn int(min: u64, max: u64) -> Int {
    Int {
        min,
        max,
        size: false,
    }
}

/// A byte count (`size min–max` in the reference).
pub const fn size(min: u64, max: u64) -> Int {
    Int {
        min,
        max,
        size: true,
    }
}

/// A duration of at least `min` seconds and at most one year.
pub const fn secs(min: u64) -> Secs {
    Secs {
        min,
        max: MAX_DURATION_SECS,
    }
}

impl<T: TryFrom<u64> + fmt::Display> Kind<T> for Int {
    fn parse(&self, v: &str) -> Result<T, String> {
        let n = decimal(v, self.min, self.max)?;
        T::try_from(n).map_err(|_| out_of_range(v, self.min, self.max))
    }

    fn describe(&self) -> String {
        let word = if self.size { "size" } else { "integer" };
        if self.max == u64::MAX {
            format!("{word} ≥ {}", grouped(self.min))
        } else {
            format!("{word} {}–{}", grouped(self.min), grouped(self.max))
        }
    }

    fn show(&self, value: &T) -> String {
        value.to_string()
    }
}

impl Kind<Duration> for Secs {
    fn parse(&self, v: &str) -> Result<Duration, String> {
        decimal(v, self.min, self.max).map(Duration::from_secs)
    }

    fn describe(&self) -> String {
        let max = if self.max == MAX_DURATION_SECS {
            "1 year".to_string()
        } else {
            format!("{} s", grouped(self.max))
        };
        format!("duration {} s – {max}", self.min)
    }

    fn show(&self, value: &Duration) -> String {
        value.as_secs().to_string()
    }
}

impl Kind<bool> for Bool {
    fn parse(&self, v: &str) -> Result<bool, String> {
        match v {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!("expected `true` or `false`, found `{v}`")),
        }
    }

    fn describe(&self) -> String {
        "boolean".to_string()
    }

    fn show(&self, value: &bool) -> String {
        value.to_string()
    }
}

impl Kind<SocketAddr> for Addr {
    fn parse(&self, v: &str) -> Result<SocketAddr, String> {
        v.parse().map_err(|_| {
            format!(
                "expected host:port with a numeric IP (e.g. 0.0.0.0:8000 or [::]:8000), found `{v}`"
            )
        })
    }

    fn describe(&self) -> String {
        "addr".to_string()
    }

    fn show(&self, value: &SocketAddr) -> String {
        value.to_string()
    }
}

impl Kind<String> for Host {
    fn parse(&self, v: &str) -> Result<String, String> {
        host(v)
    }

    fn describe(&self) -> String {
        "host".to_string()
    }

    fn show(&self, value: &String) -> String {
        value.clone()
    }
}

impl Kind<Vec<String>> for HostList {
    fn parse(&self, v: &str) -> Result<Vec<String>, String> {
        let list = v
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(host)
            .collect::<Result<Vec<_>, _>>()?;
        if list.is_empty() {
            return Err("needs at least one address".to_string());
        }
        Ok(list)
    }

    fn describe(&self) -> String {
        "list of host".to_string()
    }

    fn show(&self, value: &Vec<String>) -> String {
        value.join(";")
    }
}

impl Kind<String> for Url {
    fn parse(&self, v: &str) -> Result<String, String> {
        let url = v.trim_end_matches('/');
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        match rest {
            Some(r) if !r.is_empty() && url.bytes().all(|b| b.is_ascii_graphic()) => {
                Ok(url.to_string())
            }
            _ => Err(format!(
                "expected an http:// or https:// URL without spaces, found `{v}`"
            )),
        }
    }

    fn describe(&self) -> String {
        "`http://` or `https://` URL".to_string()
    }

    fn show(&self, value: &String) -> String {
        value.clone()
    }
}

impl Kind<PathBuf> for Dir {
    fn parse(&self, v: &str) -> Result<PathBuf, String> {
        if v.is_empty() {
            return Err("missing value".to_string());
        }
        Ok(PathBuf::from(v))
    }

    fn describe(&self) -> String {
        "path".to_string()
    }

    fn show(&self, value: &PathBuf) -> String {
        value.display().to_string()
    }
}

impl Kind<Option<String>> for AdminToken {
    fn parse(&self, v: &str) -> Result<Option<String>, String> {
        check_admin_token(v)?;
        Ok(Some(v.to_string()))
    }

    fn describe(&self) -> String {
        format!(
            "{MIN_ADMIN_TOKEN_LEN}–{MAX_ADMIN_TOKEN_LEN} printable ASCII characters, no spaces; \
             not a shipped example value"
        )
    }

    fn show(&self, value: &Option<String>) -> String {
        redacted(value.as_deref())
    }
}

impl Kind<String> for Secret {
    fn parse(&self, v: &str) -> Result<String, String> {
        let s = token(v)?;
        if s.len() < MIN_CLUSTER_SECRET_LEN {
            return Err(format!(
                "too short: at least {MIN_CLUSTER_SECRET_LEN} characters"
            ));
        }
        Ok(s)
    }

    fn describe(&self) -> String {
        format!("printable ASCII, ≥ {MIN_CLUSTER_SECRET_LEN} chars")
    }

    fn show(&self, value: &String) -> String {
        redacted(Some(value))
    }
}

impl<T, K: Kind<T>> Kind<Option<T>> for Opt<K> {
    fn parse(&self, v: &str) -> Result<Option<T>, String> {
        if v.is_empty() {
            Ok(None)
        } else {
            self.0.parse(v).map(Some)
        }
    }

    fn describe(&self) -> String {
        format!("{}, optional", self.0.describe())
    }

    fn show(&self, value: &Option<T>) -> String {
        value.as_ref().map(|v| self.0.show(v)).unwrap_or_default()
    }
}

impl<T: Clone + PartialEq> Kind<T> for OneOf<T> {
    fn parse(&self, v: &str) -> Result<T, String> {
        match self.0.iter().find(|(word, _)| *word == v) {
            Some((_, value)) => Ok(value.clone()),
            None => Err(format!("expected {}, found `{v}`", self.words(" or "))),
        }
    }

    fn describe(&self) -> String {
        // Escaped: the reference is a markdown table.
        self.words(" \\| ")
    }

    fn show(&self, value: &T) -> String {
        self.0
            .iter()
            .find(|(_, x)| x == value)
            .map(|(word, _)| (*word).to_string())
            .unwrap_or_default()
    }
}

impl<T> OneOf<T> {
    /// The words in backticks, joined by `sep`.
    fn words(&self, sep: &str) -> String {
        let words: Vec<String> = self.0.iter().map(|(w, _)| format!("`{w}`")).collect();
        words.join(sep)
    }
}

/// How a secret appears in `Debug` output: `""` stays visible (it is no secret), anything
/// else is `<redacted>`.
pub fn redact(v: Option<&str>) -> Option<&'static str> {
    v.map(|s| if s.is_empty() { "" } else { "<redacted>" })
}

fn redacted(v: Option<&str>) -> String {
    redact(v).unwrap_or_default().to_string()
}

/// A plain decimal integer in `min..=max`.
fn decimal(v: &str, min: u64, max: u64) -> Result<u64, String> {
    if v.is_empty() {
        return Err("missing value".to_string());
    }
    if !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("expected a plain decimal number, found `{v}`"));
    }
    let n: u64 = v.parse().map_err(|_| out_of_range(v, min, max))?;
    if n < min || n > max {
        return Err(out_of_range(v, min, max));
    }
    Ok(n)
}

fn out_of_range(v: &str, min: u64, max: u64) -> String {
    format!("out of range: must be {min}..={max}, found {v}")
}

/// `n` with its digits in groups of three from 10 000 on (`1 048 576`), as the reference
/// writes numbers.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    if n < 10_000 {
        return digits;
    }
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// An address handed to clients: an IP or a host name, no whitespace or control characters.
fn host(v: &str) -> Result<String, String> {
    if v.is_empty() {
        return Err("missing value".to_string());
    }
    if v.len() > 255 || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("expected an IP address or host name, found `{v}`"));
    }
    Ok(v.to_string())
}

/// A secret that travels in a header: printable ASCII without spaces.
pub(super) fn token(v: &str) -> Result<String, String> {
    if !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces".to_string());
    }
    Ok(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_from_ten_thousand() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(9999), "9999");
        assert_eq!(grouped(10_000), "10 000");
        assert_eq!(grouped(1_048_576), "1 048 576");
        assert_eq!(grouped(67_108_864), "67 108 864");
    }

    #[test]
    fn kinds_describe_their_range() {
        assert_eq!(Kind::<u32>::describe(&int(1, 100)), "integer 1–100");
        assert_eq!(Kind::<u64>::describe(&size(1, u64::MAX)), "size ≥ 1");
        assert_eq!(
            Kind::<Duration>::describe(&secs(0)),
            "duration 0 s – 1 year"
        );
        let sweep = Secs { min: 1, max: 3600 };
        assert_eq!(Kind::<Duration>::describe(&sweep), "duration 1 s – 3600 s");
        assert_eq!(
            Kind::<Option<SocketAddr>>::describe(&Opt(Addr)),
            "addr, optional"
        );
    }

    #[test]
    fn int_overflowing_its_field_is_out_of_range() {
        let r: Result<u32, String> = int(0, u64::MAX).parse("4294967296");
        assert_eq!(
            r.unwrap_err(),
            "out of range: must be 0..=18446744073709551615, found 4294967296"
        );
    }
}
