"""The sealer against a real S3 (SeaweedFS) and a real folder: locks, held and kept deletions, the
level-0 files a snapshot must not hold up, a bounded final sweep, leftovers, and what status and
health say of it (a dead sealer, plaintext objects, an identity that cannot restore)."""
import logging
import os
import shutil
import subprocess
import sys
import time

import pytest

from mission_control import (FileLock, FolderStorage, ObjectHeld, S3Storage, Sealing,
                             bucket_lock)
from mission_control.builtins.pitr import _engine, litestream
from mission_control.builtins.pitr.sealer import DAY, Protection, Sealer
from mission_control.builtins.pitr.supervisor import Supervisor, read_state, write_state
from tests.support.accounts import logged_in_client
from tests.support.ltx_files import version_counts, write_ltx
from tests.support.offsite import new_key
from tests.support.offsite_catalog import new_signer
from tests.support.seaweed import SERVICE

LEVEL0 = "ltx/0/0000000000000001-0000000000000001.ltx.age"
SNAPSHOT = "ltx/9/0000000000000001-0000000000000001.ltx.age"


class Clock:
    """Unix seconds that move only when told (starting at the real time: locks are real)."""

    def __init__(self):
        self.now = time.time()

    def __call__(self):
        return self.now


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def folder(tmp_path):
    (tmp_path / "replica").mkdir()
    return FolderStorage(tmp_path / "replica")


def sealer_for(storage, staging, report=lambda _: None, **kw):
    signer = new_signer(staging.parent)[0]
    return Sealer(staging, storage, Sealing((new_key()[1],), signer), report, **kw)


@pytest.mark.slow
def test_uploads_are_locked_and_a_locked_deletion_is_held_until_its_date(seaweed, tmp_path):
    bucket = seaweed.bucket(lock=True)
    storage = S3Storage(seaweed.client(SERVICE), bucket, "pitr")
    clock = Clock()
    sealer = sealer_for(storage, tmp_path / "staging", clock=clock,
                        protection=Protection("GOVERNANCE", 1))
    first = write_ltx(tmp_path / "staging", 0, 1, 1, 1_000)
    write_ltx(tmp_path / "staging", 9, 1, 1, 1_500)
    assert sealer.sweep()
    for item in storage.list():
        found = storage.head(item.key)
        assert found.lock_mode == "GOVERNANCE"
        assert abs(found.retain_until - (clock.now + DAY)) < 2
    first.unlink()  # compacted away by Litestream: its deletion is refused by the lock
    sealer.sweep()
    state = sealer.state()
    assert state["held"] == 1 and abs(state["held_until"] / 1000 - (clock.now + DAY)) < 2
    assert state["error"] is None
    sealer.sweep()  # not tried again before its date: not even a delete marker
    assert LEVEL0 in [o.key for o in storage.list()]
    assert version_counts(seaweed, bucket)[f"pitr/{LEVEL0}"] == 1
    clock.now += DAY + 60  # past its lock: deleted (a delete marker over the kept version)
    sealer.sweep()
    assert LEVEL0 not in [o.key for o in storage.list()]
    assert sealer.state()["held"] == 0


@pytest.mark.slow
def test_with_no_delete_nothing_is_deleted_and_status_counts_it(seaweed, tmp_path):
    bucket = seaweed.bucket(lock=False)
    storage = S3Storage(seaweed.client(SERVICE), bucket, "pitr")
    sealer = sealer_for(storage, tmp_path / "staging", protection=Protection(no_delete=True))
    first = write_ltx(tmp_path / "staging", 0, 1, 1, 1_000)
    write_ltx(tmp_path / "staging", 9, 1, 1, 1_500)
    sealer.sweep()
    first.unlink()
    sealer.sweep()
    assert [o.key for o in storage.list()] == [LEVEL0, SNAPSHOT]
    assert version_counts(seaweed, bucket) == {f"pitr/{LEVEL0}": 1, f"pitr/{SNAPSHOT}": 1}
    state = sealer.state()
    assert (state["kept_remote"], state["no_delete"], state["held"]) == (1, True, 0)


