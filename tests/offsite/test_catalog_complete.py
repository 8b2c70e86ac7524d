"""Every copy retention counts has a catalog entry: one missing (a copy from before entries, or
whose entry upload failed) is written on the next run, from the local backup or from the copy
itself; when it cannot be, the run says which copy and why."""
import os

import pytest

from mission_control.health import backup_status
from mission_control.offsite.catalog import read
from tests.support.offsite import new_key
from tests.support.scheduling import FakeClock

pytest.importorskip("pyrage")
pytest.importorskip("zstandard")


@pytest.fixture
def clock():
    return FakeClock(1_796_000_000.0)


@pytest.fixture
def keys():
    identity, recipient = new_key()
    return {"identity": identity, "recipient": recipient}


@pytest.fixture
def nas(mc, tmp_path, keys):
    folder = tmp_path / "nas"
    folder.mkdir()
    mc.settings.update({"offsite.dir.path": str(folder), "offsite.dir.compress": "zstd",
                        "offsite.dir.age_recipients": keys["recipient"]}, actor="test")
    return folder


def backups(mc, clock, count):
    names = []
    for _ in range(count):
        names.append(mc.backups.create(actor="test").name)
        clock.advance(60)
    return names


def entry_of(nas, copy):
    return nas / "catalog" / f"{copy}.json.age"


def copy_names(mc):
    return [r["remote_name"] for r in mc.db.query(
        "SELECT remote_name FROM offsite_copies ORDER BY remote_name")]


def test_a_kept_copy_without_an_entry_gets_one_that_verifies(mc, clock, nas, keys):
    backups(mc, clock, 2)
    first, second = copy_names(mc)
    entry_of(nas, first).unlink()  # an entry that never made it (or a copy from before them)
    backups(mc, clock, 1)
    entry = read(entry_of(nas, first).read_bytes(), keys["identity"],
                 (mc.offsite.signer.private_key().public_key(),))
    detail = mc.offsite.get("dir")["detail"]
    assert detail["cataloged"] == [first] and detail["uncataloged"] == []
    assert entry["remote_name"] == first
    assert entry["schema_version"] == mc.db.execute("PRAGMA user_version").fetchone()[0]
    assert entry["plain_sha256"] == mc.offsite.copy_record("dir", first)["plain_sha256"]
    backups(mc, clock, 1)  # written once: the next run finds it
    assert mc.offsite.get("dir")["detail"]["cataloged"] == []


def test_without_the_local_backup_the_entry_is_read_from_the_copy(mc, clock, nas, keys):
    backups(mc, clock, 2)
    first = copy_names(mc)[0]
    entry_of(nas, first).unlink()
    os.remove(mc.backups.dir / mc.offsite.copy_record("dir", first)["backup"])
    mc.settings.update({"offsite.age_identity": keys["identity"]}, actor="test")
    backups(mc, clock, 1)
    assert mc.offsite.get("dir")["detail"]["cataloged"] == [first]
    entry = read(entry_of(nas, first).read_bytes(), keys["identity"],
                 (mc.offsite.signer.private_key().public_key(),))
    assert entry["remote_name"] == first and entry["page_size"] > 0
    assert [p for p in os.listdir(mc.backups.dir) if p.endswith(".tmp")] == []


def test_an_incremental_copys_entry_is_read_from_the_copy_rebuilt_from_its_chain(
        mc, clock, nas, keys):
    mc.settings.update({"offsite.dir.incremental": "true"}, actor="test")
    backups(mc, clock, 2)
    full, delta = copy_names(mc)
    assert delta.endswith(".db.delta.zst.age") and full.endswith(".db.zst.age")
    entry_of(nas, delta).unlink()
    os.remove(mc.backups.dir / mc.offsite.copy_record("dir", delta)["backup"])
    mc.settings.update({"offsite.age_identity": keys["identity"]}, actor="test")
    backups(mc, clock, 1)
    assert mc.offsite.get("dir")["detail"]["cataloged"] == [delta]
    entry = read(entry_of(nas, delta).read_bytes(), keys["identity"],
                 (mc.offsite.signer.private_key().public_key(),))
    assert entry["remote_name"] == delta and entry["parent"] == full
    assert entry["schema_version"] == mc.db.execute("PRAGMA user_version").fetchone()[0]
    assert entry["page_size"] == mc.db.execute("PRAGMA page_size").fetchone()[0]
    assert [p for p in os.listdir(mc.backups.dir) if p.endswith(".tmp")] == []


def test_an_entry_that_cannot_be_written_is_reported(mc, clock, nas, keys):
    backups(mc, clock, 2)
    first = copy_names(mc)[0]
    entry_of(nas, first).unlink()
    os.remove(mc.backups.dir / mc.offsite.copy_record("dir", first)["backup"])
    backups(mc, clock, 1)  # no age identity here: the encrypted copy cannot be opened
    result = mc.offsite.get("dir")
    assert result["ok"] is True  # the copy itself was made and verified
    [missing] = result["detail"]["uncataloged"]
    assert missing["name"] == first and "identity" in missing["reason"]
    assert not entry_of(nas, first).exists()
    status = backup_status(mc)
    [health] = status["offsite"]
    # Named, without the long reason; a warning, not a failure (the copy itself is there).
    assert f"{first}: no catalog entry, and none could be written, so `recover` cannot use " \
        "it" in health["notes"]
    assert health["uncataloged"] == [first] and health["problem"] is None
    assert status["verdict"] == "warn"
    assert any(first in r and "catalog entry" in r for r in status["reasons"]), status
