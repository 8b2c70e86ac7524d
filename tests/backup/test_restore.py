"""Restoring the live database from a backup while the service runs."""
import errno
import os
import re
import sqlite3
import threading

import pytest

from mission_control import hookimpl
from mission_control.backup import restore as restore_module

from tests.support.accounts import PASSWORD
from tests.support.backup_files import add_tasks, flip_page, old_schema_db, titles

#: In the slow lane (restores of real databases over real servers: ~5 s on the 2-core machine).
pytestmark = pytest.mark.slow


def _state(conn):
    conn.execute("BEGIN")
    try:
        return (conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0],
                conn.execute("SELECT COUNT(*) FROM tasks WHERE title LIKE 'later%'").fetchone()[0],
                conn.execute("SELECT COUNT(*) FROM agents").fetchone()[0])
    finally:
        conn.execute("COMMIT")


def _add_agent(mc, name):
    with mc.db.transaction() as conn:
        conn.execute("INSERT INTO agents (name, created_at, updated_at) VALUES (?, 0, 0)", (name,))


def test_round_trip_with_readers_throughout(mc, users, admin_client):
    add_tasks(mc, *[f"first-{i} " + "x" * 400 for i in range(300)])
    _add_agent(mc, "first-agent")
    name = admin_client.post("/api/backup").json["backup"]["name"]
    add_tasks(mc, *[f"later-{i} " + "y" * 400 for i in range(300)])
    _add_agent(mc, "later-agent")
    before, after = (600, 300, 2), (300, 0, 1)

    done, seen, started = threading.Event(), {}, threading.Barrier(4)

    def reader(idx):
        conn = mc.db.conn()  # each thread's own connection, as the service's threads have
        states = seen[idx] = []
        started.wait()
        while not done.is_set():
            states.append(_state(conn))
        states.append(_state(conn))

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    started.wait()
    page_size = mc.db.execute("PRAGMA page_size").fetchone()[0]
    response = admin_client.post("/api/backup/restore", json={"name": name})
    done.set()
    for t in threads:
        t.join(10)

    assert response.status_code == 200, response.json
    body = response.json
    assert body["success"] is True and body["restored"]["name"] == name
    assert re.fullmatch(r"pre-restore-\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d\.db",
                        body["safety_backup"]["name"])
    assert body["session"]["logged_in"] is True  # alice's session is in the backup
    assert all(t.startswith("first-") for t in titles(mc)) and len(titles(mc)) == 300
    for states in seen.values():
        assert before in states  # the readers were reading while the restore ran
        assert set(states) <= {before, after}, "a reader saw a mix of old and new data"
        assert states[-1] == after  # the per-thread connections see the restored data
        assert after not in states or before not in states[states.index(after):]
    fresh = sqlite3.connect(mc.config.db_path)
    assert fresh.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert fresh.execute("PRAGMA page_size").fetchone()[0] == page_size
    assert fresh.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    fresh.close()
    # The safety backup holds what was live, and it can be restored in turn.
    again = admin_client.post("/api/backup/restore", json={"name": body["safety_backup"]["name"]})
    assert again.status_code == 200, again.json
    assert len(titles(mc)) == 600


def test_safety_backup_is_listed_and_never_pruned(mc, users, admin_client):
    name = admin_client.post("/api/backup").json["backup"]["name"]
    safety = admin_client.post("/api/backup/restore", json={"name": name}).json["safety_backup"]
    mc.settings.update({"general.backup_retention_count": "1"}, "test")
    for _ in range(3):
        mc.clock.advance(1)
        mc.backups.create("test")
    listed = [b["name"] for b in admin_client.get("/api/backup").json["backups"]]
    assert safety["name"] in listed
    assert len([n for n in listed if n.startswith("mc-backup-")]) == 1


def test_audit_trail_keeps_events_since_the_backup_and_records_the_restore(mc, users,
                                                                           admin_client, clock):
    name = admin_client.post("/api/backup").json["backup"]["name"]
    clock.advance(10)
    mc.settings.update({"general.site_name": "Changed"}, "alice")
    assert admin_client.post("/api/backup/restore", json={"name": name}).status_code == 200
    assert mc.settings.get("general.site_name") == "Mission Control"  # data rolled back
    actions = [e["action"] for e in admin_client.get("/api/audit?limit=50").json["events"]]
    assert actions[0] == "backup_restore"
    assert "settings_update" in actions and "backup_verify" in actions
    assert actions.count("backup_create") == 1  # carried over once, not duplicated


