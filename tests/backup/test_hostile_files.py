"""Crafted backup files, uploaded and planted in `backups/`, then verified and restored through a
real waitress server: a refused file changes nothing in the live database; an accepted one cannot
hide a live audit event."""
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter

import pytest

from mission_control import db as dbmod
from mission_control.backup.restore import check_swappable

from tests.support.backup_files import add_tasks, mission_control_db, rewrite_schema, run_sql, titles
from tests.support.scheduling import FakeClock

#: In the slow lane (crafted files uploaded and restored over a real server: ~4.5 s on the 2-core machine).
pytestmark = pytest.mark.slow

KEY = "hostile-files-key-0123456789"
TEN_YEARS = 10 * 365 * 86400
TIMEOUT = 5  # MC_VERIFY_TIMEOUT; only the ticking clock ever reaches it


class TickingClock(FakeClock):
    """A fake clock that moves one second each time it is read while `ticking` is set."""

    ticking = False

    def __call__(self):
        if self.ticking:
            self.now += 1
        return self.now


@pytest.fixture
def clock():
    return TickingClock()


@pytest.fixture
def mc(make_mc):
    return make_mc(api_key=KEY, verify_timeout=TIMEOUT)


class Api:
    """A client of the real server, authenticated by API key; answers `(status, json or bytes)`."""

    def __init__(self, base):
        self.base = base

    def call(self, method, path, body=None, raw=None):
        headers = {"X-API-Key": KEY}
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        elif raw is not None:
            data, headers["Content-Type"] = raw, "application/octet-stream"
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                status, payload, kind = response.status, response.read(), response.headers
        except urllib.error.HTTPError as exc:
            status, payload, kind = exc.code, exc.read(), exc.headers
        if kind.get_content_type() == "application/json":
            return status, json.loads(payload)
        return status, payload


@pytest.fixture
def api(live_server):
    return Api(live_server)


