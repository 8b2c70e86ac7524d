"""Copying a live database into a new, durable, checked file (one backup's copy)."""
import errno
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from .. import db as dbmod
from . import kernel_copy as file_copy
from ..errors import describe_error
from .linux_io import LinuxIO
from ..files import PRIVATE_FILE

log = logging.getLogger(__name__)

#: Pages per step of SQLite's backup API: 256 KiB at the default page size. Small steps keep the
#: copy's pace (and `backup.io_limit_mb_s`) even, in the same time as larger ones.
STEP_PAGES = 64
MAX_UNWRITTEN = file_copy.MAX_UNWRITTEN
#: Longest wait for the disk between two steps: the bound is politeness, never a reason to stall.
MAX_WAIT = 1.0
#: Read through a memory map (no read call and no copy per page). SQLite caps it at its own
#: compile-time maximum (2 GiB in common builds); past that it reads the rest with read calls.
MMAP_SIZE = 1 << 40
#: How long the proof of what the file holds may wait for the write lock (ms).
WRITE_LOCK_WAIT_MS = 250
#: Tries at that proof, and the pause between two (s). A try fails when another checkpoint is
#: running (a writer's automatic one, quickly over), or when another writer kept the write lock
#: while frames were missing from the file.
PROOF_ATTEMPTS = 3
PROOF_RETRY_WAIT = 0.02
#: The check's CPU priority (nice value; the service runs at 0).
CHECK_NICENESS = 10
#: A failed kernel copy that says the disk is full is a failed backup, not a reason to retry.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
CHILD = Path(file_copy.__file__)
#: SQLite's primary result code for an I/O error (its extended codes add a reason above 8 bits).
SQLITE_IOERR = 10


def copy_database(source, target, *, io_limit=0, disk_errors=None):
    """Snapshot `source` into the new file `target`; make it durable and check it with
    `PRAGMA quick_check`.

    One read transaction on the source is the snapshot: writers carry on (WAL) and the copy never
    restarts. When it is known which of the WAL's frames of that snapshot the database file lacks
    (`_frames_missing`), a child process copies the file inside the kernel and writes those
    frames over it (`file_copy`); otherwise SQLite's online backup API copies it page by page.
    Either way the copy is a rollback-journal database (one self-contained file), handed to the
    disk while it is written at idle I/O priority, and made durable while the check runs.

    :param io_limit: at most this many bytes per second are copied (0: no limit).
    :param disk_errors: a list; an I/O error of the live database's own file while the copy is
        prepared (the checkpoint before it: an EIO from its fsync, say) is logged as an error,
        naming the database, and its reason appended here. The copy is still made, page by page:
        the backup is never more needed than when the disk under the live data is failing.
    :return: ``"file"`` (the kernel copied the file), ``"file+wal"`` (and WAL frames over it) or
        ``"pages"`` (the backup API copied it).
    :raises sqlite3.Error or OSError: on any failure (disk full included); `target` may be left
        behind for the caller to remove.
    """
    fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
    writeback = _Writeback(fd, LinuxIO())
    try:
        os.fchmod(fd, PRIVATE_FILE)  # whatever the umask
        with _snapshot(source, _IOErrors(source, disk_errors)) as (src, plan):
            method = "pages"
            if plan is not None and _copy_file(source, plan, fd, io_limit):
                method = "file+wal" if plan.wal else "file"
            writeback.start()
            if method == "pages":
                _copy_pages(src, target, io_limit, writeback)
        writeback.finish()  # the final fdatasync runs while the check reads the copy
        result = _check_politely(target)
        writeback.join()
        if writeback.error is not None:
            raise writeback.error
    finally:
        writeback.finish()
        writeback.join()
        os.close(fd)  # last: SQLite's connections to the copy are closed by now
    if result != ["ok"]:
        raise sqlite3.DatabaseError(f"quick_check of the copy failed: {'; '.join(result[:3])}")
    return method


