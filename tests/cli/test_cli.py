"""The installed `mission-control` as scripts use it: every command, with and without --json,
each exit code (0 done, 1 failed, 2 usage/config, 3 not found, 4 refused; 5, an off-site copy
failed, is test_cli_summary's), never a traceback."""
import json
import os
import socket
import sqlite3
import subprocess

import pytest

from mission_control.backup.service import LOCK_NAME
from mission_control.files import FileLock

from tests.support.cli_run import COMMAND, PASSWORD, run_cli

#: In the slow lane (one real `mission-control` process per step: ~40 s on the 2-core machine).
pytestmark = pytest.mark.slow


@pytest.fixture
def data(tmp_path):
    """A data folder with an admin (ann) and one backup; returns the folder."""
    folder = tmp_path / "data"
    assert run_cli("user", "add", "ann", "--role", "admin", "--password-stdin", "--data-dir",
                   folder, stdin=PASSWORD + "\n").code == 0
    assert run_cli("backup", "create", "--data-dir", folder).code == 0
    return folder


def cli(data, *args, **kwargs):
    return run_cli(*args, "--data-dir", data, **kwargs)


def backups(data):
    return cli(data, "backup", "list", "--json").json["backups"]


def assert_error(ran, code, text):
    """The failure both ways: one line on stderr, or `{"error", "details"}` on stdout."""
    assert ran.code == code, (ran.out, ran.err)
    if ran.out.lstrip().startswith("{"):
        assert set(ran.json) == {"error", "details"} and text in ran.json["error"] + \
            " ".join(ran.json["details"]), ran.out
    else:
        # Log lines may come first; the error is its own line (details indented below it).
        assert "\nmission-control: " in "\n" + ran.err and text in ran.err, ran.err


def both(data, *args, code=0, text=None, stdin=""):
    """Run plain and with --json; check the exit code (and `text` of an error) both times."""
    plain = cli(data, *args, stdin=stdin)
    as_json = cli(data, *args, "--json", stdin=stdin)
    for ran in (plain, as_json):
        if code:
            assert_error(ran, code, text)
        else:
            assert ran.code == 0, ran.err
    if code:
        assert plain.out == "" and as_json.err.count("mission-control:") == 0
    return plain, (as_json.json if not code else None)


def test_version_and_global_options_anywhere(data):
    assert run_cli("--version").out.strip().startswith("mission-control ")
    assert run_cli("--version", "--json").json["version"]
    before = run_cli("--data-dir", data, "--json", "backup", "list").json
    after = run_cli("backup", "--json", "list", "--data-dir", data).json
    assert before == after and len(before["backups"]) == 1
    db = data / "mission-control.db"
    assert run_cli("backup", "list", "--db-path", db, "--quiet").out == ""


def test_backup_create_list_status_delete(data):
    plain, made = both(data, "backup", "create")
    assert plain.out.startswith("created mc-backup-") and made["success"] is True
    listed = cli(data, "backup", "list", "--json").json
    # The API's shape: GET /api/backup's fields, verification included.
    assert set(listed) == {"backups", "dir"}
    assert {"name", "size", "created_at", "verified_at", "verified_ok", "sha256"} <= \
        set(listed["backups"][0])
    assert cli(data, "backup", "list").out.count("mc-backup-") == 3
    plain, status = both(data, "backup", "status")
    assert plain.out.startswith("verdict: ") and status["verdict"] in ("pass", "warn", "fail")
    name = listed["backups"][0]["name"]
    assert cli(data, "backup", "delete", name, "--json").json == {"success": True}
    assert cli(data, "backup", "delete", listed["backups"][1]["name"]).out.startswith("deleted")
    both(data, "backup", "delete", name, code=3, text="no backup named")
    both(data, "backup", "delete", "../x.db", code=2, text="must not contain")