def test_sessions_come_from_the_backup(mc, users, client, auth):
    # The backup is taken before alice logs in: the restored sessions table does not know her.
    name = mc.backups.create("test").name
    auth.login()
    response = client.post("/api/backup/restore", json={"name": name})
    assert response.status_code == 200
    session = response.json["session"]
    assert session["logged_in"] is False and session["admins"] == ["alice"]
    assert "Log in again" in session["message"]
    assert client.get("/api/auth/me").status_code == 401
    assert auth.login("alice", PASSWORD).status_code == 200


def test_api_key_is_not_affected(make_mc, tmp_path):
    from werkzeug.test import Client
    from mission_control.web import WebApp
    mc = make_mc(api_key="k" * 32)
    name = mc.backups.create("test").name
    client = Client(WebApp(mc))
    response = client.post("/api/backup/restore", json={"name": name},
                           headers={"x-api-key": "k" * 32})
    assert response.status_code == 200
    assert response.json["session"]["logged_in"] is True


def _listing(mc):
    return sorted(os.listdir(mc.backups.dir))


def test_corrupt_backup_is_refused_and_nothing_changes(mc, users, admin_client):
    add_tasks(mc, *[f"first-{i} " + "x" * 200 for i in range(100)])
    name = mc.backups.create("test").name
    add_tasks(mc, "later")
    flip_page(mc.backups.dir / name)
    files = _listing(mc)
    response = admin_client.post("/api/backup/restore", json={"name": name})
    assert response.status_code == 400
    assert response.json["error"] == "Backup failed verification"
    assert "integrity check failed" in response.json["details"][0]
    assert titles(mc)[-1] == "later" and _listing(mc) == files  # no safety backup either


def test_older_schema_is_migrated_during_restore(mc, users, admin_client):
    old_schema_db(mc.backups.dir / "old.db", "from-v1")
    response = admin_client.post("/api/backup/restore", json={"name": "old.db"})
    assert response.status_code == 200, response.json
    restored = response.json["restored"]
    newest = mc.db.execute("PRAGMA user_version").fetchone()[0]
    assert restored["schema_version"] == 1 and restored["migrated_to"] == newest > 1
    assert titles(mc) == ["from-v1"]
    # Tables of later versions exist at once, for every connection.
    assert mc.db.query("SELECT COUNT(*) AS n FROM backup_verifications")[0]["n"] >= 1


def test_other_page_size_is_converted(mc, users, admin_client):
    old_schema_db(mc.backups.dir / "small-pages.db", "tiny", page_size=1024)
    response = admin_client.post("/api/backup/restore", json={"name": "small-pages.db"})
    assert response.status_code == 200, response.json
    assert titles(mc) == ["tiny"]
    fresh = sqlite3.connect(mc.config.db_path)
    assert fresh.execute("PRAGMA page_size").fetchone()[0] == 4096
    assert fresh.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    fresh.close()


def test_newer_schema_is_refused(mc, users, admin_client):
    old_schema_db(mc.backups.dir / "future.db", "x", user_version=999)
    response = admin_client.post("/api/backup/restore", json={"name": "future.db"})
    assert response.status_code == 400
    assert any("newer" in d for d in response.json["details"])


@pytest.mark.parametrize("body, status", [
    ({"name": "missing.db"}, 404),
    ({"name": "../x.db"}, 400),
    ({"name": "x.db", "extra": 1}, 400),
    ([], 400),
])
def test_bad_requests(admin_client, body, status):
    assert admin_client.post("/api/backup/restore", json=body).status_code == status


def test_needs_admin(mc, client, auth):
    name = mc.backups.create("test").name
    auth.login("olga")
    assert client.post("/api/backup/restore", json={"name": name}).status_code == 403


