"""Benchmark: restore and verify against the disk's floor, a live writer's stall during a restore,
listing 10,000 backups over HTTP, off-site packing against zstd | age, and a 10 GiB run (issue 26).

Run: `python bench/restore_bench.py [--size-mib 512] [--rounds 3]` (`--no-restore --files 0` for
the off-site figures alone), or `--size-gib 10` for the large run (the database is made on the
fly; the disk space it needs is printed first, and the run refuses to start without it). Every
figure is printed next to its goal, as a ratio against a baseline measured in the same run
(machines are noisy; ratios travel better than seconds):

- `POST /api/backup/restore` against `cp` + fsync (the safety copy) + `PRAGMA integrity_check`
  (the check of the source) + `cp` + fsync (the copy into place) of the same file;
- `POST /api/backup/verify` against `PRAGMA integrity_check` of the same file;
- the swap: its method (`pages`: only the pages that differ, with `sqlean.py` installed;
  `backup_api`: every page), the pages it wrote, and how long it held the live database's write
  lock; and one restore with the page swap turned off (every page written, as without
  `sqlean.py` or when every page differs), against the same floor;
- the longest commit of a writer (`synchronous=NORMAL`, one commit every 5 ms) during a
  restore, and that swap's write lock;
- `GET /api/backup` with 10,000 canonically named backups, median over HTTP (waitress);
- the off-site copy to a folder (zstd level 3 + age, `post_backup` of the built-in folder
  target: pack, write, fsync, read back, sign) against `zstd -T2 -3 | age -r` of the same file
  to a file, fsynced;
- 10 GiB: `POST /api/backup` against `cp` + fsync + `quick_check`, restore against its floor,
  and the server's RssAnon growth during both.
"""
import argparse
import hashlib
import http.client
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

from mission_control.backup import restore as restore_mod  # noqa: E402
from mission_control.config import Config  # noqa: E402
from mission_control.core import MissionControl  # noqa: E402
from mission_control.server import make_server  # noqa: E402
from mission_control.web import WebApp  # noqa: E402

KEY = "bench-api-key-0123456789"
HEADERS = {"x-api-key": KEY}
MIB = 2**20


# -- the database ------------------------------------------------------------------------------
def fill(db_path, mib):
    """Grow the live database to about `mib` MiB: half text that compresses, half random bytes
    (one row a page), as `bench/offsite_bench.py` does. Past 256 MiB the rows are copied
    (doubling), which is quicker than making them."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("CREATE TABLE IF NOT EXISTS bench_rows (id INTEGER PRIMARY KEY, data)")
    rows = mib * 256  # ~4 KiB a row
    seed = min(rows, 256 * 256)
    for start in range(0, seed, 8192):
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " INSERT INTO bench_rows (data) SELECT CASE WHEN i % 2 THEN randomblob(4000) ELSE"
            " printf('{\"task\": %d, \"title\": \"Task number %d\", \"status\": \"inbox\","
            " \"notes\": \"%s %s\"}', i, i, hex(randomblob(100)),"
            " replace(zeroblob(3600), x'00', 'a')) END FROM n",
            (start, min(seed, start + 8192) - 1))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    have = seed
    while have < rows:
        step = min(have, rows - have, 256 * 256)
        conn.execute("INSERT INTO bench_rows (data) SELECT data FROM bench_rows"
                     " ORDER BY id LIMIT ?", (step,))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        have += step
    conn.close()


def synced(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- baselines ---------------------------------------------------------------------------------
def cp_fsync(src, dst):
    """`cp` + fsync of `src` to `dst` (removed afterwards): seconds."""
    started = time.perf_counter()
    subprocess.run(["cp", str(src), str(dst)], check=True)
    synced(dst)
    elapsed = time.perf_counter() - started
    os.unlink(dst)
    return elapsed


def pragma_seconds(path, pragma):
    """A plain `PRAGMA <pragma>` (default settings) of the file `path`: seconds."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        started = time.perf_counter()
        rows = conn.execute(f"PRAGMA {pragma}").fetchall()
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    assert rows == [("ok",)], rows
    return elapsed


