"""`/api/backup` through the real WSGI app: shapes, status codes, validation, limits, failures."""
import io
import json
import os
import sqlite3
import subprocess

import pytest

from mission_control import BackupRefused, hookimpl
from mission_control.backup.names import backup_time
from mission_control.backup.service import LOCK_NAME
from mission_control.cli import main
from mission_control.files import FileLock

from tests.support.accounts import logged_in_client
from tests.support.helpers import add_tasks, read_titles, touch

CONTRACT_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                    "X-Frame-Options": "DENY"}


def test_create_returns_the_backup_and_the_file_holds_the_data(admin_client, mc, clock):
    add_tasks(mc, 3)
    response = admin_client.post("/api/backup")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json
    assert body["success"] is True and set(body["backup"]) == {"name", "size", "created_at"}
    assert body["backup"]["name"] == "mc-backup-2026-11-18_11-06-40.db"
    path = mc.backups.dir / body["backup"]["name"]
    assert body["backup"]["size"] == path.stat().st_size
    assert read_titles(path) == ["task-0", "task-1", "task-2"]
    with open(path, "rb") as f:
        header = f.read(20)
    assert header[:16] == b"SQLite format 3\x00" and header[18:20] == b"\x01\x01"  # no -wal needed
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_every_response_carries_the_security_headers(admin_client):
    for response in (admin_client.get("/api/backup"), admin_client.get("/nope"),
                     admin_client.put("/api/backup")):
        for name, value in CONTRACT_HEADERS.items():
            assert response.headers[name] == value
        assert response.headers["Content-Type"] == "application/json"


def test_unknown_route_and_wrong_method(admin_client):
    assert admin_client.get("/api/nothing").json == {"error": "Not found"}
    response = admin_client.patch("/api/backup")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST", "DELETE"}
    assert response.json == {"error": "Method not allowed"}


def test_list_is_newest_first_and_shows_only_regular_db_files(admin_client, mc):
    folder = mc.backups.dir
    touch(folder / "mc-backup-2026-01-01_00-00-00.db", 1000)
    touch(folder / "keep-forever.db", 3000)
    touch(folder / "b-tie.db", 2000)
    touch(folder / "a-tie.db", 2000)
    touch(folder / ".hidden.db", 4000)
    touch(folder / ".mc-backup-123-abc.tmp", 4000)
    touch(folder / "notes.txt", 4000)
    (folder / "dir.db").mkdir()
    os.symlink(folder / "keep-forever.db", folder / "link.db")
    body = admin_client.get("/api/backup").json
    # The backup's time is in its name (2026): newer than the others' mtimes (1970).
    assert [b["name"] for b in body["backups"]] == [
        "mc-backup-2026-01-01_00-00-00.db", "keep-forever.db", "b-tie.db", "a-tie.db"]
    assert body["backups"][0]["created_at"] == 1767225600
    second = body["backups"][1]
    assert {k: second[k] for k in ("name", "size", "created_at")} == \
        {"name": "keep-forever.db", "size": 1, "created_at": 3000}
    assert body["dir"] == str(folder) and os.path.isabs(body["dir"])


#: The body's schema (`BACKUP_NAME`) says what a name must be, in one sentence.
NAME_FORM = ("name: must be a backup file name: ends in .db; no /, \\, .., NUL or control "
             "character")
BAD_NAMES = [
    ("../mission-control.db", NAME_FORM),
    ("..\\x.db", NAME_FORM),
    ("sub/x.db", NAME_FORM),
    ("/etc/passwd.db", NAME_FORM),
    ("x..db", NAME_FORM),
    ("backup.sqlite", NAME_FORM),
    ("   ", NAME_FORM),
    ("", NAME_FORM),
    ("a\x00.db", NAME_FORM),
    ("a\n.db", NAME_FORM),
    ("a" * 253 + ".db", "name: must be at most 255 characters"),
    (5, "name: must be a string"),
    (None, "name: must be a string"),
    (["x.db"], "name: must be a string"),
]


@pytest.mark.parametrize("name, detail", BAD_NAMES)
def test_delete_validation(admin_client, mc, name, detail):
    response = admin_client.delete("/api/backup", json={"name": name})
    assert response.status_code == 400
    assert response.json["error"] == "Validation failed"
    assert detail in response.json["details"]
    assert all(d.startswith("name: ") for d in response.json["details"])


