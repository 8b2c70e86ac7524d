"""The restore's page swap: only the pages that differ are written, in one transaction, and every
other connection sees the old data or the new.

The swap itself runs on `sqlean`'s SQLite here, in this process, on files no connection of
Python's `sqlite3` opens meanwhile (two SQLite libraries in one process must not share a file);
the restores through the app run it as the child process they always use.
"""
import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap

import pytest
import sqlean

from mission_control.backup import page_swap
from mission_control.backup.page_swap import NotApplicable, PageSwap

ROWS = 300


def rows(path, table="t"):
    conn = sqlean.connect(path)
    try:
        return conn.execute(f"SELECT rowid, x FROM {table} ORDER BY rowid").fetchall()
    finally:
        conn.close()


def integrity(path):
    conn = sqlean.connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()


@pytest.fixture
def pair(tmp_path):
    """A live database in WAL mode (300 rows of 3,000 bytes: one a page) and its copy `prepared`
    in rollback-journal mode, as a restore prepares it; then 3 live rows are changed."""
    live, prepared = tmp_path / "live.db", tmp_path / "prepared.db"
    conn = sqlean.connect(live, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.executemany("INSERT INTO t VALUES (randomblob(3000))", [()] * ROWS)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    shutil.copyfile(live, prepared)
    conn = sqlean.connect(prepared, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    conn = sqlean.connect(live, isolation_level=None)
    conn.execute("UPDATE t SET x = randomblob(3000) WHERE rowid IN (10, 150, 290)")
    conn.close()
    return live, prepared


def swap(live, prepared, before_attach=None, **kw):
    runner = PageSwap(sqlean, str(live), 5000)
    announced = []
    try:
        if before_attach is not None:
            before_attach()
        runner.attach(str(prepared))
        return runner.run(announced.append, **kw), announced
    finally:
        runner.close()


def test_only_the_pages_that_differ_are_written(pair):
    live, prepared = pair
    assert rows(live) != rows(prepared)
    result, announced = swap(live, prepared)
    assert rows(live) == rows(prepared)
    assert integrity(live) == [("ok",)]
    # The 3 changed rows' pages and page 1. Nothing was committed since the comparison, so only
    # page 1 (always written) was compared again under the lock.
    assert result["written"] == 4 and result["pages"] > ROWS
    assert result["full_compare"] is False and result["compared_under_lock"] == 1
    assert len(announced) == 1


def test_a_copy_whose_every_page_differs_is_written_whole(pair):
    live, prepared = pair
    conn = sqlean.connect(prepared, isolation_level=None)
    conn.execute("UPDATE t SET x = randomblob(3000)")
    conn.close()
    result, _ = swap(live, prepared)
    assert rows(live) == rows(prepared) and integrity(live) == [("ok",)]
    assert result["written"] >= ROWS


def test_nothing_differs_nothing_is_written(pair):
    live, prepared = pair
    swap(live, prepared)
    result, announced = swap(live, prepared)
    assert result["written"] == 0 and announced == []


def test_a_page_changed_after_the_comparison_is_compared_again_under_the_lock(pair):
    """Row 200's page was equal when compared; a writer changes it before the swap's lock: the
    WAL's frames since then say so, and it is restored too. (The service keeps the live database
    open, so its WAL has a generation when a restore starts; `keeper` stands for that.)"""
    live, prepared = pair
    keeper = sqlean.connect(live, isolation_level=None)
    keeper.execute("UPDATE t SET x = x WHERE rowid = 1")

    def writer_commits():
        conn = sqlean.connect(live, isolation_level=None)
        conn.execute("UPDATE t SET x = randomblob(3000) WHERE rowid = 200")
        conn.close()
    result, _ = swap(live, prepared, between=writer_commits)
    keeper.close()
    assert rows(live) == rows(prepared)
    assert result["full_compare"] is False and result["written"] == 5


def test_a_page_changed_in_a_new_wal_generation_is_compared_again(pair):
    """The WAL was empty when the swap began (the live database idle): the writer's frame starts
    a new generation, whose every frame is compared again."""
    live, prepared = pair
    conn = sqlean.connect(live, isolation_level=None)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()

    def writer_commits():
        conn = sqlean.connect(live, isolation_level=None)
        conn.execute("UPDATE t SET x = randomblob(3000) WHERE rowid = 200")
        conn.close()
    result, _ = swap(live, prepared, between=writer_commits)
    assert rows(live) == rows(prepared)
    assert result["full_compare"] is False and result["written"] == 5


def test_without_a_readable_wal_index_every_page_is_compared_under_the_lock(pair, monkeypatch):
    live, prepared = pair
    monkeypatch.setattr(page_swap, "wal_index_header", lambda shm: None)

    def writer_commits():
        conn = sqlean.connect(live, isolation_level=None)
        conn.execute("UPDATE t SET x = randomblob(3000) WHERE rowid = 200")
        conn.close()
    result, _ = swap(live, prepared, between=writer_commits)
    assert rows(live) == rows(prepared)
    assert result["full_compare"] is True and result["written"] == 5


def test_a_longer_live_file_is_cut_and_a_shorter_one_grows(pair):
    live, prepared = pair
    conn = sqlean.connect(live, isolation_level=None)
    conn.executemany("INSERT INTO t VALUES (randomblob(3000))", [()] * 50)
    conn.close()
    result, _ = swap(live, prepared)
    assert result["truncated_from"] == result["pages"] + 50
    assert rows(live) == rows(prepared) and integrity(live) == [("ok",)]
    conn = sqlean.connect(prepared, isolation_level=None)
    conn.executemany("INSERT INTO t VALUES (randomblob(3000))", [()] * 80)
    conn.close()
    result, _ = swap(live, prepared)
    assert result["truncated_from"] is None and result["written"] >= 80
    assert rows(live) == rows(prepared) and integrity(live) == [("ok",)]


def test_an_open_connection_reloads_the_schema_even_when_the_cookies_are_equal(pair):
    """Both files made two schema changes since the copy, so their schema cookies are equal; the
    swap's page 1 carries a new one, and a connection that cached the live schema reads the
    restored one (with the prepared page 1 verbatim it would look for `x` where `b` now is)."""
    live, prepared = pair
    for path, names in ((prepared, ("a", "b")), (live, ("x", "y"))):
        conn = sqlean.connect(path, isolation_level=None)
        for name in names:
            conn.execute(f"CREATE TABLE {name} (v)")
        conn.execute(f"INSERT INTO {names[1]} VALUES ('{names[1]} here')")
        conn.close()
    cookies = [sqlean.connect(p).execute("PRAGMA schema_version").fetchone()[0]
               for p in (live, prepared)]
    assert cookies[0] == cookies[1]
    reader = sqlean.connect(live, isolation_level=None)
    assert reader.execute("SELECT v FROM y").fetchall() == [("y here",)]
    swap(live, prepared)
    assert reader.execute("SELECT v FROM b").fetchall() == [("b here",)]
    with pytest.raises(sqlean.OperationalError, match="no such table: y"):
        reader.execute("SELECT v FROM y")
    reader.close()
    assert integrity(live) == [("ok",)]


def test_auto_vacuum_or_another_page_size_is_not_for_this_swap(tmp_path):
    live, other = tmp_path / "live.db", tmp_path / "other.db"
    for path, pragmas in ((live, ["PRAGMA auto_vacuum=FULL"]), (other, [])):
        conn = sqlean.connect(path, isolation_level=None)
        for pragma in pragmas:
            conn.execute(pragma)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
        conn.close()
    with pytest.raises(NotApplicable, match="auto-vacuum"):
        PageSwap(sqlean, str(live), 1000)
    small = tmp_path / "small.db"
    conn = sqlean.connect(small, isolation_level=None)
    conn.execute("PRAGMA page_size=1024")
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    runner = PageSwap(sqlean, str(other), 1000)
    try:
        with pytest.raises(NotApplicable, match="page size"):
            runner.attach(str(small))
    finally:
        runner.close()


def test_a_missing_or_empty_prepared_copy_never_touches_the_live_database(pair, tmp_path):
    live, _ = pair
    before = rows(live)
    empty = tmp_path / "empty.db"
    empty.touch()
    for path in (tmp_path / "missing.db", empty):
        runner = PageSwap(sqlean, str(live), 1000)
        try:
            with pytest.raises(FileNotFoundError):
                runner.attach(str(path))
        finally:
            runner.close()
    assert not (tmp_path / "missing.db").exists()
    assert rows(live) == before


def test_the_safety_copy_is_brought_up_to_the_data_the_swap_replaces(pair, tmp_path):
    """The safety copy is made after the swap's snapshot R (as a restore makes it); rows change
    after the copy and before the lock. The swap writes them into the safety copy before it
    writes anything: the safety copy is exactly the live data it replaced."""
    live, prepared = pair
    safety = tmp_path / "safety.db"

    def safety_copy():
        conn = sqlean.connect(live)
        dest = sqlean.connect(safety)
        conn.backup(dest)
        dest.close()
        conn.close()
        with open(safety, "r+b") as f:  # a rollback-journal file, as the service makes it
            f.seek(18)
            f.write(b"\x01\x01")
    replaced = {}

    def writer_commits():
        conn = sqlean.connect(live, isolation_level=None)
        conn.execute("UPDATE t SET x = randomblob(3000) WHERE rowid IN (5, 100)")
        conn.executemany("INSERT INTO t VALUES (randomblob(3000))", [()] * 20)  # it grows
        conn.close()
        replaced["rows"] = rows(live)
    result, _ = swap(live, prepared, before_attach=safety_copy, safety=str(safety),
                     between=writer_commits)
    assert result["safety_patched"] >= 23  # pages 5's, 100's, the 20 new rows' and page 1
    assert rows(safety) == replaced["rows"] and integrity(safety) == [("ok",)]
    assert rows(live) == rows(prepared)

    # Nothing committed between the safety copy and the lock: the copy is left untouched (its
    # check at creation still holds, so the restore need not check it again).
    conn = sqlean.connect(prepared, isolation_level=None)
    conn.execute("UPDATE t SET x = randomblob(3000) WHERE rowid = 7")
    conn.close()
    stamp = {}

    def quiet_copy():
        safety_copy()
        stamp["before"] = safety.stat().st_mtime_ns
    result, _ = swap(live, prepared, before_attach=quiet_copy, safety=str(safety))
    assert result["safety_patched"] == 0 and safety.stat().st_mtime_ns == stamp["before"]
    assert rows(live) == rows(prepared)


# -- through the app: the child process ----------------------------------------------------------
def restore_detail(mc):
    [(detail,)] = mc.db.execute(
        "SELECT detail FROM audit_log WHERE action = 'backup_restore' ORDER BY id DESC LIMIT 1")
    return json.loads(detail)


WRITER = textwrap.dedent("""
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS writes (t REAL)")
    print("ready", flush=True)
    longest, errors, committed, started = 0.0, 0, 0, time.monotonic()
    while time.monotonic() - started < float(sys.argv[2]):
        began = time.perf_counter()
        try:
            conn.execute("INSERT INTO writes VALUES (?)", (began,))
            committed += 1
        except sqlite3.Error:
            errors += 1
        longest = max(longest, time.perf_counter() - began)
        time.sleep(0.005)
    print(errors, longest, committed, flush=True)
""")


SLOW_START = """
import runpy, sys, time
time.sleep(0.5)  # a loaded machine: the interpreter takes its time to start
sys.argv[0] = {real!r}
runpy.run_path({real!r}, run_name="__main__")
"""


def count_writes(path):
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT COUNT(*) FROM writes").fetchone()[0]
    finally:
        conn.close()


@pytest.mark.parametrize("slow_child", [False, True], ids=["child", "slow-child"])
def test_a_restore_under_a_live_writer_writes_few_pages_and_loses_nothing(
        mc, users, admin_client, monkeypatch, tmp_path, slow_child):
    """A writer in another process commits every 5 ms through the restore: none of its commits
    fails or is lost, the restored data is the backup's, and the swap wrote a handful of pages.
    A child slow to start holds the safety copy back until its snapshot is taken."""
    if slow_child:
        wrapper = tmp_path / "slow_child.py"
        wrapper.write_text(SLOW_START.format(real=page_swap.__file__))
        monkeypatch.setattr(page_swap, "__file__", str(wrapper))
    db = mc.config.db_path
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE blobs (x)")
    conn.execute("CREATE TABLE writes (t REAL)")  # in the backup: the writer's table survives
    conn.executemany("INSERT INTO blobs VALUES (randomblob(3000))", [()] * 2000)
    conn.close()
    made = admin_client.post("/api/backup").json["backup"]["name"]
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("UPDATE blobs SET x = zeroblob(10) WHERE rowid % 500 = 0")
    conn.close()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db), "3"], text=True,
                              stdout=subprocess.PIPE)
    assert writer.stdout.readline().strip() == "ready"
    response = admin_client.post("/api/backup/restore", json={"name": made})
    errors, longest, committed = writer.communicate(timeout=60)[0].split()
    assert response.status_code == 200, response.json
    assert int(errors) == 0
    swapped = restore_detail(mc)["swap"]
    assert swapped["method"] == "pages"
    assert 1 <= swapped["written"] < swapped["pages"] / 20
    # Nothing the writer committed is lost: each commit is in the safety copy (made before the
    # swap, brought up to the data it replaced) or in the restored database (after the swap).
    safety = mc.backups.dir / response.json["safety_backup"]["name"]
    in_safety, in_live = count_writes(safety), count_writes(db)
    assert in_safety + in_live == int(committed) and in_safety > 0 and in_live > 0
    assert response.json["safety_backup"]["size"] == safety.stat().st_size
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT COUNT(*) FROM blobs WHERE length(x) = 10").fetchone() == (0,)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()


