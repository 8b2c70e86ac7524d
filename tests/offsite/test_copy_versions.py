"""Locks on exactly the versions a copy was uploaded as (SeaweedFS): an overwrite never gets our
extension, a COMPLIANCE copy stays COMPLIANCE, copies from before versions were recorded are
matched by their SHA-256; and a store that drops the lock headers fails the copy."""
import os
import time

import pytest

from mission_control import MANIFEST_SUFFIX
from mission_control.health import backup_status
from tests.support.lock_ignoring_s3 import LockIgnoringS3
from tests.support.offsite import new_key
from tests.support.scheduling import FakeClock
from tests.support.seaweed import SERVICE

pytestmark = pytest.mark.slow
DAY = 86400
PREFIX = "mission-control/"


@pytest.fixture
def clock():
    """Real time (the store's locks are judged by its own clock), moved by hand."""
    return FakeClock(float(int(time.time())))


def configure(mc, seaweed, bucket, mode, **more):
    mc.settings.update({**seaweed.settings(bucket), "offsite.s3.lock_mode": mode,
                        "offsite.s3.lock_days": 1, **more}, actor="test")


def objects(name):
    return (name, name + MANIFEST_SUFFIX, f"catalog/{name}.json")


def version_locks(seaweed, bucket, key):
    """`{version id: (mode, retain-until)}` of every version of `key`."""
    admin = seaweed.client()
    found = {}
    for v in admin.list_object_versions(Bucket=bucket, Prefix=PREFIX + key)["Versions"]:
        if v["Key"] != PREFIX + key:
            continue
        head = admin.head_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
        until = head.get("ObjectLockRetainUntilDate")
        found[v["VersionId"]] = (head.get("ObjectLockMode"), until and until.timestamp())
    return found


def overwrite(seaweed, bucket, key):
    """What an attacker with the service's credentials does: a same-sized object over `key`
    (so it still counts as the copy), unlocked. Returns its version id."""
    attacker = seaweed.client(SERVICE)
    size = attacker.head_object(Bucket=bucket, Key=PREFIX + key)["ContentLength"]
    return attacker.put_object(Bucket=bucket, Key=PREFIX + key,
                               Body=os.urandom(size))["VersionId"]


def test_an_overwrite_never_gets_the_extension_the_uploaded_versions_do(mc, clock, seaweed):
    bucket = seaweed.bucket(lock=True)
    configure(mc, seaweed, bucket, "GOVERNANCE")
    first = mc.backups.create(actor="test").name
    ours = {key: next(iter(version_locks(seaweed, bucket, key))) for key in objects(first)}
    planted = {key: overwrite(seaweed, bucket, key) for key in objects(first)}
    clock.advance(2 * DAY)
    mc.backups.create(actor="test")
    assert mc.offsite.get("s3")["ok"] is True, mc.offsite.get("s3")["message"]
    assert mc.offsite.get("s3")["detail"]["extended"] == [first]
    for key in objects(first):
        locks = version_locks(seaweed, bucket, key)
        mode, until = locks[ours[key]]
        assert mode == "GOVERNANCE" and abs(until - (clock.now + DAY)) < 5, key
        assert locks[planted[key]] == (None, None), key  # the attacker's version: untouched
    # Recorded at upload: the versions the copy, its manifest and its entry landed as.
    assert mc.offsite.copy_objects("s3", first)[0] == ours
    # The overwrite itself is seen: the copy no longer counts and the verdict fails, naming it.
    assert mc.offsite.get("s3")["detail"]["changed"] == [first]
    status = backup_status(mc)
    assert status["verdict"] == "fail"
    assert any("no longer match" in r and first in r for r in status["reasons"]), status


@pytest.mark.parametrize("versioned", [False, True])
def test_a_copy_replaced_with_the_same_size_is_not_counted(mc, clock, seaweed, versioned):
    # Unversioned, the replacement is told by its SHA-256 (the attacker sent one, as the
    # service does); versioned, by the version the copy was uploaded as (no checksum sent).
    bucket = seaweed.bucket(lock=versioned)
    configure(mc, seaweed, bucket, "GOVERNANCE" if versioned else "",
              **{"offsite.s3.retention_count": 2})
    first = mc.backups.create(actor="test").name
    clock.advance(3600)
    second = mc.backups.create(actor="test").name
    attacker = seaweed.client(SERVICE)
    size = attacker.head_object(Bucket=bucket, Key=PREFIX + second)["ContentLength"]
    extra = {} if versioned else {"ChecksumAlgorithm": "SHA256"}
    attacker.put_object(Bucket=bucket, Key=PREFIX + second, Body=os.urandom(size), **extra)
    clock.advance(3600)
    mc.backups.create(actor="test")
    result = mc.offsite.get("s3")
    assert result["detail"]["changed"] == [second]
    assert result["detail"]["pruned"] == []  # the first copy is still one of the two kept
    listed = {o["Key"] for o in attacker.list_objects_v2(Bucket=bucket)["Contents"]}
    assert PREFIX + first in listed
    assert backup_status(mc)["verdict"] == "fail"


