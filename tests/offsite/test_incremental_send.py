"""Sending incremental copies to a folder (issue 24): full or delta by the rules, what the result
says, every copy of a chain rebuilt byte-identical, retention keeping the chains it needs."""
import hashlib
import os
import shutil

import pytest

from mission_control import MANIFEST_SUFFIX, send_offsite
from mission_control.backup.names import BackupInfo
from mission_control.errors import ValidationFailed
from mission_control.health import backup_status
from mission_control.offsite import chains
from mission_control.offsite.delta import manifest_name, pack_name
from mission_control.offsite.reassembly import rebuild
from plugins.offsite_dir import make_target
from tests.support.cli_run import run_cli
from tests.support.offsite import new_key
from tests.support.scheduling import FakeClock

pytest.importorskip("zstandard")


@pytest.fixture
def clock():
    return FakeClock(1_796_000_000.0)


@pytest.fixture
def nas(mc, tmp_path):
    folder = tmp_path / "nas"
    folder.mkdir()
    mc.settings.update({"offsite.dir.path": str(folder), "offsite.dir.retention_count": 30,
                        "offsite.dir.incremental": True, "offsite.dir.compress": "zstd",
                        "general.backup_retention_count": 100}, actor="test")
    with mc.db.transaction() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS test_rows (id INTEGER PRIMARY KEY, body BLOB)")
        conn.executemany("INSERT INTO test_rows VALUES (?, ?)",
                         ((i, os.urandom(300)) for i in range(2000)))
    return folder


def change(mc, seed, rows=3):
    """Change a few rows of the live database (a few pages), as a day of use does."""
    with mc.db.transaction() as conn:
        for n in range(rows):
            conn.execute("UPDATE test_rows SET body = ? WHERE id = ?",
                         (os.urandom(300), (seed * 7919 + n * 104729) % 2000))