@pytest.mark.slow
def test_a_big_snapshot_does_not_hold_up_level_0(seaweed, tmp_path):
    storage = S3Storage(seaweed.client(SERVICE), seaweed.bucket(lock=False), "pitr")
    staging = tmp_path / "staging"
    snapshot = write_ltx(staging, 9, 1, 1, 1_000)
    with open(snapshot, "ab") as f:
        f.write(os.urandom(48 * 1024 * 1024))
    sealer = sealer_for(storage, staging)
    sealer.start()
    try:
        # Once the snapshot is being sealed, Litestream writes the next level-0 file.
        assert wait_for(lambda: any(p.name.startswith(".seal-") for p in staging.iterdir()))
        write_ltx(staging, 0, 2, 2, 2_000)
        assert wait_for(lambda: "ltx/0/0000000000000002-0000000000000002.ltx.age"
                        in [o.key for o in storage.list()])
        assert "ltx/9/0000000000000001-0000000000000001.ltx.age" not in \
            [o.key for o in storage.list()]  # the snapshot is still on its way
    finally:
        assert sealer.stop(60)
    assert len(storage.list()) == 2


@pytest.mark.slow
def test_the_final_sweep_fits_its_budget_and_says_what_is_left(seaweed, tmp_path):
    storage = S3Storage(seaweed.client(SERVICE), seaweed.bucket(lock=False), "pitr")
    staging = tmp_path / "staging"
    for n in range(1, 301):
        write_ltx(staging, 1, n, n, n)
    reports = []
    sealer = sealer_for(storage, staging, report=reports.append)
    sealer.start()
    began = time.monotonic()
    assert sealer.stop(1.0)  # the threads ended within the budget
    assert time.monotonic() - began < 3
    left = sealer.state()["unsealed"]
    assert left > 0 and len(storage.list()) + left == 300
    assert reports[-1]["unsealed"] == left  # recorded for the status
    again = sealer_for(storage, staging)
    again.sweep()  # the next start seals them
    assert len(storage.list()) == 300 and again.state()["unsealed"] == 0


def test_a_failing_report_reaches_the_state_and_the_sealer_goes_on(tmp_path):
    storage = folder(tmp_path)
    staging = tmp_path / "staging"
    failures = [OSError(28, "No space left on device")]

    def report(found):
        if failures:
            raise failures.pop()

    sealer = sealer_for(storage, staging, report=report)
    write_ltx(staging, 0, 1, 1, 1_000)
    sealer.start()
    try:
        assert wait_for(lambda: len(storage.list()) == 1)
        write_ltx(staging, 0, 2, 2, 2_000)  # still sealed: the thread did not die
        assert wait_for(lambda: len(storage.list()) == 2)
        assert sealer.alive()
        assert wait_for(lambda: sealer.state()["error"] is None)  # reported again since
    finally:
        sealer.stop()


def sealed_settings(recipient):
    return {"pitr.enabled": True, "pitr.replica_url": "s3://bucket/pitr",
            "pitr.age_recipients": recipient}


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_sealer_stops_the_child_and_fails_health(make_mc, tmp_path):
    mc = make_mc()
    mc.settings.update(sealed_settings(new_key()[1]), "test")
    engine = _engine(mc)
    supervisor = Supervisor(mc, engine)

    def report(found):
        raise SystemExit("the thread is gone")  # nothing a sealer catches

    sealer = sealer_for(folder(tmp_path), tmp_path / "staging", report)
    sealer.start()
    assert wait_for(lambda: not sealer.alive())
    # A stand-in child that `is_ours` takes for Litestream on our config.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                              "replicate", str(engine.files.config)])
    try:
        assert wait_for(lambda: litestream.is_ours(child.pid, engine.files))
        began = time.monotonic()
        supervisor._watch(child, FileLock(engine.files.pause), 0.1, sealer)
        assert time.monotonic() - began < 10 and child.poll() is not None
    finally:
        child.kill()
        child.wait()
        sealer.stop(1)
    assert "the thread is gone" in read_state(engine.files)["sealer_error"]
    client = logged_in_client(mc)
    state = client.get("/api/backup/pitr").json
    assert state["seal_error"].startswith("its sealer stopped (its ")
    status = client.get("/api/backup/status").json
    assert status["verdict"] == "fail"
    assert any("sealer stopped" in r for r in status["reasons"])


