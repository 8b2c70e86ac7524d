"""Checking backup files: SQLite header, `integrity_check`, Mission Control's schema, SHA-256."""
import functools
import json
import os
import sqlite3
from dataclasses import asdict, dataclass, field
from urllib.request import pathname2url

from . import db as dbmod
from .fsutil import sha256_file

SQLITE_MAGIC = b"SQLite format 3\x00"
MAX_PROBLEMS = 20


@dataclass
class Inspection:
    """What reading a database file found. `ok` means usable as a Mission Control backup."""

    ok: bool = False
    integrity: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    page_count: int | None = None
    page_size: int | None = None
    schema_version: int | None = None


@functools.cache
def required_schema():
    """`{table: {columns}}` of the first schema version: what every Mission Control database has.

    Worked out once per process from the shipped schema files, which do not change under it.
    """
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(dbmod.migrations()[0][1])
        return {t: frozenset(c[1] for c in conn.execute(f"PRAGMA table_info({t})"))
                for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


@functools.cache
def known_code_objects():
    """`{(type, name)}` of the triggers and views Mission Control's own migrations create."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        dbmod.migrate(conn)
        return frozenset(conn.execute(
            "SELECT type, name FROM sqlite_master WHERE type IN ('trigger', 'view')"))
    finally:
        conn.close()


def newest_schema_version():
    return dbmod.migrations()[-1][0]


def has_sqlite_header(path):
    with open(path, "rb") as f:
        return f.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC


def schema_problems(conn):
    """Why the open database is not Mission Control's (empty list: it is)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = {t: {c[1] for c in conn.execute(f"PRAGMA table_info({t})")}
              for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    problems, required = [], required_schema()
    missing = sorted(set(required) - set(tables))
    if missing:
        problems.append(f"not a Mission Control database: missing tables {', '.join(missing)}")
    if version < 1:
        problems.append("not a Mission Control database: it has no schema version")
    for table, columns in sorted(required.items()):
        lacking = sorted(columns - tables.get(table, columns))
        if lacking:
            problems.append(f"table {table} lacks columns {', '.join(lacking)}")
    foreign = sorted(name for _, name in set(conn.execute(
        "SELECT type, name FROM sqlite_master WHERE type IN ('trigger', 'view')"))
        - known_code_objects())
    if foreign:
        # A restored trigger would run inside the live service: only our own are accepted.
        problems.append(f"contains triggers or views Mission Control does not create: "
                        f"{', '.join(foreign[:5])}")
    if version > newest_schema_version():
        problems.append(f"schema version {version} is newer than this Mission Control "
                        f"understands ({newest_schema_version()})")
    return problems


def inspect(path):
    """Open `path` read-only (nothing is written beside it) and check everything but the hash."""
    result = Inspection()
    if not has_sqlite_header(path):
        result.problems.append("not a SQLite database")
        return result
    try:
        conn = sqlite3.connect(f"file:{pathname2url(str(path))}?mode=ro&immutable=1", uri=True,
                               isolation_level=None)
    except sqlite3.Error as exc:
        result.problems.append(f"cannot open: {exc}")
        return result
    try:
        conn.execute("PRAGMA trusted_schema=OFF")
        result.page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        result.page_count = conn.execute("PRAGMA page_count").fetchone()[0]
        result.schema_version = conn.execute("PRAGMA user_version").fetchone()[0]
        result.integrity = [r[0] for r in conn.execute(f"PRAGMA integrity_check({MAX_PROBLEMS})")]
        if result.integrity != ["ok"]:
            result.problems.append("integrity check failed")
        else:
            result.problems.extend(schema_problems(conn))
    except sqlite3.DatabaseError as exc:
        result.integrity = result.integrity or [str(exc)]
        result.problems.append(f"integrity check failed: {exc}")
    finally:
        conn.close()
    result.ok = not result.problems
    return result


class VerificationStore:
    """SQL for the `backup_verifications` table: the last verification of each backup file."""

    def __init__(self, db):
        self._db = db

    _WRITE = ("INSERT OR REPLACE INTO backup_verifications (name, size, mtime_ns, sha256, ok,"
              " integrity, page_count, page_size, schema_version, verified_at, verified_by)"
              " VALUES (:name, :size, :mtime_ns, :sha256, :ok, :integrity, :page_count,"
              " :page_size, :schema_version, :verified_at, :verified_by)")

    def record(self, name, st, sha256, found, verified_at, verified_by):
        with self._db.transaction() as conn:
            self.write_rows(conn, [{
                "name": name, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256,
                "ok": int(found.ok), "integrity": json.dumps(found.integrity),
                "page_count": found.page_count, "page_size": found.page_size,
                "schema_version": found.schema_version, "verified_at": verified_at,
                "verified_by": verified_by}])

    @classmethod
    def write_rows(cls, conn, rows):
        """Write whole rows (dicts, as `all()` returns them) on `conn`, e.g. into a restore copy."""
        conn.executemany(cls._WRITE, rows)

    def all(self):
        return self._db.query("SELECT * FROM backup_verifications")

    def current(self, name, st):
        """The row for `name` if the file is still the one that was verified, else None."""
        row = self._db.query_one("SELECT * FROM backup_verifications WHERE name = ?", (name,))
        if row and row["size"] == st.st_size and row["mtime_ns"] == st.st_mtime_ns:
            return row
        return None


_UNVERIFIED = {"verified_at": None, "verified_ok": None, "sha256": None}


def annotations(mc, backups):
    """`{name: {"verified_at", "verified_ok", "sha256"}}` for `GET /api/backup`'s extra fields.

    One query for all rows, and the listing's own stat (`mtime_ns`), so that a folder of 10,000
    files lists in milliseconds rather than with 10,000 queries and stats.
    """
    rows = {r["name"]: r for r in mc.db.query(
        "SELECT name, size, mtime_ns, sha256, ok, verified_at FROM backup_verifications")}
    out = {}
    for backup in backups:
        row = rows.get(backup.name)
        if row is not None and (row["size"], row["mtime_ns"]) != (backup.size, backup.mtime_ns):
            row = None  # the file changed since it was verified
        out[backup.name] = _UNVERIFIED if row is None else {
            "verified_at": row["verified_at"], "verified_ok": bool(row["ok"]),
            "sha256": row["sha256"]}
    return out


def verify_backup(mc, name, actor):
    """Verify backup `name`, remember the result and audit `backup_verify` as `actor`.

    :return: a dict: `name`, `ok`, `integrity`, `problems`, `page_count`, `page_size`,
        `schema_version`, `sha256`, `size`, `verified_at`.
    :raises ValidationFailed, NotFound: as `BackupService.path_of`.
    """
    path = mc.backups.path_of(name)
    st = os.stat(path)
    found = inspect(path)
    digest = sha256_file(path)
    now = int(mc.clock())
    VerificationStore(mc.db).record(name, st, digest, found, now, str(actor))
    result = {"name": name, **asdict(found), "sha256": digest, "size": st.st_size,
              "verified_at": now}
    mc.audit.emit("backup_verify", actor, target_type="backup", target_id=name,
                  detail={"name": name, "ok": found.ok, "sha256": digest,
                          "problems": found.problems[:5]})
    return result
