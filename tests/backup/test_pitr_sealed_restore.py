"""The in-service restore of a sealed stream and what it leaves: it waits (bounded) for the sealer
to upload the moment's last files, and a killed restore's temporary replica folders are swept."""
import os
import struct
import subprocess
import threading
import time

import pytest

from mission_control import MissionControlError, NothingToRestore, StreamTrust, restore_sealed
from mission_control.builtins.pitr.supervisor import write_state
from mission_control.offsite.storage import FolderStorage
from tests.support.accounts import logged_in_client
from tests.support.offsite import new_key

S3_REPLICA = {"pitr.enabled": True, "pitr.replica_url": "s3://bucket/pitr"}


def write_ltx(staging, level, min_txid, max_txid, stamp):
    """An LTX file as Litestream leaves it in the staging folder (its header, then pages)."""
    path = staging / "ltx" / str(level) / f"{min_txid:016x}-{max_txid:016x}.ltx"
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">4sIIIQQq", b"LTX1", 2, 4096, 4, min_txid, max_txid, stamp)
    path.write_bytes(header + b"\x00" * 60 + b"page data " * 50)


def test_a_restore_waits_for_the_sealer_to_upload_the_moments_files(make_mc):
    mc = make_mc()
    mc.settings.update({**S3_REPLICA, "pitr.age_recipients": new_key()[1]}, "test")
    logged_in_client(mc).get("/api/backup/pitr")
    engine = mc.services["pitr"]["engine"]
    files = engine.files
    record = {"earliest": 1, "latest": 1_501, "replica": "s3://bucket/pitr", "error": None}
    write_state(files, sealed_stream={**record, "replica_txid": 4})
    write_ltx(files.staging, 0, 5, 5, 1_000)  # written before the moment, not uploaded yet
    write_ltx(files.staging, 0, 6, 6, 3_000)  # after it: not waited for
    # The sealer (in whichever process owns it) records the upload a moment later.
    later = threading.Timer(0.5, write_state, (files,),
                            {"sealed_stream": {**record, "replica_txid": 5}})
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
