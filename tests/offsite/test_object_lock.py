"""Immutable off-site copies on a real object store (SeaweedFS): Object Lock on every upload, held
copies, extended locks, no_delete, and planted objects that never cost a real copy."""
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from mission_control import MANIFEST_SUFFIX
from mission_control.health import backup_status
from mission_control.offsite.signing import Signer
from tests.support.cli_run import run_cli
from tests.support.scheduling import FakeClock
from tests.support.seaweed import ADMIN, SERVICE

pytestmark = pytest.mark.slow
DAY = 86400


@pytest.fixture
def clock():
    """Real time (the store's locks are judged by its own clock), moved by hand."""
    return FakeClock(float(int(time.time())))


def configure(mc, seaweed, bucket, **more):
    mc.settings.update({**seaweed.settings(bucket), **more}, actor="test")


def backups(mc, clock, count, step=60):
    names = []
    for _ in range(count):
        names.append(mc.backups.create(actor="test").name)
        clock.advance(step)
    return names


def heads(seaweed, bucket, key):
    return seaweed.client(ADMIN).head_object(Bucket=bucket, Key=f"mission-control/{key}",
                                             ChecksumMode="ENABLED")


def versions(seaweed, bucket):
    found = seaweed.client(ADMIN).list_object_versions(Bucket=bucket)
    return found.get("Versions", []), found.get("DeleteMarkers", [])


@pytest.mark.parametrize("mode", ["GOVERNANCE", "COMPLIANCE"])
def test_every_upload_is_locked_with_its_checksum(admin_client, mc, clock, seaweed, mode):
    bucket = seaweed.bucket(lock=True)
    answer = admin_client.put("/api/settings", json={"settings": {
        **seaweed.settings(bucket), "offsite.s3.lock_mode": mode, "offsite.s3.lock_days": "2"}})
    assert answer.status_code == 200, answer.json
    name = mc.backups.create(actor="test").name
    assert mc.offsite.get("s3")["ok"] is True, mc.offsite.get("s3")["message"]
    for key in (name, name + MANIFEST_SUFFIX, f"catalog/{name}.json"):
        head = heads(seaweed, bucket, key)
        assert head["ObjectLockMode"] == mode, key
        assert abs(head["ObjectLockRetainUntilDate"].timestamp() - (clock.now + 2 * DAY)) < 5
        assert head.get("ChecksumSHA256"), key  # uploaded with its SHA-256
    detail = mc.offsite.get("s3")["detail"]
    assert detail["lock"] == {"mode": mode, "until": int(clock.now + 2 * DAY)}


def test_a_bucket_without_object_lock_is_a_400_naming_the_setting(admin_client, mc, seaweed):
    bucket = seaweed.bucket(lock=False)
    answer = admin_client.put("/api/settings", json={"settings": {
        **seaweed.settings(bucket), "offsite.s3.lock_mode": "COMPLIANCE"}})
    assert answer.status_code == 400
    [problem] = answer.json["details"]
    assert problem.startswith("offsite.s3.lock_mode: ") and "Object Lock" in problem
    assert bucket in problem
    assert mc.settings.get("offsite.s3.bucket") == ""  # nothing written
    # Pointing a locked configuration at a bucket without lock is refused the same way.
    locked = seaweed.bucket(lock=True)
    assert admin_client.put("/api/settings", json={"settings": {
        **seaweed.settings(locked), "offsite.s3.lock_mode": "GOVERNANCE"}}).status_code == 200
    moved = admin_client.put("/api/settings", json={"settings": {"offsite.s3.bucket": bucket}})
    assert moved.status_code == 400 and "offsite.s3.lock_mode" in moved.json["details"][0]
    assert mc.settings.get("offsite.s3.bucket") == locked


@pytest.mark.parametrize("key,value", [("lock_days", 0), ("lock_days", 36501),
                                       ("lock_mode", "governance"), ("lock_mode", "LEGAL_HOLD")])