def test_a_compliance_copy_stays_compliance_when_the_setting_says_governance(mc, clock,
                                                                            seaweed):
    bucket = seaweed.bucket(lock=True)
    configure(mc, seaweed, bucket, "COMPLIANCE")
    first = mc.backups.create(actor="test").name
    mc.settings.update({"offsite.s3.lock_mode": "GOVERNANCE"}, actor="test")
    for _ in range(2):  # every run, not only the first after the switch
        clock.advance(2 * DAY)
        second = mc.backups.create(actor="test").name
        result = mc.offsite.get("s3")
        assert result["ok"] is True, result["message"]
        assert first in result["detail"]["extended"]
    for key in objects(first):
        [(mode, until)] = version_locks(seaweed, bucket, key).values()
        assert mode == "COMPLIANCE" and abs(until - (clock.now + DAY)) < 5, key
    assert {m for m, _ in version_locks(seaweed, bucket, second).values()} == {"GOVERNANCE"}


def test_a_copy_recorded_before_versions_is_matched_by_its_sha256(mc, clock, seaweed):
    bucket = seaweed.bucket(lock=True)
    configure(mc, seaweed, bucket, "GOVERNANCE")
    first = mc.backups.create(actor="test").name
    ours = {key: next(iter(version_locks(seaweed, bucket, key))) for key in objects(first)}
    with mc.db.transaction() as conn:  # as a copy uploaded before versions were recorded
        conn.execute("UPDATE offsite_copies SET versions = NULL")
    planted = {key: overwrite(seaweed, bucket, key) for key in objects(first)}
    clock.advance(2 * DAY)
    mc.backups.create(actor="test")
    result = mc.offsite.get("s3")
    assert result["ok"] is True and result["detail"]["extended"] == [first], result
    for key in objects(first)[:2]:  # the copy and its manifest: by SHA-256
        locks = version_locks(seaweed, bucket, key)
        assert abs(locks[ours[key]][1] - (clock.now + DAY)) < 5, key
        assert locks[planted[key]] == (None, None), key
    # The entry cannot be told from a planted one without the identity: a new one is written.
    entry = f"catalog/{first}.json"
    locks = version_locks(seaweed, bucket, entry)
    assert len(locks) == 3 and locks[planted[entry]] == (None, None)
    versions, _ = mc.offsite.copy_objects("s3", first)  # remembered now
    assert versions[first] == ours[first] and versions[first + MANIFEST_SUFFIX] == \
        ours[first + MANIFEST_SUFFIX]
    assert versions[entry] not in (ours[entry], planted[entry])
    assert abs(locks[versions[entry]][1] - (clock.now + DAY)) < 5
    assert result["detail"]["uncataloged"] == []


def test_a_lock_the_store_drops_fails_the_copy(mc):
    with LockIgnoringS3() as store:
        mc.settings.update({"offsite.s3.bucket": "bucket", "offsite.s3.endpoint_url": store.url,
                            "offsite.s3.region": "us-east-1",
                            "offsite.s3.access_key_id": "AKIDTEST",
                            "offsite.s3.secret_access_key": "secret-secret",
                            "offsite.s3.lock_mode": "COMPLIANCE",
                            "offsite.s3.lock_days": 3}, actor="test")
        name = mc.backups.create(actor="test").name
        assert store.lock_headers_seen == 1  # the copy went up asking for the lock
    result = mc.offsite.get("s3")
    assert result["ok"] is False
    assert result["message"].startswith(f"ValueError: the store did not keep the Object Lock asked for "
                                         f"{name} (COMPLIANCE until ")
    assert result["message"].endswith("it holds no lock")
    status = backup_status(mc)
    assert status["verdict"] == "fail"
    assert any("did not keep the Object Lock" in reason for reason in status["reasons"])