@dataclass(frozen=True)
class FilePlan:
    """What the kernel copy copies: the database file's first `length` bytes, which must still be
    the file `identity` (device, inode), then, when `wal` is set, the WAL's frames `first` to
    `last` over them: ``(wal identity, first, last)``."""
    identity: tuple
    length: int
    page_size: int
    wal: tuple | None = None


class _IOErrors:
    """Where the checkpoints before a copy report an I/O error of the live database: logged once
    per backup as an error (with the database's path: the log is the operator's), kept in
    `found` (a list, or None) as a reason without a path."""

    def __init__(self, source, found):
        self.source, self.found, self.seen = source, found, False

    def __call__(self, exc):
        reason = describe_error(exc)
        if not self.seen:
            log.error("I/O error on the live database %s during a backup's checkpoint (%s): the "
                      "disk under it may be failing; copying it page by page", self.source, reason)
            if self.found is not None:
                self.found.append(reason)
        self.seen = True


@contextmanager
def _snapshot(source, io_error):
    """A connection to `source` inside a read transaction, the snapshot every copy is made of, and
    the `FilePlan` that copies exactly that snapshot from the files (None: only a page copy can).

    :param io_error: called with each I/O error a checkpoint of `source` meets."""
    identity = _identity(source)
    src = dbmod.open_file(source, "rw")  # a missing database is an error, never created empty
    try:
        src.execute(f"PRAGMA busy_timeout={dbmod.BUSY_TIMEOUT_MS}")
        src.execute(f"PRAGMA mmap_size={MMAP_SIZE}")
        frames = None  # (first, last): the WAL's frames the file lacks; (): none
        if src.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
            with closing(dbmod.open_file(source, "rw")) as ck:
                for attempt in range(PROOF_ATTEMPTS):
                    if attempt:  # another checkpoint (a writer's automatic one) was running
                        src.execute("COMMIT")
                        time.sleep(PROOF_RETRY_WAIT)
                    _checkpoint(ck, io_error)  # the bulk of the work, before writers wait
                    with _writers_paused(source) as paused:
                        _begin(src)
                        frames = _frames_missing(_checkpoint(ck, io_error), paused)
                    if frames is not None:
                        break
        else:
            _begin(src)  # our shared lock keeps every writer out of the file (and out of WAL)
            if src.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                frames = ()
        plan = None
        if frames is not None and _identity(source) == identity:  # the file src opened
            page_size = src.execute("PRAGMA page_size").fetchone()[0]
            length = src.execute("PRAGMA page_count").fetchone()[0] * page_size
            wal = (_identity(f"{source}-wal"), *frames) if frames else None
            plan = FilePlan(identity, length, page_size, wal) if length else None
        yield src, plan
        src.execute("COMMIT")
    finally:
        src.close()


def _identity(path):
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _begin(src):
    src.execute("BEGIN")
    src.execute("SELECT count(*) FROM sqlite_master").fetchone()


def _checkpoint(ck, io_error):
    """A passive checkpoint (it never waits): ``(frames in the WAL, frames checkpointed into the
    database file)``, or None when it cannot tell (busy, not WAL, an error). An I/O error (the
    checkpoint writes and fsyncs the live database's file) also goes to `io_error`."""
    try:
        busy, frames, checkpointed = ck.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    except sqlite3.Error as exc:  # a read-only folder, ...: prove nothing, copy page by page
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF == SQLITE_IOERR:
            io_error(exc)
        else:
            log.debug("checkpoint before a backup failed: %s", describe_error(exc))
        return None
    return None if busy or frames < 0 else (frames, checkpointed)