def restore_floor(live, backup, scratch):
    """The floor of a safe restore: a safety copy of the live file, a check of the source and a
    copy into place (`cp` + fsync, `integrity_check`, `cp` + fsync): seconds."""
    return (cp_fsync(live, scratch) + pragma_seconds(backup, "integrity_check")
            + cp_fsync(backup, scratch))


def zstd_age_seconds(src, out, recipient):
    """`zstd -T2 -3 | age -r` of `src` into `out`, fsynced (the service's copy is durable too)."""
    started = time.perf_counter()
    subprocess.run(f"zstd -q -T2 -3 -c '{src}' | age -r {recipient} -o '{out}'", shell=True,
                   check=True)
    synced(out)
    elapsed = time.perf_counter() - started
    os.unlink(out)
    return elapsed


# -- the service's figures ---------------------------------------------------------------------
class SwapTimer:
    """Keeps what `restore._swap` says of each swap in this process, where the app runs: its
    method, the pages it wrote and how long it held the live database's write lock (`infos`),
    and its whole time, the page swap's comparison before the lock included (`times`)."""

    def __init__(self):
        self.times, self.infos = [], []
        self._real = restore_mod._swap

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                info = self._real(*args, **kwargs)
                self.infos.append(info)
                return info
            finally:
                self.times.append(time.perf_counter() - started)
        restore_mod._swap = timed

    def lock_ms(self):
        return statistics.median(info["lock_ms"] for info in self.infos)


def post(client, path, body=None):
    started = time.perf_counter()
    response = client.post(path, json=body, headers=HEADERS)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return elapsed, response.json


def restore(client, name):
    return post(client, "/api/backup/restore", {"name": name})[0]


def sha256_seconds(path):
    """SHA-256 of the file alone (hashlib, 1 MiB reads, as the service reads it): seconds."""
    started = time.perf_counter()
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(MIB):
            digest.update(block)
    return time.perf_counter() - started


def verify(client, name):
    seconds, body = post(client, "/api/backup/verify", {"name": name})
    assert body["ok"], body
    return seconds


class RssAnon:
    """Peak RssAnon growth (MiB) of this process, the server, during a `with` block."""

    def __enter__(self):
        self.base = self.peak = self._sample()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _sample():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def _watch(self):
        while not self._done.wait(0.01):
            self.peak = max(self.peak, self._sample())

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())
        self.growth = self.peak - self.base


def writer(db_path, interval, stop, out):
    """Commit a small transaction every `interval` seconds (`synchronous=NORMAL`); report each
    commit's (start, latency), and the errors met."""
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=60)
    conn.execute("PRAGMA synchronous=NORMAL")
    latencies, errors = [], []
    next_at = time.perf_counter()
    while not stop.is_set():
        started = time.perf_counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO bench_writes VALUES (?, 'tick')", (started,))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            errors.append(str(exc))
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        latencies.append((started, time.perf_counter() - started))
        next_at += interval
        time.sleep(max(0.0, next_at - time.perf_counter()))
    conn.close()
    out.put((latencies, errors))


def writer_stall(db_path, client, name, swaps):
    """The longest commit of a writer (every 5 ms, NORMAL) during one restore, and its commits,
    errors and the restore's swap time."""
    stop, out = multiprocessing.Event(), multiprocessing.Queue()
    proc = multiprocessing.Process(target=writer, args=(db_path, 0.005, stop, out))
    proc.start()
    time.sleep(0.5)
    started = time.perf_counter()
    try:
        restore(client, name)
    finally:
        ended = time.perf_counter()
        time.sleep(0.3)
        stop.set()
    latencies, errors = out.get(timeout=120)
    proc.join()
    during = [lat for t, lat in latencies if started <= t <= ended]
    return {"max": max(during) * 1000, "commits": len(during), "errors": errors,
            "swap": swaps.infos[-1]}


