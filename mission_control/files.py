"""Files the service makes: crash-safe writes (fsync of files and folders), a cross-process
lock, and privacy (the data folder 0700, the database and copies 0600).

The live database holds every password hash and the off-site credentials, so no file or folder
the service makes is readable by other local users, whatever the umask it was started with.
"""
import errno
import fcntl
import hashlib
import logging
import os
import shutil
import stat
import threading
import time
from contextlib import contextmanager


def fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def database_size(db_path):
    """Bytes of the database and its write-ahead log (which a snapshot folds in); a file that
    is not there (or vanishes meanwhile, a WAL at a checkpoint) counts 0."""
    total = 0
    for path in (db_path, f"{db_path}-wal"):
        try:
            total += os.stat(path).st_size
        except FileNotFoundError:
            pass
    return total


def sha256_file(path, chunk=1024 * 1024, stop=None):
    """Hex SHA-256 of a file, read in chunks into one reused buffer (never the whole file in
    memory; no new object per chunk). Both the read and the hash let go of the GIL, so another
    thread (an `integrity_check`) runs beside it.

    :param stop: a `threading.Event`; once set, reading stops and None is returned.
    """
    digest = hashlib.sha256()
    buffer = bytearray(chunk)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while stop is None or not stop.is_set():
            n = f.readinto(buffer)
            if not n:
                return digest.hexdigest()
            digest.update(view[:n])
    return None


class Sha256Thread(threading.Thread):
    """`sha256_file(path)` in a thread of its own, so that it runs while the caller reads the
    same file another way (one pass over the disk: the second reader finds it in the page cache).

    `result()` waits and gives the hex digest, or raises what the hashing raised.
    """

    def __init__(self, path):
        super().__init__(name="sha256", daemon=True)
        self.path = path
        self._cancelled = threading.Event()
        self._digest = self._error = None

    def run(self):
        try:
            self._digest = sha256_file(self.path, stop=self._cancelled)
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            self._error = exc

    def cancel(self):
        """Stop reading (the caller gave up) and wait for the thread."""
        self._cancelled.set()
        self.join()

    def result(self):
        self.join()
        if self._error is not None:
            raise self._error
        return self._digest


def copy_private(source, target):
    """Copy the file `source` to the new file `target` (0600, never an existing name) inside the
    kernel (`copy_into`). Returns the bytes copied. The copy is not fsynced.

    :raises OSError: FileExistsError when `target` exists; any other failure (`target` may be
        left behind for the caller to remove).
    """
    with open(source, "rb", buffering=0) as src, \
            open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                         PRIVATE_FILE), "wb", buffering=0) as dst:
        os.fchmod(dst.fileno(), PRIVATE_FILE)  # whatever the umask
        return copy_into(src, dst)


def copy_into(src, dst, chunk=64 * 1024 * 1024):
    """Copy the rest of the open file `src` (from its position) to the open file `dst` (at its
    position; a new, empty file) inside the kernel: `copy_file_range` (no read or write call per
    block, no copy through this process; a filesystem that can clone shares the blocks until
    either file is written), else `sendfile`, else read and write. Returns the bytes copied.

    :raises OSError: the copy failed.
    """
    start, size = src.tell(), os.fstat(src.fileno()).st_size
    at, done = dst.tell(), 0
    for call in (getattr(os, "copy_file_range", None), getattr(os, "sendfile", None)):
        if call is None:
            continue
        try:
            while start + done < size:
                count = min(chunk, size - start - done)
                if call is os.sendfile:  # writes at dst's position
                    n = call(dst.fileno(), src.fileno(), start + done, count)
                else:
                    n = call(src.fileno(), dst.fileno(), count, start + done, at + done)
                if n == 0:
                    break
                done += n
            src.seek(start + done)
            dst.seek(at + done)
            return done
        except OSError as exc:  # not between these files or on this system: the next way
            if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP,
                                 errno.ETXTBSY) or done:
                raise
    shutil.copyfileobj(src, dst, 1024 * 1024)
    return dst.tell() - at


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


