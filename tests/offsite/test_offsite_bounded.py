"""Fetches and drills are bounded: a zstd bomb stops at the recorded size or MC_MAX_UPLOAD_MB,
the disk guard is asked first, and every failure is audited with its reason."""
import time

import pytest

from mission_control.errors import MissionControlError
from mission_control.offsite.drill import drill_all
from mission_control.offsite.targets import fetch

from tests.support.cli_run import run_cli

#: In the slow lane (S3 round trips and CLI runs: ~2 s on the 2-core machine).
pytestmark = pytest.mark.slow

zstd = pytest.importorskip("zstandard")

BOMB_MB = 400


def zstd_bomb(path, megabytes=BOMB_MB):
    """`megabytes` MiB of zeros as one zstd frame, its size in the header: a few KiB on disk."""
    zeros = bytes(1024 * 1024)
    with open(path, "wb") as out, zstd.ZstdCompressor(level=3, write_checksum=True) \
            .stream_writer(out, size=megabytes * len(zeros)) as writer:
        for _ in range(megabytes):
            writer.write(zeros)
    return path


def hidden(mc):
    return sorted(p.name for p in mc.backups.dir.iterdir() if p.name.startswith(".mc-tmp-"))


def refusals(mc):
    return [e["detail"] for e in mc.audit_store.query(action="offsite_fetch_refused")[0]]


@pytest.fixture
def nas(mc, tmp_path):
    folder = tmp_path / "nas"
    folder.mkdir()
    mc.settings.update({"offsite.dir.path": str(folder), "offsite.dir.compress": "zstd"},
                       actor="test")
    return folder


def test_a_bomb_in_place_of_a_sent_copy_stops_at_its_recorded_size(admin_client, mc, nas):
    made = mc.backups.create(actor="test")
    remote = f"{made.name}.zst"
    zstd_bomb(nas / remote)
    assert (nas / remote).stat().st_size < 256 * 1024
    started = time.monotonic()
    answer = admin_client.post("/api/offsite/dir/fetch", json={"name": remote})
    assert time.monotonic() - started < 20  # 400 MiB were never written
    assert answer.status_code == 400, answer.json
    assert answer.json["error"].startswith("The off-site copy was refused: it is larger than "
                                           "the ")
    assert "recorded when it was sent" in answer.json["error"]
    assert hidden(mc) == [] and [b.name for b in mc.backups.list()] == [made.name]
    [event] = refusals(mc)
    assert event["name"] == remote and event["status"] == 400
    assert "larger than" in event["reason"]


def test_a_bomb_this_server_never_sent_is_refused_before_it_is_unpacked(mc, nas, tmp_path):
    remote = "mc-backup-2026-01-01_00-00-00.db.zst"
    zstd_bomb(nas / remote)
    data_dir = mc.config.db_path.parent
    mc.close()
    ran = run_cli("--data-dir", data_dir, "offsite", "fetch", "dir", remote)
    assert ran.code == 2
    assert "is not in the signed record of copies this service made" in ran.err, ran.err
    assert "cannot be read" not in ran.err
    assert not [p for p in (data_dir / "backups").iterdir() if p.name.startswith(".mc-tmp-")]


def test_a_bomb_in_the_bucket_stops_at_its_recorded_size(mc, s3, s3_server, bucket, tmp_path):
    mc.settings.update({"offsite.s3.bucket": bucket, "offsite.s3.endpoint_url": s3_server.url,
                        "offsite.s3.region": "us-east-1", "offsite.s3.compress": "zstd"},
                       actor="test")
    made = mc.backups.create(actor="test")
    remote = f"{made.name}.zst"
    s3.put_object(Bucket=bucket, Key=f"mission-control/{remote}",
                  Body=zstd_bomb(tmp_path / "bomb.zst").read_bytes())
    with pytest.raises(MissionControlError) as refused:
        fetch(mc, "s3", remote, "test")
    assert refused.value.status == 400
    assert "larger than the " in refused.value.message
    assert "recorded when it was sent" in refused.value.message
    assert hidden(mc) == []
    [event] = refusals(mc)
    assert event["target"] == "s3" and "larger than" in event["reason"]


def test_a_drill_of_a_bomb_fails_saying_so(mc, nas):
    made = mc.backups.create(actor="test")
    zstd_bomb(nas / f"{made.name}.zst")
    [result] = drill_all(mc, "test")
    assert result["ok"] is False
    assert result["message"].startswith("it is larger than the ")
    assert hidden(mc) == []
    [event] = mc.audit_store.query(action="offsite_verify")[0]
    assert event["detail"]["ok"] is False and "larger than" in event["detail"]["message"]


def test_the_disk_guard_is_asked_before_a_fetch_and_a_drill(admin_client, mc, nas):
    made = mc.backups.create(actor="test")
    mc.settings.update({"diskguard.min_free_mb": "1000000000"}, actor="test")
    answer = admin_client.post("/api/offsite/dir/fetch", json={"name": f"{made.name}.zst"})
    assert answer.status_code == 507, answer.json
    assert answer.json["error"].startswith("Not enough free disk space")
    [event] = refusals(mc)
    assert event["status"] == 507 and event["reason"].startswith("Not enough free disk space")
    [result] = drill_all(mc, "test")
    assert result["ok"] is False and result["message"].startswith("Not enough free disk space")
    assert hidden(mc) == []


def test_every_fetch_failure_is_audited_with_its_reason(admin_client, mc, nas):
    answer = admin_client.post("/api/offsite/dir/fetch",
                               json={"name": "mc-backup-2026-01-01_00-00-00.db.zst"})
    assert answer.status_code == 404
    nas.rmdir()  # an unmounted share
    answer = admin_client.post("/api/offsite/dir/fetch",
                               json={"name": "mc-backup-2026-01-01_00-00-00.db.zst"})
    assert answer.status_code == 502
    missing, unreadable = reversed(refusals(mc))
    assert missing["status"] == 404 and "no copy of that name" in missing["reason"]
    assert unreadable["status"] == 502 and "cannot be read" in unreadable["reason"]


def test_an_encrypted_bomb_stops_there_too(mc, tmp_path):
    pyrage = pytest.importorskip("pyrage")
    from tests.support.offsite import new_key
    identity, recipient = new_key()
    folder = tmp_path / "nas"
    folder.mkdir()
    mc.settings.update({"offsite.dir.path": str(folder), "offsite.age_identity": identity,
                        "offsite.dir.compress": "zstd", "offsite.dir.age_recipients": recipient},
                       actor="test")
    made = mc.backups.create(actor="test")
    remote = f"{made.name}.zst.age"
    assert (folder / remote).exists()
    bomb = zstd_bomb(tmp_path / "bomb.zst").read_bytes()
    (folder / remote).write_bytes(
        pyrage.encrypt(bomb, [pyrage.x25519.Recipient.from_str(recipient)]))
    with pytest.raises(MissionControlError) as refused:
        fetch(mc, "dir", remote, "test")
    assert refused.value.status == 400
    assert "larger than the " in refused.value.message
    assert "recorded when it was sent" in refused.value.message
    assert hidden(mc) == []
