"""The kernel copy of the database file (`file_copy` in a child process): taken only when it is
known what the file lacks of the snapshot (nothing, or WAL frames written over it), byte for byte
that snapshot, and never a reason for a lost backup."""
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from mission_control.backup import kernel_copy as file_copy
from mission_control.backup import snapshot as snapshot_copy
from mission_control.backup.linux_io import LinuxIO


def _wal_database(path, rows=2000, checkpointed=True):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")  # frames stay in the WAL unless we checkpoint
    conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, data BLOB)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t (data) VALUES (randomblob(1000))", [()] * rows)
    conn.execute("COMMIT")
    if checkpointed:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return conn


def _rows(path):
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return conn.execute("SELECT count(*), sum(length(data)) FROM t").fetchone()
    finally:
        conn.close()


def test_the_copy_is_the_checkpointed_file_byte_for_byte(tmp_path):
    """Frames still in the WAL are checkpointed under the snapshot first; the copy is then the
    database file itself, marked a rollback-journal database (file format bytes 18-19)."""
    live = tmp_path / "live.db"
    conn = _wal_database(live, checkpointed=False)
    assert os.path.getsize(f"{live}-wal") > 1_000_000  # the rows are only in the WAL
    assert snapshot_copy.copy_database(live, tmp_path / "copy.db") == "file"
    conn.close()  # the last connection checkpoints the rest and removes the WAL
    original, copy = live.read_bytes(), (tmp_path / "copy.db").read_bytes()
    assert original[18:20] == b"\x02\x02" and copy[18:20] == b"\x01\x01"
    assert copy[:18] + copy[20:] == original[:18] + original[20:]
    assert _rows(tmp_path / "copy.db") == (2000, 2_000_000)
    assert oct(os.stat(tmp_path / "copy.db").st_mode & 0o777) == "0o600"


def test_a_rollback_journal_database_is_copied_whole(tmp_path):
    """Outside WAL mode a reader's shared lock keeps writers out of the file: no proof needed."""
    live = tmp_path / "live.db"
    conn = _wal_database(live)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    assert snapshot_copy.copy_database(live, tmp_path / "copy.db") == "file"
    assert (tmp_path / "copy.db").read_bytes() == live.read_bytes()


def test_a_long_write_transaction_elsewhere_delays_the_copy_only_briefly(tmp_path):
    """Writers are paused for the proof when they can be; a write transaction that stays open
    only costs a bounded wait, and what it has not committed is not in the copy (whole file:
    its frames are not committed, so nothing of it is checkpointed)."""
    live = tmp_path / "live.db"
    conn = _wal_database(live)
    writer = sqlite3.connect(live, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.executemany("INSERT INTO t (data) VALUES (randomblob(1000))", [()] * 3000)
    try:
        started = time.monotonic()
        assert snapshot_copy.copy_database(live, tmp_path / "copy.db") == "file"
        assert time.monotonic() - started < snapshot_copy.WRITE_LOCK_WAIT_MS / 1000 + 5
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        conn.close()
    assert _rows(tmp_path / "copy.db") == (2000, 2_000_000)


def test_without_an_interpreter_to_start_the_backup_is_copied_page_by_page(tmp_path, monkeypatch,
                                                                           caplog):
    """An embedded server with no Python to start (or any other failure of the child) loses no
    backup: the page copy takes over, and the log says why, without a host path."""
    live = tmp_path / "live.db"
    _wal_database(live).close()
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    with caplog.at_level(logging.WARNING, logger="mission_control.backup.snapshot"):
        assert snapshot_copy.copy_database(live, tmp_path / "copy.db") == "pages"
    assert _rows(tmp_path / "copy.db") == (2000, 2_000_000)
    [record] = caplog.records
    assert "copying it page by page" in record.getMessage()
    assert str(tmp_path) not in record.getMessage()


def test_a_full_disk_in_the_kernel_copy_fails_the_backup_at_once(tmp_path):
    """The file's space is reserved before anything is copied: a disk that cannot hold the copy
    is a failed backup (no page copy tried after it), and the partial file is the caller's to
    remove. A file size limit stands in for the full disk; the child inherits it."""
    live = tmp_path / "live.db"
    _wal_database(live).close()
    script = textwrap.dedent(f"""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (512 * 1024, 512 * 1024))
        from mission_control.backup import snapshot as snapshot_copy
        called = []
        snapshot_copy._copy_pages = lambda *args: called.append(1)
        try:
            snapshot_copy.copy_database({str(live)!r}, {str(tmp_path / "copy.db")!r})
        except OSError as exc:
            print(exc.errno, exc.strerror, called)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.stdout.split(None, 1)[0] in ("27", "28"), out.stdout + out.stderr  # EFBIG, ENOSPC
    assert out.stdout.strip().endswith("[]")  # the page copy was never tried


def _copying_children(live):
    """Pids of `file_copy` children copying the database file `live`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"kernel_copy.py") for a in argv) and str(live).encode() in argv:
            found.append(int(pid))
    return found


