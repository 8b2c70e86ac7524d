"""The built-in off-site folder copy: verified copies, its own retention, failures that spare the backup."""
import hashlib
import os
import time

from mission_control import MANIFEST_SUFFIX
from mission_control.backup.service import NAME_FORMAT


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def audits(mc, action):
    return mc.audit_store.query(action=action)[0]


def configure(mc, folder, **more):
    mc.settings.update({"offsite.dir.path": str(folder), **more}, actor="test")


def test_unconfigured_does_nothing(mc, tmp_path):
    mc.backups.create(actor="test")
    assert mc.offsite.list() == []
    assert audits(mc, "offsite_copy") == [] and audits(mc, "offsite_failed") == []


def test_every_backup_lands_verified_in_the_folder(admin_client, mc, tmp_path):
    nas = tmp_path / "nas"
    nas.mkdir()
    configure(mc, nas)
    made = admin_client.post("/api/backup")
    assert made.status_code == 200, made.json
    name = made.json["backup"]["name"]
    local = mc.backups.dir / name
    assert sorted(os.listdir(nas)) == ["catalog", name, name + MANIFEST_SUFFIX]  # no temporary file
    assert os.listdir(nas / "catalog") == [name + ".json"]
    assert sha256(nas / name) == sha256(local)
    [event] = audits(mc, "offsite_copy")
    assert event["detail"]["sha256"] == sha256(local)
    assert event["detail"]["target"] == "dir" and event["actor"] == "alice"
    targets = admin_client.get("/api/offsite").json["targets"]
    assert [(t["target"], t["ok"], t["backup"]) for t in targets] == [("dir", True, name)]


def test_folder_keeps_its_own_retention_count(mc, clock, tmp_path):
    nas = tmp_path / "nas"
    nas.mkdir()
    (nas / "keep-me.db").write_bytes(b"not a pattern name")
    configure(mc, nas, **{"offsite.dir.retention_count": 2})
    names = []
    for _ in range(4):
        names.append(mc.backups.create(actor="test").name)
        clock.advance(60)
    assert sorted(os.listdir(nas)) == sorted(  # a pruned copy's manifest goes with it
        ["catalog", "keep-me.db", *names[-2:], *(n + MANIFEST_SUFFIX for n in names[-2:])])
    assert sorted(os.listdir(nas / "catalog")) == [n + ".json" for n in names[-2:]]  # and its entry
    assert len(mc.backups.list()) == 4  # the local retention (10) is separate
    assert audits(mc, "offsite_copy")[0]["detail"]["pruned"] == [names[1]]


def test_missing_folder_fails_offsite_only_and_is_never_created(admin_client, mc, tmp_path):
    gone = tmp_path / "unmounted-share"
    configure(mc, gone)
    made = admin_client.post("/api/backup")
    assert made.status_code == 200
    assert (mc.backups.dir / made.json["backup"]["name"]).is_file()
    assert not gone.exists()
    [event] = audits(mc, "offsite_failed")
    assert "share mounted" in event["detail"]["reason"]
    [result] = admin_client.get("/api/offsite").json["targets"]
    assert result["ok"] is False and result["backup"] == made.json["backup"]["name"]
    assert audits(mc, "plugin_error") == []  # the plugin reported it; the host had nothing to catch


def test_a_failed_copy_never_prunes_the_last_good_copy(mc, clock, tmp_path):
    nas = tmp_path / "nas"
    nas.mkdir()
    configure(mc, nas, **{"offsite.dir.retention_count": 1})
    first = mc.backups.create(actor="test").name
    clock.advance(60)
    # Someone else's different file already holds the next backup's name: that copy must fail.
    squatter = nas / time.strftime(NAME_FORMAT, time.gmtime(clock.now))
    squatter.write_bytes(b"something else")
    second = mc.backups.create(actor="test").name
    assert second == squatter.name
    assert squatter.read_bytes() == b"something else"
    assert sha256(nas / first) == sha256(mc.backups.dir / first)
    assert [n for n in os.listdir(nas) if n.startswith(".")] == []
    [event] = audits(mc, "offsite_failed")
    assert "different file" in event["detail"]["reason"]
    assert mc.offsite.get("dir")["ok"] is False


def test_offsite_endpoint_is_admin_only(client, auth):
    assert client.get("/api/offsite").status_code == 401
    auth.login("olga")
    assert client.get("/api/offsite").status_code == 403
