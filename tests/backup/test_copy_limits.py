"""Uploads and pre-restore safety copies obey the limits: budget, disk guard, newest N kept."""
import os
import shutil

import pytest
from werkzeug.test import Client

from mission_control.web import WebApp

from tests.support.accounts import PASSWORD
from tests.support.backup_files import add_tasks, titles


def names(mc):
    """Every name in the backups folder, hidden temporary files included."""
    return sorted(os.listdir(mc.backups.dir))


def listed(mc):
    return sorted(b.name for b in mc.backups.list())


def upload(client, data):
    return client.post("/api/backup/upload", data=data, content_type="application/octet-stream")


def plant(mc, *planted):
    for name in planted:
        (mc.backups.dir / name).write_bytes(b"planted by hand")


def fill_the_disk(mc):
    """Make the disk guard refuse: ask for more free space than the disk has."""
    free_mb = shutil.disk_usage(mc.backups.dir).free // 2**20
    mc.settings.update({"diskguard.min_free_mb": free_mb + 10**6}, "test")


@pytest.fixture
def backup_bytes(mc):
    """A valid backup file of this service, made by a script (which uses no budget)."""
    add_tasks(mc, "in the file")
    name = mc.backups.create("script").name
    data = (mc.backups.dir / name).read_bytes()
    mc.backups.delete(name, "script")
    return data


def test_uploads_use_the_hourly_backup_budget(make_mc, clock):
    mc = make_mc(backup_rate_limit=2)
    mc.users.add("alice", PASSWORD, role="admin")
    client = Client(WebApp(mc))
    client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    data = (mc.backups.dir / mc.backups.create("script").name).read_bytes()
    assert upload(client, data).status_code == 200
    assert upload(client, b"not a database" * 100).status_code == 400  # refused: slot given back
    assert client.post("/api/backup").status_code == 200
    before = names(mc)
    over = upload(client, data)
    assert over.status_code == 429, over.json
    # Said once: when to try again is Retry-After's (the page puts it in words).
    assert over.json["error"] == "Too many backups: at most 2 per hour, uploads included"
    assert int(over.headers["Retry-After"]) > 0
    assert client.post("/api/backup").status_code == 429  # one budget for both
    assert names(mc) == before
    clock.advance(3601)
    assert upload(client, data).status_code == 200


def test_disk_guard_refuses_an_upload_and_nothing_is_left(mc, users, admin_client,
                                                          backup_bytes):
    fill_the_disk(mc)
    before = names(mc)
    refused = upload(admin_client, backup_bytes)
    assert refused.status_code == 507, refused.json
    assert refused.json["error"].startswith("Not enough free disk space")
    assert str(mc.backups.dir) not in refused.json["error"]
    assert names(mc) == before
    [event] = mc.audit_store.query(action="backup_upload_refused")[0]
    assert event["actor"] == "alice" and event["detail"]["status"] == 507
    assert not mc.audit_store.query(action="backup_refused")[0]  # not a failed backup
    mc.settings.reset("diskguard.min_free_mb", "test")
    assert upload(admin_client, backup_bytes).status_code == 200


def test_disk_guard_refuses_a_restore_before_its_safety_copy(mc, users, admin_client):
    add_tasks(mc, "old")
    name = admin_client.post("/api/backup").json["backup"]["name"]
    add_tasks(mc, "new")
    fill_the_disk(mc)
    before = names(mc)
    refused = admin_client.post("/api/backup/restore", json={"name": name})
    assert refused.status_code == 507, refused.json
    assert refused.json["error"].startswith("Not enough free disk space")
    assert names(mc) == before  # no safety copy, no temporary file
    assert titles(mc) == ["old", "new"]
    [event] = mc.audit_store.query(action="backup_restore_failed")[0]
    assert event["target_id"] == name and event["detail"]["status"] == 507
    assert admin_client.get("/api/health").status_code == 200


