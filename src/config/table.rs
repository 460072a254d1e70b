//! The key table: every conf key declared once, in the order of `docs/configuration.md` and
//! `conf/ttserver.conf`. Each entry gives the key, its `Config` field (`part.field`, with type
//! and default), its kind (parse, range check, type text: `kind.rs`), the roles that read it,
//! and its reference text. From it [`config_table!`] makes [`KEYS`], the part structs of
//! [`Config`] (`NetConfig`, `MsgConfig`, ...) with their defaults, the per-key parser
//! `Config::set`, the redacted `Debug`, and [`key_docs`], from which [`reference_markdown`]
//! renders the key table of `docs/configuration.md`.
//!
//! The part of a key is where code reads it (`cfg.msg.max_text_len`): the role that owns the
//! behaviour, or `net` for what every connection-serving role reads, `auth` for logins and
//! tokens, `store` for the storage. Its roles (the reference's "Read by") may be several.
//!
//! To add a key: add an entry here, a line to `conf/ttserver.conf` (at its default), and
//! regenerate the reference (`cargo test --lib config::tests::write_key_reference --
//! --ignored`); the tests say when one of them is missing.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::kind::{
    int, redact, secs, size, Addr, AdminToken, Bool, Dir, Host, HostList, Int, Kind, OneOf, Opt,
    Secret, Secs, Url,
};
use super::MAX_PDU_LIMIT;
use crate::auth::HashCost;
use crate::store::DbSync;

/// Size of a PDU header (protocol.md): the smallest possible PDU.
const PDU_HEADER_LEN: u64 = 12;
const PDU_LIMIT: u64 = MAX_PDU_LIMIT as u64;
/// Caps on list replies and group sizes.
const LIST_CAP: Int = int(1, 1_000_000);
const DB_SYNC: OneOf<DbSync> = OneOf(&[("full", DbSync::Full), ("normal", DbSync::Normal)]);
const HASH_COST: OneOf<HashCost> = OneOf(&[("low", HashCost::Low), ("default", HashCost::Default)]);

fn addr(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

/// One key of the reference table, as rendered in `docs/configuration.md`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyDoc {
    pub name: &'static str,
    /// Type and range, from the key's kind (plus a note on cross checks).
    pub ty: String,
    /// The default as written in a conf file (empty when unset); `conf/ttserver.conf` must
    /// give exactly this.
    pub default: String,
    /// The default column: `default` in backticks unless the entry words it itself.
    pub default_doc: String,
    /// The roles that read the key (`login`, `msg`, `file`, `msfs`, `admin`, `store`,
    /// `server` = the process as a whole).
    pub roles: &'static str,
    pub meaning: &'static str,
    /// What happens when the limit is reached (empty for keys that are no limit).
    pub limit: &'static str,
}

/// Optional entry items: `opt!()` = `None`, `opt!(x)` = `Some(x)`.
macro_rules! opt {
    () => {
        None
    };
    ($e:expr) => {
        Some($e)
    };
}

/// A field in `Debug`: redacted for secrets (`redacted: true`), as is otherwise.
macro_rules! debug_value {
    (; $v:expr) => {
        &$v
    };
    (true; $v:expr) => {
        &redact($v.as_deref())
    };
}

