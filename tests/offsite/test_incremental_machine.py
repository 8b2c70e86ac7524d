"""Incremental copies under random sequences (issue 24): backups with random page changes, sends,
prunes with a random keep, and someone deleting a random object at the target. After every step
every copy whose objects are all still there rebuilds byte-identical to its backup; a prune
never deletes what the newest ``keep`` restorable copies need; a kept copy whose chain lost an
object is reported."""
import hashlib
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, invariant, precondition, rule,
                                 run_state_machine_as_test)

from mission_control import (REMOTE_PATTERN, Codec, FolderStorage, OffsitePolicy, StorageTarget,
                             send_offsite)
from mission_control.backup.names import BackupInfo
from mission_control.offsite.keeping import retain
from mission_control.offsite.reassembly import rebuild
from tests.support.scheduling import FakeClock

pytest.importorskip("zstandard")
pytestmark = pytest.mark.slow

TARGET = "hyp"
#: 1,000 random sequences (issue 24) of up to STEPS steps each. The time goes to fsync: on a RAM
#: folder (/dev/shm) they take about a minute, on a disk several times that, so where there is
#: no RAM folder fewer sequences run (said in the output).
EXAMPLES = 1000
EXAMPLES_ON_DISK = 220
STEPS = 12
ROWS = 300
RAM = Path("/dev/shm")


@pytest.fixture
def tmp_path(tmp_path):
    """A folder in RAM for the service's data and the targets when the machine has one."""
    if not (RAM.is_dir() and os.access(RAM, os.W_OK) and shutil.disk_usage(RAM).free > 2 << 30):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="mc-chains-", dir=RAM))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def backup_name(ts):
    return time.strftime("mc-backup-%Y-%m-%d_%H-%M-%S.db", time.gmtime(ts))


