"""`python run.py` as a real process: it starts the scheduler and stops cleanly on SIGTERM and Ctrl-C."""
import json
import signal
import time
import urllib.request

import pytest

from mission_control import MissionControl
from tests.support.accounts import PASSWORD
from tests.support.servers import OPENER, get_json, start


def wait_for(predicate, timeout=20):
    """Poll another process's visible effect (no Event crosses a process boundary)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_serve_runs_a_missed_backup_then_stops_cleanly(tmp_path, stop_signal):
    data_dir = tmp_path / "data"
    two_days_ago = time.time() - 2 * 86400
    with MissionControl.open(data_dir, clock=lambda: two_days_ago, entry_points=False,
                             create=True) as mc:
        mc.settings.update({"general.auto_backup": "true"}, "alice")
    backups_dir = data_dir / "backups"

    proc, url = start(data_dir)
    try:
        # Enabled since before the last 03:00 UTC and never run: the scheduler catches up at once.
        assert wait_for(lambda: any(p.name.startswith("mc-backup-") for p in backups_dir.iterdir()))
        login = urllib.request.Request(
            f"{url}/api/auth/login", method="POST",
            data=json.dumps({"username": "alice", "password": PASSWORD}).encode(),
            headers={"Content-Type": "application/json"})
        with OPENER.open(login, timeout=30) as response:
            cookie = response.headers["Set-Cookie"].split(";")[0]
        assert wait_for(lambda: get_json(f"{url}/api/scheduler", {"Cookie": cookie})
                        ["tasks"][0]["lastResult"] is not None)
        task = get_json(f"{url}/api/scheduler", {"Cookie": cookie})["tasks"][0]
        assert task["enabled"] is True and task["lastResult"]["ok"] is True
        proc.send_signal(stop_signal)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read()
    assert "Traceback" not in stderr, stderr
    assert "shutting down" in stderr
    with MissionControl.open(data_dir, entry_points=False) as mc:
        events = mc.audit_store.query(action="auto_backup")[0]
        assert [(e["actor"], e["detail"]["trigger"]) for e in events] == [("scheduler", "schedule")]
    assert not [p for p in backups_dir.iterdir() if p.name.startswith(".mc-backup-")]


SLOW_START = '''
import time

from mission_control import hookimpl


@hookimpl
def serve_start(mc):
    (mc.config.db_path.parent / "starting").write_text("")
    time.sleep(2)
'''


def test_sigterm_right_after_the_banner_stops_the_service(tmp_path):
    """A signal while start-up hooks run (isolated, so an exception there would be swallowed) is
    kept for the main loop, which then stops at once: no server left running."""
    dropins = tmp_path / "dropins"
    dropins.mkdir()
    (dropins / "slow_start.py").write_text(SLOW_START)
    data_dir = tmp_path / "data"
    proc, _ = start(data_dir, MC_PLUGINS_DIR=str(dropins))
    try:
        assert wait_for((data_dir / "starting").exists)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read()
    assert "Traceback" not in stderr and "shutting down" in stderr, stderr
