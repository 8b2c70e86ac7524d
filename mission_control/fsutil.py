"""Filesystem helpers for crash-safe files: fsync of files and folders, and a cross-process lock."""
import fcntl
import hashlib
import os
import time
from contextlib import contextmanager


def fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path, chunk=1024 * 1024):
    """Hex SHA-256 of a file, read in chunks (never the whole file in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def remove_files(*paths):
    """Delete each path that exists; a missing one is fine (cleanup after a failure)."""
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def fsync_dir(path):
    """Make renames and unlinks in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def place_without_overwrite(tmp, final):
    """Move `tmp` to `final` atomically, failing with FileExistsError rather than replacing a file.

    A hard link cannot replace an existing name, unlike rename; filesystems without hard links
    fall back to rename after an existence check (the caller holds the backup lock).
    """
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise
    except OSError:
        if os.path.lexists(final):
            raise FileExistsError(final) from None
        os.rename(tmp, final)
        return
    os.unlink(tmp)


def place_at_free_name(tmp, folder, name_format, second):
    """Move `tmp` into `folder` as `strftime(name_format)` of the first free second from `second`.

    A name is taken only if no file has it, so nothing is ever replaced (names like
    `mc-backup-%Y-%m-%d_%H-%M-%S.db` move on a second when this one is taken). Returns the path.
    """
    while True:
        final = folder / time.strftime(name_format, time.gmtime(second))
        try:
            place_without_overwrite(tmp, final)
            return final
        except FileExistsError:
            second += 1


class FileLock:
    """An exclusive `flock` on a file: held across threads and processes alike.

    Each acquisition opens its own descriptor, so two threads of one process exclude each other
    just as two processes do. The lock dies with its process, so a killed server never leaves a
    stale lock behind.
    """

    def __init__(self, path):
        self.path = path

    @contextmanager
    def hold(self, timeout, poll=0.05):
        """Hold the lock for the `with` block; yield False (and hold nothing) after `timeout` s."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(poll)
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
