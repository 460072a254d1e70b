//! Command-line parsing for the `ttserver` binary (architecture.md section 5). Plain code, no
//! argument-parsing crate: the grammar is four commands.

use std::path::PathBuf;

/// What the binary was asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `ttserver run -c FILE`: every role in one process, in the foreground.
    Run { conf: PathBuf },
    /// `ttserver file -c FILE`: the file role alone, for msg servers whose `FileServer` names it.
    File { conf: PathBuf },
    /// `ttserver admin -c FILE <words...>`: an offline admin command on FILE's DataDir; `args`
    /// are the words after the conf file (e.g. `user add NAME --password P`).
    Admin { conf: PathBuf, args: Vec<String> },
    /// `ttserver version` / `--version` / `-V`.
    Version,
    /// `ttserver help` / `-h` / `--help`.
    Help,
}

/// Usage text for `ttserver help` and argument errors.
pub const USAGE: &str = "\
Usage:
  ttserver run -c FILE             run every role in one process (foreground; RUST_LOG honoured)
  ttserver file -c FILE            run the file role alone (msg servers link to it: FileServer)
  ttserver admin -c FILE COMMAND   offline admin command on FILE's DataDir:
      user add NAME --password P [--nick N] [--depart ID]
      user import users.csv        (lines: name,password[,nick[,depart]])
      depart add TITLE [--parent ID]
      group add NAME --members ID,ID,...
      group members ID --set ID,ID,...
  ttserver version                 print the version
  ttserver help                    print this text

  -c FILE, --conf FILE             the conf file (see docs/configuration.md)

While a server runs on the same DataDir, use the HTTP admin API instead.
";

/// Roles that will get their own command when ttserver runs split across processes.
const LATER_ROLES: &[&str] = &["login", "msg", "route"];

/// Parses the arguments after `argv[0]`. `Err` is a one-line message for stderr (print
/// [`USAGE`] after it).
pub fn parse_args(args: &[String]) -> Result<Command, String> {
    let Some((cmd, rest)) = args.split_first() else {
        return Err("missing command".to_string());
    };
    match cmd.as_str() {
        "run" => {
            let (conf, rest) = conf_option("run", rest)?;
            if let Some(extra) = rest.first() {
                return Err(format!("run: unexpected argument `{extra}`"));
            }
            Ok(Command::Run { conf })
        }
        "file" => {
            let (conf, rest) = conf_option("file", rest)?;
            if let Some(extra) = rest.first() {
                return Err(format!("file: unexpected argument `{extra}`"));
            }
            Ok(Command::File { conf })
        }
        "admin" => {
            let (conf, rest) = conf_option("admin", rest)?;
            if rest.is_empty() {
                return Err(
                    "admin: missing admin command (e.g. `user add NAME --password P`)".to_string(),
                );
            }
            Ok(Command::Admin {
                conf,
                args: rest.to_vec(),
            })
        }
        "version" | "--version" | "-V" => no_more(cmd, rest, Command::Version),
        "help" | "-h" | "--help" => no_more(cmd, rest, Command::Help),
        role if LATER_ROLES.contains(&role) => Err(format!(
            "`{role}` is not available yet: use `ttserver run -c FILE` (every role in one process)"
        )),
        other => Err(format!("unknown command `{other}`")),
    }
}

/// Parses the leading `-c FILE`, `--conf FILE` or `--conf=FILE`; returns the path and the rest.
fn conf_option<'a>(cmd: &str, args: &'a [String]) -> Result<(PathBuf, &'a [String]), String> {
    let missing = || format!("{cmd}: missing `-c FILE`");
    let (first, rest) = args.split_first().ok_or_else(missing)?;
    let (value, rest) = match first.as_str() {
        "-c" | "--conf" => {
            let (value, rest) = rest
                .split_first()
                .ok_or_else(|| format!("{cmd}: `{first}` needs a file name"))?;
            (value.as_str(), rest)
        }
        s => match s.strip_prefix("--conf=") {
            Some(value) => (value, rest),
            None => return Err(missing()),
        },
    };
    if value.is_empty() {
        return Err(format!("{cmd}: empty conf file name"));
    }
    if matches!(rest.first().map(String::as_str), Some("-c" | "--conf"))
        || rest.first().is_some_and(|a| a.starts_with("--conf="))
    {
        return Err(format!("{cmd}: conf file given twice"));
    }
    Ok((PathBuf::from(value), rest))
}

fn no_more(cmd: &str, rest: &[String], ok: Command) -> Result<Command, String> {
    match rest.first() {
        None => Ok(ok),
        Some(extra) => Err(format!("{cmd}: unexpected argument `{extra}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Command, String> {
        let args: Vec<String> = s.split_whitespace().map(str::to_string).collect();
        parse_args(&args)
    }

    #[test]
    fn run() {
        let want = Ok(Command::Run {
            conf: PathBuf::from("conf/ttserver.conf"),
        });
        assert_eq!(parse("run -c conf/ttserver.conf"), want);
        assert_eq!(parse("run --conf conf/ttserver.conf"), want);
        assert_eq!(parse("run --conf=conf/ttserver.conf"), want);
        assert!(parse("run").unwrap_err().contains("missing `-c FILE`"));
        assert!(parse("run -c").unwrap_err().contains("needs a file name"));
        assert!(parse("run -c a extra").unwrap_err().contains("`extra`"));
        assert!(parse("run -c a -c b").unwrap_err().contains("twice"));
        assert!(parse("run --conf=").unwrap_err().contains("empty"));
        assert!(parse("run a.conf").is_err());
    }

    #[test]
    fn admin() {
        assert_eq!(
            parse("admin -c t.conf user add bob --password pw --nick Bob"),
            Ok(Command::Admin {
                conf: PathBuf::from("t.conf"),
                args: ["user", "add", "bob", "--password", "pw", "--nick", "Bob"]
                    .map(String::from)
                    .to_vec(),
            })
        );
        // Words after the conf file are passed through, dashes and all.
        assert_eq!(
            parse("admin --conf t.conf group members 5 --set 1,2"),
            Ok(Command::Admin {
                conf: PathBuf::from("t.conf"),
                args: ["group", "members", "5", "--set", "1,2"]
                    .map(String::from)
                    .to_vec(),
            })
        );
        assert!(parse("admin -c t.conf")
            .unwrap_err()
            .contains("missing admin command"));
        assert!(parse("admin user add bob")
            .unwrap_err()
            .contains("missing `-c FILE`"));
    }

    #[test]
    fn version_help_and_errors() {
        for s in ["version", "--version", "-V"] {
            assert_eq!(parse(s), Ok(Command::Version));
        }
        for s in ["help", "-h", "--help"] {
            assert_eq!(parse(s), Ok(Command::Help));
        }
        assert!(parse("version x").is_err());
        assert_eq!(parse(""), Err("missing command".to_string()));
        assert!(parse("frobnicate").unwrap_err().contains("unknown command"));
        for role in ["login", "msg", "route"] {
            let e = parse(&format!("{role} -c x")).unwrap_err();
            assert!(e.contains("not available yet"), "{e}");
        }
        assert!(USAGE.contains("ttserver run -c FILE"));
        assert_eq!(
            parse("file -c conf/file.conf"),
            Ok(Command::File {
                conf: PathBuf::from("conf/file.conf")
            })
        );
        assert!(parse("file -c x y").is_err());
    }
}
