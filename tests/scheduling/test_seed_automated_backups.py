"""The seed's "Automated Backups" procedure, word for word, against a real waitress server."""
import json
import shutil
import subprocess
import urllib.error
import urllib.request
from datetime import datetime, timezone

import pytest

from tests.support.accounts import PASSWORD

#: In the slow lane (a real waitress server and the seed's steps: ~0.6 s on the 2-core machine).
pytestmark = pytest.mark.slow


# Loopback only: never through a proxy the environment may name.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def request(url, method="GET", data=None, headers=None):
    req = urllib.request.Request(url, method=method, headers=headers or {},
                                 data=None if data is None else data.encode())
    try:
        with OPENER.open(req, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


@pytest.fixture
def session(live_server, users):
    status, headers, _ = request(f"{live_server}/api/auth/login", "POST",
                                 json.dumps({"username": "alice", "password": PASSWORD}),
                                 {"Content-Type": "application/json"})
    assert status == 200
    return headers["Set-Cookie"].split(";")[0].split("=", 1)[1]


def test_seed_procedure_over_http(live_server, session, mc, clock):
    cookie = {"Cookie": f"mc-session={session}"}
    json_cookie = {**cookie, "Content-Type": "application/json"}
    # 1. Enable auto-backup via Settings API
    status, headers, body = request(f"{live_server}/api/settings", "PUT",
                                    '{"settings": {"general.auto_backup": "true"}}', json_cookie)
    assert (status, body) == (200, {"updated": ["general.auto_backup"], "count": 1})
    assert headers["Content-Type"] == "application/json" and headers["Cache-Control"] == "no-store"
    # 2./3. Backups run daily at 3:00 AM UTC; monitor them via the Scheduler API
    status, _, body = request(f"{live_server}/api/scheduler", headers=cookie)
    task = body["tasks"][0]  # then offsite_verify (off: no off-site target)
    assert status == 200 and task["id"] == "auto_backup" and task["enabled"] is True
    next_run = datetime.fromtimestamp(task["nextRun"] / 1000, timezone.utc)
    assert (next_run.hour, next_run.minute, next_run.second) == (3, 0, 0)
    assert 0 < task["nextRun"] - clock.now * 1000 <= 24 * 3600 * 1000
    assert task["lastResult"] is None
    # 4. Manually trigger a backup
    status, _, body = request(f"{live_server}/api/scheduler", "POST",
                              '{"task_id": "auto_backup"}', json_cookie)
    assert status == 200 and body["ok"] is True and body["message"].startswith("Backup created")
    # ... and see the backup, the updated lastResult and the audit events
    _, _, listed = request(f"{live_server}/api/backup", headers=cookie)
    assert [b["name"] for b in listed["backups"]] == [body["backup"]["name"]]
    _, _, status_body = request(f"{live_server}/api/scheduler", headers=cookie)
    assert status_body["tasks"][0]["lastResult"]["message"] == body["message"]
    _, _, audit = request(f"{live_server}/api/audit?action=auto_backup", headers=cookie)
    assert [(e["actor"], e["detail"]["ok"]) for e in audit["events"]] == [("alice", True)]
    # and the daily run itself, at 03:00 UTC, audited as the scheduler
    clock.now = task["nextRun"] / 1000
    assert mc.scheduler.run_due()[0].ok
    _, _, audit = request(f"{live_server}/api/audit?action=auto_backup", headers=cookie)
    assert [e["actor"] for e in audit["events"]] == ["scheduler", "alice"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="the curl program is not installed")
def test_seed_curl_commands_verbatim(live_server, session, mc):
    def curl(*args):
        done = subprocess.run(["curl", "-s", "--noproxy", "*", *args], capture_output=True, text=True, timeout=60,
                              check=True)
        return json.loads(done.stdout)

    cookie = f"Cookie: mc-session={session}"
    assert curl("-X", "PUT", f"{live_server}/api/settings", "-H", cookie,
                "-H", "Content-Type: application/json",
                "-d", '{"settings": {"general.auto_backup": "true"}}') == \
        {"updated": ["general.auto_backup"], "count": 1}
    assert curl("-X", "GET", f"{live_server}/api/scheduler", "-H", cookie)["tasks"][0]["enabled"]
    made = curl("-X", "POST", f"{live_server}/api/scheduler", "-H", cookie,
                "-H", "Content-Type: application/json", "-d", '{"task_id": "auto_backup"}')
    assert made["ok"] is True and [b.name for b in mc.backups.list()] == [made["backup"]["name"]]