def test_verify_upload_download_restore(data, tmp_path):
    name = backups(data)[0]["name"]
    plain, verified = both(data, "backup", "verify", name)
    assert ": OK" in plain.out and verified["ok"] is True
    assert backups(data)[0]["verified_ok"] is True
    both(data, "backup", "verify", "missing.db", code=3, text="no backup named")

    out = tmp_path / "out"
    out.mkdir()
    got = cli(data, "backup", "download", name, "-o", out, "--json").json
    assert got["sha256"] == verified["sha256"] and (out / name).stat().st_size == got["size"]
    both(data, "backup", "download", name, "-o", out, code=2, text="exists")
    both(data, "backup", "download", name, "-o", tmp_path / "no" / "such" / "x.db", code=2,
         text="no such folder")

    uploaded = cli(data, "backup", "upload", out / name, "--json").json
    assert uploaded["backup"]["name"].startswith("uploaded-")
    assert uploaded["backup"]["sha256"] == verified["sha256"]
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 100)
    both(data, "backup", "upload", garbage, code=1, text="not a valid Mission Control backup")
    both(data, "backup", "upload", tmp_path / "missing.db", code=2, text="no such file")

    said_no = cli(data, "backup", "restore", name, stdin="n\n")
    assert said_no.code == 1 and "not restored" in said_no.out
    assert_error(cli(data, "backup", "restore", name, "--json"), 2, "--yes")
    restored = cli(data, "backup", "restore", name, "--yes", "--json").json
    assert restored["restored"]["name"] == name and restored["success"] is True
    # The summary line comes last.
    assert cli(data, "backup", "restore", name, "--yes").out.splitlines()[-1].startswith(
        f"restored {name}")
    both(data, "backup", "restore", "nope.db", "--yes", code=3, text="no backup named")


def test_prune_and_the_refusals(data):
    plain, pruned = both(data, "backup", "prune", "--dry-run")
    assert "kept" in plain.out and pruned["dry_run"] is True
    with FileLock(data / "backups" / LOCK_NAME).hold(0):
        both(data, "backup", "prune", code=4, text="already in progress")
    assert cli(data, "settings", "set", "diskguard.min_free_mb=1000000000").code == 0
    both(data, "backup", "create", code=4, text="free disk space")
    both(data, "scheduler", "run", "auto_backup", code=4, text="free disk space")
    copy = data.parent / "copy.db"
    assert cli(data, "backup", "download", backups(data)[0]["name"], "-o", copy).code == 0
    both(data, "backup", "upload", copy, code=4, text="free disk space")
    assert len(backups(data)) == 1


def test_users(data):
    both(data, "user", "add", "bob", code=2, text="--password-stdin")  # no terminal to ask on
    added = cli(data, "user", "add", "bob", "--password-stdin", "--json", stdin=PASSWORD + "\n")
    assert added.json["user"]["username"] == "bob" and added.json["user"]["role"] == "viewer"
    plain, listed = both(data, "user", "list")
    assert "bob\tviewer" in plain.out and [u["username"] for u in listed["users"]] == \
        ["ann", "bob"]
    both(data, "user", "add", "bob", "--password-stdin", stdin=PASSWORD + "\n", code=2,
         text="already exists")
    both(data, "user", "set-password", "nobody", "--password-stdin", stdin=PASSWORD + "\n",
         code=3, text="no user")
    assert cli(data, "user", "set-password", "bob", "--password-stdin",
               stdin="another-long-password\n").code == 0
    assert cli(data, "user", "remove", "bob", "--json").json["success"] is True
    both(data, "user", "remove", "bob", code=3, text="no user")


def test_settings_get_and_set_all_or_nothing(data):
    plain, everything = both(data, "settings", "get")
    assert "general.backup_retention_count=10" in plain.out.splitlines()
    assert set(everything) == {"settings", "grouped", "secrets"}  # GET /api/settings's shape
    plain, one = both(data, "settings", "get", "general.backup_retention_count")
    assert plain.out == "10\n" and one["key"] == "general.backup_retention_count"
    both(data, "settings", "get", "no.such.key", code=3, text="no setting")
    both(data, "settings", "set", "general.backup_retention_count=5",
         "general.auto_backup=maybe", code=2, text="general.auto_backup")
    assert cli(data, "settings", "get", "general.backup_retention_count").out == "10\n"
    both(data, "settings", "set", "no-equals-sign", code=2, text="KEY=VALUE")
    written = cli(data, "settings", "set", "general.backup_retention_count=5",
                  "general.auto_backup=true", "--json").json
    assert written == {"updated": ["general.backup_retention_count", "general.auto_backup"],
                       "count": 2}
    assert cli(data, "settings", "get", "general.auto_backup").out == "true\n"


