"""Load test: many concurrent clients against a real waitress server, then check the invariants.

Run: `python bench/load.py [--clients 16] [--seconds 90]`. Starts `run.py` on a free port on its
own temporary data folder, drives a mix of list, create, delete, settings, scheduler and audit
calls over keep-alive connections (half the clients use a session cookie, half the API key),
then checks: no 5xx, no backup lost or overwritten, exactly one audit event per successful
change, retention holds, and the server's memory (RSS from /proc) stays flat. Prints a summary;
exits 1 when an invariant fails.
"""
import argparse
import collections
import http.client
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY = "load-test-key-0123456789"
USER, PASSWORD = "alice", "correct-horse-battery"
PATTERN = re.compile(r"^mc-backup-\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}\.db$")
#: operation -> weight in the mix
MIX = {"list": 30, "create": 12, "delete": 10, "settings_get": 8, "settings_put": 10,
       "scheduler_get": 6, "scheduler_run": 6, "audit": 8, "status": 5, "health": 5}
FINAL_RETENTION = 5


def start_server(data_dir, threads=8, log_path=None):
    """Start `run.py`; its log goes to `log_path` (a pipe nobody reads would block the server)."""
    env = dict(os.environ, AUTH_USER=USER, AUTH_PASS=PASSWORD, API_KEY=KEY, MC_LOG_LEVEL="WARNING",
               MC_BACKUP_RATE_LIMIT="0", MC_THREADS=str(threads))
    data_dir.mkdir(parents=True, exist_ok=True)
    log = open(log_path or data_dir.parent / "server.log", "w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--port", "0", "--data-dir",
                             str(data_dir)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=log, text=True)
    log.close()
    for line in proc.stdout:
        if "http://" in line:
            host, port = line.split("http://", 1)[1].split()[0].split(":")
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep it drained
            return proc, host, int(port)
    raise RuntimeError("server did not start; see its log")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Conn:
    """One keep-alive HTTP/1.1 connection that speaks JSON, with a session cookie or the key."""

    def __init__(self, host, port, auth_headers):
        self.host, self.port, self.auth = host, port, auth_headers
        self.conn = http.client.HTTPConnection(host, port, timeout=120)

    def __call__(self, method, path, body=None):
        data = None if body is None else json.dumps(body)
        headers = {**self.auth, "Content-Type": "application/json"}
        try:
            self.conn.request(method, path, data, headers)
            response = self.conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            raise
        return response.status, json.loads(raw) if raw else None


def session_headers(host, port):
    conn = Conn(host, port, {})
    conn.conn.request("POST", "/api/auth/login", json.dumps({"username": USER, "password": PASSWORD}),
                      {"Content-Type": "application/json"})
    response = conn.conn.getresponse()
    response.read()
    assert response.status == 200, response.status
    return {"Cookie": response.getheader("Set-Cookie").split(";")[0]}


