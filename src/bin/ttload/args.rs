//! The command line: `--key value` flags, checked against each scenario's list; the flags the
//! driver scenarios share (`Common`), and those of the message scenarios.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::flow::Load;
use crate::limits::{ephemeral_ports, nofile, raise_nofile};
use crate::run::nonce;
use crate::session::{Roster, UsersConf};

/// Parsed `--key value` flags.
pub struct Args {
    m: HashMap<String, String>,
}

impl Args {
    pub fn parse(rest: &[String], allowed: &[&str]) -> Result<Args, String> {
        let mut m = HashMap::new();
        let mut it = rest.iter();
        while let Some(k) = it.next() {
            let key = k
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {k:?}"))?;
            if !allowed.contains(&key) {
                return Err(format!("unknown flag --{key} (see ttload --help)"));
            }
            let v = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
            if m.insert(key.to_string(), v.clone()).is_some() {
                return Err(format!("--{key} given twice"));
            }
        }
        Ok(Args { m })
    }

    pub fn has(&self, k: &str) -> bool {
        self.m.contains_key(k)
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.m.get(k).map(String::as_str)
    }

    pub fn str(&self, k: &str) -> Result<String, String> {
        self.m
            .get(k)
            .cloned()
            .ok_or_else(|| format!("--{k} is required"))
    }

    pub fn num<T>(&self, k: &str, default: Option<T>, min: T, max: T) -> Result<T, String>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let v = match self.m.get(k) {
            Some(v) => v
                .parse::<T>()
                .map_err(|_| format!("--{k}: bad value {v:?}"))?,
            None => default.ok_or_else(|| format!("--{k} is required"))?,
        };
        if v < min || v > max {
            return Err(format!("--{k} must be in {min} ..= {max}, got {v}"));
        }
        Ok(v)
    }

    /// A number flag without a default: None if not given.
    pub fn opt_num<T>(&self, k: &str, min: T, max: T) -> Result<Option<T>, String>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        if self.has(k) {
            self.num(k, None, min, max).map(Some)
        } else {
            Ok(None)
        }
    }

    /// --messages per sender, `senders` of them (named `what`): at most 20,000,000 in all.
    pub fn messages(&self, senders: usize, what: &str) -> Result<u32, String> {
        let messages: u32 = self.num("messages", None, 1, 20_000_000)?;
        if senders as u64 * u64::from(messages) > 20_000_000 {
            return Err(format!("{what} x messages must be at most 20,000,000"));
        }
        Ok(messages)
    }

    /// What each sender sends: `messages`, --rate, --window (default `window`, or 100,000 with
    /// --rate: then the rate paces) and --size.
    pub fn load(&self, messages: u32, window: u32) -> Result<Load, String> {
        if self.has("rate") && self.has("window") {
            eprintln!("ttload: --rate with --window: the window caps messages in flight");
        }
        let rate = self.opt_num("rate", 0.001, 1e6)?;
        let window = self.num(
            "window",
            Some(if rate.is_some() { 100_000 } else { window }),
            1,
            100_000,
        )?;
        Ok(Load {
            messages,
            window,
            rate,
            size: self.num("size", Some(100), 1, 65_536)?,
            nonce: nonce(),
        })
    }
}

fn loopback(addr: SocketAddr) -> Result<SocketAddr, String> {
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(format!(
            "{addr} is not a loopback address: ttload only targets 127.0.0.0/8 and ::1"
        ))
    }
}

pub fn sock_addr(a: &Args, k: &str) -> Result<SocketAddr, String> {
    let s = a.str(k)?;
    let addr: SocketAddr = s
        .parse()
        .map_err(|_| format!("--{k}: {s:?} is not IP:PORT"))?;
    loopback(addr)
}

/// Flags shared by the driver scenarios.
pub struct Common {
    login: SocketAddr,
    prefix: String,
    password: String,
    pub threads: usize,
    pub limit: Duration,
    pub sources: Vec<IpAddr>,
    concurrency: usize,
    heartbeat: Duration,
}

const COMMON: &[&str] = &[
    "login",
    "user-prefix",
    "password",
    "threads",
    "duration-limit",
    "source-addrs",
    "concurrency",
    "heartbeat",
];

pub fn common(a: &Args) -> Result<Common, String> {
    let login = sock_addr(a, "login")?;
    let mut sources = Vec::new();
    if a.has("source-addrs") {
        for s in a.str("source-addrs")?.split(',').filter(|s| !s.is_empty()) {
            let ip: IpAddr = s
                .trim()
                .parse()
                .map_err(|_| format!("--source-addrs: {s:?} is not an IP address"))?;
            if !ip.is_loopback() {
                return Err(format!("--source-addrs: {ip} is not a loopback address"));
            }
            if ip.is_ipv4() != login.is_ipv4() {
                return Err(format!(
                    "--source-addrs: {ip} is not of the same family as {login}"
                ));
            }
            sources.push(ip);
        }
        if sources.len() > 256 {
            return Err("--source-addrs: at most 256 addresses".into());
        }
    }
    Ok(Common {
        login,
        prefix: a.str("user-prefix")?,
        password: a.str("password")?,
        threads: a.num("threads", Some(1), 1, 64)?,
        limit: Duration::from_secs(a.num("duration-limit", Some(300), 1, 3600)?),
        sources,
        concurrency: a.num("concurrency", Some(64), 1, 10_000)?,
        heartbeat: Duration::from_secs(a.num("heartbeat", Some(10), 1, 300)?),
    })
}

impl Common {
    /// Users `<prefix>N` logging in as client_type 1, at `rate` logins per second in all (None:
    /// as fast as --concurrency allows).
    pub fn roster(&self, rate: Option<f64>) -> Roster {
        Roster {
            prefix: self.prefix.clone(),
            conf: UsersConf {
                login_addr: self.login,
                password: self.password.clone(),
                client_type: 1,
                concurrency: self.concurrency,
                rate: rate.map(|r| r / self.threads as f64),
                heartbeat: self.heartbeat,
            },
        }
    }

    /// Raises RLIMIT_NOFILE to the hard limit, then checks descriptors and ephemeral ports for
    /// `conns` simultaneous connections.
    pub fn reserve(&self, conns: usize) -> Result<(), String> {
        raise_nofile();
        let need = conns + self.concurrency * self.threads + 64;
        let have = nofile();
        if need as u64 > have {
            return Err(format!(
                "about {need} descriptors needed but RLIMIT_NOFILE is {have} (raise the hard \
                 limit, e.g. ulimit -Hn)"
            ));
        }
        let ports = ephemeral_ports();
        let per_source = ports.saturating_sub(1000);
        let sources = self.sources.len().max(1);
        if conns > per_source * sources {
            eprintln!(
                "ttload: warning: {conns} connections but only {ports} ephemeral ports per \
                 source address ({sources} in use): pass more --source-addrs"
            );
        }
        Ok(())
    }
}

/// The common flags plus a scenario's own.
pub fn with(extra: &[&'static str]) -> Vec<&'static str> {
    COMMON.iter().chain(extra).copied().collect()
}
