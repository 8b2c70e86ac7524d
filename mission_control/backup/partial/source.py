"""The two sides of a diff or partial restore: a backup checked as a whole restore checks it, a
moment's copy from point-in-time recovery, or the live database; opened read-only together.

A backup is opened only after the checks of a whole restore: the SHA-256, header, schema
allowlist and `integrity_check` (`verify_backup`, which records and audits it), and the
off-site record of a fetched copy. A diff reuses the recorded verification of the very same
file (same size and mtime) instead of scanning it again, and reads its header and schema anew.
"""
import os
import secrets
import sqlite3
from contextlib import contextmanager
from urllib.request import pathname2url

from ...errors import FileRejected, NotFound, ValidationFailed
from ...files import DATABASE_SUFFIXES, remove_files
from ..point_in_time import engine_answer, iso, parse_timestamp, restorable_moment
from ..restore import refuse_unrecorded_fetch
from ..service import TEMP_PREFIX
from ..verify import (HEADER_SIZE, VerificationStore, header_problems, inspect, schema_problems,
                      verify_backup)

LIVE = "live"
#: What `from` starts with to name a moment (point-in-time recovery) rather than a backup.
MOMENT = "@"
BUSY_TIMEOUT_MS = 5000


def check_backup(mc, name, actor, *, reuse=False):
    """The path of backup `name`, once it passed the checks of a whole restore.

    :param reuse: take a recorded verification of this very file (size and mtime unchanged)
        instead of scanning it again; the header and schema are read again all the same.
    :raises ValidationFailed, NotFound, BadRequest: as `BackupService.readable_path`.
    :raises FileRejected: the file failed its checks (400, `details`).
    :raises NotAuthentic: a copy fetched from off-site that no signed record knows (400).
    """
    path = mc.backups.readable_path(name)
    recorded = VerificationStore(mc.db).current(name, os.stat(path)) if reuse else None
    if recorded is not None and recorded["ok"]:
        problems = shallow_problems(path)
        check = {"ok": not problems, "problems": problems, "sha256": recorded["sha256"]}
    else:
        check = verify_backup(mc, name, actor)
    if check["ok"]:
        refuse_unrecorded_fetch(mc, name, check, actor)
        return path
    raise FileRejected(check["problems"], "Backup failed verification")


def shallow_problems(path):
    """The header and schema allowlist problems of the file `path` (no integrity scan)."""
    with open(path, "rb") as f:
        problems = header_problems(f.read(HEADER_SIZE))
    if problems:
        return problems
    conn = open_readonly(path, immutable=True)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        return schema_problems(conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall(), version)
    except sqlite3.DatabaseError as exc:
        return [f"cannot be read: {exc}"]
    finally:
        conn.close()


@contextmanager
def moment_copy(mc, timestamp, timeout):
    """Yield `(path, label)` of a private copy of the database at `timestamp` ("@" removed),
    written by the point-in-time engine and checked like a restore's; removed afterwards.

    :raises ValidationFailed: not an ISO 8601 time with a zone (400).
    :raises NotFound: point-in-time recovery off, or the time outside its window (404).
    :raises FileRejected: the copy failed its checks.
    """
    parse_timestamp(timestamp)  # a bad time: 400
    try:
        at_ms = restorable_moment(mc, timestamp)
    except ValidationFailed as exc:  # no copy of that moment to be had: like a missing backup
        raise NotFound(exc.message, details=exc.details) from None
    dest = mc.backups.dir / f"{TEMP_PREFIX}diff-{os.getpid()}-{secrets.token_hex(6)}.db"
    try:
        held, _ = engine_answer(mc.hooks.pitr_restore_to(at_ms, dest))
        if not os.path.isfile(dest):
            raise ValidationFailed(["from: the point-in-time engine wrote no copy"],
                                   "Point-in-time copy not available")
        os.chmod(dest, 0o600)
        found = inspect(dest, timeout=timeout, clock=mc.clock)
        if not found.ok:
            raise FileRejected(found.problems, "The point-in-time copy failed verification")
        yield dest, f"{MOMENT}{iso(held or at_ms)}"
    finally:
        remove_files(*(f"{dest}{suffix}" for suffix in DATABASE_SUFFIXES))


def open_readonly(path, *, immutable):
    """A read-only connection to `path` (URIs allowed for ATTACH), no trusted schema."""
    query = "mode=ro" + ("&immutable=1" if immutable else "")
    conn = sqlite3.connect(f"file:{pathname2url(str(path))}?{query}", uri=True,
                           isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA trusted_schema=OFF")
    return conn


def attach_uri(path):
    """The URI that attaches the file `path` read-only and immutable (a checked backup)."""
    return f"file:{pathname2url(str(path))}?mode=ro&immutable=1"


def open_pair(source, target=None, live=None):
    """A read-only connection whose `main` is `target` (a checked file, immutable) or the live
    database `live`, with `source` (a checked file) attached as `src`.

    The caller reads in one transaction (`BEGIN` ... `ROLLBACK`), so the live side is one
    consistent state while writers go on.
    """
    conn = open_readonly(target or live, immutable=target is not None)
    try:
        conn.execute("PRAGMA query_only=ON")
        conn.execute("ATTACH DATABASE ? AS src", (attach_uri(source),))
    except BaseException:
        conn.close()
        raise
    return conn