def test_scheduler_and_plugins(data):
    plain, tasks = both(data, "scheduler", "list")
    assert "auto_backup" in plain.out and tasks["tasks"][0]["id"] == "auto_backup"
    ran = cli(data, "scheduler", "run", "auto_backup", "--json").json
    assert ran["ok"] is True and ran["backup"]["name"].startswith("mc-backup-")
    both(data, "scheduler", "run", "no_such_task", code=3, text="no task")
    plain, plugins = both(data, "plugins", "list")
    assert "retention\tbuiltin" in plain.out
    assert {"name": "retention", "kind": "builtin"}.items() <= \
        [p for p in plugins["plugins"] if p["name"] == "retention"][0].items()


def test_offsite_without_a_target_is_not_found(data):
    both(data, "offsite", "list", "dir", code=3, text="no off-site target named 'dir': none")
    both(data, "offsite", "fetch", "dir", "x.db.zst.age", code=3, text="off-site target")


def test_usage_errors_are_exit_2_and_shaped_under_json(data):
    both(data, "bogus", code=2, text="invalid choice")
    both(data, "backup", code=2, text="required")
    both(data, "backup", "list", "--no-such-option", code=2, text="unrecognized")
    ran = run_cli("backup", "list", "--json", env={"MC_BACKUP_RATE_LIMIT": "lots",
                                                    "MISSION_CONTROL_DATA_DIR": str(data)})
    assert ran.code == 2 and "MC_BACKUP_RATE_LIMIT" in ran.json["error"]


def test_a_missing_database_is_exit_2_and_nothing_is_made(tmp_path):
    for args in (("backup", "list"), ("backup", "status", "--json"), ("settings", "get")):
        ran = run_cli(*args, "--data-dir", tmp_path / "typo")
        assert_error(ran, 2, "no Mission Control database")
    assert not (tmp_path / "typo").exists()


def test_not_a_database_is_exit_2_and_debug_shows_the_traceback(tmp_path):
    text_file = tmp_path / "notes.db"
    text_file.write_text("shopping list\n" * 200)
    for args in (("backup", "list"), ("backup", "list", "--json")):
        ran = run_cli(*args, "--db-path", text_file)
        assert_error(ran, 2, f"{text_file} is not a Mission Control database: it is a file of "
                             "2800 bytes that is not an SQLite database; nothing was changed")
    with pytest.raises(AssertionError, match="Traceback"):  # run_cli refuses tracebacks
        run_cli("backup", "list", "--db-path", text_file, "--debug")
    assert sqlite3.connect(text_file) and text_file.read_text().startswith("shopping")


def test_a_busy_port_is_one_line(data):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        plain = cli(data, "serve", "--port", port, timeout=60)
        as_json = cli(data, "serve", "--port", port, "--json", timeout=60)
    assert_error(plain, 1, "already in use")
    assert_error(as_json, 1, "already in use")


def test_the_progress_bar_shows_on_a_terminal_only(data, tmp_path):
    import os
    import pty
    import subprocess

    from tests.support.cli_run import COMMAND
    name = backups(data)[0]["name"]
    leader, follower = pty.openpty()
    proc = subprocess.Popen([COMMAND, "backup", "download", name, "-o", tmp_path / "a.db",
                             "--data-dir", data], stdout=follower, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the command is done
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(timeout=60) == 0
    os.close(leader)
    text = seen.decode(errors="replace")
    assert "download" in text and "wrote " in text
    assert "\x1b[" in text  # the bar is drawn with terminal control sequences
    piped = cli(data, "backup", "download", name, "-o", tmp_path / "b.db")
    digest = json.loads(cli(data, "backup", "verify", name, "--json").out)["sha256"]
    assert piped.out == f"wrote {tmp_path / 'b.db'} (sha256 {digest})\n"  # the result alone


@pytest.mark.parametrize("args", [("backup", "list"), ("--json", "backup", "status")])
def test_a_reader_that_goes_away_gets_no_traceback(data, args):
    """`mission-control backup list | head -1`: stdout closed early is exit 1, never a traceback."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the command writes a byte
    try:
        ran = subprocess.run([COMMAND, *args, "--data-dir", str(data)], stdout=write,
                             stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert "Traceback" not in ran.stderr, ran.stderr
    assert ran.returncode == 1