def test_lock_settings_out_of_their_range_are_a_400_naming_the_setting(admin_client, mc, seaweed,
                                                                       key, value):
    """lock_mode is "", GOVERNANCE or COMPLIANCE and lock_days 1-36500, even on a bucket with
    Object Lock; a refusal saves nothing (not even the other settings of the same PUT)."""
    bucket = seaweed.bucket(lock=True)
    body = {**seaweed.settings(bucket), "offsite.s3.lock_mode": "GOVERNANCE",
            "offsite.s3.lock_days": 2, f"offsite.s3.{key}": value}
    answer = admin_client.put("/api/settings", json={"settings": body})
    assert answer.status_code == 400, answer.json
    assert any(d.startswith(f"offsite.s3.{key}") for d in answer.json["details"]), answer.json
    assert mc.settings.get("offsite.s3.bucket") == ""
    assert mc.settings.get("offsite.s3.lock_mode") == ""
    for good in ({"offsite.s3.lock_days": 1}, {"offsite.s3.lock_days": 36500}):
        assert admin_client.put("/api/settings", json={"settings": {
            **body, "offsite.s3.lock_mode": "COMPLIANCE", **good}}).status_code == 200


def test_retention_holds_locked_copies_and_reports_them(admin_client, mc, clock, seaweed):
    bucket = seaweed.bucket(lock=True)
    configure(mc, seaweed, bucket, **{"offsite.s3.lock_mode": "GOVERNANCE",
                                      "offsite.s3.lock_days": 1,
                                      "offsite.s3.retention_count": 1})
    names = backups(mc, clock, 3)
    result = mc.offsite.get("s3")
    assert result["ok"] is True and result["message"] == "Copied and verified"
    assert [h["name"] for h in result["held"]] == names[1::-1]  # newest first, none deleted
    for held in result["held"]:
        assert held["until"] > clock.now  # still locked: not deleted, not a failure
    kept, markers = versions(seaweed, bucket)
    assert markers == []  # not even a delete marker was added over a locked copy
    assert {v["Key"] for v in kept} >= {f"mission-control/{n}" for n in names}
    answer = admin_client.get("/api/offsite").json["targets"]
    assert answer[0]["held"] == result["held"]
    status = admin_client.get("/api/backup/status").json
    assert status["verdict"] != "fail" and status["offsite"][0]["held"] == result["held"]
    shown = run_cli("offsite", "status", "--data-dir", mc.config.data_dir)
    assert shown.code == 0
    assert f"{names[0]} held until " in shown.out and "FAILED" not in shown.out


def test_kept_copies_have_their_lock_extended(mc, clock, seaweed):
    bucket = seaweed.bucket(lock=True)
    configure(mc, seaweed, bucket, **{"offsite.s3.lock_mode": "COMPLIANCE",
                                      "offsite.s3.lock_days": 1})
    [first] = backups(mc, clock, 1)
    before = heads(seaweed, bucket, first)["ObjectLockRetainUntilDate"].timestamp()
    clock.advance(2 * DAY)
    backups(mc, clock, 1)
    assert mc.offsite.get("s3")["detail"]["extended"] == [first]
    for key in (first, first + MANIFEST_SUFFIX, f"catalog/{first}.json"):
        after = heads(seaweed, bucket, key)["ObjectLockRetainUntilDate"].timestamp()
        assert after > before + DAY and abs(after - (clock.now - 60 + DAY)) < 5, key
    clock.advance(60)
    backups(mc, clock, 1)  # gains under a day: no call
    assert mc.offsite.get("s3")["detail"]["extended"] == []


