//! Configuration: a `Key=value` conf file parsed once into a typed [`Config`].
//!
//! The pipeline (after sozu's `command/src/config.rs`: raw file -> validated typed config):
//!
//! ```text
//!   conf file --lines--> (line, key, value) --per key--> typed field --cross checks--> Config
//!                                   \______________ every problem ______________/
//!                                                   ConfigError
//! ```
//!
//! Format, as TeamTalk operators know it:
//!
//! - one `Key=value` per line; whitespace around the key and the value is trimmed;
//! - `#` starts a comment, both at the start of a line and after a value (so no value can hold a
//!   `#`); blank lines are ignored; a leading UTF-8 byte-order mark and `\r\n` line ends are fine;
//! - keys are case-sensitive; an unknown key, a key given twice, or a bad value is an error that
//!   names the file, the line and the key. Parsing does not stop at the first problem: the
//!   returned [`ConfigError`] lists every problem found;
//! - integers are plain decimal digits (no sign, no `_`, no hex) and are range-checked;
//!   durations are whole seconds; sizes are whole bytes; booleans are `true` or `false`;
//!   lists are `;`-separated (empty items are skipped);
//! - the optional string keys (`IpAddr2`, `MsfsBaseUrl`, `ClusterSecret`) may be given empty,
//!   which means "unset", as in TeamTalk's own conf files;
//! - `AdminToken` is the exception: given, it must be a usable secret ([`check_admin_token`]);
//!   not given, `ttserver run` keeps it in `DataDir/admin.token` (`admin::token`).
//!
//! A relative `DataDir` is kept as written and therefore resolves against the process's current
//! directory (not the conf file's directory), as TeamTalk operators expect.
//!
//! Every key is declared once, in the key table of `table.rs`: its field, type, default, range,
//! the roles that read it and its reference text. `Config` has one part per role
//! (`cfg.net`, `cfg.login`, `cfg.auth`, `cfg.msg`, `cfg.file`, `cfg.msfs`, `cfg.admin`,
//! `cfg.store`). The key list, the `Config` parts, their defaults, the per-key parser, the redacted `Debug` and the key table of
//! `docs/configuration.md` all come from there (`kind.rs` has the value kinds: parse, range
//! check, type text). The demo conf `conf/ttserver.conf` lists every key in the same order, at
//! its default (a test checks both).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod kind;
mod table;

pub use table::{
    key_docs, reference_markdown, AdminConfig, AuthConfig, Config, FileConfig, KeyDoc, LoginConfig,
    MsfsConfig, MsgConfig, NetConfig, StoreConfig, KEYS,
};

/// Longest duration any key accepts (one year). Keeps `Instant + Duration` far from overflow.
pub const MAX_DURATION_SECS: u64 = 365 * 24 * 3600;
/// Largest PDU (in or out) any key accepts: 64 MiB.
pub const MAX_PDU_LIMIT: u32 = 64 << 20;
/// Shortest accepted `ClusterSecret`, in bytes.
pub const MIN_CLUSTER_SECRET_LEN: usize = 16;
/// Shortest accepted admin token, in bytes (B-ADM-1).
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;
/// Longest accepted admin token: far below the admin API's 16 KiB request-head limit.
pub const MAX_ADMIN_TOKEN_LEN: usize = 1024;
/// Where `ttserver run` keeps the admin token when the conf gives none, in `DataDir`.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// The secrets the example confs in `conf/` ship (B-ADM-1): never accepted as an admin token,
/// since anyone who has read the example knows them. A test checks that every `AdminToken` and
/// `ClusterSecret` value in `conf/*.conf` is listed here.
pub const SHIPPED_SECRETS: &[&str] = &[
    "demo-admin-token-change-me",
    "change-me-to-a-long-random-secret",
];
/// `DbReaders = 0` resolves to this many reader threads.
const AUTO_DB_READERS: usize = 2;

/// One problem found in a conf file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The conf file as given to [`Config::load`] / [`Config::parse`].
    pub file: String,
    /// 1-based line number; `None` when the problem is not tied to a line (file unreadable, a
    /// check on a value left at its default).
    pub line: Option<usize>,
    /// The key concerned, if any.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a conf file (never empty). `Display` prints one problem per line,
