"""Point-in-time restore without Litestream running: settings, status, the restore path, config."""
import os
import stat
import subprocess
import sys
import time

import pytest
from werkzeug.test import Client

from mission_control import MissionControl, hookimpl
from mission_control.backup import restore as restore_module
from mission_control.builtins.pitr import litestream
from mission_control.web import WebApp

from tests.support.accounts import logged_in_client
from tests.support.backup_files import add_tasks, titles
from tests.support.pitr_engine import Engine
from tests.support.pitr_live import Serve, wait_for
from tests.support.scheduling import START


def test_status_says_not_installed_without_the_binary(make_mc):
    # Turned on while Litestream was there (it is refused without: test_settings_extras).
    make_mc().settings.update({"pitr.enabled": True, "pitr.replica_url": "file:///tmp/r"},
                              "test")
    mc = make_mc(litestream_bin="/nonexistent/litestream")
    client = logged_in_client(mc)
    status = client.get("/api/backup/pitr")
    assert status.status_code == 200
    assert status.json == {"enabled": True, "installed": False, "running": False, "pid": None,
                           "replica": "file:///tmp/r", "earliest": None, "latest": None,
                           "lag_seconds": None, "checked_at": None, "last_error": None,
                           "sealed": False, "staging_bytes": None, "seal_error": None,
                           "sealing": None, "seal_warning": None}
    answer = client.post("/api/backup/restore", json={"timestamp": "2026-11-27T15:52:56Z"})
    assert answer.status_code == 400
    assert "not installed" in answer.json["details"][0]


def test_restore_by_timestamp_is_refused_while_pitr_is_off(admin_client):
    answer = admin_client.post("/api/backup/restore", json={"timestamp": "2026-11-27T15:52:56Z"})
    assert answer.status_code == 400
    assert answer.json["error"] == "Point-in-time restore is not available"


@pytest.mark.parametrize("body, problem", [
    ({"timestamp": "2026-11-27T15:52:56"}, "give the zone"),
    ({"timestamp": "last tuesday"}, "ISO 8601"),
    ({"timestamp": 1795800000}, "timestamp: must be a string"),
    ({"timestamp": "2026-11-27T15:52:56Z", "name": "x.db"}, "unknown field"),
])
def test_a_bad_timestamp_body_is_a_400(admin_client, body, problem):
    answer = admin_client.post("/api/backup/restore", json=body)
    assert answer.status_code == 400
    assert problem in " ".join(answer.json["details"])


def test_a_moment_goes_through_the_same_restore_path(make_mc, tmp_path):
    mc = make_mc()
    client = logged_in_client(mc)
    add_tasks(mc, "kept")
    moment = mc.backups.create("test").path
    add_tasks(mc, "later")
    engine = Engine(moment)
    mc.pm.register(engine)
    answer = client.post("/api/backup/restore", json={"timestamp": "1970-01-01T00:25:00+00:05"})
    assert answer.status_code == 200, answer.json
    assert engine.asked == [1_200_000]
    assert answer.json["restored"]["timestamp"] == "1970-01-01T00:20:00.000Z"
    assert answer.json["safety_backup"]["name"].startswith("pre-restore-")
    assert titles(mc) == ["kept"]
    event = mc.audit_store.query(action="backup_restore", limit=1)[0][0]
    assert event["detail"]["timestamp"] == "1970-01-01T00:20:00.000Z"
    assert not [p for p in os.listdir(mc.backups.dir) if p.startswith(".mc-backup-")]


@pytest.mark.parametrize("moment", ["1970-01-01T00:16:39Z", "1970-01-01T00:33:21Z"])
def test_a_moment_outside_the_window_changes_nothing(make_mc, moment):
    mc = make_mc()
    add_tasks(mc, "live")
    engine = Engine(mc.backups.create("test").path)
    mc.pm.register(engine)
    files = sorted(os.listdir(mc.backups.dir))
    answer = logged_in_client(mc).post("/api/backup/restore", json={"timestamp": moment})
    assert answer.status_code == 400
    assert "outside the restorable window" in answer.json["details"][0]
    assert engine.asked == [] and titles(mc) == ["live"]
    assert sorted(os.listdir(mc.backups.dir)) == files


def test_a_moment_that_fails_verification_is_refused(make_mc, tmp_path):
    mc = make_mc()
    add_tasks(mc, "live")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"SQLite format 3\x00" + b"\x00" * 4000)
    mc.pm.register(Engine(junk))
    answer = logged_in_client(mc).post("/api/backup/restore",
                                       json={"timestamp": "1970-01-01T00:20:00Z"})
    assert answer.status_code == 400
    assert answer.json["error"] == "Backup failed verification"
    assert titles(mc) == ["live"]
    assert not [p for p in os.listdir(mc.backups.dir) if p.startswith("pre-restore-")]