def restore_every_page(client, name, swaps):
    """One restore with the page swap turned off: SQLite's backup API writes every page, as
    when every page differs or `sqlean.py` is not installed. :return: (seconds, lock ms)."""
    real = restore_mod.page_swap.available
    restore_mod.page_swap.available = lambda: False
    try:
        seconds = restore(client, name)
    finally:
        restore_mod.page_swap.available = real
    return seconds, swaps.infos[-1]["lock_ms"]


def listing_ms(mc, files, rounds=15):
    """Median `GET /api/backup` over HTTP (waitress, one keep-alive connection) with `files`
    canonically named backups in the folder; and the floor: scandir + lstat of every file."""
    made = []
    first = int(time.time()) - files - 10
    for i in range(files):
        path = mc.backups.dir / time.strftime("mc-backup-%Y-%m-%d_%H-%M-%S.db",
                                              time.gmtime(first + i))
        path.write_bytes(b"x" * 64)
        made.append(path)
    server = make_server(mc, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.effective_port, timeout=60)
        gets, floors = [], []
        for _ in range(rounds + 1):
            started = time.perf_counter()
            conn.request("GET", "/api/backup", headers=HEADERS)
            response = conn.getresponse()
            body = response.read()
            gets.append(time.perf_counter() - started)
            assert response.status == 200 and body.count(b'"name"') >= files, response.status
            started = time.perf_counter()
            [e.stat(follow_symlinks=False) for e in os.scandir(mc.backups.dir)]
            floors.append(time.perf_counter() - started)
        conn.close()
    finally:
        server.close()
        for path in made:
            os.unlink(path)
    return statistics.median(gets[1:]) * 1000, statistics.median(floors) * 1000, gets[0] * 1000


def offsite_seconds(mc, made, nas, level):
    """One off-site copy of `made` to the folder `nas` (zstd `level` + age), as after a backup
    (`post_backup` of the built-in folder target): seconds, and the result."""
    import pyrage
    from mission_control.builtins import offsite_dir
    identity = pyrage.x25519.Identity.generate()
    recipient = str(identity.to_public())
    mc.settings.update({"offsite.dir.path": str(nas), "offsite.dir.compress": "zstd",
                        "offsite.dir.zstd_level": level, "offsite.dir.retention_count": 1,
                        "offsite.dir.age_recipients": recipient}, "bench")
    try:
        started = time.perf_counter()
        offsite_dir.post_backup(mc=mc, backup=made, actor="bench")
        elapsed = time.perf_counter() - started
        result = mc.offsite.get("dir")
    finally:
        mc.settings.reset("offsite.dir.path", "bench")
    assert result["ok"], result["message"]
    shutil.rmtree(nas)
    nas.mkdir()
    return elapsed, recipient, result


# -- the runs ----------------------------------------------------------------------------------
def open_service(work):
    config = Config.from_env({"API_KEY": KEY, "MC_BACKUP_RATE_LIMIT": "0"}, data_dir=work)
    mc = MissionControl(config, entry_points=False, create=True)
    mc.settings.update({"general.backup_retention_count": "1",
                        "general.safety_copies_keep": "1"}, actor="bench")
    mc.backups.ensure_dir()
    return mc, Client(WebApp(mc))


def make_backup(client, mc):
    seconds, body = post(client, "/api/backup")
    name = body["backup"]["name"]
    synced(mc.backups.dir / name)
    return seconds, name


def ratio(value, base):
    return f"{value / base:.2f}x" if base else "n/a"


def print_rows(rows):
    width = max(len(r[0]) for r in rows)
    print(f"\n{'figure'.ljust(width)}  {'measured':>22}  goal")
    for name, value, goal in rows:
        print(f"{name.ljust(width)}  {value:>22}  {goal}")


