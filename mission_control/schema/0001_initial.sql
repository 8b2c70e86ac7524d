-- Version 1: accounts, sessions, settings, the audit trail, scheduler state and the
-- Mission Control domain tables that every backup captures.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE user_sessions (
    id          INTEGER PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    ip_address  TEXT,
    user_agent  TEXT
);
CREATE INDEX user_sessions_user ON user_sessions(user_id);
CREATE INDEX user_sessions_expiry ON user_sessions(expires_at);

CREATE TABLE settings (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_by  TEXT,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    action      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    actor_id    INTEGER,
    target_type TEXT,
    target_id   TEXT,
    detail      TEXT,
    ip_address  TEXT,
    user_agent  TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX audit_log_created ON audit_log(created_at);
CREATE INDEX audit_log_action ON audit_log(action, created_at);
CREATE INDEX audit_log_actor ON audit_log(actor, created_at);

CREATE TABLE scheduler_state (
    task_id      TEXT PRIMARY KEY,
    last_run     INTEGER,
    last_ok      INTEGER,
    last_message TEXT,
    last_slot    TEXT,
    updated_at   INTEGER NOT NULL
);

CREATE TABLE agents (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    role        TEXT,
    status      TEXT NOT NULL DEFAULT 'offline',
    last_seen   INTEGER,
    config      TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE tasks (
    id           INTEGER PRIMARY KEY,
    title        TEXT NOT NULL,
    description  TEXT,
    status       TEXT NOT NULL DEFAULT 'inbox',
    priority     TEXT NOT NULL DEFAULT 'medium',
    assigned_to  TEXT,
    created_by   TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX tasks_status ON tasks(status);

CREATE TABLE activities (
    id           INTEGER PRIMARY KEY,
    type         TEXT NOT NULL,
    entity_type  TEXT NOT NULL,
    entity_id    INTEGER,
    actor        TEXT NOT NULL,
    description  TEXT NOT NULL,
    data         TEXT,
    created_at   INTEGER NOT NULL
);
CREATE INDEX activities_created ON activities(created_at);