def test_409_while_a_backup_holds_the_lock(mc, users, admin_client):
    name = mc.backups.create("test").name
    with mc.backups.lock.hold(0) as locked:
        assert locked
        response = admin_client.post("/api/backup/restore", json={"name": name})
    assert response.status_code == 409 and response.headers["Retry-After"]
    assert response.json["error"] == "A backup or restore is already in progress"


class Pause:
    """Holds a running backup or restore at a hook until the test lets it go."""

    def __init__(self, action):
        self.action, self.reached, self.go = action, threading.Event(), threading.Event()

    @hookimpl
    def pre_backup(self, mc, actor):
        if self.action == "pre_backup" and actor.name == "paused":
            self.reached.set()
            self.go.wait(10)

    @hookimpl
    def audit(self, mc, event):
        if event["action"] == self.action:
            self.reached.set()
            self.go.wait(10)


@pytest.mark.parametrize("action", ["backup_verify", "pre_backup"])
def test_backup_and_restore_exclude_each_other(make_mc, action):
    """`backup_verify`: a restore is running, a backup gets 409; `pre_backup`: the reverse."""
    from werkzeug.test import Client
    from mission_control.web import WebApp

    pause = Pause(action)
    mc = make_mc(plugins=[pause], backup_lock_timeout=0.2)
    mc.users.add("alice", PASSWORD, role="admin")
    name = mc.backups.create("test").name

    def logged_in():
        client = Client(WebApp(mc))
        client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
        return client

    if action == "pre_backup":
        runner = threading.Thread(target=mc.backups.create, args=("paused",))
    else:
        runner = threading.Thread(target=logged_in().post, args=("/api/backup/restore",),
                                  kwargs={"json": {"name": name}})
    runner.start()
    assert pause.reached.wait(10)
    try:
        other = logged_in()
        busy = (other.post("/api/backup") if action == "backup_verify"
                else other.post("/api/backup/restore", json={"name": name}))
        assert busy.status_code == 409, busy.json
    finally:
        pause.go.set()
        runner.join(10)


def test_a_failure_after_verification_changes_nothing(mc, users, admin_client, monkeypatch):
    # The disk fills up while the safety backup is written: after verification and preparation.
    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(restore_module, "snapshot", full)
    name = mc.backups.create("test").name
    add_tasks(mc, "live")
    response = admin_client.post("/api/backup/restore", json={"name": name})
    assert response.status_code == 500 and response.json == {"error": "Restore failed"}
    assert titles(mc) == ["live"]
    assert not [n for n in os.listdir(mc.backups.dir) if n.startswith(".mc-backup-")]
    event = admin_client.get("/api/audit?action=backup_restore_failed").json["events"][0]
    assert event["detail"]["reason"] == "OSError: No space left on device"


def test_events_written_while_the_safety_backup_is_made_are_kept(mc, users, admin_client,
                                                                 monkeypatch):
    real_snapshot = restore_module.snapshot

    def busy_snapshot(*args):  # another request writes to the audit trail meanwhile
        mc.audit.emit("user_login", "olga", detail={"during": "safety backup"})
        return real_snapshot(*args)
    monkeypatch.setattr(restore_module, "snapshot", busy_snapshot)
    name = mc.backups.create("test").name
    assert admin_client.post("/api/backup/restore", json={"name": name}).status_code == 200
    events = mc.audit_store.query(action="user_login", actor="olga")[0]
    assert [e["detail"] for e in events] == [{"during": "safety backup"}]


def test_a_failure_after_the_swap_says_the_data_was_replaced(mc, users, admin_client,
                                                             monkeypatch):
    add_tasks(mc, "old")
    name = mc.backups.create("test").name
    add_tasks(mc, "new")

    def broken():
        raise sqlite3.OperationalError("disk I/O error")
    monkeypatch.setattr(mc.users, "list", broken)  # read while answering, after the swap
    response = admin_client.post("/api/backup/restore", json={"name": name})
    assert response.status_code == 500
    assert response.json["error"] == ("Restored: the live data was replaced, but a step after "
                                      "the swap failed")
    assert response.json["details"][0] == "sqlite: disk I/O error"
    assert "pre-restore-" in response.json["details"][1]
    assert titles(mc) == ["old"]
    assert [e["action"] for e in mc.audit_store.query(limit=1)[0]] == ["backup_restore"]
