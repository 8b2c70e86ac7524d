"""The built-in `healthchecks` plugin against a real HTTP receiver on loopback."""
import os
import shutil
import subprocess
import sys

import pytest

from mission_control import SCHEDULER
from mission_control.errors import ValidationFailed
from mission_control.builtins.healthchecks import ping_url
from tests.support.accounts import PASSWORD
from tests.support.receivers import WAIT, PingReceiver, free_port
from tests.support.scheduling import enable
from tests.support.servers import Http

#: In the slow lane (real CLI runs and servers: ~7 s on the 2-core machine).
pytestmark = pytest.mark.slow


@pytest.fixture
def receiver():
    with PingReceiver() as running:
        yield running


def configure(mc, url, **more):
    mc.settings.update({"healthchecks.url": url, **more}, "alice")


def run_scheduled(smc, at):
    at("2026-03-04 02:00:00")
    enable(smc)
    at("2026-03-04 03:00:00")
    [result] = smc.scheduler.run_due()
    return result


def refuse_backups(mc):
    free_mb = shutil.disk_usage(mc.backups.dir).free // 2**20
    mc.settings.update({"diskguard.min_free_mb": free_mb + 10**6}, "alice")


def test_a_scheduled_backup_pings_start_then_success(smc, at, receiver):
    configure(smc, f"{receiver.url}/ping/abc")
    result = run_scheduled(smc, at)
    assert result.ok
    requests = receiver.wait_for(2)
    assert [(m, p) for m, p, _ in requests] == [("POST", "/ping/abc/start"),
                                                ("POST", "/ping/abc")]
    assert result.backup.name in requests[1][2] and "scheduler" in requests[0][2]


def test_a_refused_scheduled_backup_pings_fail_with_the_reason(smc, at, receiver):
    configure(smc, f"{receiver.url}/ping/abc/")
    refuse_backups(smc)
    result = run_scheduled(smc, at)
    assert not result.ok
    requests = receiver.wait_for(2)
    assert [p for _, p, _ in requests] == ["/ping/abc/start", "/ping/abc/fail"]
    assert "Not enough free disk space" in requests[1][2]
    assert smc.outbox.wait_idle(WAIT) and len(receiver.requests) == 2


def test_manual_backups_ping_only_when_all_backups_is_on(mc, users, live_server, receiver):
    configure(mc, f"{receiver.url}/p")
    http = Http(live_server)
    assert http("POST", "/api/auth/login", {"username": "alice", "password": PASSWORD})[0] == 200
    assert http("POST", "/api/backup")[0] == 200
    assert mc.outbox.wait_idle(WAIT) and receiver.requests == []

    configure(mc, f"{receiver.url}/p", **{"healthchecks.all_backups": True})
    assert http("POST", "/api/backup")[0] == 200
    assert receiver.wait_for(2) and receiver.paths() == ["/p/start", "/p"]
    refuse_backups(mc)
    assert http("POST", "/api/backup")[0] == 507
    assert receiver.wait_for(4) and receiver.paths()[2:] == ["/p/start", "/p/fail"]


def test_uploads_and_restores_do_not_ping(mc, admin_client, receiver):
    """They ask the disk guard through pre_backup, but are not backups: no start without an end."""
    configure(mc, f"{receiver.url}/p", **{"healthchecks.all_backups": True})
    name = mc.backups.create(SCHEDULER).name
    assert receiver.wait_for(2) and receiver.paths() == ["/p/start", "/p"]
    data = (mc.backups.dir / name).read_bytes()
    uploaded = admin_client.post("/api/backup/upload", data=data,
                                 content_type="application/octet-stream")
    assert uploaded.status_code == 200, uploaded.json
    restored = admin_client.post("/api/backup/restore", json={"name": name})
    assert restored.status_code == 200, restored.json
    assert mc.outbox.wait_idle(WAIT) and receiver.paths() == ["/p/start", "/p"]


