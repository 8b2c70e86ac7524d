"""`/api/scheduler` through the real WSGI app: status shape, manual runs, rate limit, failures."""
import re
from datetime import datetime, timezone

import pytest
from werkzeug.test import Client

from mission_control import hookimpl
from mission_control.web import WebApp
from tests.support.accounts import PASSWORD, Auth


def ts(text):
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def test_status_shape_before_any_run(admin_client, clock):
    clock.now = ts("2026-03-04 15:30:22")
    response = admin_client.get("/api/scheduler")
    assert response.status_code == 200
    assert response.json == {"tasks": [{
        "id": "auto_backup", "name": "Auto Backup", "enabled": False, "lastRun": None,
        "nextRun": int(ts("2026-03-05 03:00:00") * 1000), "running": False, "lastResult": None,
        "schedule": "0 3 * * *", "description": "every day at 03:00 UTC", "runningSince": None}, {
        "id": "offsite_verify", "name": "Off-site Restore Drill", "enabled": False,
        "lastRun": None, "nextRun": int(ts("2026-03-08 04:00:00") * 1000), "running": False,
        "lastResult": None, "schedule": "0 4 * * 0",
        "description": "at 04:00 UTC, only on Sunday", "runningSince": None}]}


def test_enabling_shows_at_once(admin_client):
    admin_client.put("/api/settings", json={"settings": {"general.auto_backup": "true"}})
    assert admin_client.get("/api/scheduler").json["tasks"][0]["enabled"] is True
    admin_client.put("/api/settings", json={"settings": {"general.auto_backup": False}})
    assert admin_client.get("/api/scheduler").json["tasks"][0]["enabled"] is False


def test_manual_run(admin_client, mc, clock):
    clock.now = ts("2026-03-04 15:30:22")
    response = admin_client.post("/api/scheduler", json={"task_id": "auto_backup"})
    assert response.status_code == 200
    body = response.json
    assert body["ok"] is True and re.fullmatch(r"Backup created \(\d+KB\)", body["message"])
    [made] = mc.backups.list()
    assert body["backup"] == made.to_json()
    assert body["message"] == f"Backup created ({round(made.size / 1024)}KB)"
    task = admin_client.get("/api/scheduler").json["tasks"][0]
    assert task["lastRun"] == int(clock.now * 1000)
    assert task["lastResult"] == {"ok": True, "message": body["message"],
                                  "timestamp": int(clock.now * 1000)}
    [event] = mc.audit_store.query(action="auto_backup")[0]
    assert (event["actor"], event["target_id"]) == ("alice", "auto_backup")
    assert event["detail"]["trigger"] == "manual" and event["detail"]["backup"] == made.name
    assert [e["actor"] for e in mc.audit_store.query(action="backup_create")[0]] == ["alice"]


@pytest.mark.parametrize("data, body", [
    ("", {"error": "Request body required"}),
    ('{"task_id": "auto_cleanup"}', {"error": "task_id required: auto_backup, offsite_verify"}),
    ("{}", {"error": "task_id required: auto_backup, offsite_verify"}),
    ('{"task_id": 1}', {"error": "task_id required: auto_backup, offsite_verify"}),
    ('["auto_backup"]', {"error": "task_id required: auto_backup, offsite_verify"}),
    ('{"task_id": "auto_backup", "x": 1}', {"error": "Validation failed", "details": ["x: unknown field"]}),
])
def test_bad_requests(admin_client, mc, data, body):
    response = admin_client.post("/api/scheduler", data=data,
                                 headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json) == (400, body)
    assert mc.backups.list() == []


@pytest.mark.parametrize("user, status", [(None, 401), ("olga", 403), ("vic", 403)])
def test_admin_only(client, auth, mc, user, status):
    if user:
        auth.login(user)
    assert client.get("/api/scheduler").status_code == status
    assert client.post("/api/scheduler", json={"task_id": "auto_backup"}).status_code == status
    assert mc.backups.list() == []


