"""Deleting a large backup in steps (`file_removal`): only while nobody has it open, never a hard
link, nothing listed after a crash, and a process that opens it meanwhile is not a fatal signal."""
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from mission_control.backup import removal as file_removal
from mission_control.backup.service import TEMP_PREFIX

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux leases")

STEP = 1 << 20


@pytest.fixture
def small_steps(monkeypatch):
    monkeypatch.setattr(file_removal, "SHRINK_STEP", STEP)
    truncations = []
    real = os.ftruncate

    def recording(fd, size):
        truncations.append(size)
        real(fd, size)
    monkeypatch.setattr(os, "ftruncate", recording)
    return truncations


def _backup_file(mc, name, size=5 * STEP):
    mc.backups.ensure_dir()
    path = mc.backups.dir / name
    path.write_bytes(os.urandom(size))
    return path


def _hidden(mc):
    return [n for n in os.listdir(mc.backups.dir) if n.startswith(TEMP_PREFIX)]


def test_a_large_backup_nobody_reads_is_freed_in_steps(mc, admin_client, small_steps):
    _backup_file(mc, "big.db")
    response = admin_client.delete("/api/backup", json={"name": "big.db"})
    assert response.status_code == 200, response.json
    assert small_steps == [4 * STEP, 3 * STEP, 2 * STEP, STEP, 0]
    assert not (mc.backups.dir / "big.db").exists() and _hidden(mc) == []
    event = mc.audit_store.query(action="backup_delete")[0][0]
    assert event["detail"] == {"name": "big.db", "size": 5 * STEP}


def test_a_backup_being_read_is_unlinked_whole_and_the_reader_gets_every_byte(mc, admin_client,
                                                                              small_steps):
    """A download in another process (the CLI, say) keeps its file: no lease, no shrinking."""
    path = _backup_file(mc, "read.db")
    expected = path.read_bytes()
    reader = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            f = open({str(path)!r}, "rb")
            print("open", flush=True)
            sys.stdin.readline()
            sys.stdout.buffer.write(f.read())
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert reader.stdout.readline() == b"open\n"
        assert admin_client.delete("/api/backup", json={"name": "read.db"}).status_code == 200
        assert not path.exists() and _hidden(mc) == []
        out, _ = reader.communicate(b"\n", timeout=30)
    finally:
        reader.kill()
    assert small_steps == [] and out == expected


def test_a_backup_open_in_this_process_is_not_shrunk_either(mc, small_steps):
    path = _backup_file(mc, "mine.db")
    expected = path.read_bytes()
    with open(path, "rb") as held:
        assert mc.backups.remove_file(path) == 5 * STEP
        assert held.read() == expected
    assert small_steps == []


def test_a_hard_link_to_the_live_database_is_never_opened_when_pruned(mc, small_steps,
                                                                    monkeypatch):
    """Planted under a rotating name, it is pruned like any old backup: its name goes, the live
    database (the same file) is untouched."""
    monkeypatch.setattr(file_removal, "SHRINK_STEP", 1024)  # the live database is large enough
    mc.settings.update({"general.backup_retention_count": "1"}, actor="t")
    mc.backups.ensure_dir()
    planted = mc.backups.dir / "mc-backup-2000-01-01_00-00-00.db"
    os.link(mc.config.db_path, planted)
    opened, real_open = [], os.open

    def recording_open(path, *args, **kwargs):
        opened.append(os.path.basename(path))
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(os, "open", recording_open)
    made = mc.backups.create("t")
    assert [b.name for b in mc.backups.list()] == [made.name]
    assert small_steps == []
    assert not [n for n in opened if n == planted.name or n.startswith(f"{TEMP_PREFIX}delete")]
    assert mc.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert os.stat(mc.config.db_path).st_nlink == 1


