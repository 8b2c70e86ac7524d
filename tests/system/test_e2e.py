"""End to end against a real waitress server on loopback: the README's curl session, and kill -9."""
import signal
import sqlite3
import threading
import time

import pytest

from tests.support.accounts import PASSWORD
from tests.support.servers import Http, make_big_database, start_server


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
