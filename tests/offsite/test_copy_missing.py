"""A kept copy someone deleted is `missing`: named in the run's result, `GET /api/offsite`,
`offsite status` and health, and it fails the verdict. Copies this service pruned itself, and
copies recorded at another location (the target moved), are never missing. Pruning looks at
each copy once."""
from collections import Counter

import pytest

from mission_control.health import backup_status
from mission_control.offsite.storage import FolderStorage
from tests.support.cli_run import run_cli
from tests.support.scheduling import FakeClock


@pytest.fixture
def clock():
    return FakeClock(1_796_000_000.0)


@pytest.fixture
def nas(mc, tmp_path):
    folder = tmp_path / "nas"
    folder.mkdir()
    mc.settings.update({"offsite.dir.path": str(folder), "offsite.dir.retention_count": 2},
                       actor="test")
    return folder


def backups(mc, clock, count):
    names = []
    for _ in range(count):
        names.append(mc.backups.create(actor="test").name)
        clock.advance(60)
    return names


def test_a_deleted_kept_copy_is_missing_and_fails_the_verdict(mc, clock, nas, admin_client):
    first, second = backups(mc, clock, 2)
    (nas / second).unlink()  # someone with access deletes one of the two copies we keep
    third = backups(mc, clock, 1)[0]
    result = mc.offsite.get("dir")
    assert result["ok"] is True, result["message"]
    assert result["detail"]["missing"] == [second]
    assert result["missing"] == [second]
    assert result["detail"]["pruned"] == []  # the older copy is kept in its place
    assert (nas / first).exists() and (nas / third).exists()
    status = backup_status(mc)
    assert status["verdict"] == "fail"
    assert any("missing" in r and second in r for r in status["reasons"]), status["reasons"]
    [target] = status["offsite"]
    assert target["missing"] == [second] and target["changed"] == []
    assert target["notes"] == [f"{second}: missing (deleted by someone else, not pruned here)"]
    body = admin_client.get("/api/offsite").json
    assert body["targets"][0]["missing"] == [second]
    assert admin_client.get("/api/backup/status").json["offsite"][0]["missing"] == [second]


def test_the_cli_names_a_missing_copy(mc, clock, nas):
    second = backups(mc, clock, 2)[1]
    (nas / second).unlink()
    backups(mc, clock, 1)
    shown = run_cli("offsite", "status", "--data-dir", mc.config.data_dir)
    assert shown.code == 0 and f"  {second} missing" in shown.out, shown.out
    assert "  last copy: a full copy, " in shown.out and " uploaded\n" in shown.out, shown.out
    data = run_cli("--json", "offsite", "status", "--data-dir", mc.config.data_dir).json
    assert data["targets"][0]["missing"] == [second]


def test_copies_pruned_by_us_are_never_missing(mc, clock, nas):
    names = backups(mc, clock, 4)
    assert sorted(p.name for p in nas.iterdir() if p.name.endswith(".db")) == names[2:]
    pruned = {r["remote_name"]: r["pruned_at"] for r in mc.db.query(
        "SELECT remote_name, pruned_at FROM offsite_copies")}
    assert [n for n, at in sorted(pruned.items()) if at] == names[:2]
    assert mc.offsite.get("dir")["detail"]["missing"] == []
    # Even when the count goes up again, a copy we pruned is not expected back.
    mc.settings.update({"offsite.dir.retention_count": 10}, actor="test")
    backups(mc, clock, 1)
    assert mc.offsite.get("dir")["detail"]["missing"] == []
    assert backup_status(mc)["verdict"] != "fail"


def test_copies_recorded_at_another_location_are_not_missing(mc, clock, nas, tmp_path):
    backups(mc, clock, 2)
    moved = tmp_path / "new-nas"
    moved.mkdir()
    mc.settings.update({"offsite.dir.path": str(moved)}, actor="test")
    backups(mc, clock, 1)
    result = mc.offsite.get("dir")
    assert result["ok"] is True and result["detail"]["missing"] == []
    assert backup_status(mc)["verdict"] != "fail"
    # Back at the first folder, its copies are expected there again.
    mc.settings.update({"offsite.dir.path": str(nas)}, actor="test")
    gone = sorted(p.name for p in nas.iterdir() if p.name.endswith(".db"))[-1]
    (nas / gone).unlink()
    backups(mc, clock, 1)
    assert mc.offsite.get("dir")["detail"]["missing"] == [gone]


def test_a_copy_recorded_before_locations_is_placed_where_it_is_found(mc, clock, nas):
    backups(mc, clock, 2)
    with mc.db.transaction() as conn:  # as copies recorded before their location was
        conn.execute("UPDATE offsite_copies SET location = NULL")
    third = backups(mc, clock, 1)[0]
    assert {r["location"] for r in mc.db.query("SELECT location FROM offsite_copies")} == \
        {str(nas)}
    (nas / third).unlink()
    backups(mc, clock, 1)
    assert mc.offsite.get("dir")["detail"]["missing"] == [third]


def test_a_copy_unplaced_and_not_found_is_not_missing(mc, clock, nas):
    first, second = backups(mc, clock, 2)
    with mc.db.transaction() as conn:  # recorded before locations, and not found since
        conn.execute("UPDATE offsite_copies SET location = NULL")
    (nas / second).unlink()
    backups(mc, clock, 1)
    assert mc.offsite.get("dir")["detail"]["missing"] == []


def test_pruning_heads_each_copy_once(mc, clock, nas, monkeypatch):
    mc.settings.update({"offsite.dir.retention_count": 10}, actor="test")
    names = backups(mc, clock, 3)
    heads, real = Counter(), FolderStorage.head

    def counting(storage, key, version_id=None):
        heads[key] += 1
        return real(storage, key, version_id)
    monkeypatch.setattr(FolderStorage, "head", counting)
    mc.settings.update({"offsite.dir.retention_count": 1}, actor="test")
    backups(mc, clock, 1)
    assert mc.offsite.get("dir")["detail"]["pruned"] == names[::-1]
    assert {key: heads[key] for key in names} == dict.fromkeys(names, 1)


def test_a_copy_recorded_after_the_listing_is_not_missing(mc, clock, nas, monkeypatch):
    # Two sends to one target overlap (post_backup runs outside the backup lock): B's copy is
    # recorded after A listed the target. Made deterministic: A's listing runs B's whole backup
    # and send right after it has read the folder.
    backups(mc, clock, 2)
    real, overlapped = FolderStorage.list, []

    def listing_then_another_send(storage, prefix=""):
        listed = real(storage, prefix)
        if not overlapped:
            overlapped.append(True)
            clock.advance(60)
            overlapped.append(mc.backups.create(actor="test").name)  # B, inside A's run
        return listed
    monkeypatch.setattr(FolderStorage, "list", listing_then_another_send)
    third = backups(mc, clock, 1)[0]  # A
    fourth = overlapped[1]
    assert fourth > third and mc.offsite.copy_record("dir", fourth) is not None
    assert (nas / fourth).exists() and (nas / third).exists()
    result = mc.offsite.get("dir")  # A's, reported last
    assert result["backup"] == third and result["ok"] is True, result["message"]
    assert result["detail"]["missing"] == [] and result["missing"] == []
    assert backup_status(mc)["verdict"] != "fail"
