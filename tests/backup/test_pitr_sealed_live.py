"""The sealed point-in-time stream end to end: a real `serve` runs the real Litestream into its
staging folder and seals every file into a real S3 (SeaweedFS); restores read it back."""
import os
import random
import sqlite3
import stat
import time

import pytest

from mission_control import StreamTrust, open_storage, restore_sealed
from mission_control.offsite.signing import KEY_FILE, Signer
from mission_control.offsite.codec import AGE_MAGIC
from tests.support.cli_run import run_cli
from tests.support.offsite import new_key
from tests.support.pitr_live import (BINARY, Serve, add_user, configure, iso,
                                     litestream_processes, local_txid, sealed_txid, usernames,
                                     wait_for)
from tests.support.seaweed import ADMIN, SERVICE

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(BINARY is None, reason="Litestream is not installed")]
STATES = 8
MOMENTS = 20


def sealed_settings(seaweed, bucket, recipient):
    return {"pitr.enabled": "true", "pitr.replica_url": f"s3://{bucket}/pitr",
            "pitr.s3_endpoint": seaweed.url, "pitr.s3_region": "us-east-1",
            "pitr.s3_access_key_id": SERVICE[0], "pitr.s3_secret_access_key": SERVICE[1],
            "pitr.age_recipients": recipient, "pitr.max_lag_seconds": "5"}


def user_rows(path):
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT * FROM users ORDER BY id").fetchall()
    finally:
        conn.close()


def reference_copy(data, dest):
    """A copy of the live database as it is now (SQLite's online backup)."""
    source = sqlite3.connect(data / "mission-control.db")
    target = sqlite3.connect(dest)
    source.backup(target)
    source.close()
    target.close()


def test_a_sealed_stream_holds_only_age_and_restores_any_moment(seaweed, tmp_path):
    identity, recipient = new_key()
    bucket = seaweed.bucket(lock=False)
    data = tmp_path / "data"
    configure(data, **sealed_settings(seaweed, bucket, recipient),
              **{"offsite.age_identity": identity})
    serve = Serve(data)
    try:
        assert wait_for(lambda: serve.pitr()["running"] and sealed_txid(data), timeout=60), \
            "".join(serve.lines[-30:])
        # Stable spans: row i is sealed and uploaded, row i+1 not yet written. A restore to any
        # moment of a span must give the reference copy taken in it.
        spans = []
        for i in range(STATES):
            before = local_txid(data)
            add_user(data, f"user-{i}")
            written = wait_for(lambda: (local_txid(data) or 0) > before and local_txid(data))
            assert written and wait_for(lambda: (sealed_txid(data) or 0) >= written, timeout=30), \
                "".join(serve.lines[-30:])
            start = time.time() * 1000
            reference = tmp_path / f"reference-{i}.db"
            reference_copy(data, reference)
            time.sleep(0.4)
            spans.append((int(start) + 1, int(time.time() * 1000) - 1, user_rows(reference)))

        state = serve.pitr()
        assert state["sealed"] and state["staging_bytes"] > 0 and state["seal_error"] is None
        staging = data / ".mission-control.db.pitr-staging"
        assert stat.S_IMODE(os.stat(staging).st_mode) == 0o700

        # Every object under the stream's prefix is age: nothing left the host in plaintext.
        admin = seaweed.client(ADMIN)
        keys = [o["Key"] for page in admin.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix="pitr/") for o in page.get("Contents", ())]
        assert len(keys) > STATES  # a snapshot, its compaction, and at least a file per row
        for key in keys:
            head = admin.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{len(AGE_MAGIC) - 1}")
            assert head["Body"].read() == AGE_MAGIC, key

        storage = open_storage(f"s3://{bucket}/pitr", endpoint_url=seaweed.url,
                               region="us-east-1", access_key_id=SERVICE[0],
                               secret_access_key=SERVICE[1])
        trust = StreamTrust(identity, Signer(data / KEY_FILE).trusted())
        picker = random.Random(22)
        for n in range(MOMENTS):
            start, end, expected = picker.choice(spans)
            at = picker.randint(start, end)
            dest = tmp_path / f"moment-{n}.db"
            moment = restore_sealed(storage, trust, at, dest, BINARY, os.environ)
            assert user_rows(dest) == expected, (n, iso(at / 1000))
            assert moment <= at

        # The same from the bucket alone, through the installed CLI (an empty machine's way).
        key_file = tmp_path / "key.txt"
        key_file.write_text(identity + "\n")
        start, end, expected = spans[-3]
        at = (start + end) // 2
        ran = run_cli("recover", "--from", f"s3://{bucket}/pitr", "--endpoint-url", seaweed.url,
                      "--identity", key_file, "--verify-key", Signer(data / KEY_FILE).verify_key(),
                      "--at", iso(at / 1000), "--to", tmp_path / "recovered", "--json",
                      env=seaweed.environ())
        assert ran.code == 0, ran.out + ran.err
        assert ran.json["authenticity"] == "verified" and ran.json["recovered"]["restored_to"] <= at
        assert user_rows(tmp_path / "recovered" / "mission-control.db") == expected

        # Through the service: the answer says the moment the data is from.
        start, end, expected = spans[2]
        status, answer = serve.call("POST", "/api/backup/restore",
                                    {"timestamp": iso(end / 1000)})
        assert status == 200, answer
        assert answer["restored"]["restored_to"] <= answer["restored"]["timestamp"]
        assert usernames(data) == {row[1] for row in expected}
    finally:
        serve.stop()


def test_without_pyrage_nothing_streams_and_health_fails(seaweed, tmp_path):
    _, recipient = new_key()
    bucket = seaweed.bucket(lock=False)
    data = tmp_path / "data"
    configure(data, **sealed_settings(seaweed, bucket, recipient))
    hidden = tmp_path / "no-extra"
    hidden.mkdir()
    (hidden / "pyrage.py").write_text("raise ImportError('pyrage is not installed here')\n")
    serve = Serve(data, PYTHONPATH=str(hidden))
    try:
        status = wait_for(lambda: serve.call("GET", "/api/backup/status")[1])
        assert status["verdict"] == "fail"
        assert "sealed and pyrage is not installed" in status["pitr"]["problem"]
        time.sleep(2)  # a supervisor that would start Litestream has had time to
        assert litestream_processes(data) == []
        assert "Contents" not in seaweed.client(ADMIN).list_objects_v2(Bucket=bucket)
        answer = serve.call("PUT", "/api/settings", {"settings": {"pitr.age_recipients":
                                                                 recipient}})
        assert answer[0] == 400 and "pyrage" in answer[1]["details"][0]
    finally:
        serve.stop()
