"""Health tells the truth about off-site copies and missed daily runs; the metrics token's reach."""
import json
import logging
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mission_control import hookimpl
from mission_control.config import Config, ConfigError
from mission_control.health import backup_status

from tests.support.scheduling import FakeClock

TOKEN = "metrics-" + "t" * 24
API_KEY = "k" * 32
HOUR = 3600
UNMOUNTED = "off-site copy to dir failed: offsite.dir.path is not an existing absolute folder " \
            "(is the share mounted?)"


class Tape:
    """A third-party off-site plugin: configured while `on`, copying each backup while `copies`."""

    on = True
    copies = False

    @hookimpl
    def offsite_targets(self):
        return ["tape"] if self.on else None

    @hookimpl
    def post_backup(self, mc, backup, actor):
        if self.on and self.copies:
            mc.offsite.succeeded("tape", backup, actor, location="tape://drive-1")


@pytest.fixture
def clock():
    # Backup files carry their real mtime, so the fake clock starts at the real time.
    return FakeClock(time.time())


@pytest.fixture
def tape():
    return Tape()


@pytest.fixture
def mc(make_mc, tape):
    return make_mc(plugins=[tape], api_key=API_KEY, metrics_token=TOKEN)


def call(base, method, path, token=None, key=None):
    """`(status, body text)` of one request to the live server."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if key:
        headers["x-api-key"] = key
    request = urllib.request.Request(base + path, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def metrics(base):
    status, text = call(base, "GET", "/metrics", token=TOKEN)
    assert status == 200, text
    return {s.name + str(sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def status_of(base):
    status, text = call(base, "GET", "/api/backup/status", token=TOKEN)
    assert status == 200, text
    return json.loads(text)


def test_an_unmounted_offsite_folder_fails_the_verdict_and_the_metrics_show_it(
        mc, tape, live_server, tmp_path, clock):
    tape.on = False
    nas = tmp_path / "nas"
    mc.settings.update({"general.auto_backup": "true", "offsite.dir.path": str(nas)}, "alice")
    assert call(live_server, "POST", "/api/backup", key=API_KEY)[0] == 200

    health = status_of(live_server)  # the metrics token: the failure, not its text
    assert (health["verdict"], health["reasons"]) == ("fail", ["off-site copy to dir failed"])
    [target] = health["offsite"]
    assert target.items() >= {"target": "dir", "configured": True, "ok": False, "failures": 1,
                              "last_success_at": None,
                              "problem": "off-site copy to dir failed"}.items()
    status, text = call(live_server, "GET", "/api/backup/status", key=API_KEY)
    assert (status, json.loads(text)["reasons"]) == (200, [UNMOUNTED])  # an admin: the reason
    values = metrics(live_server)
    assert values["mission_control_offsite_failures_total[('target', 'dir')]"] == 1
    assert values["mission_control_offsite_last_success_timestamp_seconds[('target', 'dir')]"] == 0
    assert values["mission_control_offsite_ok[('target', 'dir')]"] == 0
    assert values["mission_control_backup_verdict[('verdict', 'fail')]"] == 1
    # A failed copy uploaded nothing that counts: no series for the last copy's size.
    assert "mission_control_offsite_last_uploaded_bytes[('target', 'dir')]" not in values

    nas.mkdir()  # the share is mounted again
    assert call(live_server, "POST", "/api/backup", key=API_KEY)[0] == 200
    health = status_of(live_server)
    assert (health["verdict"], health["reasons"]) == ("pass", [])
    assert health["offsite"][0]["ok"] is True and health["offsite"][0]["failures"] == 1
    values = metrics(live_server)
    assert values["mission_control_offsite_last_success_timestamp_seconds[('target', 'dir')]"] \
        == int(clock())
    assert values["mission_control_offsite_failures_total[('target', 'dir')]"] == 1
    assert values["mission_control_offsite_ok[('target', 'dir')]"] == 1
    assert values["mission_control_backup_verdict[('verdict', 'pass')]"] == 1
    [copy] = nas.glob("mc-backup-*.db")
    stored = copy.stat().st_size
    assert (health["offsite"][0]["kind"], health["offsite"][0]["uploaded_bytes"],
            health["offsite"][0]["chain_length"]) == ("full", stored, 0)
    assert values["mission_control_offsite_last_uploaded_bytes[('target', 'dir')]"] == stored
    assert values["mission_control_offsite_chain_length[('target', 'dir')]"] == 0
    assert values["mission_control_offsite_uploaded_bytes_total[('target', 'dir')]"] == stored


def test_the_metrics_token_reads_monitoring_and_nothing_else(mc, live_server):
    assert metrics(live_server)["mission_control_backup_auto_enabled[]"] == 0
    assert status_of(live_server)["verdict"] == "fail"
    for method, path in (("GET", "/api/backup"), ("GET", "/api/audit"), ("GET", "/api/offsite"),
                         ("GET", "/api/settings"), ("POST", "/api/backup")):
        status, text = call(live_server, method, path, token=TOKEN)
        assert (status, json.loads(text)["error"]) == (401, "Authentication required"), path
    assert mc.backups.list() == []
    # Only as a bearer token, and only the exact token.
    assert call(live_server, "GET", "/metrics", key=TOKEN)[0] == 401
    assert call(live_server, "GET", "/metrics", token=TOKEN[:-1] + "x")[0] == 401
    assert call(live_server, "GET", "/api/backup/status", token=TOKEN + "x")[0] == 401
    assert call(live_server, "GET", "/metrics")[0] == 401
    assert call(live_server, "GET", "/api/backup", key=API_KEY)[0] == 200  # the admin key still


@pytest.mark.parametrize("environ, problem", [
    ({"MC_METRICS_TOKEN": "short"}, "at least 16 characters"),
    ({"MC_METRICS_TOKEN": API_KEY, "API_KEY": API_KEY}, "must differ from API_KEY"),
])
def test_a_weak_metrics_token_is_refused_at_start(environ, problem):
    with pytest.raises(ConfigError, match=problem):
        Config.from_env(environ)


def test_a_target_the_newest_backup_never_reached_fails_after_the_allowed_lag(mc, tape, clock):
    mc.settings.update({"general.auto_backup": "true"}, "alice")
    made = mc.backups.create("scheduler")
    fresh = backup_status(mc)
    assert (fresh["verdict"], fresh["reasons"]) == ("pass", [])
    assert fresh["offsite"] == [{"target": "tape", "configured": True, "ok": None, "backup": None,
                                 "message": None, "finished_at": None, "last_success_at": None,
                                 "failures": 0, "problem": None, "stored_size": None, "ratio": None,
                                 "kind": None, "uploaded_bytes": None, "chain_length": None,
                                 "held": [], "changed": [], "missing": [], "broken": [],
                                 "chained": [],
                                 "uncataloged": [], "warning": None, "notes": [],
                                 "drill": None}]

    clock.advance(50 * 60)
    assert backup_status(mc)["verdict"] == "pass"  # within offsite.max_lag_minutes (60)
    clock.advance(20 * 60)
    late = backup_status(mc)
    assert late["verdict"] == "fail"
    [reason] = late["reasons"]
    assert reason.startswith(f"no off-site copy at tape of the newest backup {made.name} after ")
    assert late["offsite"][0]["problem"] == reason

    mc.settings.update({"offsite.max_lag_minutes": 120}, "alice")
    assert backup_status(mc)["verdict"] == "pass"

    tape.copies = True
    mc.backups.create("scheduler")
    clock.advance(5 * HOUR)
    copied = backup_status(mc)
    assert (copied["verdict"], copied["reasons"]) == ("pass", [])
    assert copied["offsite"][0]["ok"] is True and copied["offsite"][0]["last_success_at"]


def test_a_target_no_longer_configured_is_listed_but_held_to_nothing(mc, tape, tmp_path):
    mc.settings.update({"general.auto_backup": "true",
                        "offsite.dir.path": str(tmp_path / "gone")}, "alice")
    tape.on = False
    mc.backups.create("scheduler")
    assert backup_status(mc)["verdict"] == "fail"
    mc.settings.reset("offsite.dir.path", "alice")
    now = backup_status(mc)
    assert (now["verdict"], now["reasons"]) == ("pass", [])
    assert [(t["target"], t["configured"], t["ok"], t["problem"]) for t in now["offsite"]] == \
        [("dir", False, False, None)]


def test_auto_backup_without_a_success_for_26_hours_fails(mc, tape, clock):
    tape.on = False
    mc.settings.update({"general.auto_backup": "true"}, "alice")
    clock.advance(25 * HOUR)
    assert backup_status(mc)["reasons"] == ["waiting for the first run"]
    clock.advance(HOUR)
    missed = backup_status(mc)
    assert (missed["verdict"], missed["reasons"]) == (
        "fail", ["auto-backup is on but no backup succeeded in the last 26 hours"])

    mc.backups.create("scheduler")
    assert backup_status(mc)["verdict"] == "pass"
    clock.advance(25 * HOUR)
    assert backup_status(mc)["reasons"] == ["last good backup is 25 hours old"]
    clock.advance(HOUR)
    assert backup_status(mc)["verdict"] == "fail"


class Broken:
    @hookimpl
    def offsite_targets(self):
        raise RuntimeError("cannot read my config")


def test_a_plugin_failing_to_name_its_targets_is_logged_and_counts_none(make_mc, caplog):
    mc = make_mc(plugins=[Broken()])
    with caplog.at_level(logging.ERROR, logger="mission_control.plugin_manager"):
        assert mc.offsite.configured() == []
    assert "failed in offsite_targets" in caplog.text


@pytest.mark.slow
def test_the_metrics_token_does_not_see_where_offsite_copies_go(make_mc, aws_env):
    """A failed S3 copy's and drill's error text name the endpoint, the bucket and the prefix:
    admins read them in the status, the metrics token reads the same verdict without them."""
    from werkzeug.test import Client

    from mission_control.web import WebApp

    from tests.support.receivers import free_port
    mc = make_mc(api_key=API_KEY, metrics_token=TOKEN)
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens: the copy and drill fail
    mc.settings.update({"offsite.s3.bucket": "corp-archive-eu", "offsite.s3.endpoint_url":
                        endpoint, "offsite.s3.prefix": "payroll-db",
                        "offsite.s3.region": "us-east-1"}, "alice")
    client = Client(WebApp(mc))
    admin = {"x-api-key": API_KEY}
    assert client.post("/api/backup", headers=admin).status_code == 200
    assert client.post("/api/scheduler", json={"task_id": "offsite_verify"},
                       headers=admin).status_code == 500  # the drill failed too
    secret = ("127.0.0.1:" + endpoint.rsplit(":", 1)[1], "corp-archive-eu", "payroll-db")

    full = client.get("/api/backup/status", headers=admin)
    [target] = full.json["offsite"]
    assert all(part in target["message"] and part in target["drill"]["message"]
               for part in secret[1:]), target
    assert any(secret[0] in reason for reason in full.json["reasons"]), full.json["reasons"]

    monitored = client.get("/api/backup/status", headers={"Authorization": f"Bearer {TOKEN}"})
    assert monitored.status_code == 200
    assert not any(part in monitored.get_data(as_text=True) for part in secret), monitored.json
    assert monitored.json["verdict"] == full.json["verdict"] == "fail"
    [target] = monitored.json["offsite"]
    assert target.items() >= {"target": "s3", "configured": True, "ok": False, "failures": 1,
                              "message": None, "problem": "off-site copy to s3 failed; the "
                              "last restore drill of s3 failed"}.items()
    assert target["drill"]["ok"] is False and target["drill"]["message"] is None
