"""Only the service's user may read its files: the data folder 0700, database and copies 0600."""
import logging
import os
import sqlite3
import stat
import subprocess
import sys

import pytest

from mission_control.config import Config
from mission_control.core import MissionControl
from mission_control.db import migrate

from tests.support.accounts import PASSWORD
from tests.support.backup_files import add_tasks

#: In the slow lane (real CLI runs under a umask: ~1.5 s on the 2-core machine).
pytestmark = pytest.mark.slow


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def readable_by_others(folder):
    """Every path under `folder` (itself included) that group or others may use."""
    found = [] if not mode(folder) & 0o077 else [str(folder)]
    for root, dirs, files in os.walk(folder):
        found += [os.path.join(root, n) for n in dirs + files
                  if mode(os.path.join(root, n)) & 0o077]
    return found


@pytest.fixture
def umask_022():
    """The common default umask, under which SQLite and `open` make files readable by all."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_modes_after_start_and_after_every_kind_of_file(umask_022, mc, users, admin_client):
    db = mc.config.db_path
    assert os.path.exists(f"{db}-wal") and os.path.exists(f"{db}-shm")  # mc holds a connection
    assert mode(db.parent) == 0o700
    assert {mode(p) for p in (db, f"{db}-wal", f"{db}-shm")} == {0o600}
    add_tasks(mc, "secret")
    name = admin_client.post("/api/backup").json["backup"]["name"]
    data = (mc.backups.dir / name).read_bytes()
    uploaded = admin_client.post("/api/backup/upload", data=data,
                                 content_type="application/octet-stream")
    assert uploaded.status_code == 200, uploaded.json
    restored = admin_client.post("/api/backup/restore", json={"name": uploaded.json["backup"]["name"]})
    assert restored.status_code == 200, restored.json
    listed = {b["name"] for b in admin_client.get("/api/backup").json["backups"]}
    assert any(n.startswith("pre-restore-") for n in listed)
    assert any(n.startswith("uploaded-") for n in listed)
    assert readable_by_others(db.parent) == []


def test_fresh_start_under_umask_022_from_the_command_line(tmp_path):
    data = tmp_path / "data"
    env = {**os.environ, "MC_LOG_LEVEL": "WARNING"}

    def run(*argv, stdin=""):
        done = subprocess.run([sys.executable, "-m", "mission_control", *argv, "--data-dir",
                               str(data)], input=stdin, capture_output=True, text=True,
                              env=env, umask=0o022, timeout=120)
        assert done.returncode == 0, done.stderr
        return done

    run("user", "add", "alice", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert mode(data) == 0o700
    assert mode(data / "mission-control.db") == 0o600
    assert mode(data / "backups") == 0o700
    run("backup", "create")
    assert readable_by_others(data) == []


def test_cli_download_is_private_even_over_an_existing_file(mc, tmp_path):
    name = mc.backups.create("test").name
    out = tmp_path / "out.db"
    out.write_bytes(b"old")
    os.chmod(out, 0o644)
    done = subprocess.run([sys.executable, "-m", "mission_control", "backup", "download", name,
                           "-o", str(out), "--force", "--data-dir", str(mc.config.data_dir)],
                          capture_output=True, text=True, umask=0o022, timeout=120)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == (mc.backups.dir / name).read_bytes()
    assert mode(out) == 0o600
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    done = subprocess.run([sys.executable, "-m", "mission_control", "backup", "download", name,
                           "-o", str(fresh), "--data-dir", str(mc.config.data_dir)],
                          capture_output=True, text=True, umask=0o022, timeout=120)
    assert done.returncode == 0, done.stderr
    assert mode(fresh / name) == 0o600


def test_an_existing_readable_database_is_tightened_with_a_warning(umask_022, tmp_path, caplog):
    """Its files are tightened; the folders, which may be shared, keep their mode with a warning
    (issue 20: a folder the service did not create is never chmodded)."""
    data = tmp_path / "data"
    os.makedirs(data / "backups", mode=0o755)
    os.chmod(data, 0o755)
    db = data / "mission-control.db"
    # An install from before the check and the application id, still open in another process:
    # its -wal and -shm exist.
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    migrate(holder)
    holder.execute("PRAGMA application_id=0")
    holder.execute("CREATE TABLE kept (x)")
    for path in (db, f"{db}-wal", f"{db}-shm"):
        assert mode(path) == 0o644
    try:
        with caplog.at_level(logging.WARNING, logger="mission_control.files"):
            with MissionControl(Config.from_env({}, data_dir=data), entry_points=False):
                assert readable_by_others(data) == [str(data), str(data / "backups")]
        warned = [r.getMessage() for r in caplog.records]
        for path in (db, f"{db}-wal", f"{db}-shm"):
            assert any(m.startswith(f"{path} could be read by other users (mode 0o") for m in warned)
        for path in (data, data / "backups"):
            assert mode(path) == 0o755
            assert any(m.startswith(f"{path} can be read by other users (mode 0o755); left as it "
                                    "is") for m in warned)
        assert holder.execute("SELECT COUNT(*) FROM kept").fetchone() == (0,)
    finally:
        holder.close()
    os.chmod(data, 0o700)
    os.chmod(data / "backups", 0o700)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mission_control.files"):
        MissionControl(Config.from_env({}, data_dir=data), entry_points=False).close()
    assert caplog.records == []  # private already: nothing to say