@pytest.mark.parametrize("key, value", [
    ("pitr.replica_url", "http://example.com/replica"),
    ("pitr.replica_url", "file://relative/path"),
    ("pitr.retention", "3 days"),
    ("pitr.retention", "72"),
    ("pitr.s3_endpoint", "localhost:9000"),
])
def test_settings_refuse_what_litestream_could_not_use(admin_client, key, value):
    answer = admin_client.put("/api/settings", json={"settings": {key: value}})
    assert answer.status_code == 400
    assert answer.json["details"][0].startswith(key)


def test_the_config_file_is_private_and_secrets_stay_off_the_command_line(tmp_path):
    files = litestream.Files(tmp_path / "mc.db")
    values = {"pitr.enabled": "true", "pitr.replica_url": "s3://bucket/prefix",
              "pitr.s3_endpoint": "http://127.0.0.1:9000", "pitr.s3_region": "eu-west-1",
              "pitr.s3_access_key_id": "AKID", "pitr.s3_secret_access_key": "s3cr$t\"x",
              "pitr.retention": "1h30m"}
    litestream.write_config(files.config, litestream.config_text(files.db_path, values))
    assert stat.S_IMODE(os.stat(files.config).st_mode) == 0o600
    text = files.config.read_text()
    for line in ('url: "s3://bucket/prefix"', 'endpoint: "http://127.0.0.1:9000"',
                 'region: "eu-west-1"', 'access-key-id: "AKID"',
                 'secret-access-key: "s3cr$t\\"x"', "force-path-style: true",
                 'retention: "5400s"'):
        assert line in text
    command = litestream.replicate_command("/bin/litestream", files)
    assert "-no-expand-env" in command and not any("s3cr" in arg for arg in command)


def test_create_app_and_the_cli_start_no_litestream(make_mc):
    mc = make_mc()
    mc.settings.update({"pitr.enabled": True, "pitr.replica_url": "file:///tmp/r"}, "test")
    assert "supervisor" not in mc.services.get("pitr", {})


class Pauser:
    """Records what the live database holds when a restore pauses and resumes replication."""

    def __init__(self, refuse=False):
        self.refuse, self.seen = refuse, []

    @hookimpl
    def restore_pause(self, mc, actor):
        self.seen.append(("pause", str(actor), titles(mc)))
        if self.refuse:
            raise RuntimeError("replication would not stop")

    @hookimpl
    def restore_resume(self, mc, actor):
        self.seen.append(("resume", str(actor), titles(mc)))


def test_replication_is_paused_around_the_swap_only(make_mc):
    mc = make_mc()
    add_tasks(mc, "old")
    name = mc.backups.create("test").name
    add_tasks(mc, "new")
    pauser = Pauser()
    mc.pm.register(pauser)
    restore_module.restore_backup(mc, name, "carol")
    assert pauser.seen == [("pause", "carol", ["old", "new"]), ("resume", "carol", ["old"])]


def test_a_plugin_that_cannot_pause_stops_the_restore(make_mc):
    mc = make_mc()
    add_tasks(mc, "old")
    name = mc.backups.create("test").name
    add_tasks(mc, "new")
    pauser = Pauser(refuse=True)
    mc.pm.register(pauser)
    with pytest.raises(restore_module.RestoreFailed):
        restore_module.restore_backup(mc, name, "carol")
    assert titles(mc) == ["old", "new"]
    assert [step for step, *_ in pauser.seen] == ["pause", "resume"]


DROP_IN = '''
from mission_control import MissionControl, hookimpl

def _mark(mc, text):
    with open(mc.config.db_path.parent / "serve-hooks.txt", "a") as f:
        f.write(text + "\\n")

@hookimpl
def serve_start(mc):
    _mark(mc, "start")

@hookimpl
def serve_stop(mc):
    _mark(mc, "stop")
'''