log = logging.getLogger(__name__)

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
#: The files SQLite keeps beside a database. It creates them with the database's own mode.
DATABASE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def open_private(path, *, exclusive=True):
    """Open `path` for writing as a file only its owner can read or write (0600).

    :param exclusive: True: the file must not exist yet. False: an existing file is emptied and
        made private; a symlink is never followed.
    :return: a binary file object.
    :raises OSError: FileExistsError when `exclusive` and the name is taken; any other failure.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
    flags |= os.O_EXCL if exclusive else os.O_TRUNC | os.O_NOFOLLOW
    fd = os.open(path, flags, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)  # an existing file keeps its mode otherwise
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


def _process_gone(pid):
    if pid == os.getpid():
        return False  # another thread of this process may be using it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


def sweep_dead_leftovers(folder, prefix, *, folders=False):
    """Remove what a killed process of this user left in `folder`; the names removed.

    For temporary files a scratch lock cannot cover (a folder, a file another program writes),
    named ``<prefix><pid>-…``: removed only when that name matches, the entry is a regular file
    (a real folder when `folders`; never a link), this user owns it and process `pid` is gone.
    Nothing else in `folder` is touched.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        pid = entry.name[len(prefix):].split("-", 1)[0]
        if not entry.name.startswith(prefix) or not pid.isdigit():
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            kind = stat.S_ISDIR(info.st_mode) if folders else stat.S_ISREG(info.st_mode)
            if not kind or info.st_uid != os.geteuid() or not _process_gone(int(pid)):
                continue
            if folders:
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError as exc:
            log.warning("cannot remove the leftover %s: %s", entry.path, exc.strerror)
            continue
        removed.append(entry.name)
    return removed


def tighten(path, mode):
    """Take from `path` every permission bit that `mode` lacks (group and others, for 0600/0700).

    :return: the old mode when it was looser and has been tightened; None when `path` was private
        already or does not exist.
    :raises OSError: the mode could not be read or changed (another user owns it, say).
    """
    try:
        old = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None
    if not old & ~mode:
        return None
    os.chmod(path, old & mode)
    return old


def secure_data_folder(db_path, backups_dir, *, own_database=True):
    """Before the service opens its database: make its folder 0700 when missing, and look at the
    modes of what is already there.

    Only a Mission Control database (`own_database`) and its `-wal`, `-shm` and `-journal` are
    tightened when others may read them (an install from before this check, a copy made with
    `cp`), with a warning for each. An existing folder, data folder or `backups/`, and a file the
    service adopts (`serve --init`, an empty file) may be shared with others: their mode is never
    changed, only warned about, naming the path and its mode.
    """
    folder = db_path.parent
    if not os.path.lexists(folder):
        folder.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    files = [f"{db_path}{suffix}" for suffix in DATABASE_SUFFIXES]
    for path, mode in [(folder, PRIVATE_DIR), (backups_dir, PRIVATE_DIR)]:
        _warn_if_readable(path, mode)
    for path in files:
        if not own_database:
            _warn_if_readable(path, PRIVATE_FILE)
            continue
        try:
            old = tighten(path, PRIVATE_FILE)
        except OSError as exc:
            log.warning("%s can be read by other users and could not be made private: %s",
                        path, os.strerror(exc.errno) if exc.errno else exc)
            continue
        if old is not None:
            log.warning("%s could be read by other users (mode %s); changed to %s", path,
                        oct(old), oct(old & PRIVATE_FILE))


def _warn_if_readable(path, mode):
    try:
        old = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return
    if old & ~mode:
        log.warning("%s can be read by other users (mode %s); left as it is, as Mission Control "
                    "changes the mode only of what it created (`chmod %s %s` makes it private)",
                    path, oct(old), oct(old & mode)[2:], path)


@contextmanager
def private_umask():
    """Create files 0600 and folders 0700 inside the block (a process-wide umask of 077).

    Needed where SQLite creates a new database: it asks for 0644 minus the umask and offers no
    option. Its `-wal`, `-shm` and `-journal` files take the database's mode, now and later.
    """
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)