def test_no_delete_never_deletes(mc, clock, seaweed):
    """On a versioned bucket every DeleteObject leaves a trace (a delete marker, or a version
    gone): with no_delete there is none; without it, the same run leaves some."""
    bucket = seaweed.bucket(lock=False, versioned=True)
    configure(mc, seaweed, bucket, **{"offsite.s3.retention_count": 1,
                                      "offsite.s3.no_delete": True})
    names = backups(mc, clock, 3)
    kept, markers = versions(seaweed, bucket)
    assert markers == [] and len(kept) == 9  # three copies, manifests and catalog entries
    detail = mc.offsite.get("s3")["detail"]
    assert detail["pruned"] == [] and detail["left_to_expiry"] == names[1::-1]
    assert mc.offsite.get("s3")["ok"] is True
    [health] = backup_status(mc)["offsite"]  # health says the bucket's rules must expire them
    assert any("offsite.s3.no_delete" in note and "lifecycle" in note for note in health["notes"])
    mc.settings.update({"offsite.s3.no_delete": False}, actor="test")
    backups(mc, clock, 1)
    _, markers = versions(seaweed, bucket)
    assert markers  # the control: a service that deletes leaves markers here


def forged_name(i):
    return time.strftime("mc-backup-%Y-%m-%d_%H-%M-%S.db", time.gmtime(4_000_000_000 + i))


def test_a_thousand_forged_uploads_cause_no_deletion(mc, clock, seaweed, tmp_path):
    """1,000 objects named like copies (not age; half with a manifest signed by another key) and
    100 misnamed ones, planted with the service's own credentials: none is counted or deleted."""
    bucket = seaweed.bucket(lock=False)
    configure(mc, seaweed, bucket, **{"offsite.s3.retention_count": 3})
    real = backups(mc, clock, 2)
    attacker = seaweed.client(SERVICE)  # the service's own credentials, as an attacker holds them
    other = Signer(str(tmp_path / "attacker.key"), announce=lambda _: None)

    def plant(i):
        name = forged_name(i)  # named after the year 2096: newer than every real copy
        attacker.put_object(Bucket=bucket, Key=f"mission-control/{name}", Body=b"forged")
        if i % 2:  # half with a manifest, signed by another key
            record = {"target": "s3", "remote_name": name, "backup": name, "size": 6,
                      "sha256": "0" * 64, "plain_size": 6, "plain_sha256": "0" * 64,
                      "compressed": False, "encrypted": False, "created_at": int(clock.now)}
            attacker.put_object(Bucket=bucket, Key=f"mission-control/{name}{MANIFEST_SUFFIX}",
                                Body=other.sign(record))
        return name

    def plant_misnamed(i):  # names retention must not take for copies of ours
        name = (f"mc-backup-{i}.db", f"{forged_name(i)}.old", f"notes-{i}.txt")[i % 3]
        attacker.put_object(Bucket=bucket, Key=f"mission-control/{name}", Body=b"not age")
        return name

    with ThreadPoolExecutor(16) as pool:
        forged = list(pool.map(plant, range(1000)))
        forged += list(pool.map(plant_misnamed, range(1000, 1100)))
    real += backups(mc, clock, 1)
    result = mc.offsite.get("s3")
    assert result["ok"] is True, result["message"]
    assert result["detail"]["pruned"] == []
    listed = {o.key for o in mc.offsite.targets()["s3"].storage.list()}
    assert set(real) <= listed and set(forged) <= listed
    assert len([k for k in listed if k.endswith(MANIFEST_SUFFIX)]) == 500 + 3
    # One more real backup: only the oldest real copy goes, whatever was planted.
    real += backups(mc, clock, 1)
    assert mc.offsite.get("s3")["detail"]["pruned"] == [real[0]]
    listed = {o.key for o in mc.offsite.targets()["s3"].storage.list()}
    assert set(real[1:]) <= listed and set(forged) <= listed and real[0] not in listed
    # Nothing is locked here: the real copy past the count was deleted, none held, and no
    # planted object was ever counted, held or deleted.
    last = mc.offsite.get("s3")
    assert last["ok"] is True and last["held"] == [] and last["detail"]["held"] == []
