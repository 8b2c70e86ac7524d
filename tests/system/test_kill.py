"""kill -9 of a real server during a restore and during pruning: nothing broken, a clean start."""
import os
import signal
import sqlite3
import threading
import time

import pytest

from tests.support.accounts import PASSWORD
from tests.support.servers import Http, make_big_database, start_server

SLOW_PRUNE = '''"""Test plugin: stops the world just after the first pruned file is deleted."""
import pathlib
import time

from mission_control import hookimpl

MARK = pathlib.Path(__file__).with_name("pruning")


@hookimpl(tryfirst=True)
def audit(mc, event):
    if event["action"] == "backup_prune":
        # Written whole, then renamed: the test reads it as soon as the name exists.
        MARK.with_name("pruning.tmp").write_text(event["target_id"])
        MARK.with_name("pruning.tmp").replace(MARK)
        time.sleep(60)
'''


def login(host):
    http = Http(f"http://{host}")
    assert http("POST", "/api/auth/login", {"username": "alice", "password": PASSWORD})[0] == 200
    return http


def count(path, table):
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


def fire_and_forget(http, method, path, body=None):
    def run():
        try:
            http(method, path, body)
        except OSError:  # the server dies mid-request: that is the point
            pass
    threading.Thread(target=run, daemon=True).start()


def kill(proc):
    proc.kill()
    proc.wait(10)
    proc.stdout.close()
    proc.stderr.close()


def wait_for(predicate, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.005)
    pytest.fail(f"never saw: {what}")


def test_kill_9_during_a_restore_leaves_old_or_new_data_and_a_clean_start(tmp_path):
    data = tmp_path / "data"
    backups = data / "backups"
    proc, host = start_server(data)
    http = login(host)
    make_big_database(data / "mission-control.db", 120)  # blobs: 120 rows of 1 MiB
    status, _, made = http("POST", "/api/backup")
    assert status == 200
    make_big_database(data / "mission-control.db", 1)  # live now has 121 rows
    fire_and_forget(http, "POST", "/api/backup/restore", {"name": made["backup"]["name"]})
    wait_for(lambda: any(p.name.startswith(".mc-backup-restore-") and p.stat().st_size > 0
                         for p in backups.iterdir()), "the restore preparing its copy")
    kill(proc)

    assert count(data / "mission-control.db", "blobs") in (120, 121)
    assert count(backups / made["backup"]["name"], "blobs") == 120
    proc, host = start_server(data)
    try:
        assert [p.name for p in backups.iterdir() if p.name.startswith(".mc-")] == []
        for backup in backups.glob("*.db"):  # every listed file is a complete database
            count(backup, "blobs")
        http = login(host)
        status, _, restored = http("POST", "/api/backup/restore", {"name": made["backup"]["name"]})
        assert status == 200, restored
        assert count(data / "mission-control.db", "blobs") == 120
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
        proc.stdout.close()
        proc.stderr.close()


def test_kill_9_during_pruning_leaves_complete_backups_and_the_next_backup_prunes(tmp_path):
    data, dropins = tmp_path / "data", tmp_path / "dropins"
    dropins.mkdir()
    (dropins / "slow_prune.py").write_text(SLOW_PRUNE)
    backups = data / "backups"
    proc, host = start_server(data, {"MC_PLUGINS_DIR": str(dropins), "MC_BACKUP_RATE_LIMIT": "0"})
    http = login(host)
    assert http("PUT", "/api/settings", {"settings": {"general.backup_retention_count": 2}})[0] == 200
    names = [http("POST", "/api/backup")[2]["backup"]["name"] for _ in range(2)]
    fire_and_forget(http, "POST", "/api/backup")
    wait_for((dropins / "pruning").exists, "the first pruned file")
    kill(proc)

    pruned = (dropins / "pruning").read_text()
    assert pruned == names[0]
    left = sorted(p.name for p in backups.glob("*.db"))
    assert names[0] not in left and names[1] in left and len(left) == 2
    for name in left:
        count(backups / name, "tasks")

    (dropins / "slow_prune.py").unlink()
    proc, host = start_server(data, {"MC_PLUGINS_DIR": str(dropins), "MC_BACKUP_RATE_LIMIT": "0"})
    try:
        assert [p.name for p in backups.iterdir() if p.name.startswith(".mc-")] == []
        http = login(host)
        status, _, made = http("POST", "/api/backup")
        assert status == 200
        after = sorted(p.name for p in backups.glob("*.db"))
        assert len(after) == 2 and made["backup"]["name"] in after  # retention holds again
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
        proc.stdout.close()
        proc.stderr.close()


