"""Finding what is at the database path never drops this process's SQLite locks on it."""
import sqlite3
import subprocess
import sys

from mission_control.db_identity import OURS, identify

CLOSE_ONE = ("import sqlite3, sys\n"
             "conn = sqlite3.connect(sys.argv[1])\n"
             "conn.execute('SELECT count(*) FROM sqlite_master').fetchone()\n"
             "conn.close()\n")


def test_identifying_an_open_database_keeps_this_processs_locks(mc):
    """Closing any descriptor of a file drops the process's POSIX locks on it. If `identify`
    opened and closed the live database while this process had it open (a second
    `MissionControl` of it, as the CLI's tests and scripts make), the next connection of another
    process to close would find no lock, take itself for the last one and delete the `-wal` and
    `-shm` under this process's feet."""
    db = mc.config.db_path
    mc.db.execute("CREATE TABLE IF NOT EXISTS notes (x)")
    mc.db.execute("INSERT INTO notes VALUES (1)")  # the WAL holds a frame; the -shm is in use
    assert identify(db).kind == OURS
    subprocess.run([sys.executable, "-c", CLOSE_ONE, str(db)], check=True)
    assert (db.parent / f"{db.name}-wal").exists() and (db.parent / f"{db.name}-shm").exists()
    mc.db.execute("INSERT INTO notes VALUES (2)")
    fresh = sqlite3.connect(db)
    try:
        assert fresh.execute("SELECT count(*) FROM notes").fetchone() == (2,)
    finally:
        fresh.close()
