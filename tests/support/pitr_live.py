"""Helpers for the point-in-time tests: real `serve` processes running the real Litestream."""
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from mission_control import MissionControl
from mission_control.config import Config
from mission_control.builtins.pitr import litestream

ROOT = Path(__file__).resolve().parents[2]
KEY = "pitr-test-api-key-0123456789"
PASSWORD = "correct-horse-battery"
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
BINARY = litestream.find_binary(None)


def configure(data_dir, **settings):
    """Open the service once to store `settings` (pitr.*), as an admin would, then close it."""
    with MissionControl(Config.from_env({}, data_dir=str(data_dir)), create=True) as mc:
        mc.settings.update(settings, "test")


def add_user(data_dir, name):
    """Write one row to the live database from outside the service (another writer)."""
    with MissionControl(Config.from_env({}, data_dir=str(data_dir))) as mc:
        mc.users.add(name, PASSWORD, role="viewer")


def usernames(data_dir):
    with MissionControl(Config.from_env({}, data_dir=str(data_dir))) as mc:
        return {u.username for u in mc.users.list()}


class Serve:
    """`mission-control serve` in a subprocess with an API key; its log is kept in `lines`."""

    def __init__(self, data_dir, **environ):
        env = {**os.environ, **environ, "API_KEY": KEY, "AUTH_USER": "alice", "AUTH_PASS": PASSWORD,
               "MC_LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1", "MC_BACKUP_RATE_LIMIT": "0"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mission_control", "serve", "--port", "0", "--data-dir",
             str(data_dir)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        self.lines = []
        found = queue.Queue()
        threading.Thread(target=self._read, args=(found,), daemon=True).start()
        try:
            self.url = found.get(timeout=60)
        except queue.Empty:
            self.stop()
            raise AssertionError("serve did not start:\n" + "".join(self.lines)) from None

    def _read(self, found):
        for line in self.proc.stdout:
            self.lines.append(line)
            match = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
            if match:
                found.put(match.group(1))

    def call(self, method, path, body=None):
        """`(status, json)` of one API request with the API key."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "x-api-key": KEY, "Content-Type": "application/json"})
        try:
            with OPENER.open(request, timeout=120) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def pitr(self):
        status, body = self.call("GET", "/api/backup/pitr")
        assert status == 200, (body, "".join(self.lines[-40:]))
        return body

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_for(predicate, timeout=30, step=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


def iso(seconds):
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds")


def replicated(data_dir, before):
    """Wait until Litestream saw a transaction after `before` and the replica holds it."""
    files = litestream.Files(Path(data_dir).absolute() / "mission-control.db")

    def caught_up():
        local = litestream.local_txid(BINARY, files, os.environ)
        if local is None or before is not None and local <= before:
            return None
        replica = litestream.listing(BINARY, files, os.environ)["replica_txid"]
        return replica is not None and replica >= local
    return wait_for(caught_up, timeout=60)


def local_txid(data_dir):
    files = litestream.Files(Path(data_dir).absolute() / "mission-control.db")
    return litestream.local_txid(BINARY, files, os.environ)


def sealed_txid(data_dir):
    """The transaction up to which a sealed stream's sealer has uploaded every level-0 file (its
    record in the state file), or None: not its newest file, which may be a level-1 file
    uploaded while level 0 waits (a restore to a moment between its transactions needs them)."""
    files = litestream.Files(Path(data_dir).absolute() / "mission-control.db")
    try:
        state = json.loads(files.state.read_text())
    except (OSError, ValueError):
        return None
    return (state.get("sealed_stream") or {}).get("level0_txid")


def litestream_processes(data_dir):
    """Pids of `litestream replicate` processes on this data folder's config file."""
    files = litestream.Files(Path(data_dir).absolute() / "mission-control.db")
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and
            litestream.is_ours(int(p), files)]


def write_three(data_dir):
    """Rows t1 < t2 < t3, each replicated before the next; returns a time between t2 and t3."""
    add_user(data_dir, "t1")
    assert replicated(data_dir, None)
    before = local_txid(data_dir)
    add_user(data_dir, "t2")
    assert replicated(data_dir, before)
    time.sleep(1.1)
    between = time.time()
    time.sleep(1.1)
    before = local_txid(data_dir)
    add_user(data_dir, "t3")
    assert replicated(data_dir, before)
    return between
