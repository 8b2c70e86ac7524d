"""Files only the service's own user may read: the data folder 0700, the database and copies 0600.

The live database holds every password hash and the off-site credentials, so no file or folder
the service makes is readable by other local users, whatever the umask it was started with.
"""
import logging
import os
import stat
from contextlib import contextmanager

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