def restore_rows(args, client, db, backup, name, scratch, swaps):
    """The restore, verify and writer figures (median of `args.rounds`)."""
    floors, restores, checks, verifies, hashes = [], [], [], [], []
    for _ in range(args.rounds):  # alternate, so drift hits all alike
        floors.append(restore_floor(db, backup, scratch))
        restores.append(restore(client, name))
        checks.append(pragma_seconds(backup, "integrity_check"))
        hashes.append(sha256_seconds(backup))
        verifies.append(verify(client, name))
    floor, restored = statistics.median(floors), statistics.median(restores)
    check, verified = statistics.median(checks), statistics.median(verifies)
    swap_ms = statistics.median(swaps.times) * 1000
    info = swaps.infos[-1]
    stall = writer_stall(db, client, name, swaps)
    every_page, every_lock = restore_every_page(client, name, swaps)

    return [
        ("floor: cp+fsync + integrity_check + cp+fsync", f"{floor:.2f} s", "baseline"),
        ("POST /api/backup/restore (median)", f"{restored:.2f} s", ""),
        ("  restore / floor", ratio(restored, floor), "<= 1.2x"),
        ("  the swap: its method, pages written / pages", f"{info['method']}, "
         f"{info['written']} / {info['pages']}", ""),
        ("  the swap: whole (median) / write lock held (median)",
         f"{swap_ms:.0f} / {swaps.lock_ms():.0f} ms", ""),
        ("POST /api/backup/restore, every page written (backup API)", f"{every_page:.2f} s", ""),
        ("  / floor; its write lock held", f"{every_page / floor:.2f}x; {every_lock:.0f} ms",
         "reported"),
        ("integrity_check of the backup, plain", f"{check:.2f} s", "baseline"),
        ("POST /api/backup/verify (median)", f"{verified:.2f} s", ""),
        ("  verify / integrity_check", ratio(verified, check), "<= 1.2x"),
        ("  SHA-256 of the file alone / integrity_check (verify's floor)",
         ratio(statistics.median(hashes), check), "reported"),
        ("writer (NORMAL, every 5 ms): longest commit during a restore",
         f"{stall['max']:.0f} ms", "<= 250 ms"),
        ("  that restore's swap: write lock held", f"{stall['swap']['lock_ms']:.0f} ms",
         "reported"),
        ("  commits in that restore / errors", f"{stall['commits']} / {len(stall['errors'])}",
         "no error"),
    ]


def main_run(args, work):
    mc, client = open_service(work)
    swaps = SwapTimer()
    db = mc.config.db_path
    print(f"filling a {args.size_mib} MiB database in {work} ...", flush=True)
    fill(db, args.size_mib)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE IF NOT EXISTS bench_writes (t REAL, note TEXT)")
    conn.commit()
    conn.close()
    _, name = make_backup(client, mc)
    backup = mc.backups.dir / name
    size = backup.stat().st_size
    scratch = work / "cp-copy.db"
    rows = [("database size", f"{size / MIB:.0f} MiB", "")]
    if args.restore:
        rows += restore_rows(args, client, db, backup, name, scratch, swaps)
    if args.offsite:
        nas = work / "nas"
        nas.mkdir()
        made = mc.backups.list()
        made = next(b for b in made if b.name == name)
        packs, pipes = [], []
        for _ in range(args.offsite_rounds):
            # Each starts with no dirty pages of the other's (or of the fill's) still being
            # written back: at 2 GiB that writeback fell on whichever ran first.
            os.sync()
            seconds, recipient, result = offsite_seconds(mc, made, nas, 3)
            packs.append(seconds)
            os.sync()
            pipes.append(zstd_age_seconds(backup, work / "pipe.zst.age", recipient))
        pack, pipe = statistics.median(packs), statistics.median(pipes)
        rows += [
            ("zstd -T2 -3 | age -r, to a file, fsynced", f"{pipe:.2f} s", "baseline"),
            ("off-site copy to a folder (zstd 3 + age, checked)", f"{pack:.2f} s",
             f"ratio {result['ratio']:.3f}"),
            ("  throughput / that of zstd | age", ratio(pipe, pack), ">= 0.9x"),
        ]
    if args.files:
        list_ms, floor_ms, first_ms = listing_ms(mc, args.files)
        rows += [
            (f"GET /api/backup over HTTP, {args.files} canonical names (median)",
             f"{list_ms:.1f} ms", "<= 50 ms"),
            ("  first request (names parsed)", f"{first_ms:.1f} ms", ""),
            ("  floor: scandir + lstat of every file", f"{floor_ms:.1f} ms", "baseline"),
        ]
    mc.close()
    return rows