def live_content(mc):
    """Everything in the live database but the audit events and verifications a refusal adds."""
    conn = sqlite3.connect(f"file:{mc.config.db_path}?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("BEGIN")
        schema = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")
        out = {"schema": sorted(schema),
               **{p: conn.execute(f"PRAGMA {p}").fetchall()
                  for p in ("user_version", "encoding", "page_size", "journal_mode")}}
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            if table not in ("audit_log", "backup_verifications"):
                out[table] = conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
        out["audit_log"] = conn.execute("SELECT * FROM audit_log ORDER BY id").fetchall()
        conn.execute("COMMIT")
        return out
    finally:
        conn.close()


def trail(mc):
    """The live audit trail as a multiset of (action, actor, time, detail)."""
    return Counter((r["action"], r["actor"], r["created_at"], r["detail"]) for r in mc.db.query(
        "SELECT action, actor, created_at, detail FROM audit_log"))


def real_backup(mc, tmp_path, label):
    """A copy, outside the backups folder, of a genuine backup of the live database."""
    name = mc.backups.create("test").name
    copy = tmp_path / f"{label}.db"
    shutil.copyfile(mc.backups.dir / name, copy)
    os.unlink(mc.backups.dir / name)
    return copy


def assert_refused_everywhere(mc, api, path, expected):
    """Upload `path`, plant it in `backups/`, verify and restore it: each refuses it, naming
    `expected`; the live database's content is the same after, and the service still works."""
    before = live_content(mc)
    status, body = api.call("POST", f"/api/backup/upload?filename={path.name}",
                            raw=path.read_bytes())
    assert status == 400 and body["error"] == "Upload is not a valid Mission Control backup"
    assert any(expected in d for d in body["details"]), body
    planted = f"planted-{path.name}"
    shutil.copyfile(path, mc.backups.dir / planted)
    status, body = api.call("POST", "/api/backup/verify", {"name": planted})
    assert status == 200 and body["ok"] is False
    assert any(expected in p for p in body["problems"]), body
    status, body = api.call("POST", "/api/backup/restore", {"name": planted})
    assert status == 400 and body["error"] == "Backup failed verification"
    assert any(expected in d for d in body["details"]), body
    after = live_content(mc)
    assert after["audit_log"][:len(before["audit_log"])] == before["audit_log"]
    before.pop("audit_log"), after.pop("audit_log")
    assert after == before
    assert not [n for n in os.listdir(mc.backups.dir) if n.startswith("pre-restore-")]
    assert api.call("GET", "/api/health")[0] == 200
    add_tasks(mc, "still writable")
    status, body = api.call("POST", "/api/backup")
    assert status == 200, body


def test_a_capital_trigger_is_refused(mc, users, api, tmp_path):
    path = real_backup(mc, tmp_path, "capital-trigger")
    run_sql(path, "CREATE TRIGGER escalate AFTER INSERT ON user_sessions BEGIN"
                  " UPDATE users SET role = 'admin'; END")
    rewrite_schema(path, "UPDATE sqlite_master SET type = 'TRIGGER' WHERE name = 'escalate'")
    assert_refused_everywhere(mc, api, path, "trigger escalate is not one Mission Control creates")


def test_a_view_and_a_trigger_on_a_foreign_table_are_refused(mc, users, api, tmp_path):
    path = real_backup(mc, tmp_path, "view")
    run_sql(path, "CREATE TABLE notes (body TEXT)",
            "CREATE TRIGGER note_hook AFTER INSERT ON notes BEGIN DELETE FROM audit_log; END",
            "CREATE VIEW Admins AS SELECT * FROM users")
    rewrite_schema(path, "UPDATE sqlite_master SET type = 'View' WHERE name = 'Admins'")
    assert_refused_everywhere(mc, api, path, "trigger note_hook is not one")
    assert_refused_everywhere(mc, api, path, "view Admins is not one")


def test_a_utf16_database_is_refused_before_anything_is_swapped(mc, users, api, tmp_path):
    path = tmp_path / "utf16.db"
    mission_control_db(path, encoding="UTF-16le")
    run_sql(path, "INSERT INTO users (username, display_name, role, password_hash, created_at,"
                  " updated_at) VALUES ('mallory', 'm', 'admin', 'x', 0, 0)")
    assert_refused_everywhere(mc, api, path, "text encoding is UTF-16le, not UTF-8")


def test_an_expression_index_is_refused_before_any_scan(mc, users, api, tmp_path):
    path = real_backup(mc, tmp_path, "expression-index")
    run_sql(path, "CREATE TABLE blobs (n INTEGER)",
            "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 200)"
                  " INSERT INTO blobs SELECT n FROM s",
            "CREATE INDEX blobs_slow ON blobs (length(printf('%.*c', 100000 + n, 'x')))")
    assert_refused_everywhere(mc, api, path, "index blobs_slow is not a plain index")
    status, body = api.call("POST", "/api/backup/verify", {"name": "planted-expression-index.db"})
    assert body["integrity"] == []  # refused before integrity_check ran


def test_indexes_and_checks_on_our_tables_are_refused(mc, users, api, tmp_path):
    path = real_backup(mc, tmp_path, "our-index")
    run_sql(path, "CREATE INDEX tasks_lower ON tasks (lower(title))")
    assert_refused_everywhere(mc, api, path, "index tasks_lower is not a plain index")
    path = real_backup(mc, tmp_path, "our-plain-index")
    run_sql(path, "CREATE INDEX tasks_title ON tasks (title)")
    assert_refused_everywhere(mc, api, path,
                              "index tasks_title is on Mission Control's table tasks")
    path = real_backup(mc, tmp_path, "our-check")
    rewrite_schema(path, "UPDATE sqlite_master SET sql = replace(sql,"
                         " 'password_hash TEXT NOT NULL', 'password_hash TEXT NOT NULL"
                         " CHECK (length(password_hash) > 0)') WHERE name = 'users'")
    assert_refused_everywhere(mc, api, path, "table users differs from what schema version")


def test_a_table_of_a_later_schema_version_is_refused(mc, users, api, tmp_path):
    # It would make the restore's own migration fail half-way: refused at verification instead.
    path = tmp_path / "clash.db"
    mission_control_db(path, version=1)
    run_sql(path, "CREATE TABLE backup_verifications (x)")
    assert_refused_everywhere(mc, api, path,
                              "table backup_verifications is not part of schema version 1")


def test_a_future_dated_audit_row_hides_no_live_event(mc, users, api, tmp_path, clock):
    path = real_backup(mc, tmp_path, "future")
    future = int(clock()) + TEN_YEARS
    run_sql(path, "INSERT INTO audit_log (action, actor, detail, created_at) VALUES"
                  f" ('settings_update', 'mallory', '{{}}', {future})")
    clock.advance(60)
    mc.settings.update({"general.site_name": "After the backup"}, "alice")
    for _ in range(2):  # twice the same event in the same second: both are kept
        mc.audit.emit("user_login_failed", "eve", detail={"reason": "bad password"})
    status, body = api.call("POST", "/api/backup/upload?filename=future.db", raw=path.read_bytes())
    assert status == 200, body
    shutil.copyfile(path, mc.backups.dir / "planted-future.db")
    for name in (body["backup"]["name"], "planted-future.db"):
        before = trail(mc)
        status, restored = api.call("POST", "/api/backup/restore", {"name": name})
        assert status == 200, restored
        after = trail(mc)
        assert not before - after, f"lost: {before - after}"
        assert after[("settings_update", "mallory", future, "{}")] == 1  # the file's own row
        added = Counter(action for action, *_ in (after - before).elements())
        assert added["backup_restore"] == 1
    assert mc.settings.get("general.site_name") == "Mission Control"  # the data is the file's


def test_verification_records_are_never_taken_from_the_file(mc, users, api, tmp_path):
    name = mc.backups.create("test").name
    assert api.call("POST", "/api/backup/verify", {"name": name})[0] == 200
    path = real_backup(mc, tmp_path, "claims")
    st = (mc.backups.dir / name).stat()
    run_sql(path, "REPLACE INTO backup_verifications (name, size, mtime_ns, sha256, ok, integrity,"
                  " verified_at) VALUES ('unchecked.db', 1, 1, 'ff', 1, '[]', 0),"
                  f" ('{name}', {st.st_size}, {st.st_mtime_ns}, 'forged', 1, '[]', 0)")
    shutil.copyfile(path, mc.backups.dir / "claims.db")
    verified = "SELECT * FROM backup_verifications WHERE source = 'verify'"
    live = {r["name"]: r["sha256"] for r in mc.db.query(verified)}
    status, body = api.call("POST", "/api/backup/restore", {"name": "claims.db"})
    assert status == 200, body
    after = {r["name"]: r["sha256"] for r in mc.db.query(verified)}
    assert after == {**live, "claims.db": body["restored"]["sha256"]}
    # The safety copy made during the restore keeps its check at creation through the swap.
    made = {r["name"] for r in mc.db.query("SELECT * FROM backup_verifications"
                                           " WHERE source = 'creation'")}
    assert body["safety_backup"]["name"] in made
    assert "unchecked.db" not in made


def test_hard_links_to_the_live_database_are_never_opened(mc, users, api):
    add_tasks(mc, "live")
    wal = f"{mc.config.db_path}-wal"
    assert os.path.exists(wal)
    for source, name in ((mc.config.db_path, "linked.db"), (wal, "linked-wal.db"),
                         (f"{mc.config.db_path}-shm", "linked-shm.db")):
        os.link(source, mc.backups.dir / name)
    before = live_content(mc)
    for name in ("linked.db", "linked-wal.db", "linked-shm.db"):
        for method, path, body in (("POST", "/api/backup/verify", {"name": name}),
                                   ("POST", "/api/backup/restore", {"name": name}),
                                   ("GET", f"/api/backup/download?name={name}", None)):
            status, answer = api.call(method, path, body)
            assert status == 400, (path, name, answer)
            assert answer["error"].startswith("This file is the live database"), answer
    after = live_content(mc)
    assert after.pop("audit_log")[:len(before["audit_log"])] == before.pop("audit_log")
    assert after == before
    assert os.path.exists(wal)
    for i in range(3):  # later backups still work: the service's SQLite locks are intact
        add_tasks(mc, f"later-{i}")
        status, body = api.call("POST", "/api/backup")
        assert status == 200, body
    assert titles(mc)[-1] == "later-2"


@pytest.mark.parametrize("version", [v for v, _ in dbmod.migrations()])
def test_every_older_schema_level_is_accepted_and_migrated(mc, users, api, tmp_path, version):
    path = tmp_path / f"v{version}.db"
    mission_control_db(path, version=version)
    run_sql(path, "CREATE TABLE dashboard_notes (id INTEGER PRIMARY KEY, body TEXT"
                  " CHECK (length(body) < 100))",
            "CREATE INDEX dashboard_notes_body ON dashboard_notes (body COLLATE NOCASE DESC)")
    status, body = api.call("POST", f"/api/backup/upload?filename={path.name}",
                            raw=path.read_bytes())
    assert status == 200, body
    status, body = api.call("POST", "/api/backup/restore", {"name": body["backup"]["name"]})
    assert status == 200, body
    assert body["restored"]["schema_version"] == version


def test_a_slow_verification_stops_at_the_time_limit(mc, api, clock):
    add_tasks(mc, *[f"task {i}" for i in range(3000)])
    name = mc.backups.create("test").name
    status, body = api.call("POST", "/api/backup/verify", {"name": name})
    assert status == 200 and body["ok"] is True  # the clock stands still: no limit is reached
    clock.ticking = True  # now every look at the clock takes a second
    try:
        status, body = api.call("POST", "/api/backup/verify", {"name": name})
    finally:
        clock.ticking = False
    assert status == 200 and body["ok"] is False
    assert body["problems"] == [f"verification stopped after {TIMEOUT} seconds (MC_VERIFY_TIMEOUT)"]


def test_verifying_and_uploading_never_wait_for_the_backup_lock(mc, users, api, tmp_path):
    name = mc.backups.create("test").name
    upload = (mc.backups.dir / name).read_bytes()
    with mc.backups.lock.hold(0) as locked:  # as a long backup or restore would
        assert locked
        status, body = api.call("POST", "/api/backup/verify", {"name": name})
        assert status == 200 and body["ok"] is True
        status, body = api.call("POST", "/api/backup/upload?filename=copy.db", raw=upload)
        assert status == 200, body


def test_the_command_line_never_opens_a_hard_link_either(mc, tmp_path):
    add_tasks(mc, "live")
    os.link(mc.config.db_path, mc.backups.dir / "linked.db")
    for action, extra in (("verify", []), ("restore", ["--yes"]),
                          ("download", ["-o", str(tmp_path / "out.db")])):
        done = subprocess.run(
            [sys.executable, "-m", "mission_control", "backup", action, "linked.db", *extra,
             "--data-dir", str(mc.config.data_dir)], capture_output=True, text=True, timeout=120)
        assert done.returncode != 0, (action, done.stdout)
        assert "This file is the live database" in done.stderr, (action, done.stderr)
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "out.db").exists() and titles(mc) == ["live"]


def test_a_prepared_copy_of_another_encoding_or_page_size_is_never_swapped_in(tmp_path):
    live = sqlite3.connect(tmp_path / "live.db")
    live.execute("CREATE TABLE t (a)")
    for pragma, value, problem in (("encoding", '"UTF-16le"', "encoding is UTF-16le"),
                                   ("page_size", "1024", "page_size is 1024")):
        prepared = sqlite3.connect(tmp_path / f"{pragma}.db")
        prepared.execute(f"PRAGMA {pragma}={value}")
        prepared.execute("CREATE TABLE t (a)")
        with pytest.raises(ValueError, match=problem):
            check_swappable(prepared, live)
        prepared.close()
    live.close()
