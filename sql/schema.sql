-- ttserver schema, complete, as a fresh install creates it (version 4).
--
-- `open` in src/store/mod.rs runs this file on a new, empty database inside one transaction
-- and sets `PRAGMA user_version` to the latest version. Existing databases are upgraded by the
-- migrations instead (NNN_*.sql, applied in order from their user_version). Whoever adds a
-- migration updates this file to match: a test migrates a version-1 database step by step
-- and compares its schema with this one.
--
-- Conventions: ids are INTEGER PRIMARY KEY (must fit u32 except message ids); times are Unix
-- seconds from the server clock; 0 means "none" for optional references (parent department,
-- leader, user department), which is why those carry no foreign key. Booleans are 0/1
-- INTEGERs. Users and groups share one id space (B-GRP-20): their ids come from `id_seq`.

-- The one sequence of user and group ids (B-GRP-20): `last` = the highest id handed out. A new
-- user or group takes last + 1 inside its own transaction (`next_id` in src/store/mod.rs), so
-- a group id is never a user id, and no id is reused (deleted normal groups keep their rows).
CREATE TABLE id_seq (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    last INTEGER NOT NULL
);
INSERT INTO id_seq (id, last) VALUES (1, 0);

-- Departments (B-USER-3). parent_id 0 = top level.
CREATE TABLE departs (
    id          INTEGER PRIMARY KEY,
    title       TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    parent_id   INTEGER NOT NULL DEFAULT 0,
    leader_id   INTEGER NOT NULL DEFAULT 0,
    disabled    INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))
);

-- Users (B-USER). `name` is a BLOB so that uniqueness and lookups are byte for
-- byte (B-USER-4); a client-sent non-UTF-8 name simply matches nothing.
-- password_hash = argon2id PHC string of md5hex(plain) (B-LOGIN-3). id from id_seq.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    name          BLOB    NOT NULL UNIQUE CHECK (length(name) > 0),
    password_hash TEXT    NOT NULL,
    nick          TEXT    NOT NULL DEFAULT '',
    avatar        TEXT    NOT NULL DEFAULT '',
    title         TEXT    NOT NULL DEFAULT '',
    position      TEXT    NOT NULL DEFAULT '',
    sex           INTEGER NOT NULL DEFAULT 0,
    role_status   INTEGER NOT NULL DEFAULT 0,
    depart_id     INTEGER NOT NULL DEFAULT 0,
    job_num       INTEGER NOT NULL DEFAULT 0,
    telephone     TEXT    NOT NULL DEFAULT '',
    email         TEXT    NOT NULL DEFAULT '',
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))
);

-- P2P messages (B-MSG). Storage order = id order; create_time never decreases
-- in id order (B-GEN-3, enforced by the writer).
CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    from_id     INTEGER NOT NULL REFERENCES users (id),
    to_id       INTEGER NOT NULL REFERENCES users (id),
    create_time INTEGER NOT NULL,
    msg_type    INTEGER NOT NULL CHECK (msg_type BETWEEN 0 AND 255),
    data        BLOB    NOT NULL CHECK (length(data) > 0)
);
-- Unread (3/9) and history lookups: messages from one peer to one reader, newest first.
CREATE INDEX messages_by_pair ON messages (to_id, from_id, id);

-- Unread state (B-UNR), one row per (reader, peer): O(1) writes per message.
-- Unread messages in a family = the newest <counter> messages from peer to
-- reader (everything after the last read is unread). last_msg_id = newest
-- message from peer to reader; orders 3/8 (newest unread first).
CREATE TABLE unread (
    reader      INTEGER NOT NULL,
    peer        INTEGER NOT NULL,
    pc          INTEGER NOT NULL DEFAULT 0,
    ios         INTEGER NOT NULL DEFAULT 0,
    android     INTEGER NOT NULL DEFAULT 0,
    last_msg_id INTEGER NOT NULL,
    PRIMARY KEY (reader, peer)
) WITHOUT ROWID;

