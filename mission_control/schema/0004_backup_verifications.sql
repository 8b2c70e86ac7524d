-- Version 4: the last verification of each backup file, shown by GET /api/backup.
-- A row counts only while the file's size and mtime still match (`size`, `mtime_ns`).
CREATE TABLE backup_verifications (
    name           TEXT PRIMARY KEY,
    size           INTEGER NOT NULL,
    mtime_ns       INTEGER NOT NULL,
    sha256         TEXT NOT NULL,
    ok             INTEGER NOT NULL,
    integrity      TEXT NOT NULL,
    page_count     INTEGER,
    page_size      INTEGER,
    schema_version INTEGER,
    verified_at    INTEGER NOT NULL,
    verified_by    TEXT
);
