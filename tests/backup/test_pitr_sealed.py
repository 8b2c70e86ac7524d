"""The sealed point-in-time stream without a running Litestream: settings, health, the sealer's
mirroring of the staging folder into a real S3 (SeaweedFS), and the restore answer's moment."""
import sys

import pytest

from mission_control import S3Storage, Sealing
from mission_control.builtins.pitr.sealer import Sealer
from mission_control.offsite.codec import AGE_MAGIC
from tests.support.accounts import logged_in_client
from tests.support.backup_files import add_tasks, titles
from tests.support.ltx_files import version_counts, write_ltx
from tests.support.offsite import new_key
from tests.support.offsite_catalog import new_signer
from tests.support.pitr_engine import Engine
from tests.support.seaweed import ADMIN, SERVICE

S3_REPLICA = {"pitr.enabled": True, "pitr.replica_url": "s3://bucket/pitr"}


@pytest.fixture
def no_pyrage(monkeypatch):
    """This process as it is without the [offsite-crypt] extra: `import pyrage` fails."""
    monkeypatch.setitem(sys.modules, "pyrage", None)


@pytest.mark.parametrize("key, value", [("pitr.replica_url", "s3://bucket/pitr"),
                                        ("pitr.age_recipients", None)])
def test_without_pyrage_a_sealed_replica_is_refused(admin_client, no_pyrage, key, value):
    value = value or "age1" + "q" * 58
    answer = admin_client.put("/api/settings", json={"settings": {key: value}})
    assert answer.status_code == 400
    assert answer.json["details"][0].startswith(key) and "pyrage" in answer.json["details"][0]
    # A local folder needs no sealing, so it stays possible.
    local = admin_client.put("/api/settings", json={"settings": {
        "pitr.replica_url": "file:///srv/replica"}})
    assert local.status_code == 200


def _broken(recipient):
    """The recipient with its last character changed, so its checksum no longer holds."""
    return recipient[:-1] + ("q" if recipient[-1] != "q" else "p")


def test_a_bad_recipient_is_refused(admin_client):
    _, good = new_key()
    answer = admin_client.put("/api/settings", json={"settings": {
        "pitr.age_recipients": f"{good} {_broken(good)}"}})
    assert answer.status_code == 400
    assert answer.json["details"][0].startswith("pitr.age_recipients: not an age public key")


def problem(client):
    status = client.get("/api/backup/status").json
    return status["verdict"], status["pitr"]["problem"]


def test_a_stream_that_cannot_be_sealed_stops_and_fails_health(make_mc, monkeypatch):
    mc = make_mc()
    _, recipient = new_key()
    mc.settings.update({**S3_REPLICA, "pitr.age_recipients": recipient}, "test")
    client = logged_in_client(mc)
    state = client.get("/api/backup/pitr").json
    assert (state["sealed"], state["seal_error"], state["staging_bytes"]) == (True, None, 0)
    # pyrage removed after the settings were stored: nothing streams, health says why.
    monkeypatch.setitem(sys.modules, "pyrage", None)
    state = client.get("/api/backup/pitr").json
    assert "pyrage is not installed" in state["seal_error"] and not state["running"]
    verdict, reason = problem(client)
    assert verdict == "fail" and "sealed and pyrage is not installed" in reason
    assert not mc.services["pitr"]["engine"].wanted()


def test_a_bad_recipient_stored_before_stops_the_stream_and_fails_health(make_mc):
    """A recipient that no longer parses (stored before the check, or by hand) is no downgrade
    to plaintext: the setting reads as its default (the off-site recipients, none here), so the
    stream does not run and the verdict fails naming the setting."""
    mc = make_mc()
    _, good = new_key()
    mc.settings.update({**S3_REPLICA, "pitr.age_recipients": good}, "test")
    client = logged_in_client(mc)
    engine = mc.services["pitr"]["engine"]
    assert client.get("/api/backup/pitr").json["seal_error"] is None and engine.wanted()
    with mc.db.transaction() as conn:
        conn.execute("UPDATE settings SET value = ? WHERE key = 'pitr.age_recipients'",
                     (f"{good} {_broken(good)}",))
    state = client.get("/api/backup/pitr").json
    assert "no age recipient" in state["seal_error"] and not state["running"]
    assert "pitr.age_recipients" in state["seal_error"]
    verdict, reason = problem(client)
    assert verdict == "fail" and "pitr.age_recipients" in reason
    assert not engine.wanted()


def test_the_status_reports_the_staging_folders_size(make_mc):
    """`staging_bytes` is what the staging folder holds now, in every level, and follows it."""
    mc = make_mc()
    _, recipient = new_key()
    mc.settings.update({**S3_REPLICA, "pitr.age_recipients": recipient}, "test")
    client = logged_in_client(mc)
    assert client.get("/api/backup/pitr").json["staging_bytes"] == 0
    db = mc.config.db_path
    staging = db.parent / f".{db.name}.pitr-staging"  # as docs/restore-and-health.md names it
    assert staging == mc.services["pitr"]["engine"].files.staging
    staging.mkdir(mode=0o700)  # made when Litestream is started (not in this test)
    for key, size in (("ltx/0/0000000000000001-0000000000000001.ltx", 4096),
                      ("ltx/0/0000000000000002-0000000000000002.ltx", 1234),
                      ("ltx/9/0000000000000001-0000000000000002.ltx", 70_001)):
        (staging / key).parent.mkdir(parents=True, exist_ok=True)
        (staging / key).write_bytes(b"x" * size)
    assert client.get("/api/backup/pitr").json["staging_bytes"] == 4096 + 1234 + 70_001
    (staging / "ltx/9/0000000000000001-0000000000000002.ltx").unlink()  # compacted away
    assert client.get("/api/backup/pitr").json["staging_bytes"] == 4096 + 1234