@pytest.mark.parametrize("body, detail", [
    ([], "body: must be a JSON object with name"),
    ("x.db", "body: must be a JSON object with name"),
    ({}, "name: is required"),
    ({"name": "x.db", "force": True}, "force: unknown field"),
])
def test_delete_body_shape(admin_client, body, detail):
    response = admin_client.delete("/api/backup", json=body)
    assert response.status_code == 400
    assert response.json["error"] == "Validation failed" and detail in response.json["details"]


@pytest.mark.parametrize("data", [None, "", "{not json", "\xff\xfe"])
def test_delete_needs_a_json_body(admin_client, data):
    response = admin_client.delete("/api/backup", data=data)
    assert response.status_code == 400
    assert response.json == {"error": "Request body required"}


def test_delete_removes_the_file_and_audits(admin_client, mc):
    made = admin_client.post("/api/backup").json["backup"]
    name = made["name"]
    assert admin_client.delete("/api/backup", json={"name": name}).json == {"success": True}
    assert not (mc.backups.dir / name).exists()
    event = mc.audit_store.query(action="backup_delete")[0][0]
    assert (event["actor"], event["target_id"], event["detail"]) == (
        "alice", name, {"name": name, "size": made["size"]})


@pytest.mark.parametrize("make", ["missing", "symlink", "directory", "hidden", "fifo"])
def test_delete_404_for_anything_that_is_not_a_regular_backup(admin_client, mc, tmp_path, make):
    outside = tmp_path / "precious.db"
    outside.write_bytes(b"keep me")
    name = {"hidden": ".secret.db"}.get(make, "target.db")
    path = mc.backups.dir / name
    if make == "symlink":
        os.symlink(outside, path)
    elif make == "directory":
        path.mkdir()
    elif make == "hidden":
        path.write_bytes(b"x")
    elif make == "fifo":
        os.mkfifo(path)
    response = admin_client.delete("/api/backup", json={"name": name})
    assert response.status_code == 404
    assert response.json == {"error": "Backup not found"}
    assert outside.read_bytes() == b"keep me"
    assert make == "missing" or os.path.lexists(path)


def test_the_live_database_cannot_be_deleted(admin_client, mc):
    response = admin_client.delete("/api/backup", json={"name": "../mission-control.db"})
    assert response.status_code == 400
    assert mc.config.db_path.exists()


def test_backup_rate_limit_per_admin_with_retry_after(make_mc, clock):
    mc = make_mc(backup_rate_limit=2)
    alice, bob = logged_in_client(mc, "alice"), logged_in_client(mc, "bob")
    assert alice.post("/api/backup").status_code == 200
    clock.advance(600)
    assert alice.post("/api/backup").status_code == 200
    clock.advance(600)
    refused = alice.post("/api/backup")
    assert refused.status_code == 429
    assert refused.json["error"].startswith("Too many backups")
    assert int(refused.headers["Retry-After"]) == 3600 - 1200
    assert bob.post("/api/backup").status_code == 200  # the budget is per admin
    clock.advance(3600 - 1200)
    assert alice.post("/api/backup").status_code == 200
    assert len(mc.backups.list()) == 4


def test_rate_limit_zero_turns_it_off(make_mc, clock):
    mc = make_mc(backup_rate_limit=0)
    for _ in range(12):
        mc.backups.create("alice", rate_key="alice")
        clock.advance(1)
    assert len(mc.backups.list()) == 10  # retention, not the limit, bounds the count


def test_refused_and_failed_backups_do_not_use_the_budget(make_mc, clock):
    refuse = {"on": True}

    class Gate:
        @hookimpl
        def pre_backup(self):
            if refuse["on"]:
                raise BackupRefused("Not enough free disk space")

    mc = make_mc(plugins=[Gate()], backup_rate_limit=1)
    for _ in range(3):
        with pytest.raises(BackupRefused):
            mc.backups.create("alice", rate_key="alice")
    refuse["on"] = False
    assert mc.backups.create("alice", rate_key="alice").name


def test_pre_backup_refusal_is_returned_with_its_status(make_mc):
    class Guard:
        @hookimpl
        def pre_backup(self, mc, actor, db_path):
            assert db_path == mc.config.db_path and actor.name == "alice"
            raise BackupRefused("Not enough free disk space", status=507)

    mc = make_mc(plugins=[Guard()])
    client = logged_in_client(mc)
    response = client.post("/api/backup")
    assert response.status_code == 507
    assert response.json == {"error": "Not enough free disk space"}
    assert mc.backups.list() == []
    assert mc.audit_store.query(action="backup_refused")[0][0]["detail"]["status"] == 507


