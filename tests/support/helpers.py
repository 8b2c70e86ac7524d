"""Small test helpers: fill the database, read a backup, set file times, serve (the CLI: tests/cli_run.py)."""
import contextlib
import os
import sqlite3
import threading

from mission_control.server import make_server


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
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        # Workers finish first: closing the server first would close the trigger they pull.
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        server.close()
        thread.join(5)
