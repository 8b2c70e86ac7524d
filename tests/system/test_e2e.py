"""End to end against a real waitress server on loopback: the README's curl session, and kill -9."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

from .conftest import PASSWORD

ROOT = Path(__file__).resolve().parent.parent


class Http:
    """A tiny cookie-keeping JSON client, like curl -c/-b."""

    def __init__(self, base):
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def __call__(self, method, path, body=None, headers=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with self.opener.open(request, timeout=60) as response:
                return response.status, dict(response.headers), json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), json.loads(err.read())


def test_readme_session_against_a_live_server(live_server, users):
    http = Http(live_server)
    assert http("GET", "/api/backup")[0] == 401
    status, headers, body = http("POST", "/api/auth/login", {"username": "alice", "password": PASSWORD})
    assert status == 200 and body["user"]["role"] == "admin"
    status, headers, made = http("POST", "/api/backup")
    assert status == 200 and made["success"] is True
    name = made["backup"]["name"]
    status, headers, listed = http("GET", "/api/backup")
    assert headers["Cache-Control"] == "no-store" and headers["X-Frame-Options"] == "DENY"
    assert listed["backups"][0].items() >= made["backup"].items()
    assert http("DELETE", "/api/backup", {"name": name}) [2] == {"success": True}
    assert http("DELETE", "/api/backup", {"name": name})[:3:2] == (404, {"error": "Backup not found"})
    assert http("POST", "/api/backup", headers={"Origin": "http://evil.example"})[0] == 403
    assert http("POST", "/api/auth/logout")[2] == {"ok": True}
    assert http("GET", "/api/backup")[0] == 401


def start_server(data_dir, extra_env=None):
    env = dict(os.environ, AUTH_USER="alice", AUTH_PASS=PASSWORD, MC_LOG_LEVEL="WARNING",
               **(extra_env or {}))
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--port", "0", "--data-dir",
                             str(data_dir)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if "http://" in line:
            return proc, line.split("http://", 1)[1].split()[0]
    raise AssertionError(f"server did not start: {proc.stderr.read()}")


def make_big_database(path, megabytes):
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS blobs (data BLOB)")
    conn.executemany("INSERT INTO blobs VALUES (randomblob(1048576))", [()] * megabytes)
    conn.commit()
    conn.close()


def test_kill_9_in_the_middle_of_a_backup_leaves_nothing_broken(tmp_path):
    data = tmp_path / "data"
    proc, host = start_server(data)
    http = Http(f"http://{host}")
    http("POST", "/api/auth/login", {"username": "alice", "password": PASSWORD})
    make_big_database(data / "mission-control.db", 300)
    backups = data / "backups"

    def doomed_backup():
        try:
            http("POST", "/api/backup")
        except OSError:  # the server dies mid-request: that is the point
            pass

    threading.Thread(target=doomed_backup, daemon=True).start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        partial = [p for p in backups.iterdir() if p.name.startswith(".mc-backup-")]
        if partial and partial[0].stat().st_size > 0:
            break
        time.sleep(0.005)
    else:
        pytest.fail("the backup never started writing")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    proc.stderr.close()
    assert not [p for p in backups.iterdir() if p.name.endswith(".db")], "a half-made backup got a final name"
    # The next start removes the leftovers, and backups work again.
    proc, host = start_server(data)
    try:
        assert [p.name for p in backups.iterdir() if p.name.startswith(".mc-backup-")] == []
        http = Http(f"http://{host}")
        http("POST", "/api/auth/login", {"username": "alice", "password": PASSWORD})
        status, _, made = http("POST", "/api/backup")
        assert status == 200
        check = sqlite3.connect(backups / made["backup"]["name"])
        assert check.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        assert check.execute("SELECT COUNT(*) FROM blobs").fetchone()[0] == 300
        check.close()
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
        proc.stdout.close()
        proc.stderr.close()
