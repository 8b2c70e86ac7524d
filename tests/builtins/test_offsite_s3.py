"""The built-in S3 off-site copy, against moto's real S3 server on loopback."""
import hashlib
import socket
import sys

import pytest

from mission_control import MANIFEST_SUFFIX

#: In the slow lane (round trips to moto's S3 server: ~5 s on the 2-core machine).
pytestmark = pytest.mark.slow

boto3 = pytest.importorskip("boto3")


def configure(mc, server, bucket, **more):
    mc.settings.update({"offsite.s3.bucket": bucket, "offsite.s3.endpoint_url": server.url,
                        "offsite.s3.region": "us-east-1", **more}, actor="test")


def keys(s3, bucket):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", ()))


def audits(mc, action):
    return mc.audit_store.query(action=action)[0]


def test_backup_lands_verified_in_the_bucket(admin_client, mc, s3, s3_server, bucket):
    configure(mc, s3_server, bucket)
    made = admin_client.post("/api/backup")
    assert made.status_code == 200, made.json
    name = made.json["backup"]["name"]
    assert keys(s3, bucket) == [f"mission-control/catalog/{name}.json",
                                f"mission-control/{name}",
                                f"mission-control/{name}{MANIFEST_SUFFIX}"]
    body = s3.get_object(Bucket=bucket, Key=f"mission-control/{name}")["Body"].read()
    assert body == (mc.backups.dir / name).read_bytes()
    [event] = audits(mc, "offsite_copy")
    assert event["detail"]["sha256"] == hashlib.sha256(body).hexdigest()
    assert event["detail"]["location"] == f"s3://{bucket}/mission-control/{name}"
    [result] = admin_client.get("/api/offsite").json["targets"]
    assert result["target"] == "s3" and result["ok"] is True


def test_large_backup_goes_up_in_parts(mc, s3, s3_server, bucket):
    with mc.db.transaction() as conn:  # an 11 MiB database: three 5 MiB parts
        conn.execute("INSERT INTO activities (type, entity_type, actor, description, data,"
                     " created_at) VALUES ('t', 'e', 'a', 'd', randomblob(11 * 1048576), 0)")
    configure(mc, s3_server, bucket, **{"offsite.s3.multipart_threshold_mb": 5,
                                        "offsite.s3.multipart_chunk_mb": 5,
                                        "offsite.s3.prefix": "nightly"})
    made = mc.backups.create(actor="test")
    head = s3.head_object(Bucket=bucket, Key=f"nightly/{made.name}")
    assert head["ETag"].strip('"').endswith("-3")  # S3's mark of a three-part upload
    assert head["ContentLength"] == made.size
    assert audits(mc, "offsite_copy")[0]["detail"]["sha256"] == \
        hashlib.sha256(made.path.read_bytes()).hexdigest()


def test_download_verification(mc, s3, s3_server, bucket):
    configure(mc, s3_server, bucket, **{"offsite.s3.verify_download": True})
    mc.backups.create(actor="test")
    assert mc.offsite.get("s3")["ok"] is True


def test_bucket_keeps_its_own_retention(mc, clock, s3, s3_server, bucket):
    s3.put_object(Bucket=bucket, Key="mission-control/pinned.db", Body=b"kept forever")
    configure(mc, s3_server, bucket, **{"offsite.s3.retention_count": 2})
    names = []
    for _ in range(3):
        names.append(mc.backups.create(actor="test").name)
        clock.advance(60)
    assert keys(s3, bucket) == sorted(["mission-control/pinned.db",
                                       *(f"mission-control/{n}{m}" for n in names[-2:]
                                         for m in ("", MANIFEST_SUFFIX)),
                                       *(f"mission-control/catalog/{n}.json"
                                         for n in names[-2:])])