def _frames_missing(counts, paused):
    """From a checkpoint run right after our snapshot began: () when the database file holds
    exactly the snapshot, ``(first, last)`` when the file plus the WAL's frames first to last
    (applied in order) do, None when neither can be known.

    The frames the checkpoint counts are at least our snapshot's (it ran after the snapshot
    began); the frames it checkpointed are at most our snapshot's, because a checkpoint never
    copies a frame past the oldest reader's snapshot into the file. Equal, every frame of the
    snapshot is in the file, and the file cannot change while our read transaction lasts: in WAL
    mode only checkpoints write to it. (A reader that began on a fully checkpointed WAL reads the
    file alone, and no checkpoint writes to the file while it lasts.)

    Not equal, but with the write lock held since before the snapshot began (`paused`): nobody
    could commit, so the WAL's last frame is the snapshot's last. The file lacks the frames after
    those checkpointed; checkpoints that run during the copy only write, into the file, versions
    of those same pages (never past our snapshot); and while our read transaction lasts the WAL
    is not restarted, so those frames stay as they are.
    """
    if counts is None:
        return None
    frames, checkpointed = counts
    if frames == checkpointed:
        return ()
    return (checkpointed + 1, frames) if paused else None


@contextmanager
def _writers_paused(source):
    """Hold the database's write lock for the block (yield True), so that no commit lands
    meanwhile; or yield False when another writer kept it for `WRITE_LOCK_WAIT_MS`.

    With no commit between the snapshot and the checkpoint, the WAL holds exactly the snapshot's
    frames (see `_frames_missing`). It is held for one small checkpoint: the bulk ran before.
    """
    with closing(dbmod.open_file(source, "rw")) as lock:
        lock.execute(f"PRAGMA busy_timeout={WRITE_LOCK_WAIT_MS}")
        try:
            lock.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # busy (or read only): the proof may still succeed
            yield False
            return
        try:
            yield True
        finally:
            lock.execute("ROLLBACK")


def _copy_file(source, plan, fd, io_limit):
    """Copy the snapshot that `plan` (a `FilePlan`) describes into `fd` in a child process
    (`file_copy`), and mark the copy a rollback-journal database. Returns False, with `fd`
    emptied, when the child could not copy (the caller copies page by page instead).

    :raises OSError: the disk is full (no second try could succeed).
    :raises ChildProcessError: the child was stopped by a signal (the service is stopping: no
        second try either).
    """
    argv = [sys.executable, "-I", "-S", str(CHILD), os.fspath(source), *map(str, plan.identity),
            str(fd), str(plan.length), str(int(io_limit)), str(os.getpid())]
    if plan.wal:
        (wal_dev, wal_ino), first, last = plan.wal
        argv += [f"{os.fspath(source)}-wal", str(wal_dev), str(wal_ino), str(first), str(last),
                 str(plan.page_size)]
    try:
        child = subprocess.run(argv, pass_fds=(fd,), capture_output=True, text=True, check=False)
    except (OSError, subprocess.SubprocessError) as exc:  # no interpreter to start, ...
        problem = [describe_error(exc)]
    else:
        if child.returncode < 0:
            raise ChildProcessError("the copy was stopped by signal "
                                    f"{signal.Signals(-child.returncode).name}")
        problem = child.stderr.strip().splitlines()[-1:] if child.returncode else []
        if child.returncode and not problem:
            problem = [f"exit status {child.returncode}"]
    if not problem:
        os.pwrite(fd, b"\x01\x01", 18)  # file format write/read versions: 1 = rollback journal
        return True
    code = problem[0].removeprefix("errno ").split(":", 1)[0]
    if code.isdigit() and int(code) in NO_SPACE:
        raise OSError(int(code), os.strerror(int(code)))
    log.warning("the kernel copy of the database failed (%s); copying it page by page",
                problem[0])
    os.ftruncate(fd, 0)
    return False


def _copy_pages(src, target, io_limit, writeback):
    """Copy the snapshot `src` reads into `target` with SQLite's online backup API, in steps of
    `STEP_PAGES` pages paced by `_Pace`."""
    dst = sqlite3.connect(str(target), isolation_level=None)
    try:
        dst.execute("PRAGMA journal_mode=OFF")
        dst.execute("PRAGMA synchronous=OFF")
        page_size = src.execute("PRAGMA page_size").fetchone()[0]
        src.backup(dst, pages=STEP_PAGES, progress=_Pace(page_size, io_limit, writeback))
        dst.execute("PRAGMA journal_mode=DELETE")
    finally:
        dst.close()


