"""The in-service restore of a sealed stream and what it leaves: it waits (bounded) for the sealer
to upload the moment's last files, and a killed restore's temporary replica folders are swept."""
import logging
import os
import sqlite3
import struct
import subprocess
import threading
import time

import pytest

from mission_control import (Codec, LtxFile, MissionControlError, NothingToRestore, Sealing,
                             StreamTrust, encode, restore_sealed, sealed_files)
from mission_control.builtins.pitr import _engine
from mission_control.builtins.pitr.litestream import find_binary
from mission_control.builtins.pitr.sealer import Sealer
from mission_control.builtins.pitr.supervisor import write_state
from mission_control.offsite.sealed_stream import fetch_until
from mission_control.offsite.storage import FolderStorage
from tests.support.accounts import logged_in_client
from tests.support.ltx_files import write_ltx
from tests.support.offsite import new_key
from tests.support.offsite_catalog import new_signer
from tests.support.pitr_live import wait_for
from tests.support.sealed_stream import replicate, seal_replica
from tests.support.seaweed import SERVICE

BINARY = find_binary(None)
S3_REPLICA = {"pitr.enabled": True, "pitr.replica_url": "s3://bucket/pitr"}



def test_a_restore_waits_for_the_sealer_to_upload_the_moments_files(make_mc):
    mc = make_mc()
    mc.settings.update({**S3_REPLICA, "pitr.age_recipients": new_key()[1]}, "test")
    logged_in_client(mc).get("/api/backup/pitr")
    engine = mc.services["pitr"]["engine"]
    files = engine.files
    record = {"earliest": 1, "latest": 1_501, "replica": "s3://bucket/pitr", "error": None}
    write_state(files, sealed_stream={**record, "replica_txid": 4, "level0_txid": 4})
    write_ltx(files.staging, 0, 5, 5, 1_000)  # written before the moment, not uploaded yet
    write_ltx(files.staging, 0, 6, 6, 3_000)  # after it: not waited for
    # The sealer (in whichever process owns it) records the upload a moment later.
    later = threading.Timer(0.5, write_state, (files,),
                            {"sealed_stream": {**record, "replica_txid": 5, "level0_txid": 5}})
    started = time.monotonic()
    later.start()
    try:
        engine.await_sealed(2_000, timeout=20)
    finally:
        later.cancel()
    assert time.monotonic() - started >= 0.5
    engine.await_sealed(2_000, timeout=0)  # sealed now: no wait at all
    # Never uploaded within the bound: the restore is refused, nothing half-done.
    with pytest.raises(MissionControlError) as refused:
        engine.await_sealed(4_000, timeout=0.3)
    assert refused.value.status == 503 and "still being sealed" in refused.value.message


class Stalled(FolderStorage):
    """A folder whose level-0 uploads wait until `go` is set: the level-0 thread behind (a slow
    storage under load, a back-off after an error) while the other thread uploads."""

    def __init__(self, root):
        super().__init__(root)
        self.go = threading.Event()

    def put(self, key, path, *, lock=None):
        if key.startswith("ltx/0/") and not self.go.wait(30):
            raise OSError("level 0 stalled")
        return super().put(key, path, lock=lock)


def test_a_level_1_file_uploaded_first_does_not_end_the_wait_for_level_0(make_mc, tmp_path):
    """t1 and t2 are written before the moment, t3 after it; Litestream compacts the three into
    one level-1 file (its timestamp t3's) and that is uploaded while the level-0 files still
    wait. The newest transaction uploaded (t3's) covers them, yet a restore to the moment read
    then would end before t1: it must wait for the level-0 files."""
    identity, recipient = new_key()
    mc = make_mc()
    mc.settings.update({**S3_REPLICA, "pitr.age_recipients": recipient,
                        "offsite.age_identity": identity}, "test")
    engine = _engine(mc)
    files = engine.files
    now = int(time.time() * 1000)
    t0, t1, t2, moment, t3 = now - 10_000, now - 8_000, now - 6_000, now - 5_000, now - 4_000
    write_ltx(files.staging, 9, 1, 1, t0)
    for txid, stamp in ((2, t1), (3, t2), (4, t3)):
        write_ltx(files.staging, 0, txid, txid, stamp)
    write_ltx(files.staging, 1, 2, 4, t3)
    (tmp_path / "stream").mkdir()
    storage = Stalled(tmp_path / "stream")
    sealer = Sealer(files.staging, storage, Sealing((recipient,), mc.offsite.signer),
                    lambda found: write_state(files, sealed_stream={
                        **found, "replica": engine.replica_url()}))
    sealer.start()
    try:
        assert wait_for(lambda: engine.window().get("replica_txid") == 4)
        trust = StreamTrust(identity, mc.offsite.signer.trusted())  # its key made by then
        assert engine.window()["level0_txid"] == 1  # none of level 0 is uploaded
        assert engine.unsealed_before(moment) == 3
        with pytest.raises(MissionControlError) as refused:
            engine.await_sealed(moment, timeout=0.3)
        assert refused.value.status == 503
        # What the restore would read now: the snapshot, then nothing before the moment.
        stamps, _ = fetch_until(storage, trust, moment, tmp_path / "early")
        assert max(f.max_txid for f in stamps) == 1
        storage.go.set()
        engine.await_sealed(moment, timeout=20)
    finally:
        storage.go.set()
        assert sealer.stop(20)
    assert engine.window()["level0_txid"] == 4
    stamps, _ = fetch_until(storage, trust, moment, tmp_path / "waited")
    assert max(f.max_txid for f in stamps) == 3 and max(stamps.values()) == t2


