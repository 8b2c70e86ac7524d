"""Real servers in child processes (`python run.py`) and a small JSON client for them."""
import json
import os
import queue
import re
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

from tests.support.accounts import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


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


def start_server(data_dir, extra_env=None):
    """`python run.py` on a free port (log level WARNING); returns (process, "host:port")."""
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
    """Fill `path` (WAL mode) with `megabytes` rows of one random MiB each."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS blobs (data BLOB)")
    conn.executemany("INSERT INTO blobs VALUES (randomblob(1048576))", [()] * megabytes)
    conn.commit()
    conn.close()


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


def get_json(url, headers=None):
    with OPENER.open(urllib.request.Request(url, headers=headers or {}), timeout=30) as response:
        return json.loads(response.read())
