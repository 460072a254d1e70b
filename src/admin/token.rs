//! The admin API's bearer token (B-ADM-1, B-ADM-2) when the conf file has no `AdminToken` line:
//! `DataDir/admin.token`. `ttserver run` creates it with a fresh random token on its first start
//! (mode 0600) and reads it on every later one, so no shared demo value ever guards the API.
//! Operators read the file (`ADMIN_TOKEN=$(cat data/admin.token)`) or set `AdminToken` instead.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::config::{check_admin_token, Config, ConfigError, ConfigProblem, MAX_ADMIN_TOKEN_LEN};

/// The token file's name in `DataDir`.
pub use crate::config::ADMIN_TOKEN_FILE as FILE_NAME;
/// Random bytes in a generated token: 128 bits, written as 32 lowercase hex characters.
const RANDOM_BYTES: usize = 16;
/// Owner read/write only: the token is as good as the admin API.
const FILE_MODE: u32 = 0o600;

/// The token that `ttserver run` uses and where it came from.
#[derive(Debug, PartialEq, Eq)]
pub enum Origin {
    /// `AdminToken` in the conf file.
    Conf,
    /// Read from this existing token file; `warning` if it is open to group or others.
    File {
        path: PathBuf,
        warning: Option<String>,
    },
    /// This token file was created with a new random token.
    Created(PathBuf),
}

/// Sets `cfg.admin.admin_token` from `DataDir/admin.token` (creating the file on the first start)
/// unless the conf file gave `AdminToken`. A token file that breaks the rules of
/// [`check_admin_token`] is an error naming the file.
pub fn resolve(cfg: &mut Config) -> Result<Origin, ConfigError> {
    if cfg.admin.admin_token.is_some() {
        return Ok(Origin::Conf);
    }
    let path = cfg.admin_token_path();
    let (token, origin) = load_or_create(&path)?;
    cfg.admin.admin_token = Some(token);
    Ok(origin)
}

/// Reads the token file at `path`, or creates it with a new random token if there is none.
pub fn load_or_create(path: &Path) -> Result<(String, Origin), ConfigError> {
    // Create first and read on "already exists": no window between a check and the creation.
    match create(path) {
        Ok(token) => Ok((token, Origin::Created(path.to_path_buf()))),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let (token, warning) = read(path)?;
            let origin = Origin::File {
                path: path.to_path_buf(),
                warning,
            };
            Ok((token, origin))
        }
        Err(e) => Err(problem(path, format!("cannot create: {e}"))),
    }
}