def test_only_the_newest_safety_copies_are_kept(mc, users, admin_client, clock):
    others = ["mc-backup-2020-01-01_00-00-00.db", "uploaded-2020-01-01_00-00-00.db",
              "pre-restore-keep-forever.db", "offsite-mc-backup-2020-01-01_00-00-00.db"]
    plant(mc, *others)
    assert admin_client.put("/api/settings", json={
        "settings": {"general.safety_copies_keep": 2}}).status_code == 200
    name = admin_client.post("/api/backup").json["backup"]["name"]
    made = []
    for _ in range(4):
        clock.advance(10)
        restored = admin_client.post("/api/backup/restore", json={"name": name})
        assert restored.status_code == 200, restored.json
        made.append(restored.json["safety_backup"]["name"])
        # The restored file says 5 (its default): the limit is set again each time.
        mc.settings.update({"general.safety_copies_keep": 2}, "test")
    assert len(set(made)) == 4
    assert listed(mc) == sorted([name, *others, *made[2:]])
    pruned = [e for e in mc.audit_store.query(action="backup_prune")[0]]
    assert sorted(e["target_id"] for e in pruned) == sorted(made[:2])
    assert {e["detail"]["kind"] for e in pruned} == {"safety_copy"}
    assert {e["actor"] for e in pruned} == {"alice"}


def test_only_the_newest_uploads_are_kept(mc, users, admin_client, clock, backup_bytes):
    future = "uploaded-2099-01-01_00-00-00.db"  # another upload finishing "later": never pruned
    others = ["mc-backup-2020-01-01_00-00-00.db", "pre-restore-2020-01-01_00-00-00.db",
              "uploaded-by-hand.db", future]
    plant(mc, *others, "uploaded-2020-01-01_00-00-00.db", "uploaded-2020-01-02_00-00-00.db")
    mc.settings.update({"general.safety_copies_keep": 3}, "test")
    made = []
    for _ in range(3):
        clock.advance(10)
        response = upload(admin_client, backup_bytes)
        assert response.status_code == 200, response.json
        made.append(response.json["backup"]["name"])
    # The newest three by the time in the name: the future one and the last two uploads.
    assert listed(mc) == sorted([*others, *made[1:]])
    pruned = mc.audit_store.query(action="backup_prune")[0]
    assert sorted(e["target_id"] for e in pruned) == sorted(
        ["uploaded-2020-01-01_00-00-00.db", "uploaded-2020-01-02_00-00-00.db", made[0]])
    assert {e["detail"]["kind"] for e in pruned} == {"upload"}


def test_backup_retention_never_touches_uploads_or_safety_copies(mc, users, admin_client, clock):
    others = ["uploaded-2020-01-01_00-00-00.db", "pre-restore-2020-01-01_00-00-00.db"]
    plant(mc, *others)
    mc.settings.update({"general.backup_retention_count": 1}, "test")
    for _ in range(3):
        clock.advance(10)
        last = admin_client.post("/api/backup").json["backup"]["name"]
    assert listed(mc) == sorted([last, *others])
    assert {e["detail"]["kind"] for e in mc.audit_store.query(action="backup_prune")[0]} == {
        "backup"}


def test_only_the_newest_fetched_offsite_copies_are_kept(mc, users, admin_client, clock,
                                                        tmp_path):
    nas = tmp_path / "nas"
    nas.mkdir()
    mc.settings.update({"offsite.dir.path": str(nas), "general.safety_copies_keep": 2}, "test")
    others = ["uploaded-2020-01-01_00-00-00.db", "pre-restore-2020-01-01_00-00-00.db"]
    plant(mc, *others)
    made = []
    for _ in range(3):
        clock.advance(10)
        made.append(mc.backups.create("test").name)  # copied to the folder by offsite_dir
    for name in made:
        fetched = admin_client.post("/api/offsite/dir/fetch", json={"name": name})
        assert fetched.status_code == 200, fetched.json
    assert listed(mc) == sorted([*made, *others, *(f"offsite-{n}" for n in made[1:])])
    [pruned] = mc.audit_store.query(action="backup_prune")[0]
    assert pruned["target_id"] == f"offsite-{made[0]}"
    assert pruned["detail"]["kind"] == "offsite_fetch"


@pytest.mark.parametrize("value, ok", [(1, True), (100, True), (0, False), (101, False),
                                       ("five", False)])
def test_the_setting_is_bounded(admin_client, value, ok):
    response = admin_client.put("/api/settings",
                                json={"settings": {"general.safety_copies_keep": value}})
    assert response.status_code == (200 if ok else 400), response.json
    if not ok:
        assert response.json["details"][0].startswith("general.safety_copies_keep: must be")