def swap_children(parent_pid):
    """Pids of `page_swap.py` processes whose parent is `parent_pid`."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = open(f"/proc/{entry.name}/cmdline", "rb").read().split(b"\0")
            ppid = int(open(f"/proc/{entry.name}/stat").read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent_pid and any(arg.endswith(b"page_swap.py") for arg in cmdline):
            found.append(int(entry.name))
    return found


HOLD_LOCK = '''"""Test plugin: before the swap, another process takes the write lock and keeps it."""
import os
import pathlib
import subprocess
import sys

from mission_control import hookimpl

HOLDER = ("import sqlite3, sys, time\\n"
          "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\\n"
          "conn.execute('BEGIN IMMEDIATE')\\n"
          "print('held', flush=True)\\n"
          "time.sleep(60)\\n")


@hookimpl
def restore_pause(mc, actor):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, os.environ["HOLD_DB"]],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    pathlib.Path(__file__).with_name("holder.pid").write_text(str(holder.pid))
'''


def test_kill_9_while_the_page_swap_waits_for_the_write_lock_leaves_the_old_data(tmp_path):
    """The swap's child has compared the pages and waits for the write lock (another process
    holds it); the server is killed: the child dies with it, nothing was written, and the server
    starts clean."""
    data, dropins = tmp_path / "data", tmp_path / "dropins"
    dropins.mkdir()
    (dropins / "hold_lock.py").write_text(HOLD_LOCK)
    db = data / "mission-control.db"
    proc, host = start_server(data, {"MC_PLUGINS_DIR": str(dropins), "HOLD_DB": str(db)})
    http = login(host)
    make_big_database(db, 20)
    status, _, made = http("POST", "/api/backup")
    assert status == 200
    make_big_database(db, 1)  # live now has 21 rows
    fire_and_forget(http, "POST", "/api/backup/restore", {"name": made["backup"]["name"]})
    try:
        wait_for(lambda: swap_children(proc.pid), "the page swap's child")
        [child] = swap_children(proc.pid)  # started with the restore, told to swap later
        wait_for((dropins / "holder.pid").exists, "the write lock taken before the swap")
        time.sleep(0.5)  # the child compares, then waits for the lock (5 s at most)
    finally:
        kill(proc)  # the server never outlives the test
    try:
        wait_for(lambda: not os.path.exists(f"/proc/{child}") or
                 open(f"/proc/{child}/stat").read().rsplit(")", 1)[1].split()[0] == "Z",
                 "the child gone with its parent", timeout=3)  # its busy timeout: 5 s
    finally:
        if (dropins / "holder.pid").exists():
            os.kill(int((dropins / "holder.pid").read_text()), signal.SIGKILL)
    assert count(db, "blobs") == 21
    (dropins / "hold_lock.py").unlink()
    proc, host = start_server(data, {"MC_PLUGINS_DIR": str(dropins)})
    try:
        assert [p.name for p in (data / "backups").iterdir() if p.name.startswith(".mc-")] == []
        status, _, restored = login(host)("POST", "/api/backup/restore",
                                          {"name": made["backup"]["name"]})
        assert status == 200, restored
        assert count(db, "blobs") == 20
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
        proc.stdout.close()
        proc.stderr.close()
