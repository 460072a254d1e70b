-- ttserver schema, version 3: offline files (B-FILE-9 .. B-FILE-15). Never edit once released.

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
