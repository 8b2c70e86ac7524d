"""`POST /api/backup/verify` and the verification fields of `GET /api/backup`."""
import hashlib
import os
import sqlite3

import pytest

from tests.support.backup_files import add_tasks, flip_page, foreign_sqlite, old_schema_db


def test_verify_a_good_backup_and_list_remembers_it(mc, admin_client):
    add_tasks(mc, "a")
    name = admin_client.post("/api/backup").json["backup"]["name"]
    path = mc.backups.dir / name
    response = admin_client.post("/api/backup/verify", json={"name": name})
    assert response.status_code == 200, response.json
    body = response.json
    assert body["ok"] is True and body["integrity"] == ["ok"] and body["problems"] == []
    assert body["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert body["size"] == path.stat().st_size
    assert body["page_count"] * body["page_size"] == body["size"]
    assert body["schema_version"] == mc.db.execute("PRAGMA user_version").fetchone()[0]
    listed = admin_client.get("/api/backup").json["backups"][0]
    assert listed["name"] == name and listed["size"] == body["size"]
    assert isinstance(listed["created_at"], int)
    assert listed["verified_at"] == body["verified_at"] and listed["verified_ok"] is True
    assert listed["sha256"] == body["sha256"]
    events = admin_client.get("/api/audit?action=backup_verify").json["events"]
    assert events[0]["actor"] == "alice" and events[0]["detail"]["ok"] is True


def test_unverified_and_changed_files_show_no_verification(mc, admin_client):
    name = mc.backups.create("test").name
    assert admin_client.get("/api/backup").json["backups"][0]["verified_at"] is None
    admin_client.post("/api/backup/verify", json={"name": name})
    path = mc.backups.dir / name
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the file is not the one checked
    listed = admin_client.get("/api/backup").json["backups"][0]
    assert listed["verified_at"] is None and listed["verified_ok"] is None


def listed(admin_client, name):
    return next(b for b in admin_client.get("/api/backup").json["backups"] if b["name"] == name)


def test_the_check_at_creation_is_recorded_per_file_not_by_name(mc, admin_client):
    """`checked_at_creation`: the service's quick_check of a file it made, while the file is the
    one it wrote; a copy under a canonical name, a truncated file and a touched one have none."""
    made = mc.backups.create("test")
    entry = listed(admin_client, made.name)
    assert entry["checked_at_creation"] == int(mc.clock())
    assert entry["verified_at"] is None and entry["verified_ok"] is None and entry["sha256"] is None
    # Download never takes a checksum from a creation record (it has none): it hashes the file.
    head = admin_client.head(f"/api/backup/download?name={made.name}")
    assert head.headers["X-Checksum-SHA256"] == hashlib.sha256(made.path.read_bytes()).hexdigest()

    copied = mc.backups.dir / "mc-backup-2020-01-01_00-00-00.db"
    copied.write_bytes(made.path.read_bytes())  # copied in under a name the service makes
    assert listed(admin_client, copied.name)["checked_at_creation"] is None

    with open(made.path, "r+b") as f:
        f.truncate(made.size // 2)
    assert listed(admin_client, made.name)["checked_at_creation"] is None

    other = mc.backups.create("test")
    assert admin_client.post("/api/backup/verify", json={"name": other.name}).json["ok"] is True
    entry = listed(admin_client, other.name)
    assert entry["verified_ok"] is True and entry["checked_at_creation"] is None


def test_a_failed_verification_is_not_hidden_by_the_check_at_creation(mc, admin_client):
    add_tasks(mc, *["row " + "x" * 300 for _ in range(50)])
    made = mc.backups.create("test")
    flip_page(made.path)
    assert admin_client.post("/api/backup/verify", json={"name": made.name}).json["ok"] is False
    entry = listed(admin_client, made.name)
    assert entry["verified_ok"] is False and entry["checked_at_creation"] is None
    st = made.path.stat()
    os.utime(made.path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    entry = listed(admin_client, made.name)  # changed since: neither failed nor checked
    assert entry["verified_ok"] is None and entry["checked_at_creation"] is None


def test_verify_catches_a_corrupted_backup(mc, admin_client):
    add_tasks(mc, *["row " + "x" * 300 for _ in range(50)])
    name = mc.backups.create("test").name
    assert admin_client.post("/api/backup/verify", json={"name": name}).json["ok"] is True
    flip_page(mc.backups.dir / name)
    body = admin_client.post("/api/backup/verify", json={"name": name}).json
    assert body["ok"] is False and body["integrity"] != ["ok"]
    assert body["problems"][0].startswith("integrity check failed")
    assert admin_client.get("/api/backup").json["backups"][0]["verified_ok"] is False


def with_trigger(path):
    old_schema_db(path)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TRIGGER sneaky AFTER INSERT ON users BEGIN"
                 " UPDATE users SET role = 'admin'; END")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("make, problem", [
    (lambda p: p.write_bytes(b"just some text, not a database" * 10), "not a SQLite database"),
    (foreign_sqlite, "not a Mission Control database: missing tables"),
    (lambda p: old_schema_db(p, user_version=0), "no schema version"),
    (lambda p: with_trigger(p), "trigger sneaky is not one Mission Control creates"),
])
def test_verify_names_what_is_wrong(mc, admin_client, make, problem):
    make(mc.backups.dir / "odd.db")
    body = admin_client.post("/api/backup/verify", json={"name": "odd.db"}).json
    assert body["ok"] is False
    assert any(problem in p for p in body["problems"]), body["problems"]


def test_verify_errors(mc, admin_client, tmp_path):
    assert admin_client.post("/api/backup/verify", json={"name": "nope.db"}).status_code == 404
    assert admin_client.post("/api/backup/verify", json={"name": "a/b.db"}).status_code == 400
    assert admin_client.post("/api/backup/verify", data="").json == {
        "error": "Request body required"}
    outside = tmp_path / "outside.db"
    old_schema_db(outside)
    os.symlink(outside, mc.backups.dir / "link.db")
    assert admin_client.post("/api/backup/verify", json={"name": "link.db"}).status_code == 404


def test_the_listing_written_as_text_is_the_listing_encoded(mc, admin_client):
    """`GET /api/backup` writes its JSON by hand (no dict per file): byte for byte what
    `json.dumps` makes of `listing()`, for a verified, a failed, a checked-at-creation, a changed
    and a never-checked file, and names JSON must escape."""
    import json

    from mission_control.backup.verify import listing, listing_json
    verified = mc.backups.create("test").name
    admin_client.post("/api/backup/verify", json={"name": verified})
    created = mc.backups.create("test").name  # checked at creation only
    (mc.backups.dir / 'odd "name" \\ é ✓.db').write_bytes(b"x" * 10)
    (mc.backups.dir / "not-sqlite.db").write_bytes(b"y" * 200)
    admin_client.post("/api/backup/verify", json={"name": "not-sqlite.db"})  # verified_ok false
    files = mc.backups.scan()
    expected = listing(mc, files)
    assert {i["checked_at_creation"] is not None for i in expected} == {True, False}
    assert {i["verified_ok"] for i in expected} == {True, False, None}
    assert listing_json(mc, files) == json.dumps(expected, separators=(",", ":"))
    body = admin_client.get("/api/backup")
    assert body.status_code == 200 and body.json["backups"] == expected
    assert body.json["dir"] == str(mc.backups.dir) and created in body.get_data(as_text=True)


def test_a_bit_flipped_inside_a_value_is_found_by_the_digest_of_the_last_verification(
        mc, admin_client):
    """SQLite's pages carry no checksum: a byte changed inside a title passes `integrity_check`.
    The file's SHA-256 no longer matches the one its last verification read at the same size and
    mtime: the verification fails, says so, and keeps saying so (the trusted digest is kept)."""
    add_tasks(mc, "bit-rot-target " + "x" * 200)
    made = mc.backups.create("test")
    first = admin_client.post("/api/backup/verify", json={"name": made.name}).json
    assert first["ok"] is True
    st = made.path.stat()
    data = made.path.read_bytes()
    at = data.index(b"bit-rot-target")
    made.path.write_bytes(data[:at] + b"B" + data[at + 1:])  # "bit" -> "Bit": same size
    os.utime(made.path, ns=(st.st_atime_ns, st.st_mtime_ns))
    conn = sqlite3.connect(made.path)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)  # SQLite cannot tell
    conn.close()
    for _ in range(2):
        again = admin_client.post("/api/backup/verify", json={"name": made.name}).json
        assert again["ok"] is False and again["sha256"] != first["sha256"]
        assert any("content changed since it was verified" in p for p in again["problems"])
        assert listed(admin_client, made.name)["verified_ok"] is False
    refused = admin_client.post("/api/backup/restore", json={"name": made.name})
    assert refused.status_code == 400
    assert any("content changed" in d for d in refused.json["details"])