def test_credentials_from_secret_settings(mc, s3, s3_server, bucket, monkeypatch):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var)
    configure(mc, s3_server, bucket, **{"offsite.s3.access_key_id": "AKIDOTHER",
                                        "offsite.s3.secret_access_key": "a-real-secret"})
    mc.backups.create(actor="test")
    assert mc.offsite.get("s3")["ok"] is True
    listed = {s["key"] for s in mc.settings.list()}
    assert "offsite.s3.bucket" in listed and "offsite.s3.secret_access_key" not in listed
    trail = str(mc.audit_store.query(limit=1000)[0])
    assert "a-real-secret" not in trail


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_broken_endpoint_keeps_the_local_backup(admin_client, mc, aws_env):
    mc.settings.update({"offsite.s3.bucket": "nowhere",
                        "offsite.s3.endpoint_url": f"http://127.0.0.1:{free_port()}",
                        "offsite.s3.secret_access_key": "s3cr3t-value",
                        "offsite.s3.access_key_id": "AKIDBROKEN"}, actor="test")
    made = admin_client.post("/api/backup")
    assert made.status_code == 200
    name = made.json["backup"]["name"]
    assert [b["name"] for b in admin_client.get("/api/backup").json["backups"]] == [name]
    [event] = audits(mc, "offsite_failed")
    assert event["detail"]["target"] == "s3" and event["detail"]["name"] == name
    assert "connect" in event["detail"]["reason"].lower()
    assert [e["action"] for e in audits(mc, "backup_create")] == ["backup_create"]
    offsite = admin_client.get("/api/offsite")
    [result] = offsite.json["targets"]
    assert result["ok"] is False and result["message"] == event["detail"]["reason"]
    failures = admin_client.get("/api/audit?action=offsite_failed").get_data(as_text=True)
    for secret in ("s3cr3t-value",):
        assert secret not in failures and secret not in offsite.get_data(as_text=True)


def test_an_endpoint_stored_before_its_check_is_not_replaced_by_aws(mc, s3_server, aws_env):
    mc.settings.update({"offsite.s3.bucket": "bucket"}, actor="test")
    with mc.db.transaction() as conn:  # as an older version stored it, credentials and all
        conn.execute("INSERT INTO settings (key, value, updated_by, updated_at) VALUES "
                     "('offsite.s3.endpoint_url', ?, 'old', 0)",
                     (s3_server.url.replace("://", "://minio:pw@"),))
    mc.backups.create(actor="test")
    result = mc.offsite.get("s3")
    assert result["ok"] is False
    assert "offsite.s3.endpoint_url holds a value that is no longer valid" in result["message"]
    assert "pw" not in result["message"]


def test_missing_bucket_is_reported(mc, s3_server, aws_env):
    configure(mc, s3_server, "no-such-bucket-here")
    made = mc.backups.create(actor="test")
    assert made.path.is_file()
    assert "NoSuchBucket" in audits(mc, "offsite_failed")[0]["detail"]["reason"]


def test_missing_boto3_is_reported_clearly(mc, monkeypatch):
    # Set while boto3 was there (without it the setting is refused: test_settings_extras).
    mc.settings.update({"offsite.s3.bucket": "b"}, actor="test")
    monkeypatch.setitem(sys.modules, "boto3", None)  # what `import boto3` sees when not installed
    made = mc.backups.create(actor="test")
    assert made.path.is_file()
    reason = audits(mc, "offsite_failed")[0]["detail"]["reason"]
    assert "boto3 is not installed" in reason and "[s3]" in reason


def test_settings_alone_send_every_backup_to_a_folder_and_a_bucket(admin_client, mc, clock, s3,
                                                                    s3_server, bucket, tmp_path):
    nas = tmp_path / "nas"
    nas.mkdir()
    mc.settings.update({"offsite.dir.path": str(nas)}, actor="test")
    configure(mc, s3_server, bucket)
    made = []
    for _ in range(2):
        response = admin_client.post("/api/backup")
        assert response.status_code == 200
        made.append(response.json["backup"]["name"])
        clock.advance(3600)
    for name in made:
        local = (mc.backups.dir / name).read_bytes()
        assert (nas / name).read_bytes() == local
        assert s3.get_object(Bucket=bucket, Key=f"mission-control/{name}")["Body"].read() == local
    targets = admin_client.get("/api/offsite").json["targets"]
    assert [(t["target"], t["ok"], t["backup"]) for t in targets] == \
        [("dir", True, made[-1]), ("s3", True, made[-1])]
    assert len(audits(mc, "offsite_copy")) == 4