/// A new token: 128 random bits from the OS, in lowercase hex.
fn random_token() -> io::Result<String> {
    let mut bytes = [0u8; RANDOM_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(format!("no OS randomness: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Creates `path` (and its directory) holding a new token. The file is created with mode 0600
/// (`create_new`, so never over an existing file or through a symlink), never readable by
/// others, not even before a `chmod`. A half-written file is removed.
fn create(path: &Path) -> io::Result<String> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let token = random_token()?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)?;
    let written = f
        .write_all(format!("{token}\n").as_bytes())
        .and_then(|()| f.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(path);
        return Err(e);
    }
    Ok(token)
}

/// Reads an existing token file: the trimmed content must pass [`check_admin_token`].
/// Returns the token and a warning if the file is open to group or others.
fn read(path: &Path) -> Result<(String, Option<String>), ConfigError> {
    let cannot = |e: io::Error| problem(path, format!("cannot read: {e}"));
    let f = File::open(path).map_err(cannot)?;
    let mode = f.metadata().map_err(cannot)?.permissions().mode();
    // A little more than the longest token plus white space; more is not a token file.
    let limit = u64::try_from(MAX_ADMIN_TOKEN_LEN * 2).unwrap_or(u64::MAX);
    let mut bytes = Vec::new();
    f.take(limit + 1).read_to_end(&mut bytes).map_err(cannot)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limit {
        return Err(problem(path, format!("larger than {limit} bytes")));
    }
    let text = String::from_utf8(bytes).map_err(|_| problem(path, "not valid UTF-8".into()))?;
    let token = text.trim();
    check_admin_token(token).map_err(|m| problem(path, m))?;
    Ok((token.to_string(), permission_warning(path, mode)))
}

/// A warning if `mode` lets group or others at the file.
fn permission_warning(path: &Path, mode: u32) -> Option<String> {
    (mode & 0o077 != 0).then(|| {
        format!(
            "{}: mode {:03o} lets group or others read the admin token; run chmod 600 on it",
            path.display(),
            mode & 0o777
        )
    })
}

/// A problem with the token file, shown as `<path>: AdminToken: <message>`.
fn problem(path: &Path, message: String) -> ConfigError {
    ConfigError {
        problems: vec![ConfigProblem {
            file: path.display().to_string(),
            line: None,
            key: Some("AdminToken".to_string()),
            message,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the temp dir, removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let d =
                std::env::temp_dir().join(format!("ttserver-token-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&d);
            Dir(d)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn cfg(data_dir: &Path) -> Config {
        let mut c = Config::default();
        c.store.data_dir = data_dir.to_path_buf();
        c
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn created_0600_then_reused() {
        let d = Dir::new("create");
        // DataDir does not exist yet: it is created too.
        let mut c = cfg(&d.0.join("data"));
        let path = c.admin_token_path();
        assert_eq!(resolve(&mut c).unwrap(), Origin::Created(path.clone()));
        let token = c.admin.admin_token.clone().unwrap();
        assert_eq!(token.len(), 32);
        assert!(token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        assert_eq!(mode(&path), 0o600);
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{token}\n"));

        // The next start reads the same token, without a warning.
        let mut c2 = cfg(&d.0.join("data"));
        let origin = resolve(&mut c2).unwrap();
        assert_eq!(
            origin,
            Origin::File {
                path: path.clone(),
                warning: None
            }
        );
        assert_eq!(c2.admin.admin_token, Some(token.clone()));
        // Another directory gets another token.
        let mut c3 = cfg(&d.0.join("other"));
        resolve(&mut c3).unwrap();
        assert_ne!(c3.admin.admin_token, Some(token));
    }

    #[test]
    fn conf_token_wins_and_no_file_is_made() {
        let d = Dir::new("conf");
        let mut c = cfg(&d.0);
        c.admin.admin_token = Some("0123456789abcdef".into());
        assert_eq!(resolve(&mut c).unwrap(), Origin::Conf);
        assert_eq!(c.admin.admin_token.as_deref(), Some("0123456789abcdef"));
        assert!(!d.0.exists());
    }

    #[test]
    fn existing_file_trimmed_and_open_modes_warned() {
        let d = Dir::new("read");
        fs::create_dir_all(&d.0).unwrap();
        let path = d.0.join(FILE_NAME);
        fs::write(&path, "  my-own-token-0123456789\r\n\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let (token, origin) = load_or_create(&path).unwrap();
        assert_eq!(token, "my-own-token-0123456789");
        let Origin::File { warning, .. } = origin else {
            panic!("{origin:?}")
        };
        let w = warning.unwrap();
        assert!(
            w.contains("644") && w.contains(&path.display().to_string()),
            "{w}"
        );
        assert!(permission_warning(&path, 0o100600).is_none());
        assert!(permission_warning(&path, 0o100640).is_some());
        assert!(permission_warning(&path, 0o100602).is_some());
    }

    #[test]
    fn bad_file_content_rejected_naming_the_file() {
        let d = Dir::new("bad");
        fs::create_dir_all(&d.0).unwrap();
        let path = d.0.join(FILE_NAME);
        let long = "a".repeat(MAX_ADMIN_TOKEN_LEN + 1);
        let huge = "a".repeat(MAX_ADMIN_TOKEN_LEN * 3);
        for (content, what) in [
            (&b""[..], "empty"),
            (b"\n  \n", "empty"),
            (b"short\n", "too short"),
            (b"demo-admin-token-change-me\n", "example"),
            (b"two words 0123456789\n", "printable"),
            (b"0123456789abcdef\0\n", "printable"),
            (b"0123456789abcdef\xff\n", "UTF-8"),
            (long.as_bytes(), "too long"),
            (huge.as_bytes(), "larger than"),
        ] {
            fs::write(&path, content).unwrap();
            let e = load_or_create(&path).unwrap_err();
            let prefix = format!("{}: AdminToken: ", path.display());
            assert!(e.to_string().starts_with(&prefix), "{content:?}: {e}");
            assert!(e.to_string().contains(what), "{content:?}: {e}");
            // The bad file is left for the operator to fix, not replaced.
            assert_eq!(fs::read(&path).unwrap(), content);
        }
        // A directory in its place cannot be read.
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        let e = load_or_create(&path).unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
    }
}
