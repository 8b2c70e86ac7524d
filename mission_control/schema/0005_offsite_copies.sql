-- Version 5: every off-site copy made here (what was uploaded, of which backup, packed how), so a copy
-- fetched back or drilled can be compared with what was sent; and each target's last drill.
CREATE TABLE offsite_copies (
    target       TEXT NOT NULL,
    remote_name  TEXT NOT NULL,
    backup       TEXT NOT NULL,
    size         INTEGER NOT NULL,
    sha256       TEXT NOT NULL,
    plain_size   INTEGER NOT NULL,
    plain_sha256 TEXT NOT NULL,
    compressed   INTEGER NOT NULL,
    encrypted    INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (target, remote_name)
);

CREATE TABLE offsite_drills (
    target      TEXT PRIMARY KEY,
    ok          INTEGER NOT NULL,
    remote_name TEXT,
    message     TEXT NOT NULL,
    detail      TEXT,
    finished_at INTEGER NOT NULL
);