def _check_politely(path):
    """`quick_check(path)` in a thread of its own at a lower CPU priority (nice +10, that thread
    only; on Linux a thread's nice value is its own): the check is CPU-bound, and on a small
    machine it would take the CPU from the live database's writers. The thread ends with it, so
    nothing needs to be given back (which an unprivileged process could not do)."""
    outcome = {}

    def run():
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), CHECK_NICENESS)
        except (AttributeError, OSError):  # no such call here: check at the usual priority
            pass
        try:
            outcome["rows"] = quick_check(path)
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            outcome["error"] = exc
    thread = threading.Thread(target=run, name="backup-check")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["rows"]


def quick_check(path):
    """`PRAGMA quick_check` of the finished copy, through a memory map: the pages were just
    written, so they are read from the page cache without a read call or a copy each."""
    conn = dbmod.connect(path, readonly=True)
    try:
        conn.execute(f"PRAGMA mmap_size={MMAP_SIZE}")
        return [row[0] for row in conn.execute("PRAGMA quick_check").fetchall()]
    finally:
        conn.close()


class _Pace:
    """The backup's progress callback: keeps the copy under `io_limit` bytes a second and at most
    `MAX_UNWRITTEN` bytes ahead of the disk."""

    def __init__(self, page_size, io_limit, writeback):
        self._page_size, self._limit, self._writeback = page_size, io_limit, writeback
        self._started = time.monotonic()

    def __call__(self, status, remaining, total):
        copied = (total - remaining) * self._page_size
        self._writeback.wait_until(copied - MAX_UNWRITTEN, MAX_WAIT)
        if self._limit:
            ahead = copied / self._limit - (time.monotonic() - self._started)
            if ahead > 0:
                time.sleep(ahead)


class _Writeback(threading.Thread):
    """Hand the copy to the disk while SQLite writes it (a backup step runs without the GIL).

    Without it the copy piles up hundreds of MiB of dirty pages and the kernel throttles every
    other writer on the machine (the live database's commits included) while it flushes them.
    It starts writeback of each new range at once and waits for the previous one, rather than
    blocking on `fdatasync` of the whole file; it runs at idle I/O priority so that the live
    database's own writes go first.
    """

    INTERVAL = 0.002  # 2 ms: a live fsync then finds at most a few hundred KiB of the copy pending

    def __init__(self, fd, io):
        super().__init__(daemon=True, name="backup-writeback")
        self._fd, self._io = fd, io
        self._final = threading.Event()
        self._progress = threading.Condition()
        self.written = 0  # bytes from the start of the file known to be on the device
        self.error = None

    def run(self):
        self._io.idle_io_priority()
        queued = 0
        try:
            while not self._final.wait(self.INTERVAL):
                end = os.fstat(self._fd).st_size
                if queued > self.written:  # a length of 0 would mean "to the end of the file"
                    if not self._io.wait_writeback(self._fd, self.written,
                                                   queued - self.written):
                        os.fdatasync(self._fd)  # no sync_file_range on this system
                    self._advance(queued)
                if end > queued:
                    self._io.start_writeback(self._fd, queued, end - queued)
                    queued = end
            os.fdatasync(self._fd)
        except OSError as exc:
            self.error = exc
        finally:
            self._advance(float("inf"))  # nobody waits on a finished (or failed) thread

    def _advance(self, written):
        with self._progress:
            self.written = max(self.written, written)
            self._progress.notify_all()

    def wait_until(self, position, timeout):
        """Block until the bytes before `position` are on the device, this thread ended, or
        `timeout` seconds passed."""
        with self._progress:
            self._progress.wait_for(lambda: self.written >= position, timeout)

    def finish(self):
        """Ask for the final `fdatasync`; `join()` waits for it, `error` tells how it went."""
        self._final.set()

    def join(self, timeout=None):
        if self.is_alive():
            super().join(timeout)
