"""A mistyped data folder is refused, not turned into a new empty database (issue 11, item 1)."""
import signal

import pytest

from mission_control import DatabaseNotFound, MissionControl
from mission_control.config import Config
from mission_control.web import create_app

from tests.support.accounts import PASSWORD
from tests.support.cli_run import run_cli
from tests.support.servers import get_json, start

#: In the slow lane (real CLI runs and `serve` processes: ~2.5 s on the 2-core machine).
pytestmark = pytest.mark.slow

HINT = "(start the service once, or pass --data-dir)"


def _refused(result, db_path):
    assert result.code == 2, (result.out, result.err)
    assert f"no Mission Control database at {db_path} {HINT}" in result.err
    assert "Traceback" not in result.err
    assert result.out == ""


@pytest.mark.parametrize("argv", [
    ["backup", "create"],
    ["backup", "list"],
    ["backup", "restore", "mc-backup-2026-01-01_00-00-00.db", "--yes"],
    ["user", "list"],
])
def test_a_typo_path_is_refused_and_nothing_is_created(tmp_path, argv):
    typo = tmp_path / "srv" / "typo"
    _refused(run_cli(*argv, "--data-dir", str(typo)), typo / "mission-control.db")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_without_a_database_stays_as_it_was(tmp_path):
    (tmp_path / "notes.txt").write_text("not a database")
    _refused(run_cli("backup", "create", "--data-dir", str(tmp_path)),
             tmp_path / "mission-control.db")
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]  # no backups/, no database


def test_the_relative_default_is_refused_with_its_absolute_path(tmp_path):
    result = run_cli("backup", "list", cwd=tmp_path)
    _refused(result, tmp_path / ".data" / "mission-control.db")
    assert list(tmp_path.iterdir()) == []


def test_user_add_creates_the_database_and_says_where(tmp_path):
    data = tmp_path / "new"
    result = run_cli("user", "add", "ann", "--role", "admin", "--password-stdin",
                     "--data-dir", str(data), stdin=PASSWORD + "\n")
    assert result.code == 0, result.err
    db_path = data / "mission-control.db"
    assert db_path.is_file()
    said = [line for line in result.err.splitlines() if "database" in line]
    assert len(said) == 1 and f"creating a new Mission Control database at {db_path}" in said[0]
    made = run_cli("backup", "create", "--data-dir", str(data))
    assert made.code == 0 and made.out.startswith("created mc-backup-"), made.err
    again = run_cli("user", "add", "bob", "--password-stdin", "--data-dir", str(data),
                    stdin=PASSWORD + "\n")
    assert again.code == 0 and "creating" not in again.err


def test_serve_creates_the_database_and_logs_its_absolute_path(tmp_path):
    data = tmp_path / "fresh"
    proc, url = start(data)
    try:
        # An answer means the main loop runs, so the SIGTERM handler is in place.
        assert get_json(f"{url}/api/health")["status"] == "ok"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read()
    db_path = data / "mission-control.db"
    assert f"creating a new Mission Control database at {db_path}" in stderr
    assert f"Mission Control database: {db_path}" in stderr
    assert db_path.is_file()


def test_python_open_refuses_a_missing_database(tmp_path):
    typo = tmp_path / "typo"
    with pytest.raises(DatabaseNotFound) as caught:
        MissionControl.open(typo, entry_points=False)
    assert isinstance(caught.value, FileNotFoundError)
    assert str(caught.value) == f"no Mission Control database at {typo / 'mission-control.db'} {HINT}"
    assert caught.value.filename == str(typo / "mission-control.db")
    with pytest.raises(DatabaseNotFound):
        MissionControl(Config.from_env({}, data_dir=typo), entry_points=False)
    assert list(tmp_path.iterdir()) == []


def test_python_create_true_and_create_app_make_the_database(tmp_path):
    with MissionControl.open(tmp_path / "a", entry_points=False, create=True) as mc:
        mc.backups.create("script")
    with MissionControl.open(tmp_path / "a", entry_points=False) as mc:  # now it exists
        assert len(mc.backups.list()) == 1
    app = create_app(Config.from_env({}, data_dir=tmp_path / "b"), entry_points=False)
    try:
        assert (tmp_path / "b" / "mission-control.db").is_file()
    finally:
        app.mc.close()