def test_a_killed_runs_temporary_files_are_swept(tmp_path):
    staging = tmp_path / "staging"
    write_ltx(staging, 0, 1, 1, 1_000)
    leftover = staging / ".seal-4242-0123456789ab.tmp"
    leftover.write_bytes(b"half a sealed file")
    other = staging / "notes.tmp"
    other.write_bytes(b"not ours")
    sealer_for(folder(tmp_path), staging).sweep()
    assert not leftover.exists() and other.exists()


def test_only_the_elected_supervisor_drops_the_staging_folder(make_mc):
    mc = make_mc()
    mc.settings.update(sealed_settings(new_key()[1]), "test")
    engine = _engine(mc)
    engine.write_config()
    staging = engine.files.staging
    write_ltx(staging, 0, 1, 1, 1_000)  # rows in clear
    # Sealing turned off: the owner's sealer may still be sealing from the folder.
    mc.settings.update({"pitr.replica_url": "file:///srv/replica"}, "test")
    engine.write_config()
    assert staging.exists()  # writing a config (any process, any time) never drops it
    mc.settings.update({"pitr.enabled": False}, "test")
    supervisor = Supervisor(mc, engine)
    try:
        with FileLock(engine.files.election).hold(0) as elected:
            assert elected  # another process owns the stream (its sealer, its child)
            supervisor.start()
            time.sleep(2.5)  # two idle rounds
            assert staging.exists()
        # Elected, with no sealer or child of its own running: its idle round drops it.
        assert wait_for(lambda: not staging.exists(), timeout=10)
    finally:
        assert supervisor.stop()


@pytest.mark.slow
def test_status_warns_of_plaintext_objects_and_an_identity_that_cannot_restore(
        make_mc, seaweed, tmp_path):
    bucket = seaweed.bucket(lock=False)
    identity, recipient = new_key()
    mc = make_mc()
    mc.settings.update({**sealed_settings(recipient), "pitr.replica_url": f"s3://{bucket}/pitr",
                        "pitr.s3_endpoint": seaweed.url, "pitr.s3_region": "us-east-1",
                        "pitr.s3_access_key_id": SERVICE[0],
                        "pitr.s3_secret_access_key": SERVICE[1]}, "test")
    engine = _engine(mc)
    storage = engine.storage()
    plain = "ltx/0/0000000000000001-0000000000000001.ltx"
    storage.put_bytes(plain, b"LTX1 an unsealed setup's file")
    sealer = engine.sealer(lambda found: write_state(engine.files, sealed_stream=found))
    sealer.sweep()
    sealer.report(sealer.state())
    client = logged_in_client(mc)
    state = client.get("/api/backup/pitr").json
    assert state["sealing"]["plaintext_objects"] == 1
    assert "1 plaintext .ltx object(s)" in state["seal_warning"]
    assert plain in [o.key for o in storage.list()]  # reported, never deleted
    assert "could not restore" not in state["seal_warning"]  # no identity held: nothing said
    status = client.get("/api/backup/status").json
    assert status["pitr"]["warning"] == state["seal_warning"]
    assert state["seal_warning"] in status["reasons"]
    # An identity for another key: this host could not restore the stream.
    mc.settings.update({"offsite.age_identity": new_key()[0]}, "test")
    warning = client.get("/api/backup/pitr").json["seal_warning"]
    assert "offsite.age_identity matches none of the stream's recipients" in warning
    mc.settings.update({"offsite.age_identity": identity}, "test")
    assert "could not restore" not in client.get("/api/backup/pitr").json["seal_warning"]


@pytest.mark.slow
@pytest.mark.parametrize("locking", [True, False])
def test_the_engine_locks_the_stream_like_offsite_copies(make_mc, seaweed, locking):
    bucket = seaweed.bucket(lock=locking)
    mc = make_mc()
    mc.settings.update({**sealed_settings(new_key()[1]), "pitr.replica_url": f"s3://{bucket}/p",
                        "pitr.s3_endpoint": seaweed.url, "pitr.s3_region": "us-east-1",
                        "pitr.s3_access_key_id": SERVICE[0],
                        "pitr.s3_secret_access_key": SERVICE[1],
                        "offsite.s3.lock_mode": "COMPLIANCE", "offsite.s3.lock_days": 3,
                        "offsite.s3.no_delete": True}, "test")
    engine = _engine(mc)
    records = []
    sealer = engine.sealer(records.append)
    assert sealer.protection == Protection("COMPLIANCE" if locking else "", 3, True)
    sealer.report(sealer.state())
    refused = records[-1]["lock_refused"]
    assert refused is None if locking else "has no Object Lock" in refused