/// `file:line: Key: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and parses the conf file at `path` (see the module doc for the format).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| ConfigError {
            problems: vec![ConfigProblem {
                file: file.clone(),
                line: None,
                key: None,
                message: format!("cannot read: {e}"),
            }],
        })?;
        match String::from_utf8(bytes) {
            Ok(text) => Config::parse(&text, &file),
            Err(e) => {
                let valid = e.as_bytes().get(..e.utf8_error().valid_up_to());
                let line = valid.map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count()) + 1;
                Err(ConfigError {
                    problems: vec![ConfigProblem {
                        file,
                        line: Some(line),
                        key: None,
                        message: "not valid UTF-8".to_string(),
                    }],
                })
            }
        }
    }

    /// Parses conf text; `file_name` is used in messages only.
    pub fn parse(text: &str, file_name: &str) -> Result<Config, ConfigError> {
        let mut cfg = Config {
            source: file_name.to_string(),
            ..Config::default()
        };
        let mut problems = Vec::new();
        let mut problem = |line: Option<usize>, key: Option<&str>, message: String| {
            problems.push(ConfigProblem {
                file: file_name.to_string(),
                line,
                key: key.map(str::to_string),
                message,
            });
        };
        // key -> line where it was set; keys whose value was bad are not in `good`.
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut good: HashMap<&'static str, usize> = HashMap::new();

        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (idx, raw) in text.lines().enumerate() {
            let line_no = idx + 1;
            let content = raw.split_once('#').map_or(raw, |(before, _)| before).trim();
            if content.is_empty() {
                continue;
            }
            let Some((key, value)) = content.split_once('=') else {
                problem(
                    Some(line_no),
                    None,
                    format!("expected `Key=value`, found `{content}`"),
                );
                continue;
            };
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() {
                problem(Some(line_no), None, "missing key before `=`".to_string());
                continue;
            }
            let Some(&known) = KEYS.iter().find(|k| **k == key) else {
                let hint = KEYS
                    .iter()
                    .find(|k| k.eq_ignore_ascii_case(key))
                    .map(|k| format!(" (did you mean `{k}`?)"))
                    .unwrap_or_default();
                problem(Some(line_no), Some(key), format!("unknown key{hint}"));
                continue;
            };
            if let Some(first) = seen.insert(known, line_no) {
                problem(
                    Some(line_no),
                    Some(known),
                    format!("given twice (first on line {first})"),
                );
                continue;
            }
            match cfg.set(known, value) {
                Ok(()) => {
                    good.insert(known, line_no);
                }
                Err(msg) => problem(Some(line_no), Some(known), msg),
            }
        }

        // Cross checks between keys, skipped when a key involved had a bad value (its problem
        // is already reported). Reported at the line of the first key where it was given.
        let both_ok = |a: &str, b: &str| {
            let bad = |k: &str| seen.contains_key(k) && !good.contains_key(k);
            !bad(a) && !bad(b)
        };
        let line_of = |a: &str, b: &str| good.get(a).or_else(|| good.get(b)).copied();
        let mut cross = Vec::new();
        if both_ok("MaxTextLen", "MaxOutPduSize")
            && cfg.msg.max_text_len >= cfg.msg.max_out_pdu_size
        {
            cross.push((
                "MaxTextLen",
                "MaxOutPduSize",
                format!(
                    "must be less than MaxOutPduSize ({}): a text message must fit in the PDU that delivers it",
                    cfg.msg.max_out_pdu_size
                ),
            ));
        }
        if both_ok("MaxAudioLen", "MaxOutPduSize")
            && cfg.msg.max_audio_len >= cfg.msg.max_out_pdu_size
        {
            cross.push((
                "MaxAudioLen",
                "MaxOutPduSize",
                format!(
                    "must be less than MaxOutPduSize ({}): an audio message must fit in the PDU that delivers it",
                    cfg.msg.max_out_pdu_size
                ),
            ));
        }
        if both_ok("OutBufCap", "MaxOutPduSize")
            && u64::try_from(cfg.net.out_buf_cap).unwrap_or(u64::MAX)
                < u64::from(cfg.msg.max_out_pdu_size)
        {
            cross.push((
                "OutBufCap",
                "MaxOutPduSize",
                format!(
                    "must be at least MaxOutPduSize ({}): one outgoing PDU must fit in the output buffer",
                    cfg.msg.max_out_pdu_size
                ),
            ));
        }
        // A 6/5 answering a pull carries the segment plus its fields (task id, user id ...).
        // Not given: the default, lowered to fit a small MaxPduSize.
        if !seen.contains_key("FileSegmentSize") {
            cfg.file.file_segment_size = cfg
                .file
                .file_segment_size
                .min(cfg.net.max_pdu_size.saturating_sub(1024))
                .max(1);
        } else if both_ok("FileSegmentSize", "MaxPduSize")
            && u64::from(cfg.file.file_segment_size) + 1024 > u64::from(cfg.net.max_pdu_size)
        {
            cross.push((
                "FileSegmentSize",
                "MaxPduSize",
                format!(
                    "must be at most MaxPduSize - 1024 ({}): the uploader's answer must fit in one PDU",
                    cfg.net.max_pdu_size.saturating_sub(1024)
                ),
            ));
        }
        for (key, other, msg) in cross {
            problem(line_of(key, other), Some(key), msg);
        }

        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError { problems })
        }
    }

    /// Checks needed before `ttserver file` (the file role alone): `ClusterSecret` is set.
    pub fn validate_for_file(&self) -> Result<(), ConfigError> {
        if self.net.cluster_secret.is_some() {
            return Ok(());
        }
        Err(ConfigError {
            problems: vec![ConfigProblem {
                file: self.source.clone(),
                line: None,
                key: Some("ClusterSecret".to_string()),
                message: "must be set to run the file role alone (msg servers link with it)"
                    .to_string(),
            }],
        })
    }

    /// Checks needed before `ttserver run` (not before admin commands, which only need
    /// `DataDir`): no two listeners share one address (port 0 = ephemeral is exempt). A
    /// missing `AdminToken` is no problem: it comes from `DataDir/admin.token`.
    pub fn validate_for_run(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, message: String| {
            problems.push(ConfigProblem {
                file: self.source.clone(),
                line: None,
                key: Some(key.to_string()),
                message,
            });
        };
        if self.file.file_server.is_some() && self.net.cluster_secret.is_none() {
            problem(
                "ClusterSecret",
                "must be set when FileServer is (it authenticates the link)".to_string(),
            );
        }
        let listeners = [
            ("ClientListen", self.net.client_listen),
            ("MsgListen", self.net.msg_listen),
            ("FileListen", self.net.file_listen),
            ("MsfsListen", self.net.msfs_listen),
            ("AdminListen", self.net.admin_listen),
        ];
        for (i, (key, addr)) in listeners.iter().enumerate() {
            if addr.port() == 0 {
                continue;
            }
            let clash = listeners
                .iter()
                .take(i)
                .find(|(_, other)| other.port() == addr.port() && overlaps(other, addr));
            if let Some((other_key, _)) = clash {
                problem(key, format!("{addr} clashes with {other_key}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }

    /// Where `ttserver run` keeps the admin token when the conf has no `AdminToken`:
    /// `DataDir/admin.token`.
    pub fn admin_token_path(&self) -> PathBuf {
        self.store.data_dir.join(ADMIN_TOKEN_FILE)
    }

    /// The SQLite database file: `DataDir/ttserver.db`.
    pub fn db_path(&self) -> PathBuf {
        self.store.data_dir.join("ttserver.db")
    }

    /// `IpAddr2`, or `IpAddr1` when `IpAddr2` is unset.
    pub fn ip_addr2(&self) -> &str {
        self.login
            .ip_addr2
            .as_deref()
            .unwrap_or(&self.login.ip_addr1)
    }

    /// Worker threads: `Workers`, or the available parallelism when it is 0 (at least 1).
    pub fn workers(&self) -> usize {
        if self.net.workers > 0 {
            self.net.workers
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    /// Storage reader threads: `DbReaders`, or 2 when it is 0.
    /// Password-hashing threads: `HashThreads`, or one per core when it is 0.
    pub fn hash_threads(&self) -> usize {
        if self.auth.hash_threads > 0 {
            self.auth.hash_threads
        } else {
            std::thread::available_parallelism().map_or(1, usize::from)
        }
    }

    pub fn db_readers(&self) -> usize {
        if self.store.db_readers > 0 {
            self.store.db_readers
        } else {
            AUTO_DB_READERS
        }
    }

    /// The base of msfs URLs (no trailing `/`): `MsfsBaseUrl`, or `http://<IpAddr1>:<port>` with
    /// the port the msfs listener actually bound (which differs from `MsfsListen` for port 0).
    pub fn msfs_base_url_for(&self, msfs_port: u16) -> String {
        match &self.msfs.msfs_base_url {
            Some(url) => url.clone(),
            None if self.login.ip_addr1.contains(':') => {
                format!("http://[{}]:{msfs_port}", self.login.ip_addr1)
            }
            None => format!("http://{}:{msfs_port}", self.login.ip_addr1),
        }
    }
}

/// Whether two listen addresses with the same port would clash (same IP, or either unspecified).
fn overlaps(a: &SocketAddr, b: &SocketAddr) -> bool {
    a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified()
}

/// The rules of an admin token (B-ADM-1), from the conf or from `DataDir/admin.token`: at least
/// 16 and at most 1024 characters of printable ASCII without spaces (it travels in an HTTP
/// header), and not a secret an example conf ships. `Err` is the message.
pub fn check_admin_token(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err(format!(
            "empty: give at least {MIN_ADMIN_TOKEN_LEN} random characters, or no AdminToken \
             line to keep the token in DataDir/admin.token"
        ));
    }
    kind::token(v)?;
    if v.len() < MIN_ADMIN_TOKEN_LEN {
        return Err(format!(
            "too short: at least {MIN_ADMIN_TOKEN_LEN} characters"
        ));
    }
    if v.len() > MAX_ADMIN_TOKEN_LEN {
        return Err(format!(
            "too long: at most {MAX_ADMIN_TOKEN_LEN} characters"
        ));
    }
    if SHIPPED_SECRETS.contains(&v) {
        return Err(
            "is the value of an example conf, known to anyone: choose a random one \
                    (or no AdminToken line to keep a generated one in DataDir/admin.token)"
                .to_string(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::auth::HashCost;
    use crate::store::DbSync;

    /// Where the generated key table sits in `docs/configuration.md`.
    const BEGIN: &str = "<!-- keys:begin (generated from src/config/table.rs) -->\n";
    const END: &str = "<!-- keys:end -->";

    fn docs_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md")
    }

    /// `docs/configuration.md` split around the generated table: (before, table, after).
    fn docs_parts() -> (String, String, String) {
        let text = std::fs::read_to_string(docs_path()).unwrap();
        let (before, rest) = text
            .split_once(BEGIN)
            .expect("no keys:begin marker in the docs");
        let (table, after) = rest
            .split_once(END)
            .expect("no keys:end marker in the docs");
        (before.to_string(), table.to_string(), after.to_string())
    }

    fn conf_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("conf")
    }

    fn err(text: &str) -> ConfigError {
        match Config::parse(text, "t.conf") {
            Ok(c) => panic!("expected an error, got {c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn demo_conf_gives_documented_values() {
        let c = Config::load(&conf_dir().join("ttserver.conf")).unwrap();
        let d = Config::default();
        // No AdminToken: `ttserver run` keeps a generated one in DataDir/admin.token.
        assert_eq!(c.admin.admin_token, None);
        assert_eq!(c.admin_token_path(), PathBuf::from("./data/admin.token"));
        assert_eq!(c.store.data_dir, PathBuf::from("./data"));
        assert_eq!(c.net.client_listen, "0.0.0.0:8008".parse().unwrap());
        assert_eq!(c.net.msg_listen, "0.0.0.0:8000".parse().unwrap());
        assert_eq!(c.net.file_listen, "0.0.0.0:8600".parse().unwrap());
        assert_eq!(c.net.msfs_listen, "0.0.0.0:8700".parse().unwrap());
        assert_eq!(c.net.admin_listen, "127.0.0.1:8400".parse().unwrap());
        assert_eq!(c.ip_addr2(), "127.0.0.1");
        assert_eq!(c.net.max_pdu_size, 1_048_576);
        assert_eq!(c.net.login_timeout, Duration::from_secs(15));
        assert_eq!(c.db_path(), PathBuf::from("./data/ttserver.db"));
        // Everything else is the default: compare the Debug output with the source put back.
        let c2 = Config {
            source: d.source.clone(),
            ..c.clone()
        };
        assert_eq!(format!("{c2:?}"), format!("{d:?}"));
        assert!(c.validate_for_run().is_ok());
    }

    #[test]
    fn file_conf_runs_the_file_role_alone() {
        let c = Config::load(&conf_dir().join("file.conf")).unwrap();
        assert_eq!(c.net.file_listen, "0.0.0.0:8600".parse().unwrap());
        assert!(c.validate_for_file().is_ok());
        let mut no_secret = c.clone();
        no_secret.net.cluster_secret = None;
        assert!(no_secret.validate_for_file().is_err());
        // `run` with FileServer needs the secret too.
        let mut run = Config::parse("FileServer=127.0.0.1:8600", "t.conf").unwrap();
        assert!(run.validate_for_run().is_err());
        run.net.cluster_secret = c.net.cluster_secret.clone();
        assert!(run.validate_for_run().is_ok());
    }

    #[test]
    fn demo_conf_lists_every_key_in_order() {
        let text = std::fs::read_to_string(conf_dir().join("ttserver.conf")).unwrap();
        // Every key appears once, as `Key=` or as a commented `# Key=`, in KEYS order.
        let found: Vec<&str> = text
            .lines()
            .map(|l| l.trim_start_matches('#').trim())
            .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
            .filter(|k| KEYS.contains(k))
            .collect();
        assert_eq!(found, KEYS);
    }

    #[test]
    fn docs_key_table_is_generated_from_the_table() {
        let (_, table, _) = docs_parts();
        assert!(
            table == reference_markdown(),
            "the key table in docs/configuration.md differs from src/config/table.rs; \
             regenerate it with `cargo test --lib config::tests::write_key_reference -- --ignored`"
        );
    }

    /// Rewrites the key table of `docs/configuration.md` from the key table (run it after
    /// changing a key: `cargo test --lib config::tests::write_key_reference -- --ignored`).
    #[test]
    #[ignore = "writes docs/configuration.md"]
    fn write_key_reference() {
        let (before, _, after) = docs_parts();
        let text = format!("{before}{BEGIN}{}{END}{after}", reference_markdown());
        std::fs::write(docs_path(), text).unwrap();
    }

    #[test]
    fn demo_conf_sets_every_key_to_its_default() {
        let text = std::fs::read_to_string(conf_dir().join("ttserver.conf")).unwrap();
        let docs = key_docs();
        let mut n = 0;
        for line in text.lines() {
            // A commented-out key (`# AdminToken=`) counts too: uncommented, it must not
            // change anything either.
            let line = line.trim_start_matches('#').trim();
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            if let Some(doc) = docs.iter().find(|d| d.name == k.trim()) {
                assert_eq!(v.trim(), doc.default, "{} in conf/ttserver.conf", doc.name);
                n += 1;
            }
        }
        assert_eq!(n, KEYS.len());
    }

    #[test]
    fn every_default_written_back_parses_to_the_default() {
        let d = format!("{:?}", Config::default());
        for doc in key_docs() {
            // Not given, AdminToken comes from DataDir/admin.token; given empty it is an error.
            if doc.name == "AdminToken" {
                assert_eq!(doc.default, "");
                continue;
            }
            let c = Config::parse(&format!("{}={}", doc.name, doc.default), "(defaults)")
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(format!("{c:?}"), d, "{}", doc.name);
        }
    }

    #[test]
    fn docs_list_every_key_in_order() {
        let text = std::fs::read_to_string(docs_path()).unwrap();
        let found: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once('`').map(|(k, _)| k))
            .filter(|k| KEYS.contains(k))
            .collect();
        assert_eq!(found, KEYS);
    }

    #[test]
    fn every_conf_file_parses() {
        let mut n = 0;
        for entry in std::fs::read_dir(conf_dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) == Some("conf") {
                if let Err(e) = Config::load(&path) {
                    panic!("{e}");
                }
                n += 1;
            }
        }
        assert!(n >= 1);
    }

    #[test]
    fn empty_text_gives_defaults() {
        let c = Config::parse("", "empty.conf").unwrap();
        assert_eq!(
            format!(
                "{:?}",
                Config {
                    source: "(defaults)".into(),
                    ..c
                }
            ),
            format!("{:?}", Config::default())
        );
        // An unset AdminToken passes the run check: it comes from DataDir/admin.token.
        let c = Config::parse("", "empty.conf").unwrap();
        assert_eq!(c.admin.admin_token, None);
        assert!(c.validate_for_run().is_ok());
    }

    #[test]
    fn comments_blank_lines_and_whitespace() {
        let text = "\u{feff}# a comment\n\n   \n  MaxTextLen =  100  # trailing comment\r\n\
                    #MaxPduSize=5\nPresenceToMobile=true#no space\nIpAddr2=\nFileAddr= 10.0.0.1 ; host.example ;\n";
        let c = Config::parse(text, "t.conf").unwrap();
        assert_eq!(c.msg.max_text_len, 100);
        assert_eq!(c.net.max_pdu_size, 1_048_576);
        assert!(c.msg.presence_to_mobile);
        assert_eq!(c.login.ip_addr2, None);
        assert_eq!(c.file.file_addr, vec!["10.0.0.1", "host.example"]);
    }

    #[test]
    fn typed_values() {
        let text = "MsgListen=[::1]:0\nIpAddr1=192.168.1.5\nIpAddr2=tt.example.com\nWorkers=3\n\
                    DbReaders=0\nDbSync=normal\nPasswordHashCost=low\nLoginLockout=120\n\
                    MaxFileSize=10000000000\nMsfsBaseUrl=https://img.example.com/\n\
                    ClusterSecret=0123456789abcdef\nDataDir=/var/lib/tt\n";
        let c = Config::parse(text, "t.conf").unwrap();
        assert_eq!(c.net.msg_listen, "[::1]:0".parse().unwrap());
        assert_eq!(c.ip_addr2(), "tt.example.com");
        assert_eq!(c.workers(), 3);
        assert_eq!(c.db_readers(), 2);
        assert_eq!(c.store.db_sync, DbSync::Normal);
        assert_eq!(c.auth.password_hash_cost, HashCost::Low);
        assert_eq!(c.auth.login_lockout, Duration::from_secs(120));
        assert_eq!(c.file.max_file_size, 10_000_000_000);
        assert_eq!(c.msfs_base_url_for(1), "https://img.example.com");
        assert_eq!(c.net.cluster_secret.as_deref(), Some("0123456789abcdef"));
        assert_eq!(c.db_path(), PathBuf::from("/var/lib/tt/ttserver.db"));
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
        let d = Config::default();
        assert!(d.workers() >= 1);
        assert_eq!(d.msfs_base_url_for(8701), "http://127.0.0.1:8701");
    }

    #[test]
    fn unknown_key() {
        let e = err("MaxPDUSize=100\nFoo=1\n");
        assert_eq!(e.problems.len(), 2);
        assert_eq!(e.problems[0].line, Some(1));
        assert_eq!(e.problems[0].key.as_deref(), Some("MaxPDUSize"));
        assert!(e.problems[0].message.contains("did you mean `MaxPduSize`"));
        assert_eq!(
            e.to_string().lines().nth(1),
            Some("t.conf:2: Foo: unknown key")
        );
    }

    #[test]
    fn duplicate_key() {
        let e = err("MaxTextLen=10\n\nMaxTextLen=10\n");
        assert_eq!(e.problems.len(), 1);
        assert_eq!(
            e.to_string(),
            "t.conf:3: MaxTextLen: given twice (first on line 1)"
        );
    }

    #[test]
    fn bad_ints() {
        for v in [
            "-5",
            "+5",
            "1_000",
            "0x10",
            "12a",
            "",
            "1.5",
            "99999999999999999999999",
        ] {
            let e = err(&format!("MaxConnCnt={v}\n"));
            assert_eq!(e.problems.len(), 1, "{v}");
            assert_eq!(e.problems[0].key.as_deref(), Some("MaxConnCnt"));
        }
        // Range: zero where it makes no sense, MaxPduSize below the header size, u32 overflow.
        assert!(err("MaxConnCnt=0").problems[0]
            .message
            .contains("out of range"));
        assert!(err("MsgRateLimit=0").problems[0]
            .message
            .contains("out of range"));
        assert!(err("MaxPduSize=11").problems[0]
            .message
            .contains("out of range"));
        assert!(Config::parse("MaxPduSize=12", "t").is_ok());
        assert!(err("MaxTextLen=4294967296").problems[0]
            .message
            .contains("out of range"));
        assert!(err("LoginTimeout=0").problems[0]
            .message
            .contains("out of range"));
        assert!(Config::parse("TokenGrace=0", "t").is_ok());
    }

    #[test]
    fn bad_bool_and_enums() {
        for text in [
            "PresenceToMobile=yes",
            "MsfsRequireToken=True",
            "MsfsRequireToken=1",
        ] {
            let e = err(text);
            assert!(e.problems[0].message.contains("`true` or `false`"), "{e}");
        }
        assert!(err("DbSync=FULL").problems[0]
            .message
            .contains("`full` or `normal`"));
        assert!(err("PasswordHashCost=high").problems[0]
            .message
            .contains("`low` or `default`"));
        assert!(err("MsgListen=localhost:8000").problems[0]
            .message
            .contains("host:port"));
        assert!(err("MsfsBaseUrl=ftp://x").problems[0]
            .message
            .contains("http"));
        assert!(err("ClusterSecret=short").problems[0]
            .message
            .contains("too short"));
        assert!(err("AdminToken=a b").problems[0]
            .message
            .contains("printable"));
        assert!(err("FileAddr=;;").problems[0]
            .message
            .contains("at least one"));
        assert!(err("DataDir=").problems[0]
            .message
            .contains("missing value"));
    }

    #[test]
    fn every_problem_reported_at_once() {
        let text = "MaxConnCnt=-1\n# fine\nPresenceToMobile=maybe\nnot a key value line\n\
                    Bogus=1\nMaxConnCnt=5\n=3\nWorkers=2\n";
        let e = err(text);
        let lines: Vec<String> = e.to_string().lines().map(str::to_string).collect();
        assert_eq!(
            lines,
            vec![
                "t.conf:1: MaxConnCnt: expected a plain decimal number, found `-1`",
                "t.conf:3: PresenceToMobile: expected `true` or `false`, found `maybe`",
                "t.conf:4: expected `Key=value`, found `not a key value line`",
                "t.conf:5: Bogus: unknown key",
                "t.conf:6: MaxConnCnt: given twice (first on line 1)",
                "t.conf:7: missing key before `=`",
            ]
        );
    }

    #[test]
    fn file_segment_must_fit_a_pdu() {
        let e = err("MaxPduSize=65536\nFileSegmentSize=65536");
        assert!(e.to_string().contains("FileSegmentSize"), "{e}");
        let c = Config::parse("MaxPduSize=1048576\nFileSegmentSize=131072", "t.conf").unwrap();
        assert_eq!(c.file.file_segment_size, 131_072);
    }

    #[test]
    fn cross_checks() {
        let e = err("MaxOutPduSize=4096\nMaxAudioLen=100\n");
        // MaxTextLen (default 65536, not in the file) must be below it: reported at the line of
        // MaxOutPduSize. OutBufCap is fine.
        assert_eq!(e.problems.len(), 1);
        assert_eq!(e.problems[0].key.as_deref(), Some("MaxTextLen"));
        assert_eq!(e.problems[0].line, Some(1));
        let e = err("OutBufCap=4096\nMaxOutPduSize=8192\nMaxAudioLen=100\nMaxTextLen=100\n");
        assert_eq!(e.problems.len(), 1);
        assert_eq!(e.problems[0].key.as_deref(), Some("OutBufCap"));
        assert_eq!(e.problems[0].line, Some(1));
        // A bad MaxOutPduSize is reported once, without cross-check noise.
        let e = err("MaxOutPduSize=x\n");
        assert_eq!(e.problems.len(), 1);
    }

    #[test]
    fn run_checks() {
        let c = Config::parse("MsgListen=127.0.0.1:8008\n", "t.conf").unwrap();
        let e = c.validate_for_run().unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.conf: MsgListen: 127.0.0.1:8008 clashes with ClientListen"
        );
        let c = Config::parse(
            "ClientListen=127.0.0.1:0\nMsgListen=127.0.0.1:0\nAdminListen=127.0.0.2:8000",
            "t.conf",
        )
        .unwrap();
        assert!(c.validate_for_run().is_ok());
    }

    #[test]
    fn weak_admin_tokens_rejected() {
        for (text, what) in [
            ("AdminToken=x", "at least 16"),
            ("AdminToken=0123456789abcde", "at least 16"),
            ("AdminToken=", "empty"),
            ("AdminToken=demo-admin-token-change-me", "example"),
            ("AdminToken=change-me-to-a-long-random-secret", "example"),
        ] {
            let e = err(&format!("# admin\n{text}\n"));
            assert_eq!(e.problems.len(), 1, "{text}: {e}");
            assert!(
                e.to_string().starts_with("t.conf:2: AdminToken: "),
                "{text}: {e}"
            );
            assert!(e.problems[0].message.contains(what), "{text}: {e}");
        }
        let c = Config::parse("AdminToken=0123456789abcdef", "t.conf").unwrap();
        assert_eq!(c.admin.admin_token.as_deref(), Some("0123456789abcdef"));
        assert!(c.validate_for_run().is_ok());
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
        let long = "a".repeat(MAX_ADMIN_TOKEN_LEN);
        assert!(Config::parse(&format!("AdminToken={long}"), "t").is_ok());
        assert!(err(&format!("AdminToken={long}a")).problems[0]
            .message
            .contains("too long"));
    }

    #[test]
    fn shipped_secrets_never_accepted_as_admin_token() {
        // Every AdminToken or ClusterSecret value in an example conf, commented out or not.
        let mut shipped = Vec::new();
        for entry in std::fs::read_dir(conf_dir()).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for line in text.lines() {
                let line = line.trim_start_matches(|c: char| c == '#' || c.is_whitespace());
                if let Some((k, v)) = line.split_once('=') {
                    let v = v.split('#').next().unwrap_or_default().trim();
                    if ["AdminToken", "ClusterSecret"].contains(&k.trim()) && !v.is_empty() {
                        shipped.push(v.to_string());
                    }
                }
            }
        }
        assert!(!shipped.is_empty(), "file.conf ships a ClusterSecret");
        for v in shipped {
            assert!(SHIPPED_SECRETS.contains(&v.as_str()), "{v} not listed");
            assert!(check_admin_token(&v).is_err(), "{v}");
        }
    }

    #[test]
    fn load_errors() {
        let e = Config::load(Path::new("/nonexistent/x.conf")).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("/nonexistent/x.conf: cannot read: "));
        let dir = std::env::temp_dir().join(format!("ttserver-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.conf");
        std::fs::write(&path, b"MaxTextLen=1\nIpAddr1=\xff\n").unwrap();
        let e = Config::load(&path).unwrap_err();
        assert_eq!(e.problems[0].line, Some(2));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