class Ledger:
    """What the clients saw succeed, shared by all client threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.statuses = collections.Counter()
        self.by_op = collections.defaultdict(collections.Counter)
        self.created = []  # names from 200 answers to POST /api/backup and /api/scheduler
        self.deleted = []
        self.settings_updates = 0
        self.latencies = []
        self.errors = []
        self.known = []  # recently listed names, for deletes

    def record(self, op, status, seconds):
        with self.lock:
            self.statuses[status] += 1
            self.by_op[op][status] += 1
            self.latencies.append(seconds)


def client_loop(conn, ledger, stop, seed):
    rng = random.Random(seed)
    ops, weights = zip(*MIX.items())
    while not stop.is_set():
        op = rng.choices(ops, weights)[0]
        started = time.perf_counter()
        try:
            status, body = run_op(conn, op, ledger, rng)
        except Exception as exc:  # noqa: BLE001 - a dropped connection is a finding, not a crash
            with ledger.lock:
                ledger.errors.append(f"{op}: {type(exc).__name__}: {exc}")
            continue
        ledger.record(op, status, time.perf_counter() - started)


def run_op(conn, op, ledger, rng):
    if op == "list":
        status, body = conn("GET", "/api/backup")
        if status == 200:
            with ledger.lock:
                ledger.known = [b["name"] for b in body["backups"]][:20]
        return status, body
    if op == "create":
        status, body = conn("POST", "/api/backup")
        if status == 200:
            with ledger.lock:
                ledger.created.append(body["backup"]["name"])
        return status, body
    if op == "delete":
        with ledger.lock:
            name = rng.choice(ledger.known) if ledger.known else "missing.db"
        status, body = conn("DELETE", "/api/backup", {"name": name})
        if status == 200:
            with ledger.lock:
                ledger.deleted.append(name)
        return status, body
    if op == "settings_put":
        change = rng.choice([{"general.backup_retention_count": rng.randint(3, 8)},
                             {"general.site_name": f"Load {rng.randint(0, 999)}"},
                             {"general.backup_retention_count": 0}])  # the last is refused: 400
        status, body = conn("PUT", "/api/settings", {"settings": change})
        if status == 200:
            with ledger.lock:
                ledger.settings_updates += 1
        return status, body
    if op == "scheduler_run":
        status, body = conn("POST", "/api/scheduler", {"task_id": "auto_backup"})
        if status == 200 and body.get("backup"):
            with ledger.lock:
                ledger.created.append(body["backup"]["name"])
        return status, body
    path = {"settings_get": "/api/settings", "scheduler_get": "/api/scheduler",
            "audit": "/api/audit?limit=20", "status": "/api/backup/status",
            "health": "/api/health"}[op]
    return conn("GET", path)


def audit_events(conn, action):
    status, body = conn("GET", f"/api/audit?action={action}&limit=10000")
    assert status == 200
    return body["events"]


def check(conn, ledger, backups_dir):
    """The invariants, as (name, ok, detail) rows."""
    rows = []
    five = sum(n for s, n in ledger.statuses.items() if s >= 500)
    rows.append(("no 5xx answers", five == 0, f"{five} of {sum(ledger.statuses.values())}"))
    rows.append(("no dropped connections", not ledger.errors, "; ".join(ledger.errors[:3])))
    created = audit_events(conn, "backup_create")
    deleted = audit_events(conn, "backup_delete")
    pruned = audit_events(conn, "backup_prune")
    updates = audit_events(conn, "settings_update")
    rows.append(("one backup_create event per backup made",
                 sorted(e["target_id"] for e in created) == sorted(ledger.created),
                 f"{len(created)} events, {len(ledger.created)} backups"))
    rows.append(("one backup_delete event per 200 delete",
                 sorted(e["target_id"] for e in deleted) == sorted(ledger.deleted),
                 f"{len(deleted)} events, {len(ledger.deleted)} deletes"))
    rows.append(("one settings_update event per 200 update", len(updates) == ledger.settings_updates,
                 f"{len(updates)} events, {ledger.settings_updates} updates"))
    # A name is free again once its file is deleted or pruned, so it may be made again later. Per
    # name, (made) - (deleted + pruned) must be 1 if the file is on disk and 0 if not: a backup
    # overwritten would leave 2, one lost without an event -1, one removed twice -1.
    on_disk = {p.name for p in backups_dir.glob("*.db")}
    balance = collections.Counter(ledger.created)
    balance.subtract(e["target_id"] for e in deleted + pruned)
    wrong = {n: b for n, b in balance.items() if b != (1 if n in on_disk else 0)}
    rows.append(("no backup lost, overwritten or removed twice", not wrong,
                 f"{len(on_disk)} on disk, {len(ledger.deleted)} deleted, {len(pruned)} pruned"
                 + (f"; wrong: {dict(list(wrong.items())[:3])}" if wrong else "")))
    return rows


def final_retention(conn, backups_dir):
    assert conn("PUT", "/api/settings",
                {"settings": {"general.backup_retention_count": FINAL_RETENTION}})[0] == 200
    status, _ = conn("POST", "/api/backup")
    kept = [p.name for p in backups_dir.glob("*.db") if PATTERN.match(p.name)]
    return ("retention holds at the end", status == 200 and len(kept) <= FINAL_RETENTION,
            f"{len(kept)} mc-backup files kept, retention {FINAL_RETENTION}")


def run_load(clients=16, seconds=30.0, workdir=None, threads=8, seed=1):
    """Run the load and return `{"rows": [(check, ok, detail)], "figures": {...}}`."""
    work = Path(tempfile.mkdtemp(prefix="mc-load-", dir=workdir))
    proc, host, port = start_server(work / "data", threads)
    try:
        cookie = session_headers(host, port)
        conns = [Conn(host, port, cookie if i % 2 else {"x-api-key": KEY}) for i in range(clients)]
        ledger, stop = Ledger(), threading.Event()
        workers = [threading.Thread(target=client_loop, args=(c, ledger, stop, seed + i),
                                    daemon=True) for i, c in enumerate(conns)]
        for w in workers:
            w.start()
        rss, started = [], time.monotonic()
        while time.monotonic() - started < seconds:
            rss.append((time.monotonic() - started, rss_mib(proc.pid)))
            time.sleep(0.25)
        stop.set()
        for w in workers:
            w.join(120)
        elapsed = time.monotonic() - started
        admin = Conn(host, port, {"x-api-key": KEY})
        rows = check(admin, ledger, work / "data" / "backups")
        rows.append(final_retention(admin, work / "data" / "backups"))
        # SQLite's per-connection page caches (2 MiB x ~10 connections) and Python's arenas fill
        # during the first ~30 s; "flat" is judged after that warm-up.
        warm = [m for t, m in rss if t >= min(30.0, seconds / 3)] or [m for _, m in rss]
        quarter = max(1, len(warm) // 4)
        early, late = max(warm[:quarter]), max(warm[-quarter:])
        growth = late - early
        rows.append(("server memory flat (late peak - early peak <= 16 MiB)", growth <= 16,
                     f"{early:.1f} -> {late:.1f} MiB (peak {max(m for _, m in rss):.1f})"))
        step = max(1, len(rss) // 12)
        timeline = " ".join(f"{t:.0f}s:{m:.0f}" for t, m in rss[::step])
        lat = sorted(ledger.latencies)
        figures = {"requests": len(lat), "seconds": round(elapsed, 1),
                   "req_per_s": round(len(lat) / elapsed, 1),
                   "p50_ms": round(lat[len(lat) // 2] * 1000, 1) if lat else None,
                   "p99_ms": round(lat[int(len(lat) * 0.99) - 1] * 1000, 1) if lat else None,
                   "statuses": dict(sorted(ledger.statuses.items())),
                   "rss_timeline_mib": timeline,
                   "backups_made": len(ledger.created), "deleted": len(ledger.deleted),
                   "names_reused": sum(1 for c in collections.Counter(ledger.created).values()
                                       if c > 1),
                   "by_op": {op: dict(c) for op, c in sorted(ledger.by_op.items())}}
        log = (work / "server.log").read_text(errors="replace")
        lines = [line for line in log.splitlines() if "waitress.queue" not in line]
        figures["server_errors"] = ["\n".join(lines[i:i + 30]) for i, line in enumerate(lines)
                                    if " ERROR " in line][:3]
        return {"rows": rows, "figures": figures}
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--threads", type=int, default=8, help="waitress worker threads")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    result = run_load(args.clients, args.seconds, args.workdir, args.threads)
    figures = result["figures"]
    print(f"{figures['requests']} requests in {figures['seconds']} s from {args.clients} clients "
          f"({figures['req_per_s']} req/s, p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms)")
    print(f"statuses: {figures['statuses']}; backups made {figures['backups_made']}, "
          f"deleted {figures['deleted']}, names made again after removal "
          f"{figures['names_reused']}")
    for op, counts in figures["by_op"].items():
        print(f"  {op:<14} {counts}")
    print(f"server RSS (MiB) over time: {figures['rss_timeline_mib']}")
    for error in figures["server_errors"]:
        print("server log:", error)
    width = max(len(r[0]) for r in result["rows"])
    print(f"\n{'invariant'.ljust(width)}  result  detail")
    for name, ok, detail in result["rows"]:
        print(f"{name.ljust(width)}  {'ok' if ok else 'FAIL':<6}  {detail}")
    return 0 if all(ok for _, ok, _ in result["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