def test_someone_opening_it_meanwhile_stops_the_shrinking_and_is_not_fatal(mc, monkeypatch):
    """The lease break is signalled with an ignored signal (SIGIO's default would end the
    server); the shrinking stops at once and the opener goes on."""
    monkeypatch.setattr(file_removal, "SHRINK_STEP", STEP)
    monkeypatch.setattr(file_removal, "SHRINK_PAUSE", 0.3)  # 5 steps: 1.5 s
    path = _backup_file(mc, "slow.db")
    done = []
    thread = threading.Thread(target=lambda: done.append(mc.backups.remove_file(path)))
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not _hidden(mc) and time.monotonic() < deadline:
            time.sleep(0.01)
        [hidden] = _hidden(mc)
        time.sleep(0.35)  # one step done
        started = time.monotonic()
        opener = subprocess.run([sys.executable, "-c", f"open({str(mc.backups.dir / hidden)!r},"
                                 " 'rb').close()"], timeout=30, check=False)
        assert opener.returncode == 0 and time.monotonic() - started < 5
    finally:
        thread.join(30)
    assert done == [5 * STEP] and _hidden(mc) == []
    assert signal.getsignal(signal.SIGURG) == signal.SIG_DFL


def test_a_crash_while_shrinking_leaves_nothing_listed_and_start_up_removes_it(make_mc, mc):
    mc.backups.ensure_dir()
    path = _backup_file(mc, "mc-backup-2000-01-01_00-00-00.db")
    script = textwrap.dedent(f"""
        from mission_control.backup import removal as file_removal
        from mission_control import MissionControl
        file_removal.SHRINK_STEP = {STEP}
        file_removal.SHRINK_PAUSE = 30
        mc = MissionControl.open({str(mc.config.data_dir)!r})
        print("removing", flush=True)
        mc.backups.remove_file(mc.backups.dir / {path.name!r})
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"removing\n"
        deadline = time.monotonic() + 10
        while not _hidden(mc) and time.monotonic() < deadline:
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        child.kill()
    assert mc.backups.list() == [] and len(_hidden(mc)) == 1
    mc.close()
    again = make_mc()
    assert _hidden(again) == [] and again.backups.list() == []


def test_small_files_are_unlinked_at_once(mc, small_steps):
    path = _backup_file(mc, "small.db", size=STEP)
    assert mc.backups.remove_file(path) == STEP
    assert small_steps == [] and not path.exists()


def test_the_live_database_is_still_fine_after_a_prune_of_large_backups(mc, clock, small_steps):
    """Retention with real backups: each prune of a backup over two steps frees it in steps."""
    with mc.db.transaction() as conn:
        conn.executemany("INSERT INTO tasks (title, created_at, updated_at) VALUES (?, 0, 0)",
                         [("x" * 2000,)] * 2000)
    mc.settings.update({"general.backup_retention_count": "1"}, actor="t")
    first = mc.backups.create("t")
    assert first.size > 2 * STEP
    clock.advance(5)
    second = mc.backups.create("t")
    assert [b.name for b in mc.backups.list()] == [second.name]
    assert small_steps and small_steps[-1] == 0
    check = sqlite3.connect(second.path)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    check.close()


def test_a_file_swapped_in_after_the_rename_is_never_opened_for_writing(mc, small_steps,
                                                                       monkeypatch):
    """Whatever stands at the hidden name when it is opened must be the file renamed there; a
    hard link to the live database put there meanwhile is only looked at (`O_PATH`) and its name
    removed."""
    path = _backup_file(mc, "swap.db")
    real_rename, opened, real_open = os.rename, [], os.open

    def rename_then_swap(src, dst):
        real_rename(src, dst)
        os.unlink(dst)
        os.link(mc.config.db_path, dst)

    def recording_open(target, flags, *args, **kwargs):
        opened.append((os.path.basename(target), flags))
        return real_open(target, flags, *args, **kwargs)
    monkeypatch.setattr(os, "rename", rename_then_swap)
    monkeypatch.setattr(os, "open", recording_open)
    before = mc.config.db_path.stat().st_size
    mc.backups.remove_file(path)
    assert small_steps == []
    writes = [name for name, flags in opened if flags & (os.O_WRONLY | os.O_RDWR)]
    assert writes == [] and any(flags & os.O_PATH for _, flags in opened)
    assert mc.config.db_path.stat().st_size == before
    assert os.stat(mc.config.db_path).st_nlink == 1
    assert mc.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