def _wait_for(predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_the_child_stops_when_the_server_is_killed_mid_copy(tmp_path):
    """kill -9 of the server during a slow (1 MB/s) copy: its child notices within a chunk or two
    and exits, rather than writing on for a server that is gone."""
    live = tmp_path / "live.db"
    _wal_database(live, rows=8000).close()  # about 8 MB: 8 s at 1 MB/s
    script = (f"from mission_control.backup import snapshot; snapshot.copy_database("
              f"{str(live)!r}, {str(tmp_path / 'copy.db')!r}, io_limit=10**6)")
    server = subprocess.Popen([sys.executable, "-c", script])
    try:
        assert _wait_for(lambda: _copying_children(live)), "the kernel copy never started"
        time.sleep(0.5)
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        assert _wait_for(lambda: not _copying_children(live), timeout=5)
        assert os.path.getsize(tmp_path / "copy.db") > 0  # it had started writing
    finally:
        server.kill()
        for pid in _copying_children(live):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_a_child_stopped_by_a_signal_fails_the_backup_without_a_page_copy(tmp_path,
                                                                         monkeypatch):
    """`systemctl stop` signals the whole service, the copying child included: the backup fails
    at once rather than starting over page by page while the service is stopping."""
    live = tmp_path / "live.db"
    _wal_database(live, rows=8000).close()
    pages = []
    monkeypatch.setattr(snapshot_copy, "_copy_pages", lambda *args: pages.append(1))
    outcome = []

    def backup():
        try:
            snapshot_copy.copy_database(live, tmp_path / "copy.db", io_limit=10**6)
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            outcome.append(exc)
    thread = threading.Thread(target=backup)
    thread.start()
    try:
        assert _wait_for(lambda: _copying_children(live)), "the kernel copy never started"
        for pid in _copying_children(live):
            os.kill(pid, signal.SIGTERM)
    finally:
        thread.join(30)
    [error] = outcome
    assert isinstance(error, ChildProcessError) and "SIGTERM" in str(error)
    assert pages == []


def test_a_database_file_replaced_meanwhile_is_not_the_one_copied(tmp_path, monkeypatch):
    """The live file renamed over (an operator's `mv`) between the snapshot and the child: the
    child refuses the other file, and the page copy takes the snapshot SQLite has open."""
    live = tmp_path / "live.db"
    _wal_database(live).close()
    other = tmp_path / "other.db"
    conn = _wal_database(other, rows=10)
    conn.close()
    real = snapshot_copy._copy_file

    def replaced_first(source, *args):
        os.rename(other, live)
        return real(source, *args)
    monkeypatch.setattr(snapshot_copy, "_copy_file", replaced_first)
    assert snapshot_copy.copy_database(live, tmp_path / "copy.db") == "pages"
    assert _rows(tmp_path / "copy.db") == (2000, 2_000_000)


def test_writers_wait_for_the_proof_only_briefly(tmp_path):
    """The write lock is held only while the snapshot starts and a checkpoint of the frames of a
    few milliseconds runs: a writer committing every millisecond sees no stall near the copy's
    length."""
    live = tmp_path / "live.db"
    _wal_database(live, rows=20000).close()  # about 20 MB
    stop, latencies = threading.Event(), []

    def write():
        conn = sqlite3.connect(live, isolation_level=None, timeout=10)
        conn.execute("PRAGMA synchronous=NORMAL")
        while not stop.is_set():
            started = time.perf_counter()
            conn.execute("INSERT INTO t (data) VALUES (x'00')")
            latencies.append(time.perf_counter() - started)
            time.sleep(0.001)
        conn.close()
    thread = threading.Thread(target=write)
    thread.start()
    try:
        time.sleep(0.2)
        copied = [snapshot_copy.copy_database(live, tmp_path / f"copy{i}.db") for i in range(3)]
    finally:
        stop.set()
        thread.join()
    assert "file" in copied
    assert len(latencies) > 50 and max(latencies) < 0.5
    for i in range(3):
        count, _ = _rows(tmp_path / f"copy{i}.db")
        assert count >= 20000


def test_where_the_kernel_cannot_copy_between_the_files_it_reads_and_writes(tmp_path, monkeypatch):
    """`sendfile` refused (a source it cannot read that way, ...): the same bytes are copied with
    read and write calls, under the same limit and writeback."""
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(3 * file_copy.CHUNK + 123))
    calls = []

    def refuse(*args):
        calls.append(args)
        raise OSError(22, "Invalid argument")  # EINVAL
    monkeypatch.setattr(os, "sendfile", refuse)
    src = os.open(source, os.O_RDONLY)
    dst = os.open(tmp_path / "copy.bin", os.O_RDWR | os.O_CREAT)
    try:
        file_copy.copy_range(src, dst, 2 * file_copy.CHUNK + 7, LinuxIO())
    finally:
        os.close(src)
        os.close(dst)
    assert len(calls) == 1  # asked once, then read and write
    assert (tmp_path / "copy.bin").read_bytes() == source.read_bytes()[:2 * file_copy.CHUNK + 7]


