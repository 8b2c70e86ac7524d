"""Benchmark partial restore: a diff of a large backup against the live database, and restoring
one table of 100,000 rows while a writer keeps writing.

Run: `python bench/partial_bench.py [--size-mib 1024] [--rows 100000] [--changed 10000]`.
Builds a Mission Control database of about `--size-mib` MiB (activities and tasks of a few
hundred bytes each), backs it up, verifies the backup once (as any restore does; a diff reuses
that check of the unchanged file), changes a few thousand rows, and times `diff`. Then, on a
database with a `tasks` table of `--rows` rows, changes `--changed` of them (deleted, updated,
inserted) and restores the table from its backup while another thread commits one row at a time,
measuring its longest wait. Prints each figure beside its goal; exits 1 when one is missed.
"""
import argparse
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mission_control.backup.partial.diff import diff  # noqa: E402
from mission_control.backup.partial.restore import restore_partial, undo_partial  # noqa: E402
from mission_control.backup.verify import verify_backup  # noqa: E402
from mission_control.config import Config  # noqa: E402
from mission_control.core import MissionControl  # noqa: E402

DIFF_GOAL, RESTORE_GOAL, STALL_GOAL = 5.0, 2.0, 0.5
ROW_BYTES = 400  # about what one activity or task row takes, with SQLite's overhead


def open_mc(folder):
    return MissionControl(Config.from_env({}, data_dir=folder), create=True)


def fill(db_path, table, count, first=1, text=300):
    """`count` rows of `table` (activities or tasks) with `text` random characters each."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("BEGIN")
    series = (f"WITH RECURSIVE n(x) AS (SELECT {first} UNION ALL SELECT x + 1 FROM n"
              f" WHERE x < {first + count - 1})")
    if table == "activities":
        conn.execute(f"{series} INSERT INTO activities (id, type, entity_type, entity_id, actor,"
                     " description, data, created_at) SELECT x, 'task_updated', 'task', x % 1000,"
                     f" 'agent-' || (x % 50), 'changed a task', substr(hex(randomblob({text})),"
                     f" 1, {text}), 1700000000 + x FROM n")
    else:
        conn.execute(f"{series} INSERT INTO tasks (id, title, description, status, priority,"
                     " assigned_to, created_by, created_at, updated_at) SELECT x, 'task ' || x,"
                     f" substr(hex(randomblob({text})), 1, {text}), 'inbox', 'medium',"
                     " 'agent-' || (x % 50), 'alice', 1700000000, 1700000000 FROM n")
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def change(db_path, table, count, total):
    """Delete, update and insert about `count` rows of `table` (a third each)."""
    third = max(count // 3, 1)
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("BEGIN")
    step = max(total // (2 * third), 1)
    conn.execute(f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE id % {step} = 0"
                 f" LIMIT {third})")
    column = "description"
    conn.execute(f"UPDATE {table} SET {column} = 'changed' WHERE id IN (SELECT id FROM {table}"
                 f" WHERE id % {step} = 1 LIMIT {third})")
    conn.execute("COMMIT")
    conn.close()
    fill(db_path, table, third, first=total + 1)


def bench_diff(work, mib):
    mc = open_mc(work / "diff")
    try:
        rows = mib * 1024 * 1024 // ROW_BYTES
        started = time.perf_counter()
        fill(mc.config.db_path, "activities", rows - rows // 10)
        fill(mc.config.db_path, "tasks", rows // 10)
        built = time.perf_counter() - started
        size = Path(mc.config.db_path).stat().st_size
        made = mc.backups.create("bench")
        started = time.perf_counter()
        verify_backup(mc, made.name, "bench")
        verified = time.perf_counter() - started
        change(mc.config.db_path, "activities", 3000, rows - rows // 10)
        change(mc.config.db_path, "tasks", 3000, rows // 10)
        started = time.perf_counter()
        answer = diff(mc, made.name)
        took = time.perf_counter() - started
        print(f"database: {size / 2**20:.0f} MiB, {rows:,} rows (built in {built:.1f} s); "
              f"verification once: {verified:.1f} s")
        print(f"diff of the backup against live: {took:.2f} s (goal <= {DIFF_GOAL} s), "
              f"totals {answer['totals']}")
        return took <= DIFF_GOAL
    finally:
        mc.close()


def bench_restore(work, rows, changed):
    mc = open_mc(work / "restore")
    try:
        fill(mc.config.db_path, "tasks", rows)
        made = mc.backups.create("bench")
        change(mc.config.db_path, "tasks", changed, rows)
        stop, waits = threading.Event(), []

        def writer():
            conn = sqlite3.connect(mc.config.db_path, isolation_level=None, timeout=30)
            while not stop.is_set():
                started = time.perf_counter()
                conn.execute("INSERT INTO activities (type, entity_type, actor, description,"
                             " created_at) VALUES ('x', 'task', 'bench', 'writer', 0)")
                waits.append(time.perf_counter() - started)
                time.sleep(0.002)
            conn.close()
        thread = threading.Thread(target=writer)
        thread.start()
        time.sleep(0.3)
        started = time.perf_counter()
        answer = restore_partial(mc, made.name, "bench", tables=["tasks"], force=True)
        took = time.perf_counter() - started
        time.sleep(0.3)
        stop.set()
        thread.join()
        stall = max(waits)
        started = time.perf_counter()
        undo_partial(mc, answer["undo"], "bench")
        undo = time.perf_counter() - started
        print(f"restore of tasks ({rows:,} rows, {sum(answer['totals'].values()):,} changed: "
              f"{answer['totals']}): {took:.2f} s (goal <= {RESTORE_GOAL} s); undo {undo:.2f} s")
        print(f"longest wait of a concurrent writer: {stall * 1000:.0f} ms over {len(waits)} "
              f"commits (goal <= {STALL_GOAL * 1000:.0f} ms)")
        return took <= RESTORE_GOAL and stall <= STALL_GOAL
    finally:
        mc.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--changed", type=int, default=10_000)
    parser.add_argument("--workdir", default=None, help="folder for the databases (default: a "
                        "temporary one, removed afterwards)")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="partial-bench-"))
    try:
        ok = bench_restore(work, args.rows, args.changed)
        ok = bench_diff(work, args.size_mib) and ok
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print("all goals met" if ok else "a goal was missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
