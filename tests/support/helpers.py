"""Small test helpers: fill the database, read a backup, name and date backups, serve (the CLI: cli_run.py)."""
import contextlib
import os
import sqlite3
import threading
from datetime import datetime, timezone

from mission_control.server import make_server

DAYS = ["2026-11-17", "2026-11-16", "2026-11-15", "2026-11-14", "2026-11-13", "2026-11-12"]


def n(text):
    """The backup name for the UTC moment `text` ("2026-11-17 03:00")."""
    moment = datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
    return moment.strftime("mc-backup-%Y-%m-%d_%H-%M-%S.db")


def add_tasks(mc, count, prefix="task"):
    with mc.db.transaction() as conn:
        conn.executemany(
            "INSERT INTO tasks (title, status, created_at, updated_at) VALUES (?, 'inbox', 0, 0)",
            [(f"{prefix}-{i}",) for i in range(count)])


def read_titles(path):
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [row[0] for row in conn.execute("SELECT title FROM tasks ORDER BY id")]
    finally:
        conn.close()


def touch(path, mtime, data=b"x"):
    """Write a file (unless it exists) and set its modification time."""
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data)
    os.utime(path, (mtime, mtime))


@contextlib.contextmanager
def serving(mc, threads=4):
    """A real waitress server for `mc` on a free loopback port, in a thread; yields its base URL."""
    server = make_server(mc, host="127.0.0.1", port=0, threads=threads)
    # The loop notices the close only when its poll times out: a short poll makes teardown quick.
    server.adj.asyncore_loop_timeout = 0.05
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        # Workers finish first: closing the server first would close the trigger they pull.
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        server.close()
        thread.join(5)
