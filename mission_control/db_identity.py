"""What is at the database path (nothing, an empty file, Mission Control's database or something
else), found without changing a byte or a mode of it."""
import os
import sqlite3
import stat
from dataclasses import dataclass

from . import db as dbmod
from .db import APPLICATION_ID
from .backup.schema_check import expected_schema

MAGIC = b"SQLite format 3\x00"
HEADER_SIZE = 100
_APP_ID_OFFSET = 68
MAX_NAMES = 5
MAX_NAME = 40  # a hostile file may name its tables anything

MISSING, EMPTY, OURS, FOREIGN = "missing", "empty", "ours", "foreign"


@dataclass(frozen=True)
class Found:
    """What `identify` found.

    :ivar kind: `MISSING` (no such name), `EMPTY` (0 bytes, or an SQLite file with no schema at
        all), `OURS` (a Mission Control database, of any schema version) or `FOREIGN`.
    :ivar what: for `FOREIGN`, what is there, as a phrase for a message.
    :ivar adoptable: for `FOREIGN`, an SQLite database `serve --init` may add its tables to.
    """

    kind: str
    what: str = ""
    adoptable: bool = False


def identify(path):
    """Look at `path` without writing to it, locking it or creating a file beside it.

    The header is read as plain bytes; only an SQLite file is opened through SQLite, read-only,
    and `immutable` when no `-wal` lies beside it (a read-only open of a WAL-mode database would
    create its `-wal` and `-shm`). Older Mission Control databases carry no application id and
    are known by the tables their schema version has.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return Found(FOREIGN, "a symbolic link to nothing") if os.path.lexists(path) \
            else Found(MISSING)
    except OSError as exc:
        return Found(FOREIGN, f"a path that cannot be read ({exc.strerror})")
    if stat.S_ISDIR(info.st_mode):
        return Found(FOREIGN, "a folder")
    if not stat.S_ISREG(info.st_mode):
        return Found(FOREIGN, "not a regular file")  # a FIFO or device would block or worse
    if info.st_size == 0:
        return Found(EMPTY)
    try:
        header = read_header(path, info)
    except OSError as exc:
        return Found(FOREIGN, f"a file that cannot be read ({exc.strerror})")
    if len(header) < HEADER_SIZE or not header.startswith(MAGIC):
        return Found(FOREIGN, f"a file of {info.st_size} bytes that is not an SQLite database")
    app_id = int.from_bytes(header[_APP_ID_OFFSET:_APP_ID_OFFSET + 4], "big", signed=True)
    if app_id == APPLICATION_ID:
        return Found(OURS)
    if app_id:
        return Found(FOREIGN, f"an SQLite database of another application (application_id "
                              f"{app_id & 0xFFFFFFFF:#x})")
    return _by_schema(path)


def read_header(path, info):
    """The first `HEADER_SIZE` bytes of `path` (`info`: its `os.stat`), read without closing a
    descriptor of it that this process may hold locks through.

    Closing any descriptor of a file drops every POSIX lock the process holds on it, SQLite's
    included: when this process already has the file open (another `MissionControl` of the same
    database, say), its header is read through that descriptor, which stays open. Otherwise no
    lock of ours can be on it, and it is opened and closed as usual.
    """
    for folder in ("/proc/self/fd", "/dev/fd"):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            try:
                fd = int(name)
                held = os.fstat(fd)
            except (ValueError, OSError):
                continue
            if (held.st_dev, held.st_ino) == (info.st_dev, info.st_ino):
                try:
                    return os.pread(fd, HEADER_SIZE, 0)
                except OSError:  # not open for reading: another may be
                    continue
        break
    with open(path, "rb") as f:
        return f.read(HEADER_SIZE)


def _by_schema(path):
    immutable = not os.path.lexists(f"{path}-wal")
    if not immutable and not os.path.lexists(f"{path}-shm"):
        # SQLite would create the -shm to read the log, and an immutable open would ignore the
        # log (a schema held only there would look like an empty database, free to take).
        return Found(FOREIGN, "an SQLite database with a write-ahead log (-wal) but no -shm "
                              "beside it, which cannot be read without creating one (open it "
                              "once with its own application or sqlite3, then try again)")
    try:
        conn = dbmod.open_file(path, immutable=immutable)
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = [r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid")]
            objects = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return Found(FOREIGN, f"an SQLite file that cannot be read ({exc})")
    if app_id == APPLICATION_ID or _has_our_tables(version, tables):
        return Found(OURS)
    if app_id:  # set in its WAL, not yet in the file's header
        return Found(FOREIGN, f"an SQLite database of another application (application_id "
                              f"{app_id & 0xFFFFFFFF:#x})")
    if not objects and not version:
        return Found(EMPTY)
    names = ", ".join(repr(n if len(n) <= MAX_NAME else n[:MAX_NAME] + "...")
                      for n in tables[:MAX_NAMES])
    more = f" and {len(tables) - MAX_NAMES} more" if len(tables) > MAX_NAMES else ""
    held = f"{len(tables)} table{'s' if len(tables) != 1 else ''} ({names}{more})" if tables \
        else "no table"
    return Found(FOREIGN, f"an SQLite database with {held} and no Mission Control schema "
                          f"(schema version {version})", adoptable=True)


def _has_our_tables(version, tables):
    """Every table the migrations make up to `version` (a newer file: up to the newest) is there."""
    if version < 1:
        return False
    newest = dbmod.migrations()[-1][0]
    wanted = {e.name for e in expected_schema(min(version, newest)).values() if e.kind == "table"}
    return wanted <= {t.lower() for t in tables}
