"""`backup.io_limit_mb_s`, the stepped copy and its idle I/O priority: the setting validates, a
limited copy is correct, the priority is the writeback thread's alone."""
import shutil
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from mission_control.backup import snapshot as snapshot_copy
from mission_control.backup.linux_io import LinuxIO

from tests.support.helpers import add_tasks

#: In the slow lane (rate-limited copies in child processes: ~4.5 s on the 2-core machine).
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("value, detail", [
    (-1, "backup.io_limit_mb_s: must be between 0 and 100000"),
    ("100001", "backup.io_limit_mb_s: must be between 0 and 100000"),
    ("fast", "backup.io_limit_mb_s: must be a whole number"),
    (1.5, "backup.io_limit_mb_s: must be a whole number"),
])
def test_a_bad_limit_is_refused_and_the_old_one_kept(admin_client, mc, value, detail):
    assert admin_client.put("/api/settings",
                            json={"settings": {"backup.io_limit_mb_s": "7"}}).status_code == 200
    response = admin_client.put("/api/settings", json={"settings": {"backup.io_limit_mb_s": value}})
    assert response.status_code == 400
    assert response.json == {"error": "Validation failed", "details": [detail]}
    assert mc.settings.get("backup.io_limit_mb_s") == 7


def test_the_limit_defaults_to_none(mc):
    assert mc.settings.get("backup.io_limit_mb_s") == 0


def _moving_writer(db_path, stop, commits):
    """Moves one unit from agent a to agent b and logs it, in one transaction, every 2 ms."""
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=10)
    while not stop.is_set():
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE agents SET role = CAST(role AS INTEGER) - 1 WHERE name = 'a'")
        conn.execute("INSERT INTO activities (type, entity_type, actor, description,"
                     " created_at) VALUES ('t', 'x', 'w', 'move', 0)")
        conn.execute("UPDATE agents SET role = CAST(role AS INTEGER) + 1 WHERE name = 'b'")
        conn.execute("COMMIT")
        commits.append(1)
        time.sleep(0.002)
    conn.close()


def _limited_backup_during_writes(admin_client, mc, hold_old_reader=False):
    """POST /api/backup at 1 MB/s of a ~1.2 MB database while `_moving_writer` runs; returns the
    response, the seconds it took and how many commits landed meanwhile. With
    `hold_old_reader`, another connection keeps a read transaction open from before the writes
    (as a long report or a replication process would), so the WAL cannot all be checkpointed."""
    add_tasks(mc, 4000, prefix="x" * 200)
    with mc.db.transaction() as conn:
        conn.executemany("INSERT INTO agents (name, role, created_at, updated_at)"
                         " VALUES (?, '1000', 0, 0)", [("a",), ("b",)])
    assert admin_client.put("/api/settings",
                            json={"settings": {"backup.io_limit_mb_s": 1}}).status_code == 200
    reader = sqlite3.connect(mc.config.db_path, isolation_level=None)
    if hold_old_reader:
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM tasks").fetchone()
    stop, commits = threading.Event(), []
    thread = threading.Thread(target=_moving_writer, args=(mc.config.db_path, stop, commits))
    thread.start()
    try:
        time.sleep(0.1)  # some commits land in the WAL first
        started = time.monotonic()
        response = admin_client.post("/api/backup")
        elapsed = time.monotonic() - started
        during = len(commits)
    finally:
        stop.set()
        thread.join()
        reader.close()
    assert response.status_code == 200, response.json
    return response, elapsed, during


def _assert_one_moment(mc, name):
    snap = sqlite3.connect(mc.backups.dir / name)
    try:
        assert snap.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert snap.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        roles = dict(snap.execute("SELECT name, CAST(role AS INTEGER) FROM agents"))
        moved = snap.execute("SELECT COUNT(*) FROM activities WHERE description = 'move'")
        assert roles["a"] + roles["b"] == 2000 and 1000 - roles["a"] == moved.fetchone()[0] > 0
        assert snap.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] == 4000
    finally:
        snap.close()


def _copied_by(mc, name):
    events = mc.audit_store.query(action="backup_create")[0]
    return next(e["detail"]["copy"] for e in events if e["target_id"] == name)


def test_a_limited_kernel_copy_is_one_consistent_snapshot_at_the_limit(admin_client, mc):
    """The database file is copied whole (the WAL was checkpointed under our snapshot while no
    writer could commit), at the limit, while the writer carries on."""
    response, elapsed, commits = _limited_backup_during_writes(admin_client, mc)
    name = response.json["backup"]["name"]
    assert _copied_by(mc, name) in ("file", "file+wal")  # +wal: a reader of the app's meanwhile
    size = response.json["backup"]["size"]
    assert size > 10**6 and elapsed >= size / 10**6 * 0.9
    assert commits > 50  # the writer was not held up for the copy
    _assert_one_moment(mc, name)


def test_a_limited_kernel_copy_with_wal_frames_is_one_consistent_snapshot(admin_client, mc):
    """An older reader (a long report, Litestream) keeps the newest frames out of the database
    file: the file is copied, then the WAL's frames the snapshot has and the file lacks are
    written over it, at the limit, while the writer carries on."""
    response, elapsed, commits = _limited_backup_during_writes(admin_client, mc,
                                                               hold_old_reader=True)
    name = response.json["backup"]["name"]
    assert _copied_by(mc, name) == "file+wal"
    assert elapsed >= response.json["backup"]["size"] / 10**6 * 0.9
    assert commits > 50
    _assert_one_moment(mc, name)


def test_a_limited_copy_in_many_steps_is_one_consistent_snapshot(admin_client, mc, monkeypatch):
    """Where no child process can copy (no Python executable to start), SQLite's backup API
    copies in small steps at 1 MB/s: the copy is the database as of one moment, complete, and
    never starts over (the read transaction spans every step; without it SQLite restarts the copy
    after each commit of another connection)."""
    monkeypatch.setattr(snapshot_copy, "STEP_PAGES", 8)
    monkeypatch.setattr(sys, "executable", "/nonexistent/python3")
    remaining = []

    class Recording(snapshot_copy._Pace):
        def __call__(self, status, left, total):
            remaining.append(left)
            super().__call__(status, left, total)
    monkeypatch.setattr(snapshot_copy, "_Pace", Recording)
    response, _, commits = _limited_backup_during_writes(admin_client, mc, hold_old_reader=True)
    name = response.json["backup"]["name"]
    assert _copied_by(mc, name) == "pages"
    assert commits > 10  # the writer really ran during the copy
    assert len(remaining) > 20 and remaining == sorted(remaining, reverse=True)
    _assert_one_moment(mc, name)


@pytest.mark.skipif(not shutil.which("ionice") or sys.platform != "linux", reason="Linux ionice")
def test_idle_io_priority_applies_to_the_calling_thread_only():
    """The writeback thread goes to the idle class; the request thread that started it does not."""
    seen, ready, done = {}, threading.Event(), threading.Event()

    def writeback_like():
        seen["set"] = LinuxIO().idle_io_priority()
        seen["tid"] = threading.get_native_id()
        ready.set()
        done.wait(10)
    thread = threading.Thread(target=writeback_like)
    thread.start()
    try:
        assert ready.wait(10)
        ionice = [subprocess.run(["ionice", "-p", str(tid)], capture_output=True, text=True,
                                 check=True).stdout.strip()
                  for tid in (seen["tid"], threading.get_native_id())]
    finally:
        done.set()
        thread.join()
    assert seen["set"] is True
    assert ionice[0] == "idle" and ionice[1] != "idle"