def logged_in(make_mc, **overrides):
    mc = make_mc(**overrides)
    mc.users.add("alice", PASSWORD, role="admin")
    client = Client(WebApp(mc))
    assert Auth(client).login().status_code == 200
    return mc, client


def test_manual_runs_count_against_the_backup_rate_limit(make_mc, clock):
    mc, client = logged_in(make_mc, backup_rate_limit=2)
    assert client.post("/api/backup").status_code == 200
    clock.advance(1)
    first = client.post("/api/scheduler", json={"task_id": "auto_backup"})
    assert first.status_code == 200
    clock.advance(1)
    over = client.post("/api/scheduler", json={"task_id": "auto_backup"})
    assert over.status_code == 429 and over.json["error"].startswith("Too many backups")
    assert int(over.headers["Retry-After"]) > 0
    assert client.post("/api/backup").status_code == 429
    # the refused run is not a run: lastResult still shows the one that happened
    task = client.get("/api/scheduler").json["tasks"][0]
    assert task["lastResult"]["message"] == first.json["message"]
    assert len(mc.audit_store.query(action="auto_backup")[0]) == 1
    assert len(mc.backups.list()) == 2


def test_scheduled_runs_do_not_use_the_budget(make_mc, clock):
    mc, client = logged_in(make_mc, backup_rate_limit=1)
    clock.now = ts("2026-03-04 02:00:00")
    client.put("/api/settings", json={"settings": {"general.auto_backup": "true"}})
    clock.now = ts("2026-03-04 03:00:00")
    assert mc.scheduler.run_due()[0].ok
    assert client.post("/api/scheduler", json={"task_id": "auto_backup"}).status_code == 200


class Broken:
    @hookimpl
    def pre_backup(self, db_path):
        raise OSError(28, "No space left on device", str(db_path))


def test_failed_manual_run(make_mc):
    mc, client = logged_in(make_mc, plugins=[Broken()])
    response = client.post("/api/scheduler", json={"task_id": "auto_backup"})
    assert response.status_code == 500
    message = "Backup failed: OSError: No space left on device"
    assert response.json == {"ok": False, "message": message, "error": message}
    assert str(mc.config.data_dir) not in response.get_data(as_text=True)
    last = client.get("/api/scheduler").json["tasks"][0]["lastResult"]
    assert last["ok"] is False and last["message"] == message
    assert str(mc.config.data_dir) not in client.get("/api/scheduler").get_data(as_text=True)
    assert mc.backups.list() == []
    assert [e["detail"]["ok"] for e in mc.audit_store.query(action="auto_backup")[0]] == [False]


def test_running_is_shown_while_a_run_is_in_progress(make_mc):
    seen = []

    class Peek:
        @hookimpl
        def pre_backup(self, mc):
            task = mc.scheduler.status()[0]
            seen.append((task.running, task.running_since))

    mc, client = logged_in(make_mc, plugins=[Peek()])
    client.post("/api/scheduler", json={"task_id": "auto_backup"})
    assert seen == [(True, int(mc.clock() * 1000))]  # since when, for the page's elapsed time
    task = client.get("/api/scheduler").json["tasks"][0]
    assert (task["running"], task["runningSince"]) == (False, None)


def test_a_busy_backup_lock_passes_through_as_409(make_mc):
    mc, client = logged_in(make_mc, backup_lock_timeout=0.05)
    with mc.backups.lock.hold(0) as locked:  # another backup (or process) is running
        assert locked
        response = client.post("/api/scheduler", json={"task_id": "auto_backup"})
    assert (response.status_code, response.json) == (409, {"error": "A backup is already in progress"})
    assert response.headers["Retry-After"]
    assert client.get("/api/scheduler").json["tasks"][0]["lastResult"] is None
    assert mc.audit_store.query(action="auto_backup")[1] == 0