@pytest.mark.parametrize("wipe", ["folder", "files"])
def test_a_missing_or_empty_staging_listing_mirrors_no_deletion(tmp_path, wipe, caplog):
    storage = folder(tmp_path)
    staging = tmp_path / "staging"
    write_ltx(staging, 0, 1, 1, 1_000)
    write_ltx(staging, 9, 1, 1, 1_500)
    sealer = sealer_for(storage, staging)
    assert sealer.sweep()
    keys = sorted(o.key for o in storage.list())
    assert len(keys) == 2
    # Staging wiped (or a disk glitch): the remote stream is not taken for compacted away.
    if wipe == "folder":
        shutil.rmtree(staging / "ltx")
    else:
        for path in staging.glob("ltx/*/*.ltx"):
            path.unlink()
    with caplog.at_level(logging.WARNING):
        sealer.sweep()
        sealer.sweep()
    assert sorted(o.key for o in storage.list()) == keys
    assert "mirrors no deletion" in caplog.text
    assert caplog.text.count("mirrors no deletion") == 1  # said once, not every poll
    assert sealer.state()["replica_txid"] == 1  # still known as sealed
    # Litestream writes again: a real compaction is mirrored once more.
    write_ltx(staging, 9, 1, 2, 2_000)
    sealer.sweep()
    assert sorted(o.key for o in storage.list()) == \
        ["ltx/9/0000000000000001-0000000000000002.ltx.age"]


def test_the_final_sweep_uploads_and_mirrors_no_deletion(tmp_path):
    storage = folder(tmp_path)
    staging = tmp_path / "staging"
    first = write_ltx(staging, 0, 1, 1, 1_000)
    write_ltx(staging, 9, 1, 1, 1_500)
    sealer = sealer_for(storage, staging)
    sealer.sweep()
    assert sealer.stop(30)  # no thread running: the cutoff is set, the final sweep comes next
    first.unlink()  # compacted away as the stream stops
    write_ltx(staging, 0, 2, 2, 2_000)
    sealer.sweep()
    keys = [o.key for o in storage.list()]
    assert "ltx/0/0000000000000002-0000000000000002.ltx.age" in keys  # uploads still go
    assert LEVEL0 in keys  # no deletion once the stream is stopping


@pytest.mark.slow
def test_the_stream_asks_the_bucket_lock_as_the_settings_do(make_mc, seaweed, caplog):
    client = seaweed.client(SERVICE)
    assert bucket_lock(S3Storage(client, seaweed.bucket(lock=True), "p")) == (True, None)
    assert bucket_lock(S3Storage(client, seaweed.bucket(lock=False), "p")) == (False, None)
    enabled, why = bucket_lock(S3Storage(client, "no-such-bucket-here", "p"))
    assert enabled is None and "NoSuchBucket" in why
    mc = make_mc()
    mc.settings.update({**sealed_settings(new_key()[1]),
                        "pitr.replica_url": "s3://no-such-bucket-here/p",
                        "pitr.s3_endpoint": seaweed.url, "pitr.s3_region": "us-east-1",
                        "pitr.s3_access_key_id": SERVICE[0],
                        "pitr.s3_secret_access_key": SERVICE[1],
                        "offsite.s3.lock_mode": "GOVERNANCE"}, "test")
    records = []
    with caplog.at_level(logging.WARNING):
        sealer = _engine(mc).sealer(records.append)
    sealer.report(sealer.state())
    assert sealer.protection.lock_mode == ""
    assert "cannot be told (see the log)" in records[-1]["lock_refused"]
    assert "no-such-bucket-here" not in records[-1]["lock_refused"]  # health shows it
    assert why in caplog.text  # the same reason as the settings give