def sha256_of(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def backup(mc, clock, seed=None):
    """A backup (after a change unless `seed` is None): `(name, SHA-256 of the local file, the
    last result's detail)`."""
    if seed is not None:
        change(mc, seed)
    info = mc.backups.create(actor="test")
    clock.advance(3600)
    result = mc.offsite.get("dir")
    assert result["ok"] is True, result["message"]
    return info.name, sha256_of(info.path), result["detail"]


def assert_rebuilds(folder, name, sha256, tmp_path, identity=""):
    out = tmp_path / "rebuilt.db"
    rebuilt = rebuild(str(folder), name, str(out), identity)
    assert rebuilt.sha256 == sha256 == sha256_of(out), name
    out.unlink()
    return rebuilt


def test_a_chain_of_30_copies_rebuilds_byte_identical(mc, clock, nas, tmp_path):
    identity, recipient = new_key()
    mc.settings.update({"offsite.dir.full_every": 29, "offsite.dir.age_recipients": recipient},
                       actor="test")
    made = [backup(mc, clock, seed) for seed in range(30)]
    kinds = [detail["kind"] for _, _, detail in made]
    assert kinds == ["full"] + ["delta"] * 29
    assert [detail["chain_length"] for _, _, detail in made] == list(range(30))
    assert made[0][2]["full_reason"] == "no earlier copy is recorded at this target and location"
    for (name, _, detail), (parent, _, _) in zip(made[1:], made):
        remote = manifest_name(name, True)
        assert detail["remote_name"] == remote
        assert detail["parent"] in (parent + ".zst.age", manifest_name(parent, True))
        assert detail["changed_pages"] >= 1
        pack = nas / pack_name(name, True)
        assert detail["uploaded_bytes"] == (nas / remote).stat().st_size + pack.stat().st_size
        assert (nas / (remote + MANIFEST_SUFFIX)).is_file()
        assert (nas / "catalog" / f"{remote}.json.age").is_file()
        record = mc.offsite.copy_record("dir", remote)
        assert record["kind"] == "delta" and record["uploaded"] == detail["uploaded_bytes"]
        assert set(mc.offsite.copy_objects("dir", remote)[0]) == {
            remote, pack.name, remote + MANIFEST_SUFFIX, f"catalog/{remote}.json.age"}
    for name, sha256, _ in made:
        assert_rebuilds(nas, name, sha256, tmp_path, identity)
    # Small: a delta of a few changed pages is a fraction of the full copy.
    assert max(d["uploaded_bytes"] for _, _, d in made[1:]) < made[0][2]["uploaded_bytes"] / 5
    # Only the last copy's page hashes are kept, beside the database.
    kept = os.listdir(mc.config.db_path.parent / chains.HASHES_FOLDER / "dir")
    assert kept == [f"{kept[0].split('-', 1)[0]}-{manifest_name(made[-1][0], True)}.hashes"]


def test_full_every_starts_a_new_chain(mc, clock, nas, tmp_path):
    mc.settings.update({"offsite.dir.full_every": 2}, actor="test")
    made = [backup(mc, clock, seed) for seed in range(7)]
    assert [d["kind"] for _, _, d in made] == ["full", "delta", "delta"] * 2 + ["full"]
    assert [d["chain_length"] for _, _, d in made] == [0, 1, 2, 0, 1, 2, 0]
    assert "offsite.dir.full_every is 2" in made[3][2]["full_reason"]
    for name, sha256, _ in made:
        assert_rebuilds(nas, name, sha256, tmp_path)


def test_off_by_default_and_turning_it_off_drops_the_hashes(mc, clock, nas):
    mc.settings.update({"offsite.dir.incremental": False}, actor="test")
    _, _, detail = backup(mc, clock, 1)
    assert detail["kind"] == "full" and "full_reason" not in detail
    hashes = mc.config.db_path.parent / chains.HASHES_FOLDER / "dir"
    assert not hashes.exists() or os.listdir(hashes) == []
    mc.settings.update({"offsite.dir.incremental": True}, actor="test")
    _, _, detail = backup(mc, clock, 2)
    assert detail["kind"] == "full"  # no page hashes of the last copy were kept
    assert "no page hashes are kept here" in detail["full_reason"]
    assert os.listdir(hashes)
    assert backup(mc, clock, 3)[2]["kind"] == "delta"
    mc.settings.update({"offsite.dir.incremental": False}, actor="test")
    assert backup(mc, clock, 4)[2]["kind"] == "full"
    assert os.listdir(hashes) == []


def test_nothing_changed_uploads_a_small_manifest_and_no_pack(mc, clock, nas, tmp_path):
    first = mc.backups.create(actor="test")
    clock.advance(3600)
    # The same database once more under the next name: no page differs.
    twin = first.path.with_name("mc-backup-2026-12-06_00-00-00.db")
    assert twin.name > first.name
    shutil.copyfile(first.path, twin)
    info = BackupInfo(twin.name, twin.stat().st_size, int(clock.now), twin.parent)
    send_offsite(mc, make_target(mc, str(nas)), info, "test")
    detail = mc.offsite.get("dir")["detail"]
    assert detail["kind"] == "delta" and detail["changed_pages"] == 0
    manifest = nas / manifest_name(twin.name, False)
    assert detail["uploaded_bytes"] == manifest.stat().st_size <= 600
    assert not (nas / pack_name(twin.name, False)).exists()
    assert mc.offsite.copy_record("dir", manifest.name)["objects"] == {}
    assert_rebuilds(nas, twin.name, sha256_of(twin), tmp_path)


def test_a_parent_deleted_or_replaced_at_the_target_means_a_full_copy(mc, clock, nas, tmp_path):
    first, _, _ = backup(mc, clock, 1)
    second, _, detail = backup(mc, clock, 2)
    assert detail["kind"] == "delta"
    (nas / pack_name(second, False)).unlink()  # someone deletes the last copy's pack
    third, sha3, detail = backup(mc, clock, 3)
    assert detail["kind"] == "full"
    assert detail["full_reason"] == (f"{pack_name(second, False)} (the last copy) is missing at "
                                     "the target")
    assert_rebuilds(nas, third, sha3, tmp_path)
    fourth, _, detail = backup(mc, clock, 4)
    assert detail["kind"] == "delta"
    # Replaced by another file of another size: its full copy is no longer what was uploaded.
    full = nas / (third + ".zst")
    full.chmod(0o600)
    full.write_bytes(full.read_bytes() + b"x")
    fifth, _, detail = backup(mc, clock, 5)
    assert detail["kind"] == "full"
    assert detail["full_reason"] == f"{third}.zst is no longer what was uploaded"


def test_missing_hashes_page_size_or_schema_change_mean_a_full_copy(mc, clock, nas):
    backup(mc, clock, 1)
    hashes = mc.config.db_path.parent / chains.HASHES_FOLDER / "dir"
    for entry in os.listdir(hashes):
        os.unlink(hashes / entry)
    _, _, detail = backup(mc, clock, 2)
    assert detail["kind"] == "full" and "no page hashes are kept here" in detail["full_reason"]
    # A damaged hash file is the same as none.
    [entry] = os.listdir(hashes)
    data = bytearray((hashes / entry).read_bytes())
    data[60] ^= 1
    (hashes / entry).write_bytes(bytes(data))
    _, _, detail = backup(mc, clock, 3)
    assert detail["kind"] == "full" and "no page hashes are kept here" in detail["full_reason"]
    with mc.db.transaction() as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        conn.execute(f"PRAGMA user_version = {version + 1}")
    _, _, detail = backup(mc, clock, 4)
    assert detail["full_reason"] == f"the schema version changed ({version} to {version + 1})"
    with mc.db.transaction() as conn:
        conn.execute(f"PRAGMA user_version = {version}")
    assert backup(mc, clock, 5)[2]["full_reason"] == \
        f"the schema version changed ({version + 1} to {version})"
    conn = mc.db.conn()
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute("PRAGMA page_size = 8192")
    conn.execute("VACUUM")
    conn.execute("PRAGMA journal_mode = WAL")
    _, _, detail = backup(mc, clock, 6)
    assert detail["full_reason"].startswith("the page size changed (4096 to 8192)")
    assert backup(mc, clock, 7)[2]["kind"] == "delta"


def test_retention_keeps_the_chains_kept_copies_need(mc, clock, nas, tmp_path):
    mc.settings.update({"offsite.dir.retention_count": 2, "offsite.dir.full_every": 3},
                       actor="test")
    made = [backup(mc, clock, seed) for seed in range(6)]
    # full, d, d, d, full, d: the two newest need the fifth (a full copy) only.
    detail = made[-1][2]
    assert [d["kind"] for _, _, d in made] == ["full", "delta", "delta", "delta", "full", "delta"]
    assert detail["chained"] == []
    names = sorted(os.listdir(nas))
    assert not any(n.startswith(made[0][0]) or n.startswith(made[3][0]) for n in names)
    for name, sha256, _ in made[4:]:
        assert_rebuilds(nas, name, sha256, tmp_path)
    # With a delta as the older of the two kept, its ancestors are kept too (chained).
    made += [backup(mc, clock, 10 + seed) for seed in range(3)]
    detail = made[-1][2]
    assert [d["kind"] for _, _, d in made[6:]] == ["delta", "delta", "full"]
    assert detail["chained"] == [manifest_name(made[6][0], False),
                                 manifest_name(made[5][0], False), made[4][0] + ".zst"]
    for name, sha256, _ in made[4:]:
        assert_rebuilds(nas, name, sha256, tmp_path)
    # Nothing of the pruned copies is left: no pack, manifest or catalog entry.
    left = {n.split(".db")[0] for n in os.listdir(nas) if n.startswith("mc-backup-")}
    left |= {n.split(".db")[0] for n in os.listdir(nas / "catalog")}
    assert left == {name[:-3] for name, _, _ in made[4:]}


def test_a_broken_chain_is_reported_and_fails_the_verdict(mc, clock, nas, tmp_path,
                                                          admin_client):
    mc.settings.update({"offsite.dir.retention_count": 3}, actor="test")
    first, _, _ = backup(mc, clock, 1)
    second, _, _ = backup(mc, clock, 2)
    third, _, _ = backup(mc, clock, 3)
    (nas / (first + ".zst")).unlink()  # someone deletes the full copy the chain starts with
    fourth, sha4, detail = backup(mc, clock, 4)
    assert detail["kind"] == "full"
    assert detail["broken"] == [{"name": manifest_name(third, False), "ancestor": first + ".zst"},
                                {"name": manifest_name(second, False), "ancestor": first + ".zst"}]
    assert detail["missing"] == [first + ".zst"]
    assert (nas / manifest_name(second, False)).exists()  # not counted, never deleted
    assert_rebuilds(nas, fourth, sha4, tmp_path)
    status = backup_status(mc)
    assert status["verdict"] == "fail"
    assert any("cannot be restored" in r and manifest_name(third, False) in r
               for r in status["reasons"]), status["reasons"]
    assert admin_client.get("/api/offsite").json["targets"][0]["broken"] == detail["broken"]
    assert admin_client.get("/api/backup/status").json["offsite"][0]["broken"] == \
        detail["broken"]
    shown = run_cli("offsite", "status", "--data-dir", mc.config.data_dir)
    assert shown.code == 0 and f"  {manifest_name(third, False)} cannot be restored" in shown.out
    assert "unrestorable at dir" in shown.out, shown.out


def test_a_missing_pack_makes_its_copy_missing(mc, clock, nas):
    mc.settings.update({"offsite.dir.retention_count": 3}, actor="test")
    backup(mc, clock, 1)
    second, _, _ = backup(mc, clock, 2)
    (nas / pack_name(second, False)).unlink()
    _, _, detail = backup(mc, clock, 3)
    assert detail["missing"] == [manifest_name(second, False)]
    assert backup_status(mc)["verdict"] == "fail"


def test_incremental_without_zstandard_is_refused(mc, monkeypatch):
    import builtins
    real = builtins.__import__

    def no_zstd(name, *args, **kw):
        if name == "zstandard":
            raise ImportError(name)
        return real(name, *args, **kw)
    monkeypatch.setattr(builtins, "__import__", no_zstd)
    with pytest.raises(ValidationFailed) as refused:
        mc.settings.update({"offsite.dir.incremental": True}, actor="test")
    assert refused.value.details == [
        "offsite.dir.incremental: incremental copies needs zstandard, which is not installed: "
        "pip install 'mission-control-backup[offsite-crypt]'"]
    assert mc.settings.get("offsite.dir.incremental") is False
    mc.settings.update({"offsite.dir.incremental": False}, actor="test")  # off needs nothing


def test_a_manifest_that_cannot_be_put_fails_the_copy_and_leaves_nothing(mc, clock, nas,
                                                                        monkeypatch):
    from mission_control.offsite.storage import FolderStorage
    first, _, _ = backup(mc, clock, 1)
    real_put = FolderStorage.put

    def refusing(storage, key, path, *, lock=None):
        if ".delta." in key:
            raise OSError(28, "No space left on device")
        return real_put(storage, key, path, lock=lock)
    monkeypatch.setattr(FolderStorage, "put", refusing)
    change(mc, 2)
    second = mc.backups.create(actor="test").name
    result = mc.offsite.get("dir")
    assert result["ok"] is False and "No space left on device" in result["message"]
    assert sorted(os.listdir(nas)) == sorted([first + ".zst", first + ".zst" + MANIFEST_SUFFIX,
                                              "catalog"])  # the pack was taken back
    assert mc.offsite.copy_record("dir", manifest_name(second, False)) is None
    assert not [n for n in os.listdir(mc.backups.dir) if n.startswith(".mc-tmp-")]
    monkeypatch.setattr(FolderStorage, "put", real_put)
    clock.advance(3600)
    assert backup(mc, clock, 3)[2]["kind"] == "delta"  # over the first: still the last copy
