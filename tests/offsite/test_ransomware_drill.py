"""The ransomware drill: an attacker holding the service's own S3 credentials deletes every key, tries
versioned deletes (refused by Object Lock) and overwrites every key with garbage; `recover --as-of`
a moment before the attack still rebuilds the newest copy, verified, and no locked version is lost."""
import sqlite3
import time
from datetime import datetime, timezone

import pytest

from mission_control.offsite.storage import Lock, S3Storage
from tests.support.cli_run import run_cli
from tests.support.offsite import new_key
from tests.support.offsite_catalog import new_signer, publish
from tests.support.seaweed import SERVICE

pytestmark = pytest.mark.slow

pytest.importorskip("pyrage")
pytest.importorskip("zstandard")

PREFIX = "mission-control/"


def _rows(path):
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return sorted(conn.execute("SELECT name FROM agents"))
    finally:
        conn.close()


def _versions(client, bucket):
    """`{(key, version id)}` of every real version (not delete markers) in the bucket."""
    found = set()
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        found.update((v["Key"], v["VersionId"]) for v in page.get("Versions", ()))
    return found


@pytest.mark.parametrize("mode", ["COMPLIANCE", "GOVERNANCE"])
def test_recover_as_of_before_the_attack_restores_the_newest_copy(mode, make_mc, clock, seaweed,
                                                                  tmp_path):
    mc = make_mc()
    backups = []
    for i in range(3):
        mc.db.execute("INSERT INTO agents (name, status, created_at, updated_at) "
                      "VALUES (?, 'online', 1, 1)", (f"agent-{i}",))
        backups.append(mc.backups.create(actor="test").path)
        clock.advance(3600)
    identity, recipient = new_key()
    key_file = tmp_path / "key.txt"
    key_file.write_text(identity + "\n")
    signer, verify_key = new_signer(tmp_path)
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    bucket = seaweed.bucket(lock=True)
    service = S3Storage(seaweed.client(SERVICE), bucket, PREFIX)
    lock = Lock(mode, time.time() + 86400)
    for when, path in enumerate(backups):
        publish(service, path, signer, recipients=[recipient], lock=lock, scratch=scratch,
                created_at=time.time() - 10 + when)
    attack_then_recover(seaweed, bucket, backups, key_file, verify_key, tmp_path)


def attack_then_recover(seaweed, bucket, backups, key_file, verify_key, tmp_path):
    """The attack with the service's credentials, then recover now (nothing) and as of before."""
    service = S3Storage(seaweed.client(SERVICE), bucket, PREFIX)
    admin = seaweed.client()
    before_attack = _versions(admin, bucket)
    assert len(before_attack) == 9  # a copy, its manifest and its catalog entry, three times
    time.sleep(2.1)  # SeaweedFS's LastModified has whole seconds
    moment = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    time.sleep(1.1)

    # The attack, with the service's own credentials.
    attacker = seaweed.client(SERVICE)
    keys = [o.key for o in service.list()]
    for key in keys:
        attacker.delete_object(Bucket=bucket, Key=PREFIX + key)
    assert service.list() == []
    refused = 0
    for key, version in sorted(before_attack):
        for extra in ({}, {"BypassGovernanceRetention": True}):
            try:
                attacker.delete_object(Bucket=bucket, Key=key, VersionId=version, **extra)
            except Exception as exc:  # noqa: BLE001 - botocore's ClientError
                assert "AccessDenied" in str(exc) or "locked" in str(exc).lower(), exc
                refused += 1
    assert refused == 2 * len(before_attack)
    for key in keys:
        attacker.put_object(Bucket=bucket, Key=PREFIX + key, Body=b"encrypted by ransomware")
    assert len(service.list()) == len(keys)

    after_attack = _versions(admin, bucket)
    assert before_attack <= after_attack  # 0 locked versions lost
    lost = before_attack - after_attack
    assert len(lost) == 0

    source = f"s3://{bucket}/{PREFIX}"
    common = ["recover", "--from", source, "--endpoint-url", seaweed.url, "--identity", key_file,
              "--verify-key", verify_key, "--json"]
    now = run_cli(*common, "--to", tmp_path / "now", env=seaweed.environ())
    assert now.code == 1, now.out  # every current object is garbage
    assert len(now.json["skipped"]) == 3
    assert not (tmp_path / "now").exists()

    ran = run_cli(*common, "--to", tmp_path / "recovered", "--as-of", moment,
                  env=seaweed.environ())
    assert ran.code == 0, ran.out + ran.err
    answer = ran.json
    assert answer["recovered"]["backup"] == backups[-1].name
    assert answer["authenticity"] == "verified" and answer["versions_read"] is True
    assert answer["skipped"] == []
    restored = tmp_path / "recovered" / "mission-control.db"
    assert restored.read_bytes() == backups[-1].read_bytes()
    assert _rows(restored) == [(f"agent-{i}",) for i in range(3)]


def test_the_drill_on_copies_the_service_made(make_mc, seaweed, tmp_path):
    """The same attack on copies uploaded by the service itself (zstd, age, COMPLIANCE lock)."""
    from tests.support.scheduling import FakeClock
    clock = FakeClock(float(int(time.time())) - 20)
    mc = make_mc(clock=clock)
    identity, recipient = new_key()
    key_file = tmp_path / "key.txt"
    key_file.write_text(identity + "\n")
    bucket = seaweed.bucket(lock=True)
    mc.settings.update({**seaweed.settings(bucket), "offsite.s3.lock_mode": "COMPLIANCE",
                        "offsite.s3.lock_days": "1", "offsite.s3.compress": "zstd",
                        "offsite.s3.age_recipients": recipient}, actor="test")
    backups = []
    for i in range(3):
        mc.db.execute("INSERT INTO agents (name, status, created_at, updated_at) "
                      "VALUES (?, 'online', 1, 1)", (f"agent-{i}",))
        backups.append(mc.backups.create(actor="test").path)
        clock.advance(5)
    attack_then_recover(seaweed, bucket, backups, key_file, mc.offsite.signer.verify_key(),
                        tmp_path)