def test_the_stream_is_sealed_to_the_offsite_recipients_by_default(make_mc):
    mc = make_mc()
    mc.settings.update(S3_REPLICA, "test")
    client = logged_in_client(mc)
    verdict, reason = problem(client)
    assert verdict == "fail" and "no age recipient to seal it to" in reason
    keys = [new_key()[1] for _ in range(3)]
    mc.settings.update({"offsite.dir.age_recipients": f"{keys[0]} {keys[1]}",
                        "offsite.s3.age_recipients": keys[1]}, "test")
    assert client.get("/api/backup/pitr").json["seal_error"] is None
    engine = mc.services["pitr"]["engine"]
    assert engine.recipients() == (keys[1], keys[0])  # each once
    mc.settings.update({"pitr.age_recipients": keys[2]}, "test")
    assert engine.recipients() == (keys[2],)


def test_the_restore_answer_says_the_moment_restored_to(make_mc):
    mc = make_mc()
    add_tasks(mc, "kept")
    engine = Engine(mc.backups.create("test").path, held=1_199_250)
    mc.pm.register(engine)
    answer = logged_in_client(mc).post("/api/backup/restore",
                                       json={"timestamp": "1970-01-01T00:20:00Z"})
    assert answer.status_code == 200, answer.json
    assert answer.json["restored"]["timestamp"] == "1970-01-01T00:20:00.000Z"
    assert answer.json["restored"]["restored_to"] == "1970-01-01T00:19:59.250Z"
    assert titles(mc) == ["kept"]
    event = mc.audit_store.query(action="backup_restore", limit=1)[0][0]
    assert event["detail"]["restored_to"] == "1970-01-01T00:19:59.250Z"
    assert "skipped" not in answer.json["restored"]  # this engine did not say


def test_the_restore_answer_and_audit_name_the_files_gone_around(make_mc):
    mc = make_mc()
    add_tasks(mc, "kept")
    skipped = [{"key": "ltx/9/0000000000000001-0000000000000009.ltx.age",
                "reason": "not a signed file of the stream"}]
    engine = Engine(mc.backups.create("test").path, held=1_199_250, skipped=skipped)
    mc.pm.register(engine)
    answer = logged_in_client(mc).post("/api/backup/restore",
                                       json={"timestamp": "1970-01-01T00:20:00Z"})
    assert answer.status_code == 200, answer.json
    assert answer.json["restored"]["restored_to"] == "1970-01-01T00:19:59.250Z"
    assert answer.json["restored"]["skipped"] == skipped
    event = mc.audit_store.query(action="backup_restore", limit=1)[0][0]
    assert event["detail"]["skipped"] == skipped
    assert event["detail"]["restored_to"] == "1970-01-01T00:19:59.250Z"



@pytest.mark.slow
@pytest.mark.parametrize("lock", [False, True])
def test_the_sealer_uploads_sealed_and_mirrors_deletions(seaweed, tmp_path, lock):
    bucket = seaweed.bucket(lock=lock)
    storage = S3Storage(seaweed.client(SERVICE), bucket, "pitr")
    staging = tmp_path / "staging"
    reports = []
    signer = new_signer(tmp_path)[0]
    sealer = Sealer(staging, storage, Sealing((new_key()[1],), signer), reports.append)
    first = write_ltx(staging, 0, 1, 1, 1_000)
    write_ltx(staging, 0, 2, 2, 2_000)
    write_ltx(staging, 9, 1, 2, 2_500)
    (staging / "ltx" / "0" / "0000000000000003-0000000000000003.ltx.tmp").write_bytes(b"half")
    assert sealer.sweep()
    keys = [o.key for o in storage.list()]
    assert keys == ["ltx/0/0000000000000001-0000000000000001.ltx.age",
                    "ltx/0/0000000000000002-0000000000000002.ltx.age",
                    "ltx/9/0000000000000001-0000000000000002.ltx.age"]
    for key in keys:
        with storage.open(key) as f:
            assert f.read(len(AGE_MAGIC)) == AGE_MAGIC
    state = sealer.state()
    assert {k: state[k] for k in ("earliest", "latest", "replica_txid", "error")} == {
        "earliest": 2_501, "latest": 2_501, "replica_txid": 2, "error": None}
    assert sealer.uploads == 3
    first.unlink()  # Litestream's compaction removed it
    assert sealer.sweep()
    assert [o.key for o in storage.list()] == keys[1:]
    versions = seaweed.client(ADMIN).list_object_versions(Bucket=bucket, Prefix="pitr/ltx/0/")
    kept = [v["Key"] for v in versions.get("Versions", ())]
    # A locking bucket keeps the deleted file's version (behind a delete marker) for its lock.
    assert ("pitr/" + keys[0] in kept) is lock
    assert not sealer.sweep()  # nothing new, nothing gone: nothing uploaded twice
    assert sealer.uploads == 3
    # After a restart, what the storage already holds is not uploaded again: no new put, no
    # new version (SeaweedFS's modified time has 1 s precision, so it could not tell).
    before = version_counts(seaweed, bucket)
    again = Sealer(staging, storage, Sealing((new_key()[1],), signer), reports.append)
    again.sweep()
    assert again.state() == sealer.state()
    assert again.uploads == 0
    assert version_counts(seaweed, bucket) == before