/// One part of [`Config`] with its fields and their defaults, from the entries sorted into it
/// by [`config_parts!`].
macro_rules! part_struct {
    (
        $(#[doc = $doc:literal])* $name:ident
        $({ $(#[$attr:meta])* $field:ident: $ty:ty = $default:expr })*
    ) => {
        $(#[doc = $doc])*
        #[derive(Clone)]
        pub struct $name {
            $($(#[$attr])* pub $field: $ty,)*
        }

        impl Default for $name {
            fn default() -> Self {
                $name {
                    $($field: $default,)*
                }
            }
        }
    };
}

/// Sorts the fields into their parts: one accumulator per part, in the order of [`Config`]'s
/// parts; each arm moves the next field into its part's accumulator (macro_rules cannot
/// compare two identifiers, but an arm can match a literal one). The last arm makes the
/// part structs.
macro_rules! config_parts {
    (
        [$($net:tt)*] [$($login:tt)*] [$($auth:tt)*] [$($msg:tt)*] [$($file:tt)*] [$($msfs:tt)*] [$($admin:tt)*] [$($store:tt)*]
        net { $($f:tt)* } $($rest:tt)*
    ) => {
        config_parts! {
            [$($net)* { $($f)* }] [$($login)*] [$($auth)*] [$($msg)*] [$($file)*] [$($msfs)*] [$($admin)*] [$($store)*]
            $($rest)*
        }
    };
    (
        [$($net:tt)*] [$($login:tt)*] [$($auth:tt)*] [$($msg:tt)*] [$($file:tt)*] [$($msfs:tt)*] [$($admin:tt)*] [$($store:tt)*]
        login { $($f:tt)* } $($rest:tt)*
    ) => {
        config_parts! {
            [$($net)*] [$($login)* { $($f)* }] [$($auth)*] [$($msg)*] [$($file)*] [$($msfs)*] [$($admin)*] [$($store)*]
            $($rest)*
        }
    };
    (
        [$($net:tt)*] [$($login:tt)*] [$($auth:tt)*] [$($msg:tt)*] [$($file:tt)*] [$($msfs:tt)*] [$($admin:tt)*] [$($store:tt)*]
        auth { $($f:tt)* } $($rest:tt)*
    ) => {
        config_parts! {
            [$($net)*] [$($login)*] [$($auth)* { $($f)* }] [$($msg)*] [$($file)*] [$($msfs)*] [$($admin)*] [$($store)*]
            $($rest)*
        }
    };
    (
        [$($net:tt)*] [$($login:tt)*] [$($auth:tt)*] [$($msg:tt)*] [$($file:tt)*] [$($msfs:tt)*] [$($admin:tt)*] [$($store:tt)*]
        msg { $($f:tt)* } $($rest:tt)*
    ) => {
        config_parts! {
            [$($net)*] [$($login)*] [$($auth)*] [$($msg)* { $($f)* }] [$($file)*] [$($msfs)*] [$($admin)*] [$($store)*]
            $($rest)*
        }
    };
    (
        [$($net:tt)*] [$($login:tt)*] [$($auth:tt)*] [$($msg:tt)*] [$($file:tt)*] [$($msfs:tt)*] [$($admin:tt)*] [$($store:tt)*]
        file { $($f:tt)* } $($rest:tt)*
    ) => {
        config_parts! {
            [$($net)*] [$($login)*] [$($auth)*] [$($msg)*] [$($file)* { $($f)* }] [$($msfs)*] [$($admin)*] [$($store)*]
            $($rest)*
        }
    };
    (
        [$($net:tt)*] [$($login:tt)*] [$($auth:tt)*] [$($msg:tt)*] [$($file:tt)*] [$($msfs:tt)*] [$($admin:tt)*] [$($store:tt)*]
        msfs { $($f:tt)* } $($rest:tt)*
    ) => {
        config_parts! {
            [$($net)*] [$($login)*] [$($auth)*] [$($msg)*] [$($file)*] [$($msfs)* { $($f)* }] [$($admin)*] [$($store)*]
            $($rest)*
        }
    };
    (
        [$($net:tt)*] [$($login:tt)*] [$($auth:tt)*] [$($msg:tt)*] [$($file:tt)*] [$($msfs:tt)*] [$($admin:tt)*] [$($store:tt)*]
        admin { $($f:tt)* } $($rest:tt)*
    ) => {
        config_parts! {
            [$($net)*] [$($login)*] [$($auth)*] [$($msg)*] [$($file)*] [$($msfs)*] [$($admin)* { $($f)* }] [$($store)*]
            $($rest)*
        }
    };
    (
        [$($net:tt)*] [$($login:tt)*] [$($auth:tt)*] [$($msg:tt)*] [$($file:tt)*] [$($msfs:tt)*] [$($admin:tt)*] [$($store:tt)*]
        store { $($f:tt)* } $($rest:tt)*
    ) => {
        config_parts! {
            [$($net)*] [$($login)*] [$($auth)*] [$($msg)*] [$($file)*] [$($msfs)*] [$($admin)*] [$($store)* { $($f)* }]
            $($rest)*
        }
    };
    (
        [$($net:tt)*] [$($login:tt)*] [$($auth:tt)*] [$($msg:tt)*] [$($file:tt)*] [$($msfs:tt)*] [$($admin:tt)*] [$($store:tt)*]
    ) => {
        part_struct!(
            /// Listeners, worker threads, per-connection limits and the server links: what every
            /// connection-serving role reads.
            NetConfig $($net)*
        );
        part_struct!(
            /// The login role: the msg server addresses it hands to clients (1/2).
            LoginConfig $($login)*
        );
        part_struct!(
            /// Password checks, login throttling and session tokens (msg and file roles).
            AuthConfig $($auth)*
        );
        part_struct!(
            /// The msg role: message and list limits, sessions.
            MsgConfig $($msg)*
        );
        part_struct!(
            /// The file role: transfers, offline files, the file server clients are sent to.
            FileConfig $($file)*
        );
        part_struct!(
            /// The msfs role: the HTTP image store.
            MsfsConfig $($msfs)*
        );
        part_struct!(
            /// The admin HTTP API (its token, the groups it manages).
            AdminConfig $($admin)*
        );
        part_struct!(
            /// Storage: where the data lives, the SQLite settings, the storage threads and queues.
            StoreConfig $($store)*
        );
    };
}

/// Makes everything that is spelled per key out of one declaration per key (see the module
/// doc). Entry items after `meaning` are optional but keep this order.
macro_rules! config_table {
    (
        $(
            $(#[doc = $note:literal])*
            $key:ident {
                field: $part:ident.$field:ident: $ty:ty = $default:expr,
                kind: $kind:expr,
                roles: $roles:literal,
                meaning: $meaning:literal,
                $(default_doc: $default_doc:literal,)?
                $(type_note: $type_note:literal,)?
                $(limit: $limit:literal,)?
                $(redacted: $redacted:tt,)?
            }
        )*
    ) => {
        /// Every key, in the order of `docs/configuration.md` and `conf/ttserver.conf`.
        pub const KEYS: &[&str] = &[$(stringify!($key)),*];

        config_parts! {
            [] [] [] [] [] [] [] []
            $(
                $part {
                    #[doc = concat!("`", stringify!($key), "`: ", $meaning)]
                    $(#[doc = ""] #[doc = $note])*
                    $field: $ty = $default
                }
            )*
        }

        impl Config {
            /// Sets one known key from its (trimmed) value; `Err` is the message for the
            /// problem.
            pub(super) fn set(&mut self, key: &str, v: &str) -> Result<(), String> {
                match key {
                    $(stringify!($key) => self.$part.$field = Kind::<$ty>::parse(&$kind, v)?,)*
                    _ => return Err("unknown key".to_string()),
                }
                Ok(())
            }
        }

        /// Flat, one line per key in key order (parts left out), secrets redacted.
        impl fmt::Debug for Config {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut d = f.debug_struct("Config");
                d.field("source", &self.source);
                $(d.field(stringify!($field), debug_value!($($redacted)?; self.$part.$field));)*
                d.finish()
            }
        }

        /// The reference of every key, in [`KEYS`] order.
        pub fn key_docs() -> Vec<KeyDoc> {
            let d = Config::default();
            vec![$({
                let default = Kind::<$ty>::show(&$kind, &d.$part.$field);
                let type_note: Option<&str> = opt!($($type_note)?);
                KeyDoc {
                    name: stringify!($key),
                    ty: format!("{}{}", Kind::<$ty>::describe(&$kind), type_note.unwrap_or("")),
                    default_doc: default_doc(opt!($($default_doc)?), &default),
                    default,
                    roles: $roles,
                    meaning: $meaning,
                    limit: opt!($($limit)?).unwrap_or(""),
                }
            },)*]
        }
    };
}

/// The typed configuration, in one part per role (`cfg.msg.max_text_len`,
/// `cfg.store.data_dir`, ...). Field names are the snake_case of the conf keys; each field's
/// doc starts with its key and meaning (`docs/configuration.md` has the type, default and
/// overflow behaviour of each). A key lives in the part of the role whose behaviour it sets;
/// `net` holds what every connection-serving role reads (listeners, threads, per-connection
/// limits, the link secret), `auth` logins and tokens, `store` the storage. The reference's
/// "Read by" column lists every role that reads a key.
///
/// `Debug` prints every key flat, `AdminToken` and `ClusterSecret` redacted, so the struct can
/// be logged.
#[derive(Clone)]
pub struct Config {
    /// Where the values came from, for messages: the conf file name, or `(defaults)`.
    pub source: String,
    pub net: NetConfig,
    pub login: LoginConfig,
    pub auth: AuthConfig,
    pub msg: MsgConfig,
    pub file: FileConfig,
    pub msfs: MsfsConfig,
    pub admin: AdminConfig,
    pub store: StoreConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            source: "(defaults)".to_string(),
            net: NetConfig::default(),
            login: LoginConfig::default(),
            auth: AuthConfig::default(),
            msg: MsgConfig::default(),
            file: FileConfig::default(),
            msfs: MsfsConfig::default(),
            admin: AdminConfig::default(),
            store: StoreConfig::default(),
        }
    }
}

/// The default column: the entry's own wording, else the conf value in backticks (`empty`
/// for an unset optional value).
fn default_doc(given: Option<&str>, default: &str) -> String {
    match given {
        Some(text) => text.to_string(),
        None if default.is_empty() => "empty".to_string(),
        None => format!("`{default}`"),
    }
}

/// The key table of `docs/configuration.md` (between its `keys:begin` / `keys:end`
/// markers), one row per key.
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "| Key | Type | Default | Read by | Meaning | When the limit is reached |\n\
         | --- | --- | --- | --- | --- | --- |\n",
    );
    for k in key_docs() {
        let name = format!("`{}`", k.name);
        let cells = [
            name.as_str(),
            &k.ty,
            &k.default_doc,
            k.roles,
            k.meaning,
            k.limit,
        ];
        out.push('|');
        for cell in cells {
            // An empty cell is `| |`, as the table had it before it was generated.
            if cell.is_empty() {
                out.push_str(" |");
            } else {
                out.push_str(&format!(" {cell} |"));
            }
        }
        out.push('\n');
    }
    out
}

config_table! {
    ClientListen {
        field: net.client_listen: SocketAddr = addr([0, 0, 0, 0], 8008),
        kind: Addr,
        roles: "login",
        meaning: "login role: clients ask here for a msg server (1/1 → 1/2)",
    }
    MsgListen {
        field: net.msg_listen: SocketAddr = addr([0, 0, 0, 0], 8000),
        kind: Addr,
        roles: "msg",
        meaning: "msg role: client sessions",
    }
    FileListen {
        field: net.file_listen: SocketAddr = addr([0, 0, 0, 0], 8600),
        kind: Addr,
        roles: "file",
        meaning: "file role: file transfers",
    }
    MsfsListen {
        field: net.msfs_listen: SocketAddr = addr([0, 0, 0, 0], 8700),
        kind: Addr,
        roles: "msfs",
        meaning: "msfs role: HTTP image store",
    }
    AdminListen {
        field: net.admin_listen: SocketAddr = addr([127, 0, 0, 1], 8400),
        kind: Addr,
        roles: "admin",
        meaning: "admin HTTP API (keep it on loopback or a private network)",
    }
    IpAddr1 {
        field: login.ip_addr1: String = "127.0.0.1".to_string(),
        kind: Host,
        roles: "login",
        meaning: "msg server address handed to clients in 1/2",
    }
    /// `None` = same as `ip_addr1`; use [`Config::ip_addr2`].
    IpAddr2 {
        field: login.ip_addr2: Option<String> = None,
        kind: Opt(Host),
        roles: "login",
        meaning: "second msg server address in 1/2",
        default_doc: "= `IpAddr1`",
    }
    FileAddr {
        field: file.file_addr: Vec<String> = vec!["127.0.0.1".to_string()],
        kind: HostList,
        roles: "msg, file",
        meaning: "file server addresses handed to clients, each with the file port",
    }
    /// A file role running alone (`ttserver file`) that `run` links to instead of starting its
    /// own; clients get `FileAddr` with this port.
    FileServer {
        field: file.file_server: Option<SocketAddr> = None,
        kind: Opt(Addr),
        roles: "msg",
        meaning: "a file role started alone with `ttserver file` on this address (same DataDir, same host); `run` links to it with `ClusterSecret` instead of starting its own file role, and clients get `FileAddr` with this port",
        limit: "while the link is down, 6/10 answers result 8",
    }
    /// Without a trailing `/`. `None` = `http://<IpAddr1>:<msfs port>`; use
    /// [`Config::msfs_base_url_for`].
    MsfsBaseUrl {
        field: msfs.msfs_base_url: Option<String> = None,
        kind: Opt(Url),
        roles: "msfs",
        meaning: "base of the URLs msfs returns (a trailing `/` is dropped); never taken from the request's Host",
        default_doc: "`http://<IpAddr1>:<msfs port>`",
    }
    /// `None` when the conf file has no `AdminToken` line: `ttserver run` then reads (or
    /// creates) `DataDir/admin.token` and sets it (`admin::token::resolve`).
    AdminToken {
        field: admin.admin_token: Option<String> = None,
        kind: AdminToken,
        roles: "admin",
        meaning: "bearer token of the admin HTTP API (see the admin token above)",
        default_doc: "the content of `DataDir/admin.token`, created with a random token on the first `ttserver run`",
        redacted: true,
    }
    DataDir {
        field: store.data_dir: PathBuf = PathBuf::from("./data"),
        kind: Dir,
        roles: "store, file, msfs",
        meaning: "holds the database (`ttserver.db`), offline files and msfs files",
    }
    /// 0 = auto; use [`Config::workers`].
    Workers {
        field: net.workers: usize = 0,
        kind: int(0, 1024),
        roles: "server",
        meaning: "event-loop worker threads; 0 = one per available CPU",
    }
    /// 0 = auto; use [`Config::db_readers`].
    DbReaders {
        field: store.db_readers: usize = 0,
        kind: int(0, 256),
        roles: "store",
        meaning: "storage reader threads; 0 = 2",
    }
    DbSync {
        field: store.db_sync: DbSync = DbSync::Full,
        kind: DB_SYNC,
        roles: "store",
        meaning: "SQLite `synchronous`: `full` = an ack survives power loss; `normal` = survives a process crash only",
    }
    PasswordHashCost {
        field: auth.password_hash_cost: HashCost = HashCost::Default,
        kind: HASH_COST,
        roles: "msg, admin",
        meaning: "argon2id cost: `default` = m 19 MiB, t 2, p 1; `low` = m 8 KiB, t 1 (load tests only)",
    }
    MaxConnCnt {
        field: net.max_conn_cnt: usize = 100_000,
        kind: int(1, 10_000_000),
        roles: "login, msg, file",
        meaning: "open connections per listener",
        limit: "a new connection is accepted and closed at once (`conn_cap_rejects`); the login role answers 1/2 result 2",
    }
    MaxPduSize {
        field: net.max_pdu_size: u32 = 1_048_576,
        kind: size(PDU_HEADER_LEN, PDU_LIMIT),
        roles: "login, msg, file",
        meaning: "largest PDU accepted from a peer; bounds input memory per connection",
        limit: "protocol error, connection closed (`proto_errors`)",
    }
    MaxPduSizeBeforeLogin {
        field: net.max_pdu_size_before_login: u32 = 4096,
        kind: size(PDU_HEADER_LEN, PDU_LIMIT),
        roles: "login, msg, file",
        meaning: "largest PDU accepted from a connection that has not logged in (msg port until its 1/3, file port until its 6/1 succeeded, the login port always): 1/3, 6/1 and 1/1 are far smaller, so a peer that never logs in cannot make the server buffer up to `MaxPduSize`",
        limit: "protocol error, connection closed (`proto_errors`)",
    }
    MaxOutPduSize {
        field: msg.max_out_pdu_size: u32 = 409_600,
        kind: size(PDU_HEADER_LEN, PDU_LIMIT),
        roles: "msg",
        meaning: "largest PDU the server forwards (3/1, 4/1)",
        limit: "the PDU is rejected (`msg_rejected`, `cmd_rejected`)",
    }
    MaxTextLen {
        field: msg.max_text_len: u32 = 65_536,
        kind: size(1, PDU_LIMIT),
        roles: "msg, admin",
        meaning: "longest text message in bytes (also admin `POST /v1/messages`); a 2014 app puts no limit on what its users type, and 1,700 Chinese characters are already 5,100 bytes",
        type_note: ", < `MaxOutPduSize`",
        limit: "message rejected (`msg_rejected`)",
    }
    MaxAudioLen {
        field: msg.max_audio_len: u32 = 102_400,
        kind: size(5, PDU_LIMIT),
        roles: "msg",
        meaning: "longest audio message",
        type_note: ", < `MaxOutPduSize`",
        limit: "message rejected (`msg_rejected`)",
    }
    MsgRateLimit {
        field: msg.msg_rate_limit: u32 = 100,
        kind: int(1, 1_000_000),
        roles: "msg",
        meaning: "3/1 and 4/1 per second per connection (token bucket)",
        limit: "the server stops reading that connection until tokens refill; nothing dropped, not closed",
    }
    OutBufCap {
        field: net.out_buf_cap: usize = 4_194_304,
        kind: size(4096, 1 << 30),
        roles: "login, msg, file",
        meaning: "queued output per connection",
        type_note: ", ≥ `MaxOutPduSize`",
        limit: "connection closed (`slow_consumer_closes`)",
    }
    MaxRecentContacts {
        field: msg.max_recent_contacts: u32 = 100,
        kind: LIST_CAP,
        roles: "msg",
        meaning: "recent contacts listed (2/3); presence watchers per user",
        limit: "list truncated, most recent first",
    }
    MaxUnreadPeers {
        field: msg.max_unread_peers: u32 = 300,
        kind: LIST_CAP,
        roles: "msg",
        meaning: "peers listed in the unread count reply (3/8)",
        limit: "list truncated, newest first",
    }
    MaxUnreadMsgs {
        field: msg.max_unread_msgs: u32 = 100,
        kind: LIST_CAP,
        roles: "msg",
        meaning: "unread messages returned per peer (3/14)",
        limit: "list truncated, newest first",
    }
    MaxGroupUnread {
        field: msg.max_group_unread: u32 = 150,
        kind: LIST_CAP,
        roles: "msg",
        meaning: "unread count per group (5/6) and messages per group (5/8)",
        limit: "count capped / list truncated",
    }
    MaxAllUsers {
        field: msg.max_all_users: u32 = 5000,
        kind: LIST_CAP,
        roles: "msg",
        meaning: "users listed in 2/15",
        limit: "list truncated, by id",
    }
    /// 2/15 longer than one `MaxOutPduSize` frame goes out as several frames (B-USER-2).
    AllUsersSplit {
        field: msg.all_users_split: bool = true,
        kind: Bool,
        roles: "msg",
        meaning: "a user directory longer than one `MaxOutPduSize` frame is sent as consecutive 2/15 frames, each a whole number of users, in id order (the 2014 Android app merges every 2/15 into its contact map and rejects frames over 400 KiB); `false` sends one frame cut to the users that fit, for clients that replace their list with each 2/15",
        limit: "with `false`: list cut (`out_truncated`)",
    }
    MaxGroupList {
        field: msg.max_group_list: u32 = 200,
        kind: LIST_CAP,
        roles: "msg",
        meaning: "normal groups listed in 5/2",
        limit: "list truncated, by id",
    }
    MaxRecentGroups {
        field: msg.max_recent_groups: u32 = 100,
        kind: LIST_CAP,
        roles: "msg",
        meaning: "groups listed in 5/17",
        limit: "list truncated, most recent first",
    }
    MaxTempGroupMembers {
        field: msg.max_temp_group_members: u32 = 1000,
        kind: LIST_CAP,
        roles: "msg",
        meaning: "members of a temporary group",
        limit: "create → 5/13 result 2; add → 5/15 result 3",
    }
    MaxNormalGroupMembers {
        field: admin.max_normal_group_members: u32 = 5000,
        kind: LIST_CAP,
        roles: "admin",
        meaning: "members of a normal group (admin API)",
        limit: "request refused with an error",
    }
    LoginTimeout {
        field: net.login_timeout: Duration = Duration::from_secs(15),
        kind: secs(1),
        roles: "msg, file",
        meaning: "time from accept to a successful login (msg port; 6/1 on the file port)",
        limit: "connection closed (`login_timeouts`)",
    }
    PcIdleTimeout {
        field: msg.pc_idle_timeout: Duration = Duration::from_secs(30),
        kind: secs(1),
        roles: "msg",
        meaning: "silence before a PC session is closed",
        limit: "connection closed (`idle_closes`)",
    }
    MobileIdleTimeout {
        field: msg.mobile_idle_timeout: Duration = Duration::from_secs(600),
        kind: secs(1),
        roles: "msg",
        meaning: "silence before a mobile session is closed (the 2014 Android app heartbeats every 240 s from an inexact alarm)",
        limit: "connection closed (`idle_closes`)",
    }
    PresenceToMobile {
        field: msg.presence_to_mobile: bool = false,
        kind: Bool,
        roles: "msg",
        meaning: "mobile sessions also receive presence changes",
    }
    MaxFileSize {
        field: file.max_file_size: u64 = 1_073_741_824,
        kind: size(1, u64::MAX),
        roles: "msg",
        meaning: "largest file offered in a transfer (6/10)",
        limit: "6/11 result 1",
    }
    LoginFailLimit {
        field: auth.login_fail_limit: u32 = 5,
        kind: int(1, 100),
        roles: "msg",
        meaning: "failed logins, per login name and per IP, that lock it",
        limit: "name / IP locked: 1/4 result 6 without verification (`login_throttled`)",
    }
    LoginFailWindow {
        field: auth.login_fail_window: Duration = Duration::from_secs(60),
        kind: secs(1),
        roles: "msg",
        meaning: "the failures must fall within this many seconds",
    }
    LoginLockout {
        field: auth.login_lockout: Duration = Duration::from_secs(60),
        kind: secs(1),
        roles: "msg",
        meaning: "how long a name or IP stays locked, from the failure that locked it",
    }
    OfflineFileDays {
        field: file.offline_file_days: u32 = 7,
        kind: int(1, 3650),
        roles: "msg, file",
        meaning: "age at which offline files are deleted",
        limit: "file and record deleted by the sweeper",
    }
    MaxOfflineFiles {
        field: file.max_offline_files: u32 = 50,
        kind: LIST_CAP,
        roles: "msg",
        meaning: "offline files listed in 6/17",
        limit: "list truncated, newest first",
    }
    TaskTimeout {
        field: file.task_timeout: Duration = Duration::from_secs(3600),
        kind: secs(1),
        roles: "file",
        meaning: "a file task without traffic (or never logged in to) ends",
        limit: "task ended, connections closed, partial upload deleted",
    }
    /// How often the file role deletes expired offline files (B-FILE-15: at least hourly).
    FileSweepInterval {
        field: file.file_sweep_interval: Duration = Duration::from_secs(3600),
        kind: Secs { min: 1, max: 3600 },
        roles: "file",
        meaning: "how often the sweeper deletes offline files older than `OfflineFileDays` (also once at start-up)",
    }
    /// Bytes the server asks for per 6/4 of an offline upload (B-FILE-8).
    FileSegmentSize {
        field: file.file_segment_size: u32 = 65_536,
        kind: size(1024, 16 << 20),
        roles: "file",
        meaning: "bytes the server asks an offline uploader for per 6/4 (B-FILE-8); a given value must leave 1024 bytes of `MaxPduSize` for the answer's other fields (start-up error otherwise)",
        default_doc: "`65536` (when not given and `MaxPduSize` < 66560: `MaxPduSize` − 1024)",
    }
    /// Live file tasks at most (6/11 result 2 beyond).
    MaxFileTasks {
        field: file.max_file_tasks: usize = 100_000,
        kind: int(1, 10_000_000),
        roles: "file",
        meaning: "file tasks alive at once (from 6/10 until done, cancelled, stored or expired)",
        limit: "6/11 result 2; a file role running alone drops announcements beyond it (their 6/1 is refused) and counts `file_rejected`",
    }
    TokenGrace {
        field: auth.token_grace: Duration = Duration::from_secs(60),
        kind: secs(0),
        roles: "msg, file",
        meaning: "a token stays valid this long after the user's last session ends",
        limit: "token invalid",
    }
    MsfsMaxFileSize {
        field: msfs.msfs_max_file_size: u64 = 5_242_880,
        kind: size(1, u64::MAX),
        roles: "msfs",
        meaning: "largest file part uploaded to msfs; a request body may be 64 KiB larger. Uploads are buffered in memory, so this times 256 (msfs connections) bounds their memory",
        limit: "`error_code` 1, nothing stored, connection closed after the reply",
    }
    MsfsRequireToken {
        field: msfs.msfs_require_token: bool = true,
        kind: Bool,
        roles: "msfs",
        meaning: "msfs uploads must carry a session token (B-TOK-2) in header `X-TT-Token` or query parameter `token` (`false` only for legacy clients)",
        limit: "`error_code` 3, nothing stored, connection closed after the reply",
    }
    /// Simultaneous msfs HTTP connections (more are accepted and closed at once).
    MsfsMaxConns {
        field: msfs.msfs_max_conns: usize = 256,
        kind: int(1, 100_000),
        roles: "msfs",
        meaning: "simultaneous msfs HTTP connections; each buffers at most one upload (`MsfsMaxFileSize` + 64 KiB), so this bounds upload memory",
        limit: "accepted and closed at once (`conn_cap_rejects`)",
    }
    MsfsMaxConnsPerIp {
        field: msfs.msfs_max_conns_per_ip: usize = 64,
        kind: int(0, 100_000),
        roles: "msfs",
        meaning: "simultaneous msfs HTTP connections from one IP address, 0 = no cap (an office behind one NAT address shares it: keep it well above the uploads its users make at once)",
        limit: "accepted and closed at once (`conn_cap_rejects`)",
    }
    MsfsHeadTimeout {
        field: msfs.msfs_head_timeout: Duration = Duration::from_secs(10),
        kind: secs(1),
        roles: "msfs",
        meaning: "a request head must be complete this long after the connection was accepted (first request) or after its first byte (later requests on a kept-alive connection), however the bytes trickle in",
        limit: "connection closed",
    }
    MsfsMinBodyRate {
        field: msfs.msfs_min_body_rate: u64 = 16_384,
        kind: int(1, 1_073_741_824),
        roles: "msfs",
        meaning: "bytes per second an upload body must keep up on average, after a 10 s grace from the end of its head (a slow sender cannot hold a connection for long)",
        limit: "connection closed",
    }
    ClusterSecret {
        field: net.cluster_secret: Option<String> = None,
        kind: Opt(Secret),
        roles: "msg, file",
        meaning: "shared secret of server links; unset = standalone",
        default_doc: "unset",
        redacted: true,
    }
    /// Requests of one connection waiting for storage before the server stops reading it.
    MaxInFlight {
        field: msg.max_in_flight: usize = 1024,
        kind: int(1, 1 << 20),
        roles: "msg",
        meaning: "requests of one connection waiting for storage",
        limit: "the server stops reading that connection until replies come back",
    }
    /// Jobs per group commit of the storage writer.
    DbBatchMax {
        field: store.db_batch_max: usize = 1024,
        kind: int(1, 1 << 20),
        roles: "store",
        meaning: "storage jobs committed in one group commit",
        limit: "the rest go in the next commit",
    }
    /// Capacity of the storage writer queue and of the reader queue.
    DbQueueCap {
        field: store.db_queue_cap: usize = 65_536,
        kind: int(1, 1 << 24),
        roles: "store",
        meaning: "capacity of the storage writer queue and of each reader thread's queue",
        limit: "the request waits in its connection's input (the server stops reading that connection until the storage thread takes a job off the queue and wakes the worker: no polling); nothing is dropped (`storage_full_waits`)",
    }
    /// Threads of the password-hashing pool.
    HashThreads {
        field: auth.hash_threads: usize = 0,
        kind: int(0, 1024),
        roles: "msg",
        meaning: "threads that check passwords (argon2id), apart from the storage readers; 0 = one per core",
    }
    /// Queue of the password-hashing pool.
    HashQueueCap {
        field: auth.hash_queue_cap: usize = 4096,
        kind: int(1, 1 << 20),
        roles: "msg",
        meaning: "logins waiting for a password check",
        limit: "the login is refused with 1/4 result 3 (unavailable; `store_failures`)",
    }
    /// Capacity of each msg worker's channel (storage replies, pushes from other workers). The
    /// channel's slots are allocated up front (about 56 bytes each), so it is kept moderate.
    WorkerQueueCap {
        field: net.worker_queue_cap: usize = 8192,
        kind: int(16, 1 << 24),
        roles: "msg",
        meaning: "messages waiting in one msg worker's channel: storage replies, deliveries and pushes from the other workers and threads",
        limit: "a storage or admin thread waits for room (back-pressure on the queue behind it); a worker keeps the message in its own backlog and reads no client input until the backlog is delivered (`channel_full_waits`); nothing is dropped",
    }
    /// All partial input the process buffers, summed over every connection of every role.
    MaxBufferedInput {
        field: net.max_buffered_input: usize = 268_435_456,
        kind: size(1 << 20, 1 << 40),
        roles: "login, msg, file, msfs, admin",
        meaning: "bytes of incomplete requests buffered by all connections together (each one's own limit is `MaxPduSize`, `MaxPduSizeBeforeLogin` or the HTTP body limit)",
        limit: "the connection whose read would pass it is closed (`input_budget_closes`)",
    }
    /// Task announcements from the msg workers waiting for the file loop.
    FileTaskQueueCap {
        field: file.file_task_queue_cap: usize = 4096,
        kind: int(16, 1 << 24),
        roles: "file",
        meaning: "file tasks announced by the msg role (6/10) and not yet taken by the file loop",
        limit: "6/11 result 2 (the sender may offer again)",
    }
    /// Disk and database jobs waiting for the file role's io thread.
    FileIoQueueCap {
        field: file.file_io_queue_cap: usize = 1024,
        kind: int(16, 1 << 24),
        roles: "file",
        meaning: "disk and database jobs of the file role waiting for its io thread",
        limit: "the connection that submitted the job is held until the io thread takes a job (no polling); a 6/19 from the msg role is refused (`file_rejected`)",
    }
    /// Uploads and downloads waiting for msfs's io thread.
    MsfsIoQueueCap {
        field: msfs.msfs_io_queue_cap: usize = 32,
        kind: int(1, 1 << 20),
        roles: "msfs",
        meaning: "msfs uploads and downloads waiting for its io thread (each upload is held in memory until written)",
        limit: "the request waits in its connection's input and is taken, in arrival order, when the io thread answers one (no polling)",
    }
    /// Admin API requests being worked on (database reads, commits).
    AdminMaxJobs {
        field: admin.admin_max_jobs: usize = 512,
        kind: int(1, 1 << 20),
        roles: "admin",
        meaning: "admin API requests waiting for the database at once",
        limit: "HTTP 503 with `Retry-After: 1`, before anything changed",
    }
    /// Bytes read from a socket per `read` call (one buffer per connection).
    ReadBufSize {
        field: net.read_buf_size: usize = 65_536,
        kind: size(1024, 16 << 20),
        roles: "login, msg",
        meaning: "bytes read from a socket per read call",
    }
    /// Graceful stop (SIGTERM/SIGINT): how long the server may take to commit what it was
    /// given and send those replies before it closes the connections anyway.
    StopTimeout {
        field: net.stop_timeout: Duration = Duration::from_secs(5),
        kind: secs(0),
        roles: "server",
        meaning: "on SIGTERM or SIGINT, how long the server may take to commit the requests it already read and send their replies (acks, deliveries) before it closes the connections (README, \"Stopping\")",
        limit: "the connections are closed anyway; the log says how many storage replies were still outstanding",
    }
}
