"""The backup service itself: naming, concurrency, consistency, pruning, crash leftovers, disk full."""
import fcntl
import os
import sqlite3
import struct
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from mission_control.backup.service import LOCK_NAME
from mission_control.backup.service import PATTERN
from mission_control.errors import Conflict

from tests.support.helpers import add_tasks, touch


def test_a_name_is_never_reused_in_the_same_second(mc):
    first = mc.backups.create("t")
    second = mc.backups.create("t")
    assert first.name == "mc-backup-2026-11-18_11-06-40.db"
    assert second.name == "mc-backup-2026-11-18_11-06-41.db"


def test_an_existing_file_is_never_overwritten(mc):
    squatter = mc.backups.dir / "mc-backup-2026-11-18_11-06-40.db"
    squatter.write_bytes(b"an admin's own file")
    made = mc.backups.create("t")
    assert made.name == "mc-backup-2026-11-18_11-06-41.db"
    assert squatter.read_bytes() == b"an admin's own file"


def test_simultaneous_creates_never_write_the_same_file(mc):
    add_tasks(mc, 500)
    results, errors = [], []

    def run():
        try:
            results.append(mc.backups.create("t").name)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(results)) == 6
    assert sorted(b.name for b in mc.backups.list()) == sorted(results)


def test_one_backup_at_a_time_across_processes(make_mc):
    """A second process holding the lock makes this one wait, then give up with 409."""
    mc = make_mc(backup_lock_timeout=0.3)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import fcntl, os, sys, time
            fd = os.open({str(mc.backups.dir / LOCK_NAME)!r}, os.O_RDWR | os.O_CREAT)
            fcntl.flock(fd, fcntl.LOCK_EX)
            print("locked", flush=True)
            sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(Conflict):
            mc.backups.create("t")
        assert time.monotonic() - started >= 0.3
    finally:
        holder.stdin.close()
        holder.wait(5)
    assert mc.backups.create("t").name  # the lock died with its holder


def test_snapshot_is_consistent_while_another_connection_commits(mc, clock):
    """Each transaction moves money between two accounts; every snapshot must balance."""
    with mc.db.transaction() as conn:
        conn.executemany("INSERT INTO agents (name, role, created_at, updated_at) VALUES (?, ?, 0, 0)",
                         [("a", "1000"), ("b", "1000")])
        conn.executemany("INSERT INTO tasks (title, created_at, updated_at) VALUES (?, 0, 0)",
                         [("padding" * 100,)] * 3000)
    stop = threading.Event()
    commits = []

    def writer():
        conn = sqlite3.connect(mc.config.db_path, isolation_level=None, timeout=10)
        i = 0
        while not stop.is_set():
            i += 1
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE agents SET role = CAST(role AS INTEGER) - 1 WHERE name = 'a'")
            conn.execute("INSERT INTO activities (type, entity_type, actor, description, created_at)"
                         " VALUES ('t', 'x', 'w', ?, 0)", (str(i),))
            conn.execute("UPDATE agents SET role = CAST(role AS INTEGER) + 1 WHERE name = 'b'")
            conn.execute("COMMIT")
            commits.append(i)
            time.sleep(0.001)
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        names = []
        for _ in range(5):
            names.append(mc.backups.create("t").name)
            clock.advance(1)
    finally:
        stop.set()
        thread.join()
    assert len(commits) > 5
    for name in names:
        snap = sqlite3.connect(mc.backups.dir / name)
        total = sum(int(r[0]) for r in snap.execute("SELECT role FROM agents"))
        moved = 1000 - int(snap.execute("SELECT role FROM agents WHERE name='a'").fetchone()[0])
        logged = snap.execute("SELECT COUNT(*) FROM activities").fetchone()[0]
        assert snap.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        snap.close()
        assert total == 2000 and moved == logged