def test_a_killed_restores_temporary_replica_is_swept(tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = tmp_path / f".mc-pitr-restore-{gone.pid}-a1b2c3"
    (dead / "ltx" / "9").mkdir(parents=True)
    (dead / "ltx" / "9" / "0000000000000001-0000000000000001.ltx").write_bytes(b"every row")
    kept = [tmp_path / ".mc-pitr-restore-k4d9",  # not named by a process: not ours
            tmp_path / f".mc-pitr-restore-{os.getpid()}-x"]  # a live process's
    for folder in kept:
        folder.mkdir()
    (tmp_path / f".mc-pitr-restore-{gone.pid}-link").symlink_to(kept[0])
    stream = tmp_path / "stream"
    stream.mkdir()
    with pytest.raises(NothingToRestore):
        restore_sealed(FolderStorage(stream), StreamTrust(new_key()[0]), 5_000,
                       tmp_path / "restored.db", "litestream-is-not-run", {})
    assert not dead.exists()
    assert all(folder.is_dir() for folder in kept)
    assert (tmp_path / f".mc-pitr-restore-{gone.pid}-link").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".mc-pitr")) == \
        sorted([kept[0].name, kept[1].name, f".mc-pitr-restore-{gone.pid}-link"])


def copy_database(db, dest):
    """A whole copy of `db` (its WAL included), as one plain file (SQLite's online backup)."""
    source, target = sqlite3.connect(db), sqlite3.connect(dest)
    source.backup(target)
    target.execute("PRAGMA journal_mode=DELETE")
    source.close()
    target.close()


def agents(db):
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT name FROM agents ORDER BY name")]
    finally:
        conn.close()


def add_agent(db, name):
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO agents (name, status, created_at, updated_at) "
                 "VALUES (?, 'online', 1, 1)", (name,))
    conn.commit()
    conn.close()


@pytest.mark.slow
@pytest.mark.skipif(BINARY is None, reason="Litestream is not installed")
def test_the_service_restores_around_a_planted_file_and_refuses_a_foreign_stream(
        make_mc, seaweed, tmp_path, caplog):
    mc = make_mc()
    identity, recipient = new_key()
    bucket = seaweed.bucket(lock=False)
    mc.settings.update({"pitr.enabled": True, "pitr.replica_url": f"s3://{bucket}/pitr",
                        "pitr.s3_endpoint": seaweed.url, "pitr.s3_region": "us-east-1",
                        "pitr.s3_access_key_id": SERVICE[0],
                        "pitr.s3_secret_access_key": SERVICE[1],
                        "pitr.age_recipients": recipient, "offsite.age_identity": identity},
                       "test")
    logged_in_client(mc).get("/api/backup/pitr")
    engine = mc.services["pitr"]["engine"]
    source = tmp_path / "source.db"
    copy_database(mc.config.db_path, source)
    add_agent(source, "agent-0")

    def then_agent_1():
        time.sleep(0.5)
        add_agent(source, "agent-1")
    replicate(BINARY, source, tmp_path / "replica", then_agent_1)
    storage = engine.storage()
    seal_replica(tmp_path / "replica", storage, recipient,
                 mc.offsite.signer.private_key(), tmp_path)
    # Planted: a newer snapshot encrypted to the public recipient, holding an attacker's rows.
    forged = tmp_path / "forged.db"
    copy_database(source, forged)
    add_agent(forged, "attacker")
    newest = max(f.max_txid for f in sealed_files(storage))
    planted = LtxFile(9, 1, newest + 5)
    ltx = tmp_path / "planted.ltx"
    ltx.write_bytes(struct.pack(">4sIIIQQq", b"LTX1", 2, 4096, 4, 1, newest + 5,
                                int(time.time() * 1000)) + forged.read_bytes())
    with open(tmp_path / "planted.age", "wb") as sink:
        encode(ltx, sink, Codec("none", 3, (recipient,)))
    storage.put(planted.key, tmp_path / "planted.age")

    dest = tmp_path / "restored.db"
    with caplog.at_level(logging.WARNING):
        done = engine.restore_to(int(time.time() * 1000) + 1000, dest)
    assert agents(dest) == ["agent-0", "agent-1"] and done["restored_to"] <= time.time() * 1000
    assert [s["key"] for s in done["skipped"]] == [planted.key]
    assert "not a signed file" in done["skipped"][0]["reason"]
    assert f"skipped {planted.key}" in caplog.text and "not a signed file" in caplog.text
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".mc-pitr-restore-")]

    # A stream signed by another service's key: nothing of it is trusted.
    storage.delete(planted.key)
    for key in [o.key for o in storage.list()]:
        storage.delete(key)
    (tmp_path / "other").mkdir()
    seal_replica(tmp_path / "replica", storage, recipient,
                 new_signer(tmp_path / "other")[0].private_key(), tmp_path)
    with pytest.raises(NothingToRestore, match="does not verify"):
        engine.restore_to(int(time.time() * 1000) + 1000, tmp_path / "foreign.db")
    assert not (tmp_path / "foreign.db").exists()
