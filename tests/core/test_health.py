"""`/api/health`, `/api/backup/status` and `/metrics`."""
import logging
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import Client

from mission_control import __version__, hookimpl
from mission_control.scheduling.cron import next_run
from mission_control.web import WebApp

from tests.support.accounts import PASSWORD

HOUR = 3600


class Breakable:
    """A `pre_backup` plugin that fails the backup while `broken` is set."""

    broken = False

    @hookimpl
    def pre_backup(self):
        if self.broken:
            raise RuntimeError("disk on fire")


@pytest.fixture
def plugin():
    return Breakable()


@pytest.fixture
def mc(make_mc, plugin):
    return make_mc(plugins=[plugin], api_key="m" * 32)


def test_health_is_public_and_says_nothing_else(client):
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "version": __version__, "db": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_health_is_503_while_the_database_file_is_damaged(mc, client, users):
    """The service's own connections are warm (their page caches hold the schema): the check
    still reads the file, sees garbage where the database was, and recovers when it is back."""
    assert client.get("/api/health").status_code == 200
    assert mc.users.list()
    mc.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    path = mc.config.db_path
    original = path.read_bytes()
    with open(path, "r+b") as f:  # in place: the same inode the open connections hold
        f.write(b"not a database, just garbage " * (len(original) // 29 + 1))
    try:
        broken = client.get("/api/health")
        assert broken.status_code == 503
        assert broken.json == {"status": "error", "version": __version__, "db": "error"}
    finally:
        with open(path, "r+b") as f:
            f.write(original)
            f.truncate()
    assert client.get("/api/health").json["db"] == "ok"


def test_health_is_503_when_the_database_file_is_gone(mc, client):
    mc.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    moved = mc.config.db_path.with_name("elsewhere.db")
    mc.config.db_path.rename(moved)
    try:
        assert client.get("/api/health").json == {"status": "error", "version": __version__,
                                                  "db": "error"}
    finally:
        moved.rename(mc.config.db_path)
    assert client.get("/api/health").status_code == 200


def test_status_needs_admin(client, auth):
    assert client.get("/api/backup/status").status_code == 401
    auth.login("olga")
    assert client.get("/api/backup/status").status_code == 403


def _status(client):
    # The API key, not a session: the test moves the clock past a session's 7 days.
    response = client.get("/api/backup/status", headers={"x-api-key": "m" * 32})
    assert response.status_code == 200, response.json
    return response.json


def test_verdicts_over_time(mc, admin_client, clock, plugin):
    first = _status(admin_client)
    assert first["verdict"] == "fail" and first["last_success"] is None
    assert first["reasons"] == ["no backup has ever been made", "auto-backup disabled"]
    assert first["next_run"] == int(next_run(clock())) and first["auto_backup"] is False

    mc.settings.update({"general.auto_backup": "true"}, "alice")
    waiting = _status(admin_client)
    assert (waiting["verdict"], waiting["reasons"]) == ("warn", ["waiting for the first run"])

    made = mc.backups.create("scheduler")
    good = _status(admin_client)
    assert (good["verdict"], good["reasons"]) == ("pass", [])
    assert good["last_success"]["name"] == made.name and good["last_success"]["age_seconds"] == 0
    assert good["last_success"]["size"] == made.size and good["last_success"]["copy"] == "file"
    assert good["backups"]["count"] == 1 and good["backups"]["total_size"] == made.size

    clock.advance(25 * HOUR)
    stale = _status(admin_client)
    assert stale["verdict"] == "warn" and stale["reasons"] == ["last good backup is 25 hours old"]

    plugin.broken = True
    with pytest.raises(Exception):
        mc.backups.create("scheduler")
    failed = _status(admin_client)
    assert failed["verdict"] == "warn"
    assert failed["last_failure"]["reason"].endswith("disk on fire")
    assert "last run failed" in failed["reasons"][-1]

    clock.advance(6 * 24 * HOUR)
    assert _status(admin_client)["verdict"] == "fail"

    plugin.broken = False
    mc.backups.create("scheduler")
    assert _status(admin_client)["verdict"] == "pass"  # a success after the failure clears it
    mc.settings.update({"general.auto_backup": "false"}, "alice")
    off = _status(admin_client)
    assert (off["verdict"], off["reasons"]) == ("warn", ["auto-backup disabled"])


def _metrics(response):
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return {s.name + str(sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.get_data(as_text=True))
            for s in family.samples}


def test_metrics(mc, admin_client, clock, plugin):
    made = mc.backups.create("scheduler")
    plugin.broken = True
    with pytest.raises(Exception):
        mc.backups.create("scheduler")
    (mc.backups.dir / "keep-forever.db").write_bytes(b"x" * 10)
    values = _metrics(admin_client.get("/metrics"))
    assert values["mission_control_backup_last_success_timestamp_seconds[]"] == clock()
    assert values["mission_control_backup_last_size_bytes[]"] == made.size
    assert values["mission_control_backup_last_duration_seconds[]"] >= 0
    assert values["mission_control_backup_last_page_copy[]"] == 0
    assert values["mission_control_backup_runs_total[('result', 'success')]"] == 1
    assert values["mission_control_backup_runs_total[('result', 'failed')]"] == 1
    assert values["mission_control_backup_files[('kind', 'rotating')]"] == 1
    assert values["mission_control_backup_files_bytes[('kind', 'other')]"] == 10
    assert values["mission_control_backup_verdict[('verdict', 'warn')]"] == 1
    assert values["mission_control_backup_verdict[('verdict', 'pass')]"] == 0
    assert values["mission_control_backup_auto_enabled[]"] == 0


def test_metrics_reports_offsite_events(mc, admin_client):
    mc.audit.emit("offsite_copy", "offsite", detail={"ok": True})
    mc.audit.emit("offsite_copy", "offsite", detail={"ok": True})
    mc.audit.emit("offsite_failed", "offsite", detail={"reason": "x"})
    values = _metrics(admin_client.get("/metrics"))
    assert values["mission_control_offsite_events_total[('action', 'offsite_copy')]"] == 2
    assert values["mission_control_offsite_events_total[('action', 'offsite_failed')]"] == 1


def test_metrics_auth(mc, client, users):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"x-api-key": "wrong"}).status_code == 401
    _metrics(client.get("/metrics", headers={"Authorization": "Bearer " + "m" * 32}))
    client.post("/api/auth/login", json={"username": "vic", "password": PASSWORD})
    assert client.get("/metrics").status_code == 403


