"""A wrong --db-path or --data-dir touches nothing: not a byte, not a mode (issue 20, item 1)."""
import os
import signal
import sqlite3
import stat

import pytest

from tests.support.cli_run import PASSWORD, run_cli
from tests.support.servers import get_json, start

#: In the slow lane (a real command run per wrong path, and `serve` processes: ~8 s on the 2-core machine).
pytestmark = pytest.mark.slow

#: Spelled out, not imported: databases out there carry this value, so it may never change.
APPLICATION_ID = 0x4D434250  # "MCBP"


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def snapshot(folder):
    """The folder's mode, and each entry's name, mode and bytes: what "changes nothing" means."""
    return mode(folder), {p.name: (mode(p), p.read_bytes() if p.is_file() else None)
                          for p in sorted(folder.iterdir())}


def refused(ran, path, found):
    assert ran.code == 2, (ran.out, ran.err)
    assert ran.out == ""
    assert f"{path} is not a Mission Control database: it is {found}; nothing was changed" \
        in ran.err, ran.err


def stopped(proc):
    """SIGTERM a `start`ed server and wait; its stderr."""
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.stderr.read()


COMMANDS = [
    ["backup", "list"],
    ["backup", "create"],
    ["backup", "status"],
    ["user", "list"],
    ["settings", "get"],
    ["serve", "--port", "0"],
    ["serve", "--port", "0", "--init"],  # --init adopts SQLite databases only
]


@pytest.fixture
def etc(tmp_path):
    """An /etc-like folder (0755) holding a small text file (0644)."""
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "hostname").write_text("build-host\n")
    os.chmod(folder / "hostname", 0o644)
    os.chmod(folder, 0o755)
    return folder


@pytest.mark.parametrize("argv", COMMANDS + [["user", "add", "ann", "--password-stdin"]])
def test_a_text_file_as_the_database_is_refused_and_left_as_it_was(etc, argv):
    before = snapshot(etc)
    ran = run_cli(*argv, "--db-path", etc / "hostname", stdin=PASSWORD + "\n")
    refused(ran, etc / "hostname", "a file of 11 bytes that is not an SQLite database")
    assert snapshot(etc) == before == (0o755, {"hostname": (0o644, b"build-host\n")})


@pytest.mark.parametrize("argv", [["backup", "list"], ["serve", "--port", "0", "--init"]])
def test_a_wal_database_copied_without_its_shm_is_refused_and_left_as_it_was(tmp_path, argv):
    """A `cp` of a live WAL-mode database takes its -wal but not its -shm: reading the log
    would create a -shm beside it, and ignoring the log would hide the schema it holds."""
    live, copied = tmp_path / "live", tmp_path / "copied"
    live.mkdir()
    copied.mkdir()
    conn = sqlite3.connect(live / "app.db")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('in the log only')")
    conn.commit()
    for name in ("app.db", "app.db-wal"):
        (copied / name).write_bytes((live / name).read_bytes())
    conn.close()
    before = snapshot(copied)
    ran = run_cli(*argv, "--db-path", copied / "app.db")
    refused(ran, copied / "app.db", "an SQLite database with a write-ahead log (-wal) but no "
                                   "-shm beside it, which cannot be read without creating one "
                                   "(open it once with its own application or sqlite3, then try "
                                   "again)")
    assert snapshot(copied) == before


def test_a_folder_as_the_database_is_refused_and_left_as_it_was(etc):
    before = snapshot(etc)
    refused(run_cli("backup", "list", "--db-path", etc), etc, "a folder")
    assert snapshot(etc) == before