def test_pruning_keeps_the_newest_pattern_files_only(mc, clock):
    mc.settings.update({"general.backup_retention_count": "3"}, actor="t")
    folder = mc.backups.dir
    for i in range(5):
        touch(folder / f"mc-backup-2026-01-0{i + 1}_03-00-00.db", 1000 + i)
    touch(folder / "keep-forever.db", 10)
    touch(folder / "mc-backup-latest.db", 5)  # not the exact pattern: never pruned
    made = mc.backups.create("t")
    names = {b.name for b in mc.backups.list()}
    assert names == {made.name, "mc-backup-2026-01-05_03-00-00.db",
                     "mc-backup-2026-01-04_03-00-00.db", "keep-forever.db", "mc-backup-latest.db"}
    pruned = [e["target_id"] for e in mc.audit_store.query(action="backup_prune")[0]]
    assert sorted(pruned) == ["mc-backup-2026-01-01_03-00-00.db", "mc-backup-2026-01-02_03-00-00.db",
                              "mc-backup-2026-01-03_03-00-00.db"]


def test_the_backup_just_made_is_never_pruned(mc, clock):
    """Even when other backups look newer (mtimes in the future), the new one survives."""
    mc.settings.update({"general.backup_retention_count": "1"}, actor="t")
    future = clock() + 10 * 86400
    touch(mc.backups.dir / "mc-backup-2030-01-01_03-00-00.db", future)
    made = mc.backups.create("t")
    assert made.name in {b.name for b in mc.backups.list()}
    assert all(PATTERN.match(b.name) for b in mc.backups.list())


def test_leftovers_of_a_crash_are_removed_at_start(make_mc, mc):
    leftover = mc.backups.dir / ".mc-backup-999-deadbeef.tmp"
    leftover.write_bytes(b"half a backup")
    unrelated = mc.backups.dir / "mine.db"
    unrelated.write_bytes(b"x")
    mc.close()
    make_mc()
    assert not leftover.exists() and unrelated.exists()


def test_leftovers_are_kept_while_another_process_is_backing_up(make_mc, mc):
    from mission_control.files import FileLock
    running = mc.backups.dir / ".mc-backup-999-feedface.tmp"
    running.write_bytes(b"in progress")
    with FileLock(mc.backups.dir / LOCK_NAME).hold(0):
        assert mc.backups.remove_leftovers() == 0
    assert running.exists()
    assert mc.backups.remove_leftovers() == 1


def test_disk_full_fails_cleanly_and_the_next_backup_works(mc):
    """A real write failure: the child process may not write files larger than 256 KiB."""
    add_tasks(mc, 4000, prefix="y" * 100)  # makes the database ~600 KiB
    older = mc.backups.create("t")
    mc.close()
    script = textwrap.dedent(f"""
        import json, resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        from mission_control import MissionControl, MissionControlError
        mc = MissionControl.open({str(mc.config.data_dir)!r})
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))
        try:
            mc.backups.create("child")
        except MissionControlError as exc:
            print(json.dumps([exc.status, exc.message, exc.reason]))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    status, message, reason = __import__("json").loads(out.stdout.strip().splitlines()[-1])
    assert (status, message) == (500, "Backup failed")
    assert "too large" in reason.lower() or "full" in reason.lower() or "disk" in reason.lower()
    files = sorted(os.listdir(mc.backups.dir))
    assert files == sorted([LOCK_NAME, older.name])
    from mission_control import MissionControl
    with MissionControl(mc.config, clock=mc.clock, entry_points=False) as again:
        again.clock.advance(5)
        newer = again.backups.create("t")
        check = sqlite3.connect(newer.path)
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        check.close()
        assert again.audit_store.query(action="backup_failed")[1] == 1


def test_a_backup_that_cannot_be_pruned_does_not_fail_the_new_one(mc):
    """An immutable old backup cannot be unlinked: pruning reports it and moves on."""
    mc.settings.update({"general.backup_retention_count": "1"}, actor="t")
    stuck = mc.backups.dir / "mc-backup-2000-01-01_00-00-00.db"
    stuck.write_bytes(b"x")
    os.utime(stuck, (1, 1))
    fd = os.open(stuck, os.O_RDONLY)
    try:  # chattr +i makes the file immune to unlink, even for root (needs ext4/xfs and root)
        fcntl.ioctl(fd, 0x40086602, struct.pack("l", 0x10))
    except OSError:
        os.close(fd)
        pytest.skip("cannot make a file immutable here")
    try:
        newer = mc.backups.create("t")
        assert newer.path.exists() and stuck.exists()
        failed = mc.audit_store.query(action="backup_prune_failed")[0]
        assert [e["target_id"] for e in failed] == [stuck.name]
    finally:
        fcntl.ioctl(fd, 0x40086602, struct.pack("l", 0))
        os.close(fd)
