"""Faults while backing up: a full or read-only filesystem, the folder gone, the database locked."""
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager

import pytest
from werkzeug.test import Client

from mission_control.backup import service as backups_module
from mission_control.backup.service import LOCK_NAME
from mission_control.web import WebApp

from tests.support.helpers import add_tasks, touch

KEY = "fault-key-0123456789"


@contextmanager
def mounted_tmpfs(path, size, read_only=False):
    """A real small filesystem at `path` (needs root and mount; the test skips otherwise)."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0700" + (",ro" if read_only else "")
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def integrity(path):
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def listing(mc):
    return sorted(p for p in os.listdir(mc.backups.dir) if p != LOCK_NAME)


def api(mc):
    client = Client(WebApp(mc))
    return lambda method, path, **kw: client.open(path, method=method,
                                                  headers={"x-api-key": KEY}, **kw)


def test_disk_full_on_a_small_filesystem(make_mc, tmp_path):
    """Database and backups on an 8 MiB filesystem, filled up: the second backup cannot fit."""
    with mounted_tmpfs(tmp_path / "small", "8m") as small:
        mc = make_mc(data_dir=small, db_path=small / "mission-control.db", api_key=KEY,
                     backup_rate_limit=0, disabled_plugins=("disk_guard",))
        add_tasks(mc, 9000, prefix="z" * 100)  # about 1.3 MiB
        call = api(mc)
        first = call("POST", "/api/backup")
        assert first.status_code == 200
        older = first.json["backup"]["name"]
        filler = small / "filler"
        free = shutil.disk_usage(small).free
        filler.write_bytes(b"\0" * max(0, free - 512 * 1024))  # leave too little for a copy

        failed = call("POST", "/api/backup")
        assert (failed.status_code, failed.json) == (500, {"error": "Backup failed"})
        assert listing(mc) == [older], "a partial file was left behind"
        assert integrity(mc.backups.dir / older) == "ok"
        assert integrity(mc.config.db_path) == "ok"
        assert mc.db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] == 9000
        reason = mc.audit_store.query(action="backup_failed")[0][0]["detail"]["reason"]
        assert "No space left on device" in reason or "disk is full" in reason

        filler.unlink()  # space is back
        mc.clock.advance(1)
        again = call("POST", "/api/backup")
        assert again.status_code == 200
        assert integrity(mc.backups.dir / again.json["backup"]["name"]) == "ok"
        mc.close()


def test_a_read_only_backups_folder_fails_cleanly(make_mc, tmp_path):
    mc = make_mc(api_key=KEY, disabled_plugins=("disk_guard",))
    with mounted_tmpfs(mc.backups.dir, "1m", read_only=True):
        failed = api(mc)("POST", "/api/backup")
        assert (failed.status_code, failed.json) == (500, {"error": "Backup failed"})
        reason = mc.audit_store.query(action="backup_failed")[0][0]["detail"]["reason"]
        assert "Read-only file system" in reason and "/" not in reason
        assert os.listdir(mc.backups.dir) == []
    assert api(mc)("POST", "/api/backup").status_code == 200  # the folder is writable again


def test_the_backups_folder_deleted_while_running_comes_back(make_mc):
    mc = make_mc(api_key=KEY, backup_rate_limit=0)
    call = api(mc)
    assert call("POST", "/api/backup").status_code == 200
    shutil.rmtree(mc.backups.dir)
    assert call("GET", "/api/backup").json["backups"] == []
    mc.clock.advance(1)
    made = call("POST", "/api/backup")
    assert made.status_code == 200
    assert listing(mc) == [made.json["backup"]["name"]]


def test_a_file_where_the_backups_folder_should_be_is_a_clear_error(make_mc):
    mc = make_mc(api_key=KEY, backup_rate_limit=0)
    call = api(mc)
    shutil.rmtree(mc.backups.dir)
    mc.backups.dir.write_bytes(b"not a folder")
    listed = call("GET", "/api/backup")
    assert listed.status_code == 500
    assert listed.json == {"error": "The backups folder cannot be read: "
                                    "NotADirectoryError: Not a directory"}
    made = call("POST", "/api/backup")
    assert (made.status_code, made.json) == (500, {"error": "Backup failed"})
    assert mc.audit_store.query(action="backup_failed")[1] == 1
    scheduled = call("POST", "/api/scheduler", json={"task_id": "auto_backup"})
    assert scheduled.status_code == 500 and scheduled.json["ok"] is False
    assert call("GET", "/api/backup/status").status_code == 500
    assert mc.backups.dir.read_bytes() == b"not a folder"  # never overwritten or removed
    mc.backups.dir.unlink()
    assert call("POST", "/api/backup").status_code == 200


def hold_write_lock(db_path, seconds):
    """Another process holds a write transaction on the database for `seconds`."""
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sqlite3, time
        conn = sqlite3.connect({str(db_path)!r}, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO tasks (title, status, created_at, updated_at)"
                     " VALUES ('held', 'inbox', 0, 0)")
        print("locked", flush=True)
        time.sleep({seconds})
        conn.execute("COMMIT")
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


@pytest.mark.slow
def test_a_write_lock_shorter_than_the_busy_timeout_only_delays_the_audit(make_mc):
    """WAL: the snapshot reads past the writer; the audit insert waits for it, then lands."""
    mc = make_mc(api_key=KEY)
    add_tasks(mc, 100)
    holder = hold_write_lock(mc.config.db_path, 1.0)
    call = api(mc)
    assert call("GET", "/api/backup").status_code == 200  # readers are never blocked
    made = call("POST", "/api/backup")
    holder.wait(10)
    assert made.status_code == 200
    name = made.json["backup"]["name"]
    assert integrity(mc.backups.dir / name) == "ok"
    conn = sqlite3.connect(mc.backups.dir / name)
    assert conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] == 100  # not the held row
    conn.close()
    assert [e["target_id"] for e in mc.audit_store.query(action="backup_create")[0]] == [name]
    assert mc.db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] == 101


@pytest.mark.slow
def test_a_write_lock_longer_than_the_busy_timeout_keeps_the_backup_and_logs_the_lost_audit(
        make_mc, caplog):
    """The backup is complete and answered 200; the audit sink that could not write says so in
    the log (the contract: a failing audit sink never fails a backup that exists)."""
    mc = make_mc(api_key=KEY)
    # db.BUSY_TIMEOUT_MS is 5 s: the audit insert gives up unless the backup took 3 s to reach
    # it (a wide margin, so a loaded machine cannot let the insert through after the lock goes).
    holder = hold_write_lock(mc.config.db_path, 8)
    with caplog.at_level(logging.ERROR):
        made = api(mc)("POST", "/api/backup")
    holder.wait(15)
    assert made.status_code == 200
    assert integrity(mc.backups.dir / made.json["backup"]["name"]) == "ok"
    assert any("database is locked" in r.getMessage() or "locked" in str(r.exc_info)
               for r in caplog.records), [r.getMessage() for r in caplog.records]
    assert listing(mc) == [made.json["backup"]["name"]]
    assert not [p for p in os.listdir(mc.backups.dir) if p.startswith(".mc-")]
    mc.clock.advance(1)
    assert api(mc)("POST", "/api/backup").status_code == 200


def test_retention_holds_when_older_files_look_newer(make_mc):
    """Names skip ahead when backups share a second, so the new backup can sort below older
    files of the same (or a later) mtime second; it still counts as the newest."""
    mc = make_mc()
    mc.settings.update({"general.backup_retention_count": 2}, actor="t")
    future = int(time.time()) + 60
    for second in (50, 51, 52):
        touch(mc.backups.dir / f"mc-backup-2026-11-18_11-06-{second}.db", future)
    made = mc.backups.create("t")
    kept = listing(mc)
    assert len(kept) == 2 and made.name in kept


def test_a_backup_deleted_right_after_it_is_placed_is_still_a_success(make_mc, monkeypatch):
    """A client that listed an older file of the same name may delete the new one at once: the
    backup was made (and audited), the delete is audited, nothing is reported as failed."""
    mc = make_mc()
    real_fsync_dir = backups_module.fsync_dir

    def racing_delete(path):
        for name in listing(mc):
            mc.backups.delete(name, "stale-client")
        real_fsync_dir(path)

    monkeypatch.setattr(backups_module, "fsync_dir", racing_delete)
    made = mc.backups.create("t")
    assert made.size > 0 and listing(mc) == []
    assert [e["target_id"] for e in mc.audit_store.query(action="backup_create")[0]] == [made.name]
    assert mc.audit_store.query(action="backup_failed")[1] == 0
