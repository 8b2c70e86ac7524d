"""Copying a live WAL-mode database into a new, durable, checked file (one backup's copy)."""
import os
import sqlite3
import threading
from urllib.request import pathname2url

from . import db as dbmod
from .fsutil import fsync_file
from .private_files import PRIVATE_FILE


def copy_database(source, target):
    """Snapshot `source` into the new file `target` in one step of SQLite's online backup API.

    One step holds a single read transaction on the WAL-mode source, so writers carry on and the
    copy never restarts. The copy is switched to rollback-journal mode (a single self-contained
    file), fsynced, and checked with `PRAGMA quick_check`.

    :raises sqlite3.Error or OSError: on any failure (disk full included); `target` may be left
        behind for the caller to remove.
    """
    # mode=rw: a missing database is an error, never silently created empty.
    src = sqlite3.connect(f"file:{pathname2url(str(source))}?mode=rw", uri=True,
                          isolation_level=None)
    try:
        src.execute(f"PRAGMA busy_timeout={dbmod.BUSY_TIMEOUT_MS}")
        fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
        flusher = _Flusher(fd)
        try:
            dst = sqlite3.connect(str(target), isolation_level=None)
            try:
                dst.execute("PRAGMA journal_mode=OFF")
                dst.execute("PRAGMA synchronous=OFF")
                flusher.start()
                src.backup(dst, pages=-1)
                dst.execute("PRAGMA journal_mode=DELETE")
            finally:
                flusher.stop()
                dst.close()
        finally:
            os.close(fd)
    finally:
        src.close()
    os.chmod(target, PRIVATE_FILE)
    # The fsync (disk-bound) and the quick_check (CPU-bound, reads the page cache) overlap; both
    # finish before the caller renames the file into place.
    synced = {}
    syncer = threading.Thread(target=_fsync_into, args=(target, synced), daemon=True)
    syncer.start()
    try:
        check = dbmod.connect(target, readonly=True)
        try:
            result = [row[0] for row in check.execute("PRAGMA quick_check").fetchall()]
        finally:
            check.close()
    finally:
        syncer.join()
    if "error" in synced:
        raise synced["error"]
    if result != ["ok"]:
        raise sqlite3.DatabaseError(f"quick_check of the copy failed: {'; '.join(result[:3])}")


def _fsync_into(path, outcome):
    try:
        fsync_file(path)
    except OSError as exc:
        outcome["error"] = exc


class _Flusher(threading.Thread):
    """Flush the copy to disk while SQLite writes it (the backup step runs without the GIL).

    Without it the copy piles up hundreds of MiB of dirty pages and the kernel throttles every
    other writer on the machine (the live database's commits included) while it flushes them.
    """

    INTERVAL = 0.05

    def __init__(self, fd):
        super().__init__(daemon=True, name="backup-flusher")
        self._fd = fd
        self._done = threading.Event()

    def run(self):
        while not self._done.wait(self.INTERVAL):
            try:
                os.fdatasync(self._fd)
            except OSError:
                return  # the final fsync reports any real error

    def stop(self):
        self._done.set()
        if self.is_alive():
            self.join()
