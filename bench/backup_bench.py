"""Benchmark: POST /api/backup against cp + fsync (+ quick_check), writer commit latency during
backups (synchronous=FULL and NORMAL, with and without backup.io_limit_mb_s), listing 10,000
files, and the server's memory during a backup.

Run: `python bench/backup_bench.py [--size-mib 512] [--rounds 3] [--polite-limit 100]`. Prints a
table of figures next to their goals, with the baselines measured in the same run (machines are
noisy; ratios travel better than seconds), and the load average around the run.
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
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from werkzeug.test import Client  # noqa: E402

from mission_control.backup import snapshot as snapshot_copy
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


def api_backup(client):
    """One POST /api/backup: its seconds. With the retention count at 1, as in the steady state of
    a service that keeps N backups, each backup after the first also prunes the one before."""
    started = time.perf_counter()
    response = client.post("/api/backup", headers={"x-api-key": KEY})
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.get_data(as_text=True)
    return elapsed


def quick_check_seconds(db_path):
    """The baseline check: a plain `PRAGMA quick_check` (default settings) of a file."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    started = time.perf_counter()
    conn.execute("PRAGMA quick_check").fetchall()
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def cp_check_seconds(src, dst):
    """cp + fsync, then quick_check of that copy, one after the other: (cp seconds, check seconds)."""
    subprocess.run(["cp", str(src), str(dst)], check=True)
    fd = os.open(dst, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    check = quick_check_seconds(dst)
    os.unlink(dst)
    return check


def durable_copy_seconds(db_path, folder):
    """The copy phase alone: `copy_database` to a durable temp file, with its check left out;
    also how it copied ("file", "file+wal" or "pages")."""
    real = snapshot_copy.quick_check
    snapshot_copy.quick_check = lambda path: ["ok"]
    target = folder / ".bench-copy.tmp"
    try:
        started = time.perf_counter()
        method = snapshot_copy.copy_database(db_path, target)
        return time.perf_counter() - started, method
    finally:
        snapshot_copy.quick_check = real
        os.unlink(target)


def memory_growth(client):
    """RssAnon and RssFile growth (MiB) of this process, the server, during one backup."""
    def sample():
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f)
        return tuple(int(fields[k].split()[0]) / 1024 for k in ("RssAnon", "RssFile"))
    before, peaks, done = sample(), [], threading.Event()

    def watch():
        while not done.wait(0.01):
            peaks.append(sample())
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        api_backup(client)
    finally:
        done.set()
        watcher.join()
    peaks.append(sample())
    return (max(p[0] for p in peaks) - before[0], max(p[1] for p in peaks) - before[1])


def listing_ms(client, mc, files, rounds=15):
    """Median GET /api/backup with `files` more files in the folder, and the floor: scandir +
    lstat of every file."""
    for i in range(files):
        (mc.backups.dir / f"keep-{i:05d}.db").write_bytes(b"x" * 64)
    gets, floors = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.get("/api/backup", headers={"x-api-key": KEY})
        gets.append(time.perf_counter() - started)
        assert response.status_code == 200 and len(response.json["backups"]) >= files
        started = time.perf_counter()
        [e.stat(follow_symlinks=False) for e in os.scandir(mc.backups.dir)]
        floors.append(time.perf_counter() - started)
    for i in range(files):
        os.unlink(mc.backups.dir / f"keep-{i:05d}.db")
    return statistics.median(gets) * 1000, statistics.median(floors) * 1000


def writer(db_path, interval, synchronous, stop, out):
    """Commit a small transaction every `interval` seconds; report each commit's latency."""
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=30)
    conn.execute(f"PRAGMA synchronous={synchronous}")
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


def _stats(latencies, windows):
    values = sorted(lat for t, lat in latencies if any(a <= t <= b for a, b in windows))
    return {"commits": len(values), "p50": statistics.median(values) * 1000,
            "p99": values[int(len(values) * 0.99) - 1] * 1000, "max": values[-1] * 1000}


def _backups_until(end, client):
    """Back-to-back backups until `end` (perf_counter); their (start, end) windows."""
    windows = []
    while time.perf_counter() < end:
        started = time.perf_counter()
        api_backup(client)
        windows.append((started, time.perf_counter()))
    return windows


def _with_writer(db_path, synchronous, body):
    """Run `body()` while a writer process commits every 2 ms; returns (body's result, the
    writer's (start time, latency) pairs)."""
    stop, out = multiprocessing.Event(), multiprocessing.Queue()
    proc = multiprocessing.Process(target=writer, args=(db_path, 0.002, synchronous, stop, out))
    proc.start()
    time.sleep(0.5)
    try:
        result = body()
    finally:
        stop.set()
    latencies = out.get(timeout=60)
    proc.join()
    return result, latencies


def latency_run(db_path, seconds, client, mc, synchronous="NORMAL", io_limit=0):
    """Writer latency (ms) during back-to-back backups copied at `io_limit` MB/s (0: no limit)
    for `seconds`; also the backups' median seconds."""
    mc.settings.update({"backup.io_limit_mb_s": str(io_limit)}, actor="bench")
    windows, latencies = _with_writer(
        db_path, synchronous, lambda: _backups_until(time.perf_counter() + seconds, client))
    return {**_stats(latencies, windows), "backups": len(windows),
            "backup_s": statistics.median(b - a for a, b in windows)}