class Chains(RuleBasedStateMachine):
    """One example: a fresh folder target (its own location) over the shared service."""

    mc = clock = root = None
    examples = prunes = deltas = broken = deleted = 0

    def __init__(self):
        super().__init__()
        cls = type(self)
        cls.examples += 1
        self.folder = cls.root / f"target-{cls.examples}"
        self.folder.mkdir()
        self.live = sqlite3.connect(cls.root / f"live-{cls.examples}.db")
        self.live.execute("PRAGMA page_size = 1024")
        self.live.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
        self.live.executemany("INSERT INTO t VALUES (?, ?)",
                              ((i, os.urandom(100)) for i in range(ROWS)))
        self.live.commit()
        self.keep, self.full_every = 3, 3
        self.pending = None  # (BackupInfo, SHA-256) of the newest backup not sent yet
        self.expected = {}  # copy (remote name) -> SHA-256 of its backup
        self.read = {}  # copy -> the objects its last good rebuild read
        self.tampered = False

    def teardown(self):
        self.live.close()

    # -- the service's side ----------------------------------------------------------------
    def target(self, keep=None):
        return StorageTarget(TARGET, lambda: FolderStorage(self.folder), Codec("zstd"),
                             OffsitePolicy(keep=keep or self.keep, incremental=True,
                                           full_every=self.full_every),
                             location=str(self.folder))

    def keys(self):
        return {entry for entry in os.listdir(self.folder)}

    def restorable(self):
        """The copies present whose last rebuild's objects are all still there, newest first."""
        keys = self.keys()
        return sorted((name for name, objects in self.read.items()
                       if name in keys and set(objects) <= keys), reverse=True)

    def check_retention(self, before, keep, result):
        """The newest `keep` copies restorable before are still restorable after; a kept copy
        whose chain lost an object is reported."""
        self.every_intact_copy_rebuilds()
        after = set(self.restorable())
        needed = before[:keep]
        assert set(needed) <= after, (needed, sorted(after), result)
        broken = {item["name"] for item in result["broken"]}
        type(self).broken += bool(broken)
        keys = self.keys()
        for name in self.present_copies(keys)[:keep]:
            if name not in after and self.own_objects_there(name, keys):
                assert name in broken or name in result["missing"], (name, result)

    def own_objects_there(self, name, keys):
        record = self.mc.offsite.copy_record(TARGET, name)
        return name in keys and set(record["objects"]) <= keys

    def present_copies(self, keys):
        return sorted((k for k in keys if REMOTE_PATTERN.match(k) and k in self.expected
                       and self.own_objects_there(k, keys)), reverse=True)

    # -- rules --------------------------------------------------------------------------------
    @rule(rows=st.lists(st.integers(0, ROWS - 1), max_size=12), grow=st.booleans())
    def backup(self, rows, grow):
        for row in rows:
            self.live.execute("UPDATE t SET body = ? WHERE id = ?", (os.urandom(100), row))
        if grow:
            self.live.execute("INSERT INTO t (body) VALUES (?)", (os.urandom(900),))
        self.live.commit()
        self.clock.advance(61)
        path = self.mc.backups.dir / backup_name(self.clock.now)
        with sqlite3.connect(path) as out:
            self.live.backup(out)
        out.close()
        if self.pending:
            os.unlink(self.pending[0].path)  # never sent: a skipped backup
        info = BackupInfo(path.name, path.stat().st_size, int(self.clock.now), path.parent)
        self.pending = (info, hashlib.sha256(path.read_bytes()).hexdigest())

    @rule(full_every=st.integers(1, 5), rows=st.lists(st.integers(0, ROWS - 1), max_size=12))
    def send(self, full_every, rows):
        """Send the newest backup (a new one when there is none waiting)."""
        if self.pending is None:
            self.backup(rows, False)
        self.full_every = full_every
        before = self.restorable()
        info, sha256 = self.pending
        send_offsite(self.mc, self.target(), info, "test")
        os.unlink(info.path)
        self.pending = None
        result = self.mc.offsite.get(TARGET)
        assert result["ok"] is True, result["message"]
        self.expected[result["detail"]["remote_name"]] = sha256
        type(self).deltas += result["detail"]["kind"] == "delta"
        self.check_retention(before, self.keep - 1, result["detail"])

    @rule(keep=st.integers(1, 6))
    def prune(self, keep):
        type(self).prunes += 1
        self.keep = keep
        before = self.restorable()
        kept = retain(self.mc, self.target(keep), None)
        self.check_retention(before, keep, kept.to_json())

    @precondition(lambda self: self.expected)
    @rule(data=st.data())
    def someone_deletes(self, data):
        keys = sorted(self.keys() - {"catalog"})
        if keys:
            os.unlink(self.folder / data.draw(st.sampled_from(keys)))
            self.tampered = True
            type(self).deleted += 1

    @invariant()
    def every_intact_copy_rebuilds(self):
        keys = self.keys()
        for name in self.expected:
            if name not in keys or (name in self.read and set(self.read[name]) <= keys):
                continue
            out = self.root / "rebuilt.db"
            try:
                rebuilt = rebuild(str(self.folder), name[:name.index(".db") + 3], str(out))
            except (FileNotFoundError, ValueError):
                # Only ever because someone deleted an object of its chain.
                assert self.tampered, name
                self.read.pop(name, None)
                continue
            assert rebuilt.sha256 == self.expected[name], name
            self.read[name] = rebuilt.objects
            out.unlink()


def test_random_backups_sends_prunes_and_deletions_keep_every_kept_copy_restorable(
        make_mc, tmp_path):
    clock = FakeClock(1_796_000_000.0)
    Chains.mc, Chains.clock, Chains.root = make_mc(clock=clock), clock, tmp_path
    Chains.examples = Chains.prunes = Chains.deltas = Chains.broken = Chains.deleted = 0
    examples = EXAMPLES if tmp_path.is_relative_to(RAM) else EXAMPLES_ON_DISK
    run_state_machine_as_test(Chains, settings=settings(
        max_examples=examples, stateful_step_count=STEPS, deadline=None, derandomize=True,
        suppress_health_check=list(HealthCheck)))
    # Enough of everything happened: prunes, delta copies, deletions, chains found broken.
    counts = {k: getattr(Chains, k) for k in ("prunes", "deltas", "deleted", "broken")}
    assert Chains.examples >= examples
    assert Chains.prunes >= 1000 and Chains.deltas >= 300 and Chains.deleted >= 100 \
        and Chains.broken >= 10, counts
    print(examples, "sequences", counts)