-- Recent contacts (B-RC), one row per (owner, peer).
CREATE TABLE recent_contacts (
    owner   INTEGER NOT NULL,
    peer    INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    hidden  INTEGER NOT NULL DEFAULT 0 CHECK (hidden IN (0, 1)),
    PRIMARY KEY (owner, peer)
) WITHOUT ROWID;
-- watchers (B-PRES-2) look rows up by either side.
CREATE INDEX recent_contacts_by_peer ON recent_contacts (peer, owner);

-- Groups (B-GRP). type 1 = normal (admin-made, creator 0), 2 = temporary.
-- updated = latest of creation, last message, last membership change (5/17).
-- A deleted normal group keeps its row (deleted = 1) so ids are never reused.
-- id from id_seq: never also a user id (B-GRP-20).
CREATE TABLE groups (
    id            INTEGER PRIMARY KEY,
    type          INTEGER NOT NULL CHECK (type IN (1, 2)),
    name          BLOB    NOT NULL,
    avatar        BLOB    NOT NULL DEFAULT x'',
    creator       INTEGER NOT NULL DEFAULT 0,
    created       INTEGER NOT NULL,
    updated       INTEGER NOT NULL,
    last_msg_id   INTEGER NOT NULL DEFAULT 0,
    deleted       INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1))
);

-- Current members, in join order (seq). The per-family read cursors
-- (B-GRP-10: id of the last read group message) and the hidden flag (B-RC-4)
-- live on the membership row: they start at the group's latest message on
-- joining and vanish on leaving, as the rules require.
CREATE TABLE group_members (
    group_id    INTEGER NOT NULL REFERENCES groups (id),
    user_id     INTEGER NOT NULL REFERENCES users (id),
    seq         INTEGER NOT NULL,
    hidden      INTEGER NOT NULL DEFAULT 0 CHECK (hidden IN (0, 1)),
    read_pc      INTEGER NOT NULL DEFAULT 0,
    read_ios     INTEGER NOT NULL DEFAULT 0,
    read_android INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;
CREATE INDEX group_members_by_user ON group_members (user_id, group_id);
-- Every stored group message un-hides the group for the members who hid it (B-RC-4, B-GRP-8).
-- This partial index holds only hidden rows, so that update visits those alone instead of
-- every member of the group. Cursor updates do not touch it (hidden does not change).
CREATE INDEX group_members_hidden ON group_members (group_id) WHERE hidden = 1;

-- Group messages (B-GRP-8). Own id space; storage order = id order.
CREATE TABLE group_messages (
    id          INTEGER PRIMARY KEY,
    group_id    INTEGER NOT NULL REFERENCES groups (id),
    from_id     INTEGER NOT NULL REFERENCES users (id),
    create_time INTEGER NOT NULL,
    msg_type    INTEGER NOT NULL CHECK (msg_type BETWEEN 0 AND 255),
    data        BLOB    NOT NULL CHECK (length(data) > 0)
);
-- 5/6 (B-GRP-11) counts a group's messages after the reader's cursor that the reader did not
-- send: with from_id in the index that count reads the index only, never the message rows.
CREATE INDEX group_messages_by_group ON group_messages (group_id, id, from_id);

-- Offline files (B-FILE-9 .. B-FILE-15).
-- One row per complete offline upload. The stored bytes live at
-- DataDir/offline/<to_id>/<task_id>, a path built from these two server-generated values only
-- (B-FILE-16). A row exists only once the file is fsynced and renamed into place, so a row
-- always names a whole file; rows and files are deleted together (6/19, expiry).
CREATE TABLE offline_files (
    task_id   TEXT    PRIMARY KEY,
    from_id   INTEGER NOT NULL,
    to_id     INTEGER NOT NULL,
    file_name BLOB    NOT NULL,
    file_size INTEGER NOT NULL,
    created   INTEGER NOT NULL
);

-- 6/17: a receiver's files, newest first (B-FILE-12).
CREATE INDEX offline_files_by_receiver ON offline_files (to_id, created);
-- The sweeper: everything older than OfflineFileDays (B-FILE-15).
CREATE INDEX offline_files_by_created ON offline_files (created);
