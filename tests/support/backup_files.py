"""Helpers for the restore, verify and transfer tests: domain rows and broken database files."""
import sqlite3

from mission_control import db as dbmod


def add_tasks(mc, *titles):
    with mc.db.transaction() as conn:
        conn.executemany("INSERT INTO tasks (title, created_at, updated_at) VALUES (?, 0, 0)",
                         [(t,) for t in titles])


def titles(mc):
    return [r["title"] for r in mc.db.query("SELECT title FROM tasks ORDER BY id")]


def flip_page(path, page=2, page_size=4096):
    """Invert every byte of one page: a b-tree page that `integrity_check` must notice."""
    with open(path, "r+b") as f:
        f.seek((page - 1) * page_size)
        data = f.read(page_size)
        f.seek((page - 1) * page_size)
        f.write(bytes(b ^ 0xFF for b in data))


def foreign_sqlite(path):
    """A healthy SQLite database of some other application."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT)")
    conn.execute("INSERT INTO photos (path) VALUES ('cat.jpg')")
    conn.commit()
    conn.close()


def old_schema_db(path, *task_titles, page_size=4096, user_version=1):
    """A Mission Control database at schema version 1 (rollback journal), like an old backup."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA page_size={page_size}")
    conn.executescript(dbmod.migrations()[0][1])
    conn.execute(f"PRAGMA user_version={user_version}")
    conn.executemany("INSERT INTO tasks (title, created_at, updated_at) VALUES (?, 0, 0)",
                     [(t,) for t in task_titles])
    conn.close()


def mission_control_db(path, version=None, encoding="UTF-8"):
    """A fresh Mission Control database at schema `version` (default: the newest), in `encoding`."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f'PRAGMA encoding="{encoding}"')
        dbmod.migrate(conn, target=version)
    finally:
        conn.close()


def run_sql(path, *statements):
    """Run `statements` on the file `path` in one transaction."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        for statement in statements:
            conn.execute(statement)
        conn.execute("COMMIT")
    finally:
        conn.close()


def rewrite_schema(path, sql):
    """Run `sql` (an UPDATE of `sqlite_master`) with `writable_schema`, as an attacker would."""
    run_sql(path, "PRAGMA writable_schema=ON", sql)


def schema_rows(path):
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    finally:
        conn.close()