class Refusing(FolderStorage):
    """A folder whose objects are locked until a date per key (as a bucket's lock refuses)."""

    def __init__(self, root, until):
        super().__init__(root)
        self.until = until  # key -> unix s

    def delete(self, key):
        if key in self.until:
            raise ObjectHeld(key, self.until[key])
        super().delete(key)


def test_held_deletions_come_due_by_date_earliest_first(tmp_path):
    (tmp_path / "replica").mkdir()
    clock = Clock()
    storage = Refusing(tmp_path / "replica", {})
    staging = tmp_path / "staging"
    write_ltx(staging, 9, 1, 1, 1_000)
    files = [write_ltx(staging, 0, n, n, 1_000 + n) for n in range(2, 102)]
    sealer = sealer_for(storage, staging, clock=clock)
    sealer.sweep()
    write_ltx(staging, 9, 1, 101, 2_000)  # their compaction, sealed before they go
    sealer.sweep()
    # Each level-0 file locked one more minute than the last, in reverse order of names.
    for n, path in enumerate(files):
        storage.until[f"ltx/0/{path.name}.age"] = clock.now + 60 * (len(files) - n)
        path.unlink()
    sealer.sweep()
    state = sealer.state()
    assert state["held"] == 100 and state["held_until"] == int((clock.now + 60) * 1000)
    storage.until.clear()  # the locks run out; each is tried again only once its date comes
    clock.now += 60 * 10 + 1
    sealer.sweep()
    state = sealer.state()
    assert state["held"] == 90
    assert state["held_until"] == int((clock.now - 10 * 60 - 1 + 11 * 60) * 1000)
    remaining = {o.key for o in storage.list()}
    assert f"ltx/0/{files[-1].name}.age" not in remaining  # the earliest date went first
    assert f"ltx/0/{files[0].name}.age" in remaining
    clock.now += 100 * 60
    sealer.sweep()
    assert sealer.state()["held"] == 0 and len(storage.list()) == 2


@pytest.mark.slow
def test_at_start_an_object_not_as_sealed_is_sealed_again(seaweed, tmp_path, caplog):
    bucket = seaweed.bucket(lock=False, versioned=True)
    storage = S3Storage(seaweed.client(SERVICE), bucket, "pitr")
    staging = tmp_path / "staging"
    write_ltx(staging, 0, 1, 1, 1_000)
    write_ltx(staging, 9, 1, 1, 1_500)
    sealer_for(storage, staging).sweep()
    sizes = {o.key: o.size for o in storage.list()}
    # While the service was down: one object truncated (a damaged or replaced upload).
    storage.put_bytes(LEVEL0, b"age-encryption.org/v1\n-> cut short")
    records = []
    again = sealer_for(storage, staging, report=records.append)
    with caplog.at_level(logging.WARNING):
        again.sweep()
    now = {o.key: o.size for o in storage.list()}
    assert now[SNAPSHOT] == sizes[SNAPSHOT] and now[LEVEL0] > 100  # a whole sealed file
    assert again.uploads == 1  # that one only: the snapshot is as it was sealed
    with storage.open(LEVEL0) as f:
        assert f.read(len(b"age-encryption.org/v1")) == b"age-encryption.org/v1"
    assert "sealing it again" in caplog.text and LEVEL0 in caplog.text
    assert (again.state()["resealed"], again.state()["mismatched"]) == (1, 0)
    third = sealer_for(storage, staging)
    third.sweep()  # as sealed now: nothing again
    assert third.uploads == 0


def test_an_object_not_as_sealed_that_cannot_be_replaced_is_reported(tmp_path):
    storage = folder(tmp_path)
    staging = tmp_path / "staging"
    write_ltx(staging, 0, 1, 1, 1_000)
    write_ltx(staging, 9, 1, 1, 1_500)
    sealer_for(storage, staging).sweep()
    (tmp_path / "replica" / LEVEL0).write_bytes(b"cut short")
    again = sealer_for(storage, staging)
    again.sweep()
    assert (again.state()["resealed"], again.state()["mismatched"]) == (0, 1)
    assert again.state()["error"] is None  # reported, not failed in a loop
    assert (tmp_path / "replica" / LEVEL0).read_bytes() == b"cut short"  # never replaced


