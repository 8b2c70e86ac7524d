"""Scratch files: private temporary files, locked by their writer, so a start sweeps only dead ones.

A fetch, a restore drill, an S3 packing or an upload writes a hidden ``.tmp`` file beside the
backups. A process killed with SIGKILL cannot remove it, so every start sweeps them; but several
processes may share one backups folder, and another one's file may be in use right now. Each
scratch file therefore carries an exclusive `flock` for as long as its writer has it open (the
kernel drops it when that process dies), and the sweep removes only files whose lock it can take.
An incremental off-site copy writes its pack and manifest into a scratch folder (``….d``), locked
the same way. It matches only the service's own prefixes, only regular files and folders (never
a link): nothing else in the folder is ever touched.
"""
import fcntl
import os
import secrets
import shutil
from contextlib import contextmanager

from ..files import DATABASE_SUFFIXES
from ..files import open_private

#: Every scratch file's name starts so: ``.mc-tmp-<kind>-<pid>-<random>.tmp``.
SCRATCH_PREFIX = ".mc-tmp-"


def create_scratch(folder, prefix):
    """A new private (0600) file ``<prefix><pid>-<random>.tmp`` in `folder`, locked while open.

    :param prefix: the name's start; `SCRATCH_PREFIX` plus a word saying what it is for.
    :return: `(path, binary file object)`; close the file only once the path is renamed or removed.
    :raises OSError: the file could not be made.
    """
    while True:
        path = folder / f"{prefix}{os.getpid()}-{secrets.token_hex(6)}.tmp"
        out = open_private(path)
        try:
            fcntl.flock(out.fileno(), fcntl.LOCK_EX)
            # A sweep may have taken the lock between the create and ours, and removed the name.
            if os.path.samestat(os.fstat(out.fileno()), os.lstat(path)):
                return path, out
        except FileNotFoundError:
            pass
        except BaseException:
            out.close()
            raise
        out.close()


@contextmanager
def scratch_folder(folder, prefix):
    """A new private (0700) folder ``<prefix><pid>-<random>.d`` in `folder`, locked (a `flock`
    on the folder itself) and removed with everything in it when the block ends.

    :raises OSError: the folder could not be made.
    """
    path = folder / f"{prefix}{os.getpid()}-{secrets.token_hex(6)}.d"
    os.mkdir(path, 0o700)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except BaseException:
        os.rmdir(path)
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield path
    finally:
        try:
            shutil.rmtree(path)
        finally:
            os.close(fd)


def _abandoned_folder(path):
    """Remove the scratch folder `path` unless a live process holds its lock."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK
                     | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # its writer is alive
        if not os.path.samestat(os.fstat(fd), os.lstat(path)):
            return False
        shutil.rmtree(path)
        return True
    finally:
        os.close(fd)


def _abandoned(path):
    """Remove `path` and SQLite's files beside it unless a live process holds its lock."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False  # gone already, or not ours to open
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # its writer is alive
        if not os.path.samestat(os.fstat(fd), os.lstat(path)):
            return False
        for suffix in DATABASE_SUFFIXES:
            try:
                os.unlink(f"{path}{suffix}")
            except FileNotFoundError:
                pass
        return True
    finally:
        os.close(fd)


def sweep_scratch(folder, prefixes=(SCRATCH_PREFIX,)):
    """Remove the scratch files (and `scratch_folder` folders) in `folder` that a dead process
    left; returns how many.

    Only regular files named ``<prefix>….tmp`` and folders named ``<prefix>….d`` for one of
    `prefixes` are looked at.
    """
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.name.startswith(prefixes) and entry.name.endswith(".tmp") and \
                entry.is_file(follow_symlinks=False) and _abandoned(entry.path):
            removed += 1
        elif entry.name.startswith(prefixes) and entry.name.endswith(".d") and \
                entry.is_dir(follow_symlinks=False) and _abandoned_folder(entry.path):
            removed += 1
    return removed