def _pages(path, page_size=4096):
    data = path.read_bytes()
    pages = [data[i:i + page_size] for i in range(0, len(data), page_size)]
    first = bytearray(pages[0])
    for start, end in ((18, 20), (24, 28), (92, 100)):  # journal mode, change counter, version
        first[start:end] = bytes(end - start)
    return [bytes(first), *pages[1:]]


def test_with_an_older_reader_the_copy_is_the_file_then_the_wal_frames_page_for_page(tmp_path):
    """An older reader keeps the newest frames (several versions of the same pages, a grown and
    a shrunk table) out of the database file: the copy is the file with those frames written over
    it, page for page what SQLite's own backup API makes of the same moment."""
    live = tmp_path / "live.db"
    conn = _wal_database(live)
    old = sqlite3.connect(live, isolation_level=None)
    old.execute("BEGIN")
    old.execute("SELECT count(*) FROM t").fetchone()
    try:
        for round_ in range(4):
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO t (data) VALUES (randomblob(700))", [()] * 300)
            conn.execute("UPDATE t SET data = randomblob(900) WHERE id % 3 = ?", (round_ % 3,))
            conn.execute("DELETE FROM t WHERE id % 11 = ?", (round_,))
            conn.execute("COMMIT")
        assert snapshot_copy.copy_database(live, tmp_path / "copy.db") == "file+wal"
        with closing(sqlite3.connect(tmp_path / "reference.db")) as reference:
            conn.backup(reference)
    finally:
        old.execute("COMMIT")
        old.close()
        conn.close()
    assert _pages(tmp_path / "copy.db") == _pages(tmp_path / "reference.db")
    count, _ = _rows(tmp_path / "copy.db")
    assert count == _rows(tmp_path / "reference.db")[0] > 2000


def test_frames_of_another_generation_are_refused_not_copied(tmp_path):
    """The frames' salts must be the WAL header's: a frame left from before the WAL restarted is
    not part of the snapshot (here: the header's salt changed under it)."""
    live = tmp_path / "live.db"
    conn = _wal_database(live, checkpointed=False)
    data = bytearray(Path(f"{live}-wal").read_bytes())
    conn.close()
    wal = tmp_path / "wal-copy"
    data[16] ^= 0xFF  # salt-1 of the header
    wal.write_bytes(bytes(data))
    src = os.open(wal, os.O_RDONLY)
    dst = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT)
    try:
        with pytest.raises(ValueError, match="frame 1 is not part of this WAL"):
            file_copy.overlay_wal(src, dst, 1, 3, 4096, 10 * 4096)
    finally:
        os.close(src)
        os.close(dst)


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values")
def test_the_check_runs_at_a_lower_cpu_priority_and_leaves_the_callers_alone(tmp_path,
                                                                            monkeypatch):
    live = tmp_path / "live.db"
    _wal_database(live).close()
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen = []
    real = snapshot_copy.quick_check

    def recording(path):
        seen.append((threading.current_thread().name,
                     os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
        return real(path)
    monkeypatch.setattr(snapshot_copy, "quick_check", recording)
    snapshot_copy.copy_database(live, tmp_path / "copy.db")
    assert seen == [("backup-check", min(19, before + snapshot_copy.CHECK_NICENESS))]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before


def test_a_failing_check_fails_the_copy_in_the_callers_thread(tmp_path, monkeypatch):
    live = tmp_path / "live.db"
    _wal_database(live).close()
    monkeypatch.setattr(snapshot_copy, "quick_check", lambda path: ["*** in database main ***"])
    with pytest.raises(sqlite3.DatabaseError, match="quick_check of the copy failed"):
        snapshot_copy.copy_database(live, tmp_path / "copy.db")

    def broken(path):
        raise sqlite3.DatabaseError("file is not a database")
    monkeypatch.setattr(snapshot_copy, "quick_check", broken)
    with pytest.raises(sqlite3.DatabaseError, match="file is not a database"):
        snapshot_copy.copy_database(live, tmp_path / "copy2.db")