def test_the_ledger_of_sealed_sizes_does_not_grow_without_bound(tmp_path):
    storage = folder(tmp_path)
    staging = tmp_path / "staging"
    write_ltx(staging, 9, 1, 1, 1_000)
    sealer = sealer_for(storage, staging)
    for n in range(2, 302):  # Litestream writes a file each second and compacts them away
        path = write_ltx(staging, 0, n, n, 1_000 + n)
        sealer.sweep()
        write_ltx(staging, 1, 2, n, 1_000 + n)
        if n > 2:
            (staging / "ltx" / "1" / f"{2:016x}-{n - 1:016x}.ltx").unlink()
        path.unlink()
    sealer.sweep()
    lines = (staging / ".sealed-sizes").read_text().splitlines()
    assert len(storage.list()) == 2 and len(lines) < 100
    assert any(line.startswith(f"{SNAPSHOT} ") for line in lines)


def test_status_warns_of_objects_not_as_sealed(make_mc):
    mc = make_mc()
    mc.settings.update(sealed_settings(new_key()[1]), "test")
    engine = _engine(mc)
    record = {"earliest": 1, "latest": 2, "replica": "s3://bucket/pitr", "error": None,
              "replica_txid": 1, "resealed": 2, "mismatched": 1}
    write_state(engine.files, sealed_stream=record)
    state = logged_in_client(mc).get("/api/backup/pitr").json
    assert (state["sealing"]["resealed"], state["sealing"]["mismatched"]) == (2, 1)
    assert "1 object(s) of the stream are not what was sealed" in state["seal_warning"]


@pytest.mark.parametrize("key", ["ltx/\u00b2/0000000000000001-0000000000000001.ltx.age",
                                 "ltx/\u00b2/0000000000000001-0000000000000001.ltx"])
def test_a_planted_object_with_a_non_ascii_digit_level_stops_nothing(tmp_path, key):
    storage = folder(tmp_path)
    storage.put_bytes(key, b"planted")  # "\u00b2".isdigit() is True, int("\u00b2") fails
    staging = tmp_path / "staging"
    write_ltx(staging, 0, 1, 1, 1_000)
    write_ltx(staging, 9, 1, 1, 1_500)
    sealer = sealer_for(storage, staging)
    assert sealer.sweep()
    assert {LEVEL0, SNAPSHOT} <= {o.key for o in storage.list()}
    state = sealer.state()
    assert state["replica_txid"] == 1 and state["plaintext_objects"] == 0


def test_an_object_not_as_sealed_stays_reported_over_restarts(tmp_path):
    storage = folder(tmp_path)
    staging = tmp_path / "staging"
    write_ltx(staging, 0, 1, 1, 1_000)
    write_ltx(staging, 9, 1, 1, 1_500)
    sealer_for(storage, staging).sweep()
    (tmp_path / "replica" / LEVEL0).write_bytes(b"cut short")
    for _ in range(3):  # each restart still knows what was sealed: never counted as sealed
        again = sealer_for(storage, staging)
        again.sweep()
        assert (again.state()["resealed"], again.state()["mismatched"]) == (0, 1)
    assert f"{LEVEL0} " in (staging / ".sealed-sizes").read_text()
    # Litestream compacts it away: deleted remotely, and no longer counted.
    (staging / "ltx" / "0" / "0000000000000001-0000000000000001.ltx").unlink()
    again.sweep()
    assert again.state()["mismatched"] == 0
    assert LEVEL0 not in [o.key for o in storage.list()]


def test_an_object_to_seal_again_compacted_first_is_deleted_and_forgotten(tmp_path):
    storage = folder(tmp_path)
    staging = tmp_path / "staging"
    first = write_ltx(staging, 0, 1, 1, 1_000)
    write_ltx(staging, 9, 1, 1, 1_500)
    sealer_for(storage, staging).sweep()
    (tmp_path / "replica" / LEVEL0).write_bytes(b"cut short")
    again = sealer_for(storage, staging)
    assert again._prepare(again.local())  # found not as sealed: to seal again ...
    assert again._resealing
    first.unlink()  # ... but Litestream compacted it away first
    write_ltx(staging, 9, 1, 2, 2_000)
    again.sweep()
    again.sweep()
    assert not again._resealing and again.state()["mismatched"] == 0
    assert LEVEL0 not in [o.key for o in storage.list()]