def test_busy_lock_gives_409_with_retry_after(make_mc):
    mc = make_mc(backup_lock_timeout=0.2)
    client = logged_in_client(mc)
    with FileLock(mc.backups.dir / LOCK_NAME).hold(0) as held:
        assert held
        response = client.post("/api/backup")
    assert response.status_code == 409
    assert response.json == {"error": "A backup is already in progress"}
    assert int(response.headers["Retry-After"]) > 0
    assert client.post("/api/backup").status_code == 200  # and the refusal cost no budget


def test_a_failed_backup_is_500_audited_and_leaves_nothing(admin_client, mc, caplog):
    """A corrupt live database fails the copy's quick_check: the failure path end to end."""
    add_tasks(mc, 2000, prefix="x" * 50)
    conn = sqlite3.connect(mc.config.db_path)
    conn.execute("CREATE INDEX tasks_title ON tasks(title)")
    conn.commit()
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='tasks_title'").fetchone()[0]
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with open(mc.config.db_path, "r+b") as f:  # scribble over the index's root page
        f.seek((root - 1) * page_size + 8)
        f.write(os.urandom(page_size - 8))
    response = admin_client.post("/api/backup")
    assert response.status_code == 500
    assert response.json == {"error": "Backup failed"}
    assert os.listdir(mc.backups.dir) == [LOCK_NAME]
    event = mc.audit_store.query(action="backup_failed")[0][0]
    assert "quick_check" in event["detail"]["reason"] or "malformed" in event["detail"]["reason"]
    assert str(mc.config.data_dir) not in response.get_data(as_text=True)
    assert "Traceback" in caplog.text or any(r.exc_info for r in caplog.records)


def test_oversized_json_body_is_413(admin_client):
    response = admin_client.delete("/api/backup", data=b"{" + b" " * (2 * 1024 * 1024) + b"}")
    assert response.status_code == 413
    assert response.json == {"error": "Request body too large"}


def test_names_give_the_time_and_a_copy_keeps_it(admin_client, mc, clock, tmp_path):
    made, times = [], {}
    for _ in range(3):
        made.append(mc.backups.create("test").name)
        times[made[-1]] = int(clock())
        clock.advance(3600)
    folder = mc.backups.dir
    # Every kind the service names, copied from a backup; and a file an admin named.
    others = {"pre-restore-2026-03-01_10-00-00.db": 1772359200,
              "uploaded-2026-03-01_11-00-00.db": 1772362800,
              "offsite-mc-backup-2026-03-01_12-00-00.db": 1772366400}
    for name in [*others, "keep-forever.db"]:
        subprocess.run(["cp", str(folder / made[0]), str(folder / name)], check=True)
    # The folder copied back from elsewhere (`cp`, oldest last): every file gets a new mtime,
    # the oldest backup the newest one.
    aside = tmp_path / "aside"
    aside.mkdir()
    for name in reversed(made):
        subprocess.run(["cp", str(folder / name), str(aside / name)], check=True)
        subprocess.run(["cp", str(aside / name), str(folder / name)], check=True)
    for age, name in enumerate(reversed(made)):
        os.utime(folder / name, (2_000_000_000 + age, 2_000_000_000 + age))
    os.utime(folder / "keep-forever.db", (1_000_000_000, 1_000_000_000))
    expected = [*reversed(made), "offsite-mc-backup-2026-03-01_12-00-00.db",
                "uploaded-2026-03-01_11-00-00.db", "pre-restore-2026-03-01_10-00-00.db",
                "keep-forever.db"]
    listed = admin_client.get("/api/backup").json["backups"]
    assert [b["name"] for b in listed] == expected
    when = {b["name"]: b["created_at"] for b in listed}
    assert {name: when[name] for name in made} == \
        {name: backup_time(name) for name in made}
    assert {name: when[name] for name in made} == times  # when they were made, by the clock
    assert {name: when[name] for name in others} == others
    assert when["keep-forever.db"] == 1_000_000_000  # no time in its name: its mtime
    out = io.StringIO()
    assert main(["backup", "list", "--json", "--data-dir", str(mc.config.data_dir)],
                out=out) == 0
    by_cli = json.loads(out.getvalue())["backups"]
    assert [(b["name"], b["created_at"]) for b in by_cli] == \
        [(b["name"], b["created_at"]) for b in listed]