def test_a_deleted_copy_is_missing_and_its_versions_keep_their_lock(mc, clock, seaweed):
    bucket = seaweed.bucket(lock=True)
    configure(mc, seaweed, bucket, "GOVERNANCE")
    first = mc.backups.create(actor="test").name
    [ours] = version_locks(seaweed, bucket, first)
    # With the service's credentials: a delete marker over the copy (the locked version stays).
    seaweed.client(SERVICE).delete_object(Bucket=bucket, Key=PREFIX + first)
    clock.advance(2 * DAY)
    mc.backups.create(actor="test")
    result = mc.offsite.get("s3")
    assert result["ok"] is True, result["message"]
    assert result["detail"]["missing"] == [first] and result["missing"] == [first]
    assert first in result["detail"]["extended"]
    mode, until = version_locks(seaweed, bucket, first)[ours]
    assert mode == "GOVERNANCE" and abs(until - (clock.now + DAY)) < 5
    status = backup_status(mc)
    assert status["verdict"] == "fail"
    assert any("missing" in r and first in r for r in status["reasons"]), status["reasons"]


def test_a_same_size_replacement_without_a_checksum_is_told_by_its_etag(mc, clock, seaweed):
    bucket = seaweed.bucket(lock=False)  # no versions to tell it by; no checksum sent
    configure(mc, seaweed, bucket, "", **{"offsite.s3.retention_count": 2})
    first = mc.backups.create(actor="test").name
    assert mc.db.query_one("SELECT etag FROM offsite_copies")["etag"]
    attacker = seaweed.client(SERVICE)
    size = attacker.head_object(Bucket=bucket, Key=PREFIX + first)["ContentLength"]
    attacker.put_object(Bucket=bucket, Key=PREFIX + first, Body=os.urandom(size))
    clock.advance(3600)
    mc.backups.create(actor="test")
    result = mc.offsite.get("s3")
    assert result["detail"]["changed"] == [first], result["detail"]
    assert backup_status(mc)["verdict"] == "fail"


def test_a_changed_copy_past_the_keep_count_no_longer_fails_and_stays(mc, clock, seaweed):
    bucket = seaweed.bucket(lock=True)
    configure(mc, seaweed, bucket, "GOVERNANCE", **{"offsite.s3.retention_count": 2})
    first = mc.backups.create(actor="test").name
    clock.advance(3600)
    mc.backups.create(actor="test")
    overwrite(seaweed, bucket, first)
    clock.advance(3600)
    mc.backups.create(actor="test")  # two newer copies count: the first would go anyway
    result = mc.offsite.get("s3")
    assert result["ok"] is True, result["message"]
    assert result["detail"]["changed"] == [] and result["detail"]["changed_past_keep"] == [first]
    status = backup_status(mc)
    assert status["verdict"] != "fail", status["reasons"]
    assert any(first in note for note in status["offsite"][0]["notes"])
    listed = seaweed.client(SERVICE).list_objects_v2(Bucket=bucket)["Contents"]
    assert PREFIX + first in {o["Key"] for o in listed}  # never deleted by us


def test_a_catalog_entry_that_could_not_be_renewed_is_retried(mc, clock, seaweed):
    pytest.importorskip("pyrage")
    identity, recipient = new_key()
    bucket = seaweed.bucket(lock=True)
    configure(mc, seaweed, bucket, "GOVERNANCE", **{"offsite.s3.age_recipients": recipient})
    first = mc.backups.create(actor="test").name + ".age"
    with mc.db.transaction() as conn:  # as a copy uploaded before versions were recorded
        conn.execute("UPDATE offsite_copies SET versions = NULL")
    os.remove(mc.backups.dir / mc.offsite.copy_record("s3", first)["backup"])
    clock.advance(2 * DAY)
    mc.backups.create(actor="test")  # no identity: the entry cannot be rebuilt from the copy
    result = mc.offsite.get("s3")
    [stale] = result["detail"]["uncataloged"]
    assert stale["name"] == first and stale["renewing"] is True
    assert result["uncataloged"] == [first]
    status = backup_status(mc)
    [target] = status["offsite"]
    assert f"{first}: the catalog entry could not be renewed (the older one is kept, its lock " \
        "not extended); tried again on the next run" in target["notes"]
    assert status["verdict"] == "warn" and target["problem"] is None, status["reasons"]
    mc.settings.update({"offsite.age_identity": identity}, actor="test")
    clock.advance(3600)
    mc.backups.create(actor="test")
    result = mc.offsite.get("s3")
    assert result["ok"] is True, result["message"]
    assert result["detail"]["cataloged"] == [first] and result["detail"]["uncataloged"] == []
    entry = f"catalog/{first}.json.age"
    versions, _ = mc.offsite.copy_objects("s3", first)
    mode, until = version_locks(seaweed, bucket, entry)[versions[entry]]
    assert mode == "GOVERNANCE" and until > clock.now + DAY - 5
    clock.advance(3600)
    mc.backups.create(actor="test")  # renewed once: not again
    assert mc.offsite.get("s3")["detail"]["cataloged"] == []
