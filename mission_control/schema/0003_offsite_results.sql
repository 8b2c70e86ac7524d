-- Version 3: the last result of each off-site copy target (a folder, an S3 bucket, ...),
-- written by the off-site plugins and shown to admins by GET /api/offsite.
CREATE TABLE offsite_results (
    target      TEXT PRIMARY KEY,
    ok          INTEGER NOT NULL,
    backup      TEXT,
    location    TEXT,
    message     TEXT NOT NULL,
    detail      TEXT,
    finished_at INTEGER NOT NULL
);