def test_a_hanging_monitor_does_not_hold_the_backup(mc, users, live_server, receiver):
    configure(mc, f"{receiver.url}/p", **{"healthchecks.all_backups": True,
                                           "healthchecks.timeout_seconds": WAIT * 2})
    receiver.hold.clear()  # the monitor accepts the ping and never answers, until released
    http = Http(live_server)
    assert http("POST", "/api/auth/login", {"username": "alice", "password": PASSWORD})[0] == 200
    status, _, body = http("POST", "/api/backup")
    # The backup answered while its start ping was still unanswered.
    assert status == 200 and body["success"] is True and receiver.answered == 0
    assert receiver.wait_for(1)[0][1] == "/p/start"
    receiver.hold.set()
    assert receiver.wait_for(2) and receiver.paths() == ["/p/start", "/p"]


def test_a_dead_monitor_never_fails_the_backup_and_is_audited(make_mc):
    mc = make_mc()
    mc.outbox.retry_delays = (0.01, 0.01)
    configure(mc, f"http://127.0.0.1:{free_port()}/p")
    made = mc.backups.create(SCHEDULER)
    assert made.path.exists()
    assert mc.outbox.wait_idle(WAIT)
    failures = mc.audit_store.query(action="alert_failed")[0]
    assert sorted(f["detail"]["ping"] for f in failures) == ["start", "success"]
    assert all(f["actor"] == "scheduler" and f["target_id"] == "healthchecks" and
               f["detail"]["host"] == "127.0.0.1" and "refused" in f["detail"]["reason"]
               for f in failures)


def test_a_failing_monitor_is_tried_three_times(make_mc):
    mc = make_mc()
    mc.outbox.retry_delays = (0.01, 0.01)
    with PingReceiver(status=503) as broken:
        configure(mc, f"{broken.url}/p")
        mc.backups.create(SCHEDULER)
        assert mc.outbox.wait_idle(WAIT)
        assert broken.paths() == ["/p/start"] * 3 + ["/p"] * 3
    reasons = [f["detail"]["reason"] for f in mc.audit_store.query(action="alert_failed")[0]]
    assert reasons == ["HTTPError: HTTP Error 503: Service Unavailable"] * 2


def test_no_url_no_ping_and_a_bad_url_is_refused_when_set(make_mc):
    mc = make_mc()
    mc.backups.create(SCHEDULER)
    assert mc.outbox.wait_idle(WAIT) and mc.audit_store.query(action="alert_failed")[1] == 0
    with pytest.raises(ValidationFailed) as refused:
        configure(mc, "ftp://example.com/p")
    assert refused.value.details == ["healthchecks.url: must be an http(s) URL with a host, "
                                     "such as https://example.com/path"]
    with mc.db.transaction() as conn:  # stored before the check existed: read as no URL at all
        conn.execute("INSERT INTO settings (key, value, updated_at) VALUES (?, ?, 0)",
                     ("healthchecks.url", "ftp://example.com/p"))
    mc.backups.create(SCHEDULER)
    assert mc.outbox.wait_idle(WAIT) and mc.audit_store.query(action="alert_failed")[1] == 0


def test_ping_urls_follow_the_healthchecks_convention():
    assert ping_url("https://hc-ping.com/abc", "start") == "https://hc-ping.com/abc/start"
    assert ping_url("https://hc-ping.com/abc/", "fail") == "https://hc-ping.com/abc/fail"
    assert ping_url("https://hc-ping.com/abc", "") == "https://hc-ping.com/abc"
    assert ping_url("http://kuma:3001/api/push/x?status=up", "fail") == \
        "http://kuma:3001/api/push/x/fail?status=up"
    with pytest.raises(ValueError):
        ping_url("hc-ping.com/abc", "")


def test_a_cli_backup_delivers_its_pings_before_the_command_exits(make_mc, receiver, tmp_path):
    mc = make_mc()
    configure(mc, f"{receiver.url}/p", **{"healthchecks.all_backups": True})
    mc.close()
    receiver.delay = 1.0  # each ping is still in flight when the backup itself is done
    env = dict(os.environ, MISSION_CONTROL_DATA_DIR=str(tmp_path / "data"))
    done = subprocess.run([sys.executable, "-m", "mission_control", "backup", "create"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # The command has exited: both pings were answered by then, not left on a dead thread.
    assert receiver.paths() == ["/p/start", "/p"] and receiver.answered == 2
