"""The live SQLite database: connections (WAL, foreign keys, busy timeout) and forward migrations."""
import sqlite3
import threading
from contextlib import contextmanager
from importlib import resources
from urllib.request import pathname2url

BUSY_TIMEOUT_MS = 5000
#: `PRAGMA application_id` of every database Mission Control makes or migrates ("MCBP"), so that
#: it is told from another application's SQLite file by its header (see `db_identity`).
APPLICATION_ID = 0x4D434250


def open_file(path, mode="ro", *, immutable=False, **kwargs):
    """Open the database file `path` by URI, in autocommit mode: the one way files are opened
    without the live database's settings.

    :param mode: ``"ro"`` (read only) or ``"rw"`` (read and write); neither creates the file, so a
        missing one is an error rather than a new empty database.
    :param immutable: promise SQLite that nothing changes the file (no locks, no `-wal` read):
        for a backup file that is checked or copied, never for a database in use.
    :param kwargs: passed to `sqlite3.connect` (e.g. ``check_same_thread``).
    :raises sqlite3.Error: the file cannot be opened.
    """
    query = f"mode={mode}" + ("&immutable=1" if immutable else "")
    return sqlite3.connect(f"file:{pathname2url(str(path))}?{query}", uri=True,
                           isolation_level=None, **kwargs)


def connect(path, *, readonly=False):
    """Open a connection in autocommit mode; transactions are explicit (`Database.transaction`).

    Read-only connections are for backup files: no WAL switch, nothing written.
    """
    if readonly:
        conn = open_file(path, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return conn
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL is the documented pairing for WAL: commits survive a crash of the process;
    # only an OS crash or power loss can take back the last few.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def migrations():
    """The numbered `schema/NNNN_*.sql` scripts shipped with the package, in order."""
    found = []
    for entry in resources.files("mission_control").joinpath("schema").iterdir():
        if entry.name.endswith(".sql") and entry.name[:4].isdigit():
            found.append((int(entry.name[:4]), entry.read_text(encoding="utf-8")))
    return sorted(found)


def _statements(script):
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            yield buf
            buf = ""
    if buf.strip() and not all(l.strip().startswith("--") or not l.strip() for l in buf.splitlines()):
        raise ValueError("schema script ends with an incomplete statement")


def migrate(conn, target=None):
    """Bring the schema forward to version `target` (default: the newest); safe when several
    processes start at once.

    The whole upgrade runs in one IMMEDIATE transaction, so a second process waits, then sees the
    new `user_version` and does nothing. Sets `APPLICATION_ID` where it is missing (a database
    made before it existed, or restored from such a backup). Returns `(old_version, new_version)`.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        old = conn.execute("PRAGMA user_version").fetchone()[0]
        if conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        new = old
        for version, script in migrations():
            if version <= old or (target is not None and version > target):
                continue
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={int(version)}")
            new = version
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return old, new


class Database:
    """One connection per thread to the live database, opened on first use.

    Every thread of the process shares this object; each gets its own sqlite3 connection, so no
    connection is ever used from two threads at once.
    """

    def __init__(self, path):
        self.path = path
        self._local = threading.local()
        self._all = []
        self._lock = threading.Lock()

    def conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def execute(self, sql, params=()):
        return self.conn().execute(sql, params)

    def query(self, sql, params=()):
        """All rows of a SELECT, each as a dict of column name to value."""
        cur = self.conn().execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def query_one(self, sql, params=()):
        rows = self.query(sql, params)
        return rows[0] if rows else None

    @contextmanager
    def transaction(self):
        """A write transaction (BEGIN IMMEDIATE), committed on success, rolled back on any error."""
        conn = self.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def check_readable(self):
        """Read the file's header and schema through a new read-only connection.

        A new one, because the long-lived connections' page caches can go on answering from
        memory after the file under them was damaged or replaced.

        :raises sqlite3.Error: the file is missing, not a database, or holds no schema.
        """
        conn = connect(self.path, readonly=True)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            conn.close()
        if version < 1:
            raise sqlite3.DatabaseError("the database holds no Mission Control schema")

    def close(self):
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()
