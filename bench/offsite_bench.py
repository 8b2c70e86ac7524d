"""Benchmark: an off-site copy compressed (zstd) and encrypted (age) in flat memory, and its drill.

Run: `python bench/offsite_bench.py [--size-mib 1024] [--level 3] [--drill]`. Makes a database of
the given size (half repetitive JSON-like text, half random bytes, so the ratio is neither the
best nor the worst case), backs it up, then copies it to a folder target with zstd and age while
a thread samples the process's RssAnon (anonymous memory: heap and buffers, not the page cache).
Prints throughput, ratio and the RssAnon growth, and exits 1 when the growth is over the goal
(32 MiB). `--drill` also times a restore drill of that copy (unpack, integrity_check, compare).
`--s3` also measures the S3 target against moto's standalone server on loopback (it packs into a
temporary file, then uploads that in parts).
"""
import argparse
import os
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyrage  # noqa: E402

from mission_control.builtins import offsite_dir, offsite_s3  # noqa: E402
from mission_control.config import Config  # noqa: E402
from mission_control.core import MissionControl  # noqa: E402
from mission_control.offsite.drill import drill_all

GOAL_MIB = 32
MIB = 1024 * 1024


def rss_anon():
    """This process's RssAnon in bytes (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


class PeakSampler(threading.Thread):
    """Samples RssAnon every 20 ms until stopped; `peak` is the highest seen."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak = rss_anon()
        self._done = threading.Event()

    def run(self):
        while not self._done.wait(0.02):
            self.peak = max(self.peak, rss_anon())

    def stop(self):
        self._done.set()
        self.join()
        self.peak = max(self.peak, rss_anon())


def fill(db_path, mib):
    """Grow the live database to about `mib` MiB: half text that compresses, half random bytes."""
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE IF NOT EXISTS bench_rows (id INTEGER PRIMARY KEY, data)")
    rows_per_mib = 256  # ~4 KiB a row, with page overhead
    for start in range(0, mib * rows_per_mib, 8192):
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " INSERT INTO bench_rows (data) SELECT CASE WHEN i % 2 THEN randomblob(4000) ELSE"
            " printf('{\"task\": %d, \"title\": \"Task number %d\", \"status\": \"inbox\","
            " \"notes\": \"%s %s\"}', i, i, hex(randomblob(100)),"
            " replace(zeroblob(3600), x'00', 'a')) END FROM n",
            (start, start + 8191))
        conn.commit()
    conn.close()


def measure(label, action):
    """Run `action()` under the sampler; returns (result, seconds, RssAnon growth in bytes)."""
    base = rss_anon()
    sampler = PeakSampler()
    sampler.start()
    started = time.perf_counter()
    try:
        result = action()
    finally:
        elapsed = time.perf_counter() - started
        sampler.stop()
    print(f"{label}: {elapsed:.1f} s, RssAnon growth {(sampler.peak - base) / MIB:.1f} MiB",
          flush=True)
    return result, elapsed, sampler.peak - base


def s3_copy(mc, made, recipient, level):
    """Copy `made` to a bucket on moto's server like the S3 target does; returns the growth."""
    import boto3

    from tests.s3server import ACCESS_KEY, SECRET_KEY, S3Server
    server = S3Server()
    try:
        os.environ.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
                          AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
        boto3.client("s3", endpoint_url=server.url).create_bucket(Bucket="bench")
        mc.settings.update({"offsite.s3.bucket": "bench", "offsite.s3.endpoint_url": server.url,
                            "offsite.s3.compress": "zstd", "offsite.s3.zstd_level": level,
                            "offsite.s3.age_recipients": recipient}, "bench")
        _, seconds, growth = measure(
            "S3 copy (zstd + age to a temporary file, multipart upload, ETag check)",
            lambda: offsite_s3.post_backup(mc=mc, backup=made, actor="bench"))
        result = mc.offsite.get("s3")
        print(f"S3: {'ok' if result['ok'] else 'FAILED: ' + result['message']}, "
              f"{made.size / MIB / seconds:.0f} MiB/s of backup", flush=True)
        mc.settings.reset("offsite.s3.bucket", "bench")
        return growth if result["ok"] else None
    finally:
        server.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--level", type=int, default=3, help="zstd level")
    parser.add_argument("--drill", action="store_true", help="also time a restore drill")
    parser.add_argument("--s3", action="store_true", help="also measure the S3 target (moto)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mc-offsite-bench-") as tmp:
        tmp = Path(tmp)
        nas = tmp / "nas"
        nas.mkdir()
        identity = pyrage.x25519.Identity.generate()
        with MissionControl(Config.from_env({}, data_dir=tmp / "data"),
                            entry_points=False) as mc:
            print(f"filling a {args.size_mib} MiB database ...", flush=True)
            fill(mc.config.db_path, args.size_mib)
            made = mc.backups.create("bench")
            print(f"backup {made.name}: {made.size / MIB:.0f} MiB", flush=True)
            mc.settings.update({"offsite.dir.path": str(nas), "offsite.dir.compress": "zstd",
                                "offsite.dir.zstd_level": args.level,
                                "offsite.dir.age_recipients": str(identity.to_public()),
                                "offsite.age_identity": str(identity)}, "bench")
            _, seconds, growth = measure(
                "copy (zstd + age + write + read back)",
                lambda: offsite_dir.post_backup(mc=mc, backup=made, actor="bench"))
            result = mc.offsite.get("dir")
            if not result["ok"]:
                print(f"copy failed: {result['message']}")
                return 2
            print(f"stored {result['stored_size'] / MIB:.1f} MiB, ratio {result['ratio']:.3f}, "
                  f"throughput {made.size / MIB / seconds:.0f} MiB/s of backup")
            ok = growth <= GOAL_MIB * MIB
            print(f"memory goal (RssAnon growth <= {GOAL_MIB} MiB): "
                  f"{'met' if ok else 'MISSED'}")
            if args.s3:
                growth = s3_copy(mc, made, str(identity.to_public()), args.level)
                ok = ok and growth is not None and growth <= GOAL_MIB * MIB
            if args.drill:
                [drilled], seconds, growth = measure("drill (age -d, zstd -d, integrity_check)",
                                                     lambda: drill_all(mc, "bench"))
                print(f"drill: {'passed' if drilled['ok'] else 'FAILED'}: {drilled['message']}; "
                      f"{made.size / MIB / seconds:.0f} MiB/s")
                ok = ok and drilled["ok"] and growth <= GOAL_MIB * MIB
            return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
