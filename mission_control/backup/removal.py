"""Deleting a large backup without stalling the live database's writers: freed in steps."""
import fcntl
import os
import signal
import stat
import time

#: Bytes freed per step, and the pause between two steps. A filesystem frees a deleted file in one
#: journal transaction; for a 2 GiB file that held a live commit up for about 100 ms (ext4).
SHRINK_STEP = 64 << 20
SHRINK_PAUSE = 0.002
#: Notify a lease break with this signal instead of SIGIO, whose default action ends the process.
#: SIGURG is ignored by default and Python installs no handler for it.
_LEASE_SIGNAL = signal.SIGURG


def remove_gently(path, hidden):
    """Delete the file `path` (never following a symlink); return its size.

    A large regular file is first renamed to `hidden` (a name in the same folder that nobody lists
    and that start-up removes, so a crash from here on leaves nothing listed), then shrunk
    `SHRINK_STEP` at a time, then unlinked. It is shrunk only while nobody else has it open: a
    write lease, which Linux grants only when no other descriptor of the file is open, and breaks
    when one is opened. Otherwise, and wherever any of this is unavailable, it is unlinked at once
    and whoever has it open keeps reading all of it. A file with another name (a hard link, which
    could be the live database's) is never opened: closing a descriptor of the live database would
    drop this process's SQLite locks on it.

    :raises FileNotFoundError: no file at `path`.
    :raises OSError: it could not be removed.
    """
    st = os.lstat(path)
    if (not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_size < 2 * SHRINK_STEP
            or not hasattr(fcntl, "F_SETLEASE")):
        os.unlink(path)
        return st.st_size
    os.rename(path, hidden)
    try:
        _shrink(hidden, st)
    finally:
        try:
            os.unlink(hidden)
        except FileNotFoundError:  # start-up of another process removed it: gone either way
            pass
    return st.st_size


def _shrink(path, st):
    """Shrink `path` (the file `st` described) to nothing in steps, while nobody else opens it.

    The file is first opened as a path only (`O_PATH`: closing such a descriptor releases no
    POSIX lock), checked to be the same single-named regular file, and only then reopened for
    writing through that descriptor, so whatever replaced the name meanwhile is never opened.
    """
    if not hasattr(os, "O_PATH"):
        return
    try:
        pinned = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return
    try:
        now = os.fstat(pinned)
        if (not stat.S_ISREG(now.st_mode)
                or (now.st_dev, now.st_ino, now.st_nlink) != (st.st_dev, st.st_ino, 1)):
            return  # not the file we renamed (only this service's user could swap it)
        try:
            fd = os.open(f"/proc/self/fd/{pinned}", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:  # no /proc: delete it whole
            return
    finally:
        os.close(pinned)
    try:
        try:
            fcntl.fcntl(fd, fcntl.F_SETSIG, _LEASE_SIGNAL)
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
        except OSError:  # open elsewhere (EAGAIN), or no leases on this filesystem
            return
        try:
            size = now.st_size
            while size > 0 and fcntl.fcntl(fd, fcntl.F_GETLEASE) == fcntl.F_WRLCK:
                size = max(0, size - SHRINK_STEP)
                os.ftruncate(fd, size)
                time.sleep(SHRINK_PAUSE)
        finally:
            try:
                fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
            except OSError:  # the kernel already took it back (a break that timed out)
                pass
    finally:
        os.close(fd)
