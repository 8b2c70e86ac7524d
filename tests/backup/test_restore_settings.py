"""A restore keeps the live protection settings and scheduler state (issue 11, item 2)."""
import json
import urllib.request

import pytest

from mission_control import SettingDef, hookimpl
from mission_control.scheduling.state import SchedulerState
from mission_control.settings import configures_protection

from tests.support.accounts import PASSWORD
from tests.support.backup_files import add_tasks, titles
from tests.support.cli_run import run_cli

#: In the slow lane (real servers and CLI runs: ~2.7 s on the 2-core machine).
pytestmark = pytest.mark.slow

#: What the backup holds (defaults, except where named) and what is live when it is restored.
LIVE = {"general.auto_backup": "true", "general.backup_retention_count": "3",
        "offsite.dir.path": "/mnt/offsite", "offsite.s3.secret_access_key": "live-secret"}
IN_BACKUP = {"general.site_name": "Old name", "diskguard.factor": "5"}


def _backup_then_change(mc):
    """A backup with `IN_BACKUP`, then the live settings changed to `LIVE` and a scheduler run."""
    mc.settings.update(IN_BACKUP, "alice")
    add_tasks(mc, "old")
    name = mc.backups.create("test").name
    mc.settings.update({**LIVE, "general.site_name": "Live name"}, "alice")
    mc.settings.reset("diskguard.factor", "alice")
    add_tasks(mc, "new")
    SchedulerState(mc.db).claim_slot("auto_backup", "2026-03-04T03:00:00Z", mc.clock())
    with mc.db.transaction() as conn:  # an off-site copy made since the backup
        conn.execute("INSERT INTO offsite_copies (target, remote_name, backup, size, sha256,"
                     " plain_size, plain_sha256, compressed, encrypted, created_at)"
                     " VALUES ('dir', 'x.db.zst', ?, 1, 'a', 2, 'b', 1, 0, 0)", (name,))
    return name


def _slot(mc):
    return (SchedulerState(mc.db).get("auto_backup") or {}).get("last_slot")


def _copies(mc):
    return [r["remote_name"] for r in mc.db.query("SELECT remote_name FROM offsite_copies")]


def test_restore_keeps_auto_backup_on_and_says_what_it_kept(mc, users, admin_client):
    name = _backup_then_change(mc)
    response = admin_client.post("/api/backup/restore", json={"name": name})
    assert response.status_code == 200, response.json
    assert response.json["kept_settings"] == sorted([*LIVE, "diskguard.factor"])
    assert titles(mc) == ["old"]  # the data is the backup's
    assert mc.settings.get("general.site_name") == "Old name"  # not a protection setting
    assert mc.settings.get("general.auto_backup") is True
    assert mc.settings.get("general.backup_retention_count") == 3
    assert mc.settings.get("offsite.dir.path") == "/mnt/offsite"
    assert mc.settings.get("offsite.s3.secret_access_key") == "live-secret"
    assert mc.settings.changed_at("diskguard.factor") is None  # default live: default after
    assert _slot(mc) == "2026-03-04T03:00:00Z"
    assert _copies(mc) == ["x.db.zst"]
    tasks = admin_client.get("/api/scheduler").json["tasks"]
    assert tasks[0]["enabled"] is True
    event = mc.audit_store.query(action="backup_restore")[0][0]
    assert event["detail"]["kept_settings"] == response.json["kept_settings"]


def test_keep_settings_false_restores_the_files_values(mc, users, admin_client):
    name = _backup_then_change(mc)
    response = admin_client.post("/api/backup/restore",
                                 json={"name": name, "keep_settings": False})
    assert response.status_code == 200, response.json
    assert response.json["kept_settings"] == []
    assert mc.settings.get("general.auto_backup") is False
    assert mc.settings.get("general.backup_retention_count") == 10
    assert mc.settings.get("offsite.dir.path") == ""
    assert mc.settings.get("offsite.s3.secret_access_key") == ""
    assert mc.settings.get("diskguard.factor") == 5
    assert _slot(mc) is None and _copies(mc) == []


def test_nothing_differs_nothing_listed(mc, users, admin_client):
    name = mc.backups.create("test").name
    response = admin_client.post("/api/backup/restore", json={"name": name, "keep_settings": True})
    assert response.status_code == 200 and response.json["kept_settings"] == []


