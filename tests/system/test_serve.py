"""`python run.py` as a real process: it starts the scheduler and stops cleanly on SIGTERM and Ctrl-C."""
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from mission_control import MissionControl

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery"
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def start(data_dir, *args, **extra_env):
    """`python run.py --port 0 --data-dir DATA_DIR *ARGS`; returns (process, base URL)."""
    env = {**os.environ, "AUTH_USER": "alice", "AUTH_PASS": PASSWORD, "MC_LOG_LEVEL": "INFO",
           "PYTHONUNBUFFERED": "1", **extra_env}
    proc = subprocess.Popen([sys.executable, "run.py", "--port", "0", "--data-dir", str(data_dir),
                             *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l) for l in proc.stdout], daemon=True).start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        found = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
        if found:
            return proc, found.group(1)
    proc.kill()
    raise AssertionError(f"the server did not start: {proc.stderr.read()}")


def wait_for(predicate, timeout=20):
    """Poll another process's visible effect (no Event crosses a process boundary)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def get_json(url, headers=None):
    with OPENER.open(urllib.request.Request(url, headers=headers or {}), timeout=30) as response:
        return json.loads(response.read())


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
