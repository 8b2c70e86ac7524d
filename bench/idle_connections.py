"""Idle and half-sent connections against the real server: how long does a new client wait to log in?

Run: `python bench/idle_connections.py [--idle 200 600]`. Starts `run.py` on a free port on its own
temporary data folder; for each count, opens that many loopback connections that send the start
of a request and then nothing, and times a login on a new connection while they hang. Goal: under
5 s with 200 such connections (below `MC_CONNECTION_LIMIT`, default 500). Above the limit the new
client waits in the listen queue until the idle ones are closed (`MC_IDLE_TIMEOUT`, default 15 s,
checked every 5 s). Exits 1 when the goal is missed.
"""
import argparse
import contextlib
import http.client
import json
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import PASSWORD, USER, start_server  # noqa: E402

HALF_REQUEST = b"POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Len"
GOAL_SECONDS, GOAL_IDLE = 5.0, 200


def timed_login(host, port):
    """Seconds until a login on a new connection is answered, and its status."""
    started = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=120)
    try:
        conn.request("POST", "/api/auth/login", json.dumps({"username": USER, "password": PASSWORD}))
        response = conn.getresponse()
        response.read()
        return time.monotonic() - started, response.status
    finally:
        conn.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, nargs="+", default=[GOAL_IDLE, 600])
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="mc-idle-"))
    proc, host, port = start_server(workdir / "data")
    failed = False
    try:
        print(f"baseline login: {timed_login(host, port)[0]:.2f} s")
        for count in args.idle:
            with contextlib.ExitStack() as stack:
                for _ in range(count):
                    sock = stack.enter_context(socket.create_connection((host, port), timeout=30))
                    sock.sendall(HALF_REQUEST)
                seconds, status = timed_login(host, port)
            verdict = ""
            if count <= GOAL_IDLE:
                failed |= seconds > GOAL_SECONDS or status != 200
                verdict = "ok" if seconds <= GOAL_SECONDS and status == 200 else "MISSED"
                verdict += f" (goal < {GOAL_SECONDS:.0f} s)"
            print(f"{count:5d} half-sent connections: login {status} after {seconds:.2f} s {verdict}")
    finally:
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
