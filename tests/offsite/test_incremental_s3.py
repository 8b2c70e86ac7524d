"""Incremental copies on a real object store (SeaweedFS, issue 24): a chain of 30 whose objects,
downloaded, rebuild every copy byte-identical; under Object Lock, chained ancestors are held and
never deleted, and the locks of their packs are extended."""
import hashlib
import os
import time

import pytest

from mission_control.offsite.delta import manifest_name, pack_name
from mission_control.offsite.reassembly import rebuild
from tests.support.offsite import new_key
from tests.support.scheduling import FakeClock
from tests.support.seaweed import ADMIN

pytest.importorskip("zstandard")
pytestmark = pytest.mark.slow
DAY = 86400
PREFIX = "mission-control/"


@pytest.fixture
def clock():
    """Real time (the store's locks are judged by its own clock), moved by hand."""
    return FakeClock(float(int(time.time())))


def configure(mc, seaweed, bucket, **more):
    mc.settings.update({**seaweed.settings(bucket), "offsite.s3.incremental": True,
                        "offsite.s3.compress": "zstd", "general.backup_retention_count": 100,
                        **more}, actor="test")
    with mc.db.transaction() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS test_rows (id INTEGER PRIMARY KEY, body BLOB)")
        conn.executemany("INSERT INTO test_rows VALUES (?, ?)",
                         ((i, os.urandom(300)) for i in range(2000)))


def backup(mc, clock, seed, step=60):
    with mc.db.transaction() as conn:
        conn.execute("UPDATE test_rows SET body = ? WHERE id = ?", (os.urandom(300),
                                                                     seed * 37 % 2000))
    info = mc.backups.create(actor="test")
    clock.advance(step)
    result = mc.offsite.get("s3")
    assert result["ok"] is True, result["message"]
    return info.name, hashlib.sha256(info.path.read_bytes()).hexdigest(), result["detail"]


def download(seaweed, bucket, folder):
    """Every copy, pack and manifest under the prefix (not the catalog or signed manifests)."""
    client = seaweed.client(ADMIN)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX)
    for page in pages:
        for item in page.get("Contents", []):
            key = item["Key"][len(PREFIX):]
            if "/" not in key and not key.endswith(".manifest.json"):
                client.download_file(bucket, item["Key"], str(folder / key))


def head(seaweed, bucket, key):
    return seaweed.client(ADMIN).head_object(Bucket=bucket, Key=PREFIX + key)


def test_a_chain_of_30_copies_on_s3_rebuilds_byte_identical(mc, clock, seaweed, tmp_path):
    identity, recipient = new_key()
    bucket = seaweed.bucket(lock=False)
    configure(mc, seaweed, bucket, **{"offsite.s3.full_every": 29,
                                      "offsite.s3.retention_count": 30,
                                      "offsite.s3.age_recipients": recipient})
    made = [backup(mc, clock, seed) for seed in range(30)]
    assert [d["kind"] for _, _, d in made] == ["full"] + ["delta"] * 29
    assert made[-1][2]["chain_length"] == 29
    for name, _, detail in made[1:]:
        assert detail["uploaded_bytes"] == (
            head(seaweed, bucket, manifest_name(name, True))["ContentLength"]
            + head(seaweed, bucket, pack_name(name, True))["ContentLength"])
    folder = tmp_path / "downloaded"
    folder.mkdir()
    download(seaweed, bucket, folder)
    for name, sha256, _ in made:
        out = tmp_path / "rebuilt.db"
        assert rebuild(str(folder), name, str(out), identity).sha256 == sha256, name
        assert hashlib.sha256(out.read_bytes()).hexdigest() == sha256
        out.unlink()


def test_locked_chained_ancestors_are_held_and_their_packs_locks_extended(mc, clock, seaweed):
    bucket = seaweed.bucket(lock=True)
    configure(mc, seaweed, bucket, **{"offsite.s3.lock_mode": "GOVERNANCE",
                                      "offsite.s3.lock_days": 1,
                                      "offsite.s3.retention_count": 1,
                                      "offsite.s3.full_every": 3})
    first, _, _ = backup(mc, clock, 1)
    second, _, detail = backup(mc, clock, 2)
    assert detail["kind"] == "delta"
    full, delta1 = first + ".zst", manifest_name(second, False)
    pack1 = pack_name(second, False)
    assert head(seaweed, bucket, pack1)["ObjectLockMode"] == "GOVERNANCE"
    before = head(seaweed, bucket, pack1)["ObjectLockRetainUntilDate"].timestamp()
    clock.advance(2 * DAY)
    third, _, detail = backup(mc, clock, 3)
    # Only the newest is kept by count; its chain keeps the two before it, locks extended.
    assert detail["kind"] == "delta" and detail["chained"] == [delta1, full]
    assert detail["pruned"] == [] and detail["held"] == []
    assert sorted(detail["extended"]) == sorted([delta1, full])
    for key in (pack1, delta1, full):
        after = head(seaweed, bucket, key)["ObjectLockRetainUntilDate"].timestamp()
        assert after > before + DAY and abs(after - (clock.now - 60 + DAY)) < 5, key
    fourth, _, _ = backup(mc, clock, 4)
    _, _, detail = backup(mc, clock, 5)
    assert detail["kind"] == "full"  # after three deltas
    # The old chain is past the count now, and still locked: held, never deleted.
    assert [h["name"] for h in detail["held"]] == [manifest_name(n, False) for n in (
        fourth, third, second)] + [full]
    client = seaweed.client(ADMIN)
    found = client.list_object_versions(Bucket=bucket, Prefix=PREFIX)
    assert found.get("DeleteMarkers", []) == []
    assert mc.offsite.get("s3")["ok"] is True