def latency_pair(db_path, seconds, client, mc, synchronous, io_limit, rounds=3):
    """The same writer, in alternating windows without backups and with back-to-back backups at
    `io_limit` MB/s (`rounds` of each, `seconds` in all): (quiet, during) latency figures. One
    writer and interleaved windows, so that drift on a shared machine hits both alike."""
    mc.settings.update({"backup.io_limit_mb_s": str(io_limit)}, actor="bench")
    each = seconds / (2 * rounds)

    def alternate():
        quiet, busy = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            time.sleep(each)
            quiet.append((started, time.perf_counter()))
            busy += _backups_until(time.perf_counter() + each, client)
        return quiet, busy
    (quiet, busy), latencies = _with_writer(db_path, synchronous, alternate)
    return _stats(latencies, quiet), _stats(latencies, busy)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-seconds", type=float, default=10)
    parser.add_argument("--polite-limit", type=int, default=100,
                        help="backup.io_limit_mb_s for the politeness figures (MB/s)")
    parser.add_argument("--limits", default="0,200,100,50",
                        help="io limits (MB/s) for the trade-off table; empty: skip it")
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--pages", action="store_true",
                        help="copy page by page with SQLite's backup API, as when the database "
                             "file cannot be proven to hold the snapshot (to compare)")
    parser.add_argument("--workdir", default=None, help="folder for the test database (default: a temp dir)")
    args = parser.parse_args()
    if args.pages:
        snapshot_copy._copy_file = lambda *args: False

    work = Path(tempfile.mkdtemp(prefix="mc-bench-", dir=args.workdir))
    load_before = os.getloadavg()
    try:
        config = Config.from_env({"API_KEY": KEY, "MC_BACKUP_RATE_LIMIT": "0"}, data_dir=work)
        mc = MissionControl(config, entry_points=False, create=True)
        mc.settings.update({"general.backup_retention_count": "1"}, actor="bench")
        client = Client(WebApp(mc))
        print(f"filling a {args.size_mib} MiB database in {work} ...", flush=True)
        fill(config.db_path, args.size_mib)
        mc.backups.ensure_dir()
        size = config.db_path.stat().st_size
        cp_times, check_times, copy_times, backup_times, methods = [], [], [], [], set()
        for _ in range(args.rounds):  # alternate, so drift hits all alike
            cp_times.append(cp_fsync(config.db_path, work / "cp-copy.db"))
            check_times.append(cp_check_seconds(config.db_path, work / "cp-copy.db"))
            seconds, method = durable_copy_seconds(config.db_path, mc.backups.dir)
            copy_times.append(seconds)
            methods.add(method)
            backup_times.append(api_backup(client))
        cp_med, bk_med = statistics.median(cp_times), statistics.median(backup_times)
        check_med, copy_med = statistics.median(check_times), statistics.median(copy_times)
        anon, rss_file = memory_growth(client)

        full_quiet, full_polite = latency_pair(config.db_path, args.latency_seconds * 2, client,
                                               mc, "FULL", args.polite_limit)
        normal = latency_run(config.db_path, args.latency_seconds, client, mc, "NORMAL")
        trade = [(limit, latency_run(config.db_path, args.latency_seconds / 2, client, mc,
                                     "FULL", limit))
                 for limit in [int(x) for x in args.limits.split(",") if x.strip()]]
        list_ms, floor_ms = listing_ms(client, mc, args.files)
        mc.close()

        rows = [
            ("database size", f"{size / 2**20:.0f} MiB", ""),
            ("cp + fsync (median)", f"{cp_med:.2f} s", "baseline"),
            ("quick_check of that copy, plain (median)", f"{check_med:.2f} s", "baseline"),
            ("copy phase: durable temp file (median)", f"{copy_med:.2f} s",
             "copied by: " + ", ".join(sorted(methods))),
            ("copy phase / (cp + fsync)", f"{copy_med / cp_med:.2f}x", "<= 1.1x"),
            ("POST /api/backup (median)", f"{bk_med:.2f} s", ""),
            ("backup / (cp + fsync + quick_check)", f"{bk_med / (cp_med + check_med):.2f}x",
             "<= 1.0x"),
            ("backup throughput", f"{size / 2**20 / bk_med:.0f} MiB/s", ""),
            ("writer p99, FULL, no backup (windows between those below)",
             f"{full_quiet['p99']:.2f} ms", "baseline"),
            (f"writer p99, FULL, backups at {args.polite_limit} MB/s",
             f"{full_polite['p99']:.2f} ms", ""),
            ("  ratio to no backup", f"{full_polite['p99'] / full_quiet['p99']:.2f}x", "<= 2x"),
            ("  worst commit", f"{full_polite['max']:.2f} ms", ""),
            ("writer p99, NORMAL, backups unlimited", f"{normal['p99']:.2f} ms", "<= 1 ms"),
            ("writer worst, NORMAL, backups unlimited", f"{normal['max']:.2f} ms", "<= 100 ms"),
            ("commits / backups in that window", f"{normal['commits']} / {normal['backups']}",
             "backups complete"),
            *[(f"  limit {limit or 'none'} MB/s: backup s / FULL p99 / worst",
               f"{r['backup_s']:.2f} / {r['p99']:.2f} / {r['max']:.0f}", "trade-off")
              for limit, r in trade],
            (f"GET /api/backup, {args.files} files (median)", f"{list_ms:.1f} ms", "<= 50 ms"),
            ("  floor: scandir + lstat of every file", f"{floor_ms:.1f} ms", "baseline"),
            ("RssAnon growth during one backup", f"{anon:.1f} MiB", "<= 32 MiB"),
            ("RssFile growth (mapped page cache)", f"{rss_file:.1f} MiB", "not process memory"),
            ("load average before / after (1 min)",
             f"{load_before[0]:.1f} / {os.getloadavg()[0]:.1f}", f"{os.cpu_count()} CPUs"),
        ]
        width = max(len(r[0]) for r in rows)
        print(f"\n{'figure'.ljust(width)}  {'measured':>16}  goal")
        for name, value, goal in rows:
            print(f"{name.ljust(width)}  {value:>16}  {goal}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