def test_without_sqlean_the_backup_api_swaps_every_page(mc, users, admin_client, monkeypatch):
    made = admin_client.post("/api/backup").json["backup"]["name"]
    monkeypatch.setattr(page_swap, "available", lambda: False)
    assert admin_client.post("/api/backup/restore", json={"name": made}).status_code == 200
    swapped = restore_detail(mc)["swap"]
    assert swapped["method"] == "backup_api" and swapped["written"] == swapped["pages"]


@pytest.mark.parametrize("child, failed", [
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", True),
    ("print('{\"ready\": true}', flush=True); input(); print('{\"cookie\": 7}', flush=True);"
     " raise SystemExit(1)", True),
    ("import sys; print('auto-vacuum is on', file=sys.stderr); raise SystemExit(3)", False),
], ids=["killed", "announced-but-never-committed", "not-applicable"])
def test_a_page_swap_that_did_not_commit_falls_back_to_the_backup_api(
        mc, users, admin_client, monkeypatch, tmp_path, child, failed):
    """Nothing is changed by the child, the backup API swaps, and a child that failed (rather
    than found the swap not applicable) is a warn in the verdict, naming the restore."""
    made = admin_client.post("/api/backup").json["backup"]["name"]
    fake = tmp_path / "child.py"
    fake.write_text(child + "\n")
    monkeypatch.setattr(page_swap, "__file__", str(fake))
    conn = sqlite3.connect(mc.config.db_path, isolation_level=None)
    conn.execute("CREATE TABLE later (x)")
    conn.close()
    assert admin_client.post("/api/backup/restore", json={"name": made}).status_code == 200
    swapped = restore_detail(mc)["swap"]
    assert swapped["method"] == "backup_api"
    assert ("page_swap_failed" in swapped) is failed
    reasons = admin_client.get("/api/backup/status").json["reasons"]
    warned = [r for r in reasons if "could not write only the pages that differ" in r]
    assert len(warned) == int(failed) and all(made in r for r in warned)
    conn = sqlite3.connect(mc.config.db_path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'later'"
                            ).fetchone() == (0,)
    finally:
        conn.close()


def test_the_safety_copy_is_made_beside_the_check_only_when_the_files_fit_in_memory(
        mc, users, admin_client, monkeypatch, tmp_path):
    from mission_control.backup import restore as restore_module
    db = mc.config.db_path
    size = db.stat().st_size + (db.parent / f"{db.name}-wal").stat().st_size
    meminfo = tmp_path / "meminfo"
    for available, beside in ((size * 4 // 1024 + 1, True), (size * 4 // 1024 - 1, False)):
        meminfo.write_text(f"MemTotal: 99999999 kB\nMemAvailable: {available} kB\n")
        assert restore_module.beside_the_check(db, meminfo) is beside
    assert restore_module.beside_the_check(db, tmp_path / "missing") is False
    # After the check: the restore makes it then, and it is as whole as one made beside.
    monkeypatch.setattr(restore_module, "beside_the_check", lambda path: False)
    made = admin_client.post("/api/backup").json["backup"]["name"]
    answer = admin_client.post("/api/backup/restore", json={"name": made})
    assert answer.status_code == 200, answer.json
    safety = mc.backups.dir / answer.json["safety_backup"]["name"]
    conn = sqlite3.connect(safety)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()