def make_foreign(path, journal_mode):
    """Another application's SQLite database, closed cleanly (no -wal or -shm left)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA journal_mode={journal_mode}")
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("CREATE TABLE people (name TEXT)")
    conn.execute("INSERT INTO notes (body) VALUES ('keep me')")
    conn.close()
    os.chmod(path, 0o644)


def journal_mode(path):
    """From the header's read and write versions (bytes 18, 19): 2 is WAL, 1 a rollback journal;
    read as bytes, since opening it could itself make a -wal."""
    return {b"\x01\x01": "delete", b"\x02\x02": "wal"}[path.read_bytes()[18:20]]


FOREIGN = ("an SQLite database with 2 tables ('notes', 'people') and no Mission Control schema "
           "(schema version 0)")


@pytest.mark.parametrize("journal", ["delete", "wal"])
@pytest.mark.parametrize("argv", COMMANDS[:-1] + [["user", "add", "ann", "--password-stdin"]])
def test_another_applications_sqlite_file_is_refused_and_left_as_it_was(tmp_path, argv, journal):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    other = shared / "other.db"
    make_foreign(other, journal)
    before = snapshot(shared)
    ran = run_cli(*argv, "--db-path", other, stdin=PASSWORD + "\n")
    refused(ran, other, FOREIGN)
    assert "serve --init" in ran.err  # the way to take it, should that be what was meant
    assert snapshot(shared) == before  # no backups/, -wal, -shm; same bytes and modes
    assert journal_mode(other) == journal
    assert list(before[1]) == ["other.db"]


def test_another_applications_id_is_refused_even_with_init(tmp_path):
    other = tmp_path / "app.db"
    conn = sqlite3.connect(other)
    conn.execute("PRAGMA application_id=1234")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    before = snapshot(tmp_path)
    ran = run_cli("serve", "--port", "0", "--init", "--db-path", other)
    refused(ran, other, "an SQLite database of another application (application_id 0x4d2)")
    assert snapshot(tmp_path) == before


def test_serve_init_adopts_another_applications_database_and_keeps_its_tables(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    make_foreign(data / "mission-control.db", "delete")
    proc, url = start(data, "--init")
    try:
        assert get_json(f"{url}/api/health")["status"] == "ok"
    finally:
        stderr = stopped(proc)
    db = data / "mission-control.db"
    assert f"adding Mission Control's tables to {db}, which is {FOREIGN} (--init)" in stderr
    assert f"{db} can be read by other users (mode 0o644); left as it is" in stderr
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT body FROM notes").fetchall() == [("keep me",)]
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    finally:
        conn.close()
    listed = run_cli("backup", "list", "--json", "--data-dir", data)  # now it is Mission Control's
    assert listed.code == 0 and listed.json["backups"] == [], listed.err


def test_serve_on_an_existing_shared_folder_warns_instead_of_chmodding_it(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)
    (shared / "readme.txt").write_text("team notes")
    os.chmod(shared / "readme.txt", 0o644)
    proc, url = start(shared)
    try:
        assert get_json(f"{url}/api/health")["status"] == "ok"
    finally:
        stderr = stopped(proc)
    assert mode(shared) == 0o755
    assert mode(shared / "readme.txt") == 0o644
    assert f"{shared} can be read by other users (mode 0o755); left as it is" in stderr
    assert mode(shared / "mission-control.db") == 0o600  # what it made is private
    assert mode(shared / "backups") == 0o700


def test_serve_on_a_missing_folder_makes_it_private(tmp_path):
    """The quick start: `serve` with no data folder yet creates it 0700 and says nothing of modes."""
    data = tmp_path / "fresh" / ".data"
    proc, url = start(data)
    try:
        assert get_json(f"{url}/api/health")["status"] == "ok"
    finally:
        stderr = stopped(proc)
    assert mode(data) == 0o700
    assert mode(data / "mission-control.db") == 0o600
    assert "left as it is" not in stderr


def test_an_empty_file_counts_as_missing(tmp_path):
    empty = tmp_path / "mc.db"
    empty.touch()
    ran = run_cli("backup", "list", "--db-path", empty)
    assert ran.code == 2 and f"no Mission Control database at {empty}" in ran.err, ran.err
    assert empty.read_bytes() == b""
    made = run_cli("user", "add", "ann", "--role", "admin", "--password-stdin", "--db-path", empty,
                   stdin=PASSWORD + "\n")
    assert made.code == 0, made.err
    assert run_cli("user", "list", "--db-path", empty).out.startswith("ann\tadmin")


def test_an_older_mission_control_database_without_the_id_is_still_recognised(tmp_path):
    from mission_control.db import migrate
    db = tmp_path / "mission-control.db"
    conn = sqlite3.connect(db, isolation_level=None)
    migrate(conn, target=2)
    conn.execute("PRAGMA application_id=0")
    conn.close()
    ran = run_cli("backup", "list", "--data-dir", tmp_path)
    assert ran.code == 0, ran.err
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] > 2
    finally:
        conn.close()