def space_needed(size):
    """Bytes a `--size-gib` run needs at its peak, a restore: the live database, the backup,
    the restore's prepared copy and safety copy, and the WAL the swap writes; plus 5 %."""
    return int(size * 5 * 1.05)


def large_run(args, work):
    size = args.size_gib * 2**30
    need, free = space_needed(size), shutil.disk_usage(work).free
    print(f"a {args.size_gib} GiB run needs about {need / 2**30:.1f} GiB of disk at its peak; "
          f"{free / 2**30:.1f} GiB free in {work}", flush=True)
    if need > free:
        raise SystemExit("not enough disk space: refused (nothing was written)")
    mc, client = open_service(work)
    swaps = SwapTimer()
    db = mc.config.db_path
    started = time.perf_counter()
    fill(db, args.size_gib * 1024)
    print(f"filled in {time.perf_counter() - started:.0f} s", flush=True)
    synced(db)
    scratch = work / "cp-copy.db"
    cp = cp_fsync(db, scratch)
    shutil.copyfile(db, scratch)
    synced(scratch)
    quick = pragma_seconds(scratch, "quick_check")
    os.unlink(scratch)
    with RssAnon() as backup_rss:
        backed_up, name = make_backup(client, mc)
    backup = mc.backups.dir / name
    floor = restore_floor(db, backup, scratch)
    with RssAnon() as restore_rss:
        restored = restore(client, name)
    mc.close()
    return [
        ("database size", f"{backup.stat().st_size / 2**30:.2f} GiB", ""),
        ("cp + fsync + quick_check of that copy", f"{cp + quick:.1f} s", "baseline"),
        ("POST /api/backup", f"{backed_up:.1f} s", ""),
        ("  backup / (cp + fsync + quick_check)", ratio(backed_up, cp + quick), "<= 1.0x"),
        ("floor: cp+fsync + integrity_check + cp+fsync", f"{floor:.1f} s", "baseline"),
        ("POST /api/backup/restore", f"{restored:.1f} s", ""),
        ("  restore / floor", ratio(restored, floor), "<= 1.2x"),
        ("  the swap: its method, pages written / pages",
         f"{swaps.infos[-1]['method']}, {swaps.infos[-1]['written']} / "
         f"{swaps.infos[-1]['pages']}", ""),
        ("  the swap: whole / write lock held",
         f"{swaps.times[-1]:.2f} s / {swaps.infos[-1]['lock_ms']:.0f} ms", "reported"),
        ("RssAnon growth: backup / restore",
         f"{backup_rss.growth:.1f} / {restore_rss.growth:.1f} MiB", "<= 32 MiB"),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--size-gib", type=int, default=0,
                        help="the large run instead: backup, restore and memory at this size")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=10_000,
                        help="canonical backup names for the listing (0: skip it)")
    parser.add_argument("--no-offsite", dest="offsite", action="store_false",
                        help="skip the off-site packing figures")
    parser.add_argument("--no-restore", dest="restore", action="store_false",
                        help="skip the restore, verify and writer figures")
    parser.add_argument("--offsite-rounds", type=int, default=1)
    parser.add_argument("--workdir", default=None, help="folder for the databases (default: a "
                                                        "temp dir)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mc-restore-bench-", dir=args.workdir))
    load_before = os.getloadavg()
    try:
        rows = large_run(args, work) if args.size_gib else main_run(args, work)
        rows.append(("load average before / after (1 min)",
                     f"{load_before[0]:.1f} / {os.getloadavg()[0]:.1f}",
                     f"{os.cpu_count()} CPUs"))
        print_rows(rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