def test_a_failing_ledger_write_stops_no_sealing_and_is_reported(tmp_path):
    storage = folder(tmp_path)
    staging = tmp_path / "staging"
    write_ltx(staging, 9, 1, 1, 1_000)
    sealer = sealer_for(storage, staging)
    sealer.sweep()
    ledger = staging / ".sealed-sizes"
    ledger.unlink()
    ledger.mkdir()  # appending to it fails (as on a full disk)
    for n in (2, 3):
        write_ltx(staging, 0, n, n, 1_000 + n)
        sealer.sweep()
        sealer.sweep()  # not uploaded twice (a folder never replaces: that would fail)
    state = sealer.state()
    assert state["error"] is None and state["replica_txid"] == 3
    assert "sizes of the sealed files" in state["ledger_error"]
    assert len(storage.list()) == 3
    restarted = sealer_for(storage, staging)  # unreadable at start: nothing to check against
    restarted.sweep()
    assert restarted.state()["error"] is None and restarted.uploads == 0
    assert "sizes of the sealed files" in restarted.state()["ledger_error"]
    ledger.rmdir()  # writable again: the next file's record brings back what was missed
    write_ltx(staging, 0, 4, 4, 1_004)
    sealer.sweep()
    assert sealer.state()["ledger_error"] is None
    assert len(ledger.read_text().splitlines()) == 4


def test_status_warns_of_a_ledger_that_cannot_be_written(make_mc):
    mc = make_mc()
    mc.settings.update(sealed_settings(new_key()[1]), "test")
    engine = _engine(mc)
    record = {"earliest": 1, "latest": 2, "replica": "s3://bucket/pitr", "error": None,
              "replica_txid": 1, "ledger_error": "recording the sizes of the sealed files "
                                                 "failed: No space left on device"}
    write_state(engine.files, sealed_stream=record)
    state = logged_in_client(mc).get("/api/backup/pitr").json
    assert "No space left on device" in state["seal_warning"]
    assert state["sealing"]["ledger_error"] == record["ledger_error"]


@pytest.mark.parametrize("wipe", ["level-0", "all, then new files"])
def test_a_file_gone_with_no_compaction_covering_it_is_not_deleted(tmp_path, wipe, caplog):
    storage = folder(tmp_path)
    staging = tmp_path / "staging"
    write_ltx(staging, 9, 1, 1, 1_000)
    for n in range(2, 6):
        write_ltx(staging, 0, n, n, 1_000 + n)
    write_ltx(staging, 1, 2, 3, 1_003)  # compacted from 2-2 and 3-3
    sealer = sealer_for(storage, staging)
    sealer.sweep()
    keys = sorted(o.key for o in storage.list())
    assert len(keys) == 6
    if wipe == "level-0":
        shutil.rmtree(staging / "ltx" / "0")  # 2-2, 3-3 covered by level 1; 4-4, 5-5 not
        write_ltx(staging, 0, 6, 6, 1_006)
        kept = [k for k in keys if not k.startswith(("ltx/0/0000000000000002-",
                                                      "ltx/0/0000000000000003-"))]
        assert len(kept) == 4
    else:
        shutil.rmtree(staging / "ltx")  # wiped while running; Litestream writes on
        write_ltx(staging, 0, 6, 6, 1_006)
        write_ltx(staging, 1, 6, 6, 1_006)
        kept = keys
    with caplog.at_level(logging.WARNING):
        sealer.sweep()
        sealer.sweep()
    assert sorted(o.key for o in storage.list() if "0000000000000006" not in o.key) == kept
    assert "no compaction" in caplog.text and caplog.text.count("no compaction") == 1
    # A snapshot covering them comes: now Litestream's compaction, mirrored.
    write_ltx(staging, 9, 1, 6, 2_000)
    sealer.sweep()
    left = [o.key for o in storage.list()]
    assert "ltx/0/0000000000000004-0000000000000004.ltx.age" not in left
    assert ("ltx/9/0000000000000001-0000000000000001.ltx.age" in left) == (wipe == "level-0")
