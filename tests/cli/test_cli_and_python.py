"""The `mission-control` command and `import mission_control`: same rules as the API."""
import io
import json
import sqlite3

import pytest

from mission_control import MissionControl
from mission_control.cli import main

from tests.support.accounts import PASSWORD


def run(data_dir, *args, stdin=""):
    out = io.StringIO()
    code = main([*args, "--data-dir", str(data_dir)], out=out, stdin=io.StringIO(stdin))
    return code, out.getvalue()


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


def test_user_commands(data_dir, capsys):
    assert run(data_dir, "user", "add", "ann", "--role", "admin", "--password-stdin",
               stdin=PASSWORD + "\n") == (0, "added admin ann\n")
    assert run(data_dir, "user", "add", "vic", "--password-stdin", stdin=PASSWORD + "\n")[0] == 0
    code, out = run(data_dir, "user", "list")
    assert out.splitlines() == ["ann\tadmin\tann", "vic\tviewer\tvic", "2 users"]
    assert run(data_dir, "user", "add", "ann", "--password-stdin", stdin=PASSWORD + "\n")[0] == 2
    assert "already exists" in capsys.readouterr().err
    assert run(data_dir, "user", "add", "bob", "--password-stdin", stdin="short\n")[0] == 2
    assert "at least 12" in capsys.readouterr().err
    assert run(data_dir, "user", "set-password", "ann", "--password-stdin",
               stdin="a-new-long-password\n")[0] == 0
    with MissionControl.open(data_dir, entry_points=False) as mc:
        assert mc.auth.login("ann", "a-new-long-password")[0].role == "admin"
    assert run(data_dir, "user", "remove", "vic")[0] == 0
    assert run(data_dir, "user", "remove", "vic")[0] == 3  # not found


def test_backup_commands(data_dir, capsys):
    assert run(data_dir, "user", "add", "ann", "--password-stdin", stdin=PASSWORD + "\n")[0] == 0
    code, out = run(data_dir, "backup", "create")
    assert code == 0 and out.startswith("created mc-backup-")
    name = out.split()[1]
    code, out = run(data_dir, "backup", "list", "--json")
    listed = json.loads(out)
    assert [b["name"] for b in listed["backups"]] == [name]
    assert run(data_dir, "backup", "list")[1].startswith(name + "\t")
    assert run(data_dir, "backup", "delete", "../x.db")[0] == 2  # bad input
    assert "Validation failed" in capsys.readouterr().err
    assert run(data_dir, "backup", "delete", "nope.db")[0] == 3  # not found: named, and the
    said = capsys.readouterr().err                                # backups there listed
    assert "no backup named 'nope.db'" in said and f"\n  {name}\n" in said
    assert run(data_dir, "backup", "delete", name) == (0, f"deleted {name}\n")
    with MissionControl.open(data_dir, entry_points=False) as mc:
        actions = [e["action"] for e in mc.audit_store.query()[0]]
        assert actions == ["backup_delete", "backup_create"]
        assert mc.audit_store.query()[0][0]["actor"].startswith("cli")


def test_bad_environment_is_a_clear_error(data_dir, monkeypatch, capsys):
    monkeypatch.setenv("MC_BACKUP_RATE_LIMIT", "lots")
    assert run(data_dir, "backup", "list")[0] == 2
    assert "MC_BACKUP_RATE_LIMIT must be a whole number" in capsys.readouterr().err


def test_python_api_runs_the_same_rules(tmp_path, clock):
    from mission_control import hookimpl

    seen = []

    class Hook:
        @hookimpl
        def post_backup(self, backup, actor):
            seen.append((backup.name, str(actor)))

    with MissionControl.open(tmp_path / "d", clock=clock, plugins=[Hook()], entry_points=False,
                             create=True) as mc:
        mc.settings.update({"general.backup_retention_count": 2}, actor="script")
        made = []
        for _ in range(3):
            made.append(mc.backups.create(actor="nightly-script"))
            clock.advance(1)
        assert [b.name for b in mc.backups.list()] == [made[2].name, made[1].name]
        assert seen == [(m.name, "nightly-script") for m in made]
        mc.backups.delete(made[2].name, actor="nightly-script")
        assert [b.name for b in mc.backups.list()] == [made[1].name]
        trail = [(e["action"], e["actor"]) for e in mc.audit_store.query()[0]]
        assert ("backup_prune", "nightly-script") in trail and trail[0] == ("backup_delete", "nightly-script")


def test_schema_is_migrated_and_pragmas_are_set(mc):
    conn = mc.db.conn()
    assert conn.execute("PRAGMA user_version").fetchone()[0] >= 1
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"users", "user_sessions", "settings", "audit_log", "scheduler_state", "agents", "tasks",
            "activities"} <= tables


def test_migration_is_idempotent_and_keeps_data(mc, make_mc):
    from mission_control.db import migrate, migrations
    mc.users.add("keep", PASSWORD, role="admin")
    newest = migrations()[-1][0]
    assert migrate(mc.db.conn()) == (newest, newest)
    mc.close()
    again = make_mc()
    assert [u.username for u in again.users.list()] == ["keep"]


def test_an_old_database_is_migrated_forward(tmp_path, make_config, clock):
    from mission_control.db import APPLICATION_ID, migrate
    path = make_config().db_path
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, target=1)
    conn.execute("PRAGMA application_id=0")  # made before the id existed
    conn.close()
    with MissionControl(make_config(), clock=clock, entry_points=False) as mc:
        assert mc.db.conn().execute("PRAGMA user_version").fetchone()[0] > 1
        assert mc.db.conn().execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert mc.backups.create("t").size > 0


def test_another_applications_database_is_taken_only_with_init(tmp_path, make_config, clock):
    from mission_control import ForeignDatabase
    path = make_config().db_path
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE legacy (x)")
    conn.close()
    before = path.read_bytes()
    for create in (False, True):
        with pytest.raises(ForeignDatabase, match="1 table \\('legacy'\\)"):
            MissionControl(make_config(), clock=clock, entry_points=False, create=create)
        assert path.read_bytes() == before
    with MissionControl(make_config(), clock=clock, entry_points=False, init=True) as mc:
        assert mc.db.conn().execute("PRAGMA user_version").fetchone()[0] >= 1
        assert mc.backups.create("t").size > 0
    with MissionControl(make_config(), clock=clock, entry_points=False) as mc:  # now it is ours
        assert mc.db.query("SELECT name FROM sqlite_master WHERE name = 'legacy'")
