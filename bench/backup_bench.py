"""Benchmark: POST /api/backup against cp + fsync, and writer commit latency during backups.

Run: `python bench/backup_bench.py [--size-mib 512] [--rounds 3]`. Prints a table of figures and
ratios measured in the same run (machines are noisy; ratios travel better than seconds).
"""
import argparse
import multiprocessing
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from werkzeug.test import Client  # noqa: E402

from mission_control.config import Config  # noqa: E402
from mission_control.core import MissionControl  # noqa: E402
from mission_control.web import WebApp  # noqa: E402

KEY = "bench-api-key-0123456789"


def fill(db_path, mib):
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS bench_blobs (id INTEGER PRIMARY KEY, data BLOB)")
    for _ in range(mib // 16):
        conn.executemany("INSERT INTO bench_blobs (data) VALUES (randomblob(4000))", [()] * 4096)
        conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def cp_fsync(src, dst):
    started = time.perf_counter()
    subprocess.run(["cp", str(src), str(dst)], check=True)
    fd = os.open(dst, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    elapsed = time.perf_counter() - started
    os.unlink(dst)
    return elapsed


def api_backup(client, mc):
    started = time.perf_counter()
    response = client.post("/api/backup", headers={"x-api-key": KEY})
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.get_data(as_text=True)
    os.unlink(mc.backups.dir / response.json["backup"]["name"])
    return elapsed


def quick_check_seconds(db_path):
    """The floor the contract adds: one quick_check over a file of the same size."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    started = time.perf_counter()
    conn.execute("PRAGMA quick_check").fetchall()
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def writer(db_path, interval, stop, out):
    """Commit a small transaction every `interval` seconds; report each commit's latency."""
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=30)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS bench_writes (t REAL, note TEXT)")
    latencies = []
    next_at = time.perf_counter()
    while not stop.is_set():
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO bench_writes VALUES (?, 'tick')", (started,))
        conn.execute("COMMIT")
        latencies.append((started, time.perf_counter() - started))
        next_at += interval
        time.sleep(max(0.0, next_at - time.perf_counter()))
    conn.close()
    out.put(latencies)


def latency_run(db_path, seconds, do_backups, client, mc):
    stop, out = multiprocessing.Event(), multiprocessing.Queue()
    proc = multiprocessing.Process(target=writer, args=(db_path, 0.002, stop, out))
    proc.start()
    time.sleep(0.5)
    windows = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        if do_backups:
            started = time.perf_counter()
            api_backup(client, mc)
            windows.append((started, time.perf_counter()))
        else:
            time.sleep(0.05)
    stop.set()
    latencies = out.get(timeout=60)
    proc.join()
    if do_backups:
        latencies = [(t, lat) for t, lat in latencies if any(a <= t <= b for a, b in windows)]
    values = sorted(lat for _, lat in latencies)
    return {"commits": len(values), "backups": len(windows),
            "p50": statistics.median(values) * 1000,
            "p99": values[int(len(values) * 0.99) - 1] * 1000, "max": values[-1] * 1000}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-seconds", type=float, default=10)
    parser.add_argument("--workdir", default=None, help="folder for the test database (default: a temp dir)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mc-bench-", dir=args.workdir))
    try:
        config = Config.from_env({"API_KEY": KEY, "MC_BACKUP_RATE_LIMIT": "0"}, data_dir=work)
        mc = MissionControl(config, entry_points=False, create=True)
        mc.settings.update({"general.backup_retention_count": "1000"}, actor="bench")
        client = Client(WebApp(mc))
        print(f"filling a {args.size_mib} MiB database in {work} ...", flush=True)
        fill(config.db_path, args.size_mib)
        size = config.db_path.stat().st_size
        cp_times, backup_times = [], []
        for _ in range(args.rounds):  # alternate, so drift hits both alike
            cp_times.append(cp_fsync(config.db_path, work / "cp-copy.db"))
            backup_times.append(api_backup(client, mc))
        cp_med, bk_med = statistics.median(cp_times), statistics.median(backup_times)
        check_med = statistics.median(quick_check_seconds(config.db_path) for _ in range(args.rounds))

        quiet = latency_run(config.db_path, args.latency_seconds / 2, False, client, mc)
        busy = latency_run(config.db_path, args.latency_seconds, True, client, mc)
        mc.close()

        rows = [
            ("database size", f"{size / 2**20:.0f} MiB", ""),
            ("cp + fsync (median)", f"{cp_med:.2f} s", ""),
            ("POST /api/backup (median)", f"{bk_med:.2f} s", ""),
            ("backup / (cp + fsync)", f"{bk_med / cp_med:.2f}x", "<= 1.25x"),
            ("  of which PRAGMA quick_check", f"{check_med:.2f} s", "required by the contract"),
            ("  backup without the check / cp", f"{(bk_med - check_med) / cp_med:.2f}x", ""),
            ("backup throughput", f"{size / 2**20 / bk_med:.0f} MiB/s", ""),
            ("writer p99, no backup", f"{quiet['p99']:.2f} ms", ""),
            ("writer p50 during backups", f"{busy['p50']:.2f} ms", ""),
            ("writer p99 during backups", f"{busy['p99']:.2f} ms", "<= 5 ms"),
            ("writer worst during backups", f"{busy['max']:.2f} ms", "<= 100 ms"),
            ("commits / backups in that window", f"{busy['commits']} / {busy['backups']}",
             "backups complete"),
        ]
        width = max(len(r[0]) for r in rows)
        print(f"\n{'figure'.ljust(width)}  {'measured':>14}  goal")
        for name, value, goal in rows:
            print(f"{name.ljust(width)}  {value:>14}  {goal}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
