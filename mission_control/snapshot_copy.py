"""Copying a live WAL-mode database into a new, durable, checked file (one backup's copy)."""
import os
import sqlite3
import threading
import time

from . import db as dbmod
from .linux_io import LinuxIO
from .private_files import PRIVATE_FILE

#: Pages per backup step: 256 KiB at the default page size. Small steps keep the copy's pace
#: (and `backup.io_limit_mb_s`) even, in the same time as larger ones.
STEP_PAGES = 64
#: Copied bytes not yet on the device before the copy waits for the disk. On ext4 (data=ordered)
#: a live commit's fsync waits for what the copy has pending, so less pending is a faster commit.
MAX_UNWRITTEN = 8 * 2**20
#: Longest wait for the disk between two steps: the bound is politeness, never a reason to stall.
MAX_WAIT = 1.0
#: Read through a memory map (no read call and no copy per page). SQLite caps it at its own
#: compile-time maximum (2 GiB in common builds); past that it reads the rest with read calls.
MMAP_SIZE = 1 << 40


def copy_database(source, target, *, io_limit=0):
    """Snapshot `source` into the new file `target` with SQLite's online backup API; make it
    durable and check it with `PRAGMA quick_check`.

    The steps share one read transaction on the WAL-mode source, so writers carry on and the copy
    never restarts. The copy is switched to rollback-journal mode (one self-contained file). A
    thread hands it to the disk while it is written, at idle I/O priority, and makes it durable
    while the check runs.

    :param io_limit: at most this many bytes per second are copied (0: no limit).
    :raises sqlite3.Error or OSError: on any failure (disk full included); `target` may be left
        behind for the caller to remove.
    """
    fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
    writeback = _Writeback(fd, LinuxIO())
    try:
        os.fchmod(fd, PRIVATE_FILE)  # whatever the umask
        writeback.start()
        try:
            _copy(source, target, io_limit, writeback)
        finally:
            writeback.finish()  # the final fdatasync runs while the check reads the copy
        result = _quick_check(target)
        writeback.join()
        if writeback.error is not None:
            raise writeback.error
    finally:
        writeback.finish()
        writeback.join()
        os.close(fd)  # last: SQLite's connections to the copy are closed by now
    if result != ["ok"]:
        raise sqlite3.DatabaseError(f"quick_check of the copy failed: {'; '.join(result[:3])}")


def _copy(source, target, io_limit, writeback):
    src = dbmod.open_file(source, "rw")  # a missing database is an error, never created empty
    try:
        src.execute(f"PRAGMA busy_timeout={dbmod.BUSY_TIMEOUT_MS}")
        src.execute(f"PRAGMA mmap_size={MMAP_SIZE}")
        dst = sqlite3.connect(str(target), isolation_level=None)
        try:
            dst.execute("PRAGMA journal_mode=OFF")
            dst.execute("PRAGMA synchronous=OFF")
            # The snapshot: a read transaction held across every step, so that no other
            # connection's commit makes the backup start over.
            src.execute("BEGIN")
            src.execute("SELECT count(*) FROM sqlite_master").fetchone()
            page_size = src.execute("PRAGMA page_size").fetchone()[0]
            src.backup(dst, pages=STEP_PAGES, progress=_Pace(page_size, io_limit, writeback))
            src.execute("COMMIT")
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    finally:
        src.close()


def _quick_check(path):
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
