"""Small test helpers: fill the live database, read a backup, set file times."""
import os
import sqlite3


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