def test_each_app_has_its_own_registry(make_mc, tmp_path):
    """Two services in one process report their own numbers (no global registry)."""
    from dataclasses import replace
    from mission_control.config import Config
    from mission_control.core import MissionControl
    one = make_mc(api_key="k" * 32)
    one.backups.create("test")
    config = replace(Config.from_env({}, data_dir=tmp_path / "two"), api_key="k" * 32)
    with MissionControl(config, entry_points=False, create=True) as two:
        headers = {"x-api-key": "k" * 32}
        a = _metrics(Client(WebApp(one)).get("/metrics", headers=headers))
        b = _metrics(Client(WebApp(two)).get("/metrics", headers=headers))
    assert a["mission_control_backup_runs_total[('result', 'success')]"] == 1
    assert b["mission_control_backup_runs_total[('result', 'success')]"] == 0


def test_metrics_without_prometheus_client(mc, admin_client, monkeypatch):
    from mission_control import metrics
    monkeypatch.setattr(metrics, "available", lambda: False)
    response = admin_client.get("/metrics")
    assert response.status_code == 501 and "[metrics]" in response.json["error"]


def test_a_backup_that_fell_back_to_the_page_copy_shows_in_status_and_metrics(
        mc, admin_client, monkeypatch, caplog):
    """The kernel copy cannot run (no Python executable to start, as in some embedded servers):
    backups still work, page by page and slower; the log says why on each backup, the status
    says `copy: pages` and a gauge turns 1, so a dashboard shows it."""
    monkeypatch.setattr(sys, "executable", "/nonexistent/python3")
    with caplog.at_level(logging.WARNING, logger="mission_control.backup.snapshot"):
        mc.backups.create("scheduler")
    assert "copying it page by page" in caplog.text
    assert _status(admin_client)["last_success"]["copy"] == "pages"
    values = _metrics(admin_client.get("/metrics"))
    assert values["mission_control_backup_last_page_copy[]"] == 1


def test_the_newest_rotating_backup_failing_verification_is_a_warn_naming_it(mc, admin_client,
                                                                             clock):
    mc.settings.update({"general.auto_backup": "true"}, "alice")
    older = mc.backups.create("scheduler")
    clock.advance(60)
    newest = mc.backups.create("scheduler")
    assert _status(admin_client)["verdict"] == "pass"
    with open(newest.path, "r+b") as f:  # a bad sector in the middle of the copy
        f.seek(newest.size // 2)
        f.write(b"\xff" * 4096)
    checked = admin_client.post("/api/backup/verify", json={"name": newest.name})
    assert checked.status_code == 200 and checked.json["ok"] is False
    failed = _status(admin_client)
    assert failed["verdict"] == "warn"
    assert failed["reasons"] == [f"the newest backup {newest.name} failed verification"]

    clock.advance(60)  # a newer backup is the one a restore would take: the warning goes
    mc.backups.create("scheduler")
    assert _status(admin_client)["verdict"] == "pass"
    assert admin_client.post("/api/backup/verify", json={"name": older.name}).json["ok"]


def test_an_older_or_kept_backup_failing_verification_leaves_the_verdict(mc, admin_client):
    mc.settings.update({"general.auto_backup": "true"}, "alice")
    mc.backups.create("scheduler")
    (mc.backups.dir / "keep-forever.db").write_bytes(b"not a database")
    checked = admin_client.post("/api/backup/verify", json={"name": "keep-forever.db"})
    assert checked.json["ok"] is False
    assert _status(admin_client)["verdict"] == "pass"


def test_a_stored_setting_that_no_longer_validates_is_a_warn_naming_it(mc, admin_client):
    """Read as its default (the service keeps running), but never silently: a stored
    `pitr.age_recipients` gone bad would otherwise seal the stream to other keys unannounced."""
    mc.settings.update({"general.auto_backup": "true"}, "alice")
    mc.backups.create("scheduler")
    assert _status(admin_client)["verdict"] == "pass"
    mc.db.execute("INSERT INTO settings (key, value, updated_by, updated_at) "
                  "VALUES ('general.backup_retention_count', 'many', 'sqlite3', 0)")
    assert mc.settings.get("general.backup_retention_count") == 10
    status = _status(admin_client)
    assert status["verdict"] == "warn"
    assert status["reasons"] == ["setting general.backup_retention_count holds a value that is no "
                                 "longer valid; its default is used until it is set again"]