@pytest.mark.slow
def test_serve_start_and_stop_run_under_serve_only(tmp_path):
    plugins_dir = tmp_path / "plugins"
    plugins_dir.mkdir()
    (plugins_dir / "marker.py").write_text(DROP_IN)
    data = tmp_path / "data"
    MissionControl.open(data, environ={}, entry_points=False, create=True).close()
    cli = subprocess.run([sys.executable, "-m", "mission_control", "backup", "list", "--data-dir",
                          str(data)], env={**os.environ, "MC_PLUGINS_DIR": str(plugins_dir)},
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert not (data / "serve-hooks.txt").exists()
    serve = Serve(data, MC_PLUGINS_DIR=str(plugins_dir))
    marks = data / "serve-hooks.txt"
    # It runs after the banner; the file exists a moment before its line is written.
    assert wait_for(lambda: marks.exists() and marks.read_text() == "start\n"), \
        marks.read_text() if marks.exists() else "no file"
    serve.stop()
    assert serve.proc.returncode == 0
    assert (data / "serve-hooks.txt").read_text() == "start\nstop\n"


class Status:
    """A stand-in engine that reports a given state."""

    def __init__(self, **state):
        self.state = {"enabled": True, "installed": True, "running": True, "pid": 7,
                      "replica": "file:///r", "earliest": 1, "latest": 2, "lag_seconds": 0.0,
                      "last_error": None, **state}

    @hookimpl(tryfirst=True)
    def pitr_status(self):
        return self.state


@pytest.mark.parametrize("state, problem", [
    ({}, None),
    ({"enabled": False, "running": False}, None),
    ({"running": False, "pid": None}, "Litestream is not running"),
    ({"installed": False, "running": False}, "Litestream is not installed"),
    ({"lag_seconds": 61.0}, "61 s behind (pitr.max_lag_seconds is 60)"),
    ({"lag_seconds": 60.0}, None),
    # The background check stopped (a hung `litestream` command): its answer is too old to trust.
    ({"checked_at": (START - 61) * 1000}, "last checked 61 s ago (pitr.max_lag_seconds is 60)"),
    ({"checked_at": (START - 60) * 1000}, None),
])
def test_health_fails_when_protection_is_on_but_not_working(make_mc, state, problem):
    mc = make_mc()
    mc.pm.register(Status(**state))
    client = logged_in_client(mc)
    status = client.get("/api/backup/status").json
    assert status["pitr"]["problem"] == (None if problem is None else status["pitr"]["problem"])
    if problem is None:
        assert not any("continuous protection" in r or "replica" in r for r in status["reasons"])
    else:
        assert problem in status["pitr"]["problem"]
        assert status["verdict"] == "fail" and status["pitr"]["problem"] in status["reasons"]


def test_the_status_open_to_the_metrics_token_shows_no_replica_location(make_mc):
    mc = make_mc(metrics_token="metrics-token-0123456789")
    mc.pm.register(Status(replica="file:///srv/secret-place", last_error="open /srv/x failed"))
    client = Client(WebApp(mc))
    status = client.get("/api/backup/status",
                        headers={"Authorization": "Bearer metrics-token-0123456789"})
    assert status.status_code == 200
    assert set(status.json["pitr"]) == {"enabled", "installed", "running", "earliest", "latest",
                                        "lag_seconds", "checked_at", "problem", "warning"}
    assert "/srv" not in status.get_data(as_text=True)


def test_metrics_show_whether_litestream_is_up_and_its_lag(make_mc):
    mc = make_mc()
    engine = Status(lag_seconds=2.5)
    mc.pm.register(engine)
    client = logged_in_client(mc)
    text = client.get("/metrics").get_data(as_text=True)
    assert "mission_control_pitr_up 1.0" in text
    assert "mission_control_pitr_lag_seconds 2.5" in text
    engine.state.update(running=False, lag_seconds=None)
    text = client.get("/metrics").get_data(as_text=True)
    assert "mission_control_pitr_up 0.0" in text and "pitr_lag_seconds" not in text
    engine.state.update(enabled=False)
    assert "mission_control_pitr" not in client.get("/metrics").get_data(as_text=True)


@pytest.mark.slow
def test_the_page_shows_the_window_and_restores_to_a_moment_after_typed_confirmation(open_page,
                                                                                    mc):
    from playwright.sync_api import expect

    from tests.support.browser import log_in, open_tab
    add_tasks(mc, "kept")
    now_ms = int(mc.clock() * 1000)
    asked_ms = now_ms // 1000 * 1000 - 60_000
    # A sealed stream says which moment its copy holds (Litestream's compaction steps).
    engine = Engine(mc.backups.create("alice").path, earliest=now_ms - 3_600_000, latest=now_ms,
                    held=asked_ms - 750)
    mc.pm.register(engine)
    add_tasks(mc, "later")
    page = open_page()
    log_in(page)
    open_tab(page, "pitr")
    card = page.locator("#pitr")
    expect(card).to_be_visible()
    expect(card).to_contain_text("Running: every change is streamed to x.")
    typed_moment = page.get_by_label("…or type it in UTC or with its offset")
    typed_moment.fill("2001-01-01T00:00:00Z")
    page.get_by_role("button", name="Restore to this moment…").click()
    expect(page.locator("#pitr-error")).to_contain_text("outside the restorable window")
    moment = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now_ms / 1000 - 60))
    typed_moment.fill(moment)
    page.get_by_role("button", name="Restore to this moment…").click()
    dialog = page.get_by_role("dialog", name="Restore to this moment?")
    expect(dialog).to_contain_text("The database goes back to how it was at")
    typed = dialog.get_by_label("Type the moment")
    confirm = dialog.get_by_role("button", name="Restore", exact=True)
    typed.fill(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now_ms / 1000 - 59)))
    expect(confirm).to_be_disabled()  # a second off
    typed.fill(moment.replace("Z", ".000Z"))  # any spelling of the moment
    confirm.click()
    held = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(asked_ms / 1000 - 1)) + ".250Z"
    # The session is not in the restored data: back to the login form, saying what was done.
    expect(page.locator("#login-notice")).to_contain_text(f"({held}). You asked for ")
    assert engine.asked == [asked_ms]
    assert titles(mc) == ["kept"]
