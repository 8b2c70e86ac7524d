"""Expected failures of a command, as an exit code and one line saying what and what to do."""
import errno
import sqlite3

from ..config import ConfigError, DatabaseNotFound
from ..errors import FileRejected, MissionControlError
from ..users import UserError, UserNotFound
from .output import FAILED, NOT_FOUND, REFUSED, USAGE

#: HTTP statuses of `MissionControlError`s -> exit codes. Anything else is "failed" (1).
STATUS_CODES = {400: USAGE, 413: USAGE, 404: NOT_FOUND, 409: REFUSED, 429: REFUSED, 507: REFUSED}


class UsageError(Exception):
    """The command line itself is wrong (argparse's complaints, a missing terminal, ...): exit 2.

    :param message: what is wrong and what to do instead.
    """

    def __init__(self, message, details=()):
        super().__init__(message)
        self.message = message
        self.details = list(details)


def describe(exc):
    """`(exit code, message, details)` for an expected failure, or None for a bug.

    The message names what failed and, where it helps, what to do; never a traceback.
    """
    if isinstance(exc, UsageError):
        return USAGE, exc.message, exc.details
    if isinstance(exc, FileRejected):  # the request was fine; the file failed its checks
        return FAILED, exc.message, list(exc.details or ())
    if isinstance(exc, MissionControlError):
        return STATUS_CODES.get(exc.status, FAILED), exc.message, list(exc.details or ())
    if isinstance(exc, UserNotFound):
        return NOT_FOUND, str(exc), []
    if isinstance(exc, (ConfigError, UserError, DatabaseNotFound)):
        return USAGE, str(exc), []
    if isinstance(exc, sqlite3.DatabaseError):
        return USAGE, (f"the database cannot be used ({exc}): check --db-path / --data-dir "
                       "points at a Mission Control database"), []
    if isinstance(exc, OSError):
        return _os_error(exc)
    return None


def _os_error(exc):
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno == errno.EADDRINUSE:
        return FAILED, "the address is already in use: is another instance running? " \
                       "Choose another with --port", []
    if exc.errno in (errno.EADDRNOTAVAIL, errno.EACCES) and not exc.filename:
        return FAILED, f"cannot listen there: {exc.strerror} (check --host and --port)", []
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return USAGE, f"no such file or folder{where}: check the path", []
    if exc.errno in (errno.EACCES, errno.EPERM):
        return USAGE, f"permission denied{where}", []
    if exc.errno == errno.ENOSPC:
        return REFUSED, f"no space left on the device{where}", []
    return FAILED, f"{exc.strerror or type(exc).__name__}{where}", []