@pytest.mark.parametrize("value", ["yes", 1, None, []])
def test_keep_settings_must_be_a_boolean(mc, users, admin_client, value):
    name = _backup_then_change(mc)
    before = sorted(p.name for p in mc.backups.dir.iterdir())
    response = admin_client.post("/api/backup/restore", json={"name": name, "keep_settings": value})
    assert response.status_code == 400
    assert response.json["details"] == ["keep_settings: must be true or false"]
    assert sorted(p.name for p in mc.backups.dir.iterdir()) == before  # no safety backup
    assert titles(mc) == ["old", "new"]


def test_the_naming_rule_and_plugin_settings(make_mc):
    def host(key, **kw):
        return SettingDef(key, "text", "", "", "general", **kw)
    for key in ("general.auto_backup", "general.auto_backup_schedule", "retention.keep_daily",
                "general.backup_retention_count", "general.safety_copies_keep",
                "offsite.max_lag_minutes", "backup.io_limit_mb_s"):
        assert configures_protection(host(key)), key
    assert not configures_protection(host("general.site_name"))
    assert not configures_protection(host("general.auto_backup", protection=False))

    class Pager:
        @hookimpl
        def register_settings(self):
            return [SettingDef("pager.url", "text", "", "where to page", "alerts"),
                    SettingDef("pager.note", "text", "", "a label", "alerts", protection=False)]

    mc = make_mc(plugins=[Pager()])
    keys = mc.settings.protection_keys()
    assert "pager.url" in keys and "pager.note" not in keys
    # The built-in plugins' settings (alerts, off-site, audit sinks, disk guard) all count.
    assert {"healthchecks.url", "email.password", "offsite.dir.path", "audit.jsonl.path",
            "diskguard.factor", "offsite.max_lag_minutes"} <= set(keys)
    assert set(mc.settings.definitions) - set(keys) == {"general.site_name", "pager.note"}


def _request(url, method="GET", body=None, cookie=None):
    headers = {"Content-Type": "application/json", **({"Cookie": cookie} if cookie else {})}
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method,
                                                       headers=headers), timeout=60) as response:
        return response.headers, json.loads(response.read())


def test_through_the_real_server_the_session_and_auto_backup_survive(mc, users, live_server):
    headers, _ = _request(f"{live_server}/api/auth/login", "POST",
                          {"username": "alice", "password": PASSWORD})
    cookie = headers["Set-Cookie"].split(";")[0]
    _, made = _request(f"{live_server}/api/backup", "POST", {}, cookie)  # holds alice's session
    _request(f"{live_server}/api/settings", "PUT",
             {"settings": {"general.auto_backup": "true"}}, cookie)
    _, result = _request(f"{live_server}/api/backup/restore", "POST",
                         {"name": made["backup"]["name"]}, cookie)
    assert result["kept_settings"] == ["general.auto_backup"]
    assert result["session"]["logged_in"] is True
    _, settings = _request(f"{live_server}/api/settings", cookie=cookie)
    value = {s["key"]: s["value"] for s in settings["settings"]}["general.auto_backup"]
    assert value == "true"
    _, scheduler = _request(f"{live_server}/api/scheduler", cookie=cookie)
    assert scheduler["tasks"][0]["enabled"] is True


def test_cli_keeps_and_says_so_or_restores_with_the_flag(mc):
    name = _backup_then_change(mc)
    data_dir = str(mc.config.data_dir)
    kept = run_cli("backup", "restore", name, "--yes", "--data-dir", data_dir)
    assert kept.code == 0, kept.err
    assert ("protection settings: kept the live values of diskguard.factor, general.auto_backup,"
            in kept.out)
    assert mc.settings.get("general.auto_backup") is True and titles(mc) == ["old"]
    restored = run_cli("backup", "restore", name, "--yes", "--restore-settings",
                       "--data-dir", data_dir)
    assert restored.code == 0, restored.err
    assert "protection settings and scheduler state: restored from the backup" in restored.out
    assert mc.settings.get("general.auto_backup") is False
    assert _slot(mc) is None


@pytest.mark.parametrize("keep", [True, False])
def test_a_restore_to_a_moment_keeps_them_too(make_mc, keep):
    from tests.support.accounts import logged_in_client
    from tests.support.pitr_engine import Engine
    mc = make_mc()
    client = logged_in_client(mc)
    moment = mc.backups.create("test").path  # auto-backup was off at that moment
    mc.settings.update({"general.auto_backup": "true"}, "alice")
    mc.pm.register(Engine(moment))
    answer = client.post("/api/backup/restore",
                         json={"timestamp": "1970-01-01T00:20:00Z", "keep_settings": keep})
    assert answer.status_code == 200, answer.json
    assert answer.json["kept_settings"] == (["general.auto_backup"] if keep else [])
    assert mc.settings.get("general.auto_backup") is keep
