"""Reading incremental copies back (issue 24): listed by kind, fetched and drilled by rebuilding their
chain from a folder target, every object checked, any damage or planted ancestor refused by name."""
import json
import os
import subprocess
import sys

import pytest

from mission_control.offsite.drill import drill_all
from mission_control.offsite.reassembly import DeltaError, rebuild
from mission_control.offsite.signing import MANIFEST_SUFFIX
from tests.support.chains import send_chain
from tests.support.offsite import damage, new_key
from tests.support.offsite_catalog import new_signer

pytest.importorskip("pyrage")
pytest.importorskip("zstandard")


def make_backups(mc, clock, count=4):
    """`count` backups of a database that changes a little between them, oldest first."""
    made = []
    for i in range(count):
        mc.db.execute("INSERT INTO agents (name, status, created_at, updated_at) "
                      "VALUES (?, 'online', 1, 1)", (f"agent-{i}",))
        made.append(mc.backups.create(actor="test"))
        clock.advance(3600)
    return made


@pytest.fixture
def chain(mc, clock, tmp_path):
    """Four backups sent to the folder target `dir` as a chain (full + 3 deltas), encrypted."""
    made = make_backups(mc, clock)
    identity, recipient = new_key()
    nas, scratch = tmp_path / "nas", tmp_path / "scratch"
    nas.mkdir()
    scratch.mkdir()
    mc.settings.update({"offsite.dir.path": str(nas), "offsite.dir.compress": "zstd",
                        "offsite.dir.age_recipients": recipient,
                        "offsite.age_identity": identity}, actor="test")
    sent = send_chain(mc, mc.offsite.targets()["dir"], made, scratch=scratch)
    return {"nas": nas, "sent": sent, "identity": identity}


def leftovers(mc):
    return sorted(p.name for p in mc.backups.dir.iterdir()
                  if p.name.startswith((".", "offsite-")) and not p.name.endswith(".lock"))


def test_copies_list_by_kind_and_every_copy_of_the_chain_fetches_byte_identical(
        admin_client, mc, chain):
    sent = chain["sent"]
    assert [s.name.endswith(".delta.zst.age") for s in sent] == [False, True, True, True]
    listed = admin_client.get("/api/offsite/dir/backups")
    assert listed.status_code == 200
    kinds = {c["name"]: c["kind"] for c in listed.json["backups"]}
    assert kinds == {s.name: ("full" if i == 0 else "delta") for i, s in enumerate(sent)}
    for copy in listed.json["backups"]:  # packs, manifests and catalog entries are not copies
        assert copy["encrypted"] is True and copy["compressed"] is True
    for s in reversed(sent):
        fetched = admin_client.post("/api/offsite/dir/fetch", json={"name": s.name})
        assert fetched.status_code == 200, fetched.json
        kept = mc.backups.dir / f"offsite-{s.backup.name}"
        assert fetched.json["backup"]["name"] == kept.name
        assert kept.read_bytes() == s.backup.path.read_bytes()
        assert fetched.json["backup"]["sha256"] == mc.offsite.copy_record(
            "dir", s.name)["plain_sha256"]
    restored = admin_client.post("/api/backup/restore",
                                 json={"name": f"offsite-{sent[-1].backup.name}"})
    assert restored.status_code == 200, restored.json
    assert not [p for p in mc.backups.dir.iterdir() if p.name.startswith(".mc-")]


def refusal(response):
    return " ".join([response.json["error"], *response.json.get("details", [])])


@pytest.mark.parametrize("victim", ["pack", "manifest", "ancestor manifest", "full"])
def test_a_flipped_byte_anywhere_in_the_chain_fails_fetch_and_drill_naming_it(
        admin_client, mc, chain, victim):
    sent, nas = chain["sent"], chain["nas"]
    newest = sent[-1]
    name = {"pack": newest.pack, "manifest": newest.name, "ancestor manifest": sent[1].name,
            "full": sent[0].name}[victim]
    damage(nas / name, "flipped")
    before = leftovers(mc)
    refused = admin_client.post("/api/offsite/dir/fetch", json={"name": newest.name})
    assert refused.status_code == 400, refused.json
    reason = refusal(refused)
    assert newest.name in reason and name in reason, reason
    assert str(nas) not in reason
    assert leftovers(mc) == before
    [event] = mc.audit_store.query(action="offsite_fetch_refused")[0]
    assert name in event["detail"]["reason"]
    [drilled] = drill_all(mc, "test")
    assert drilled["ok"] is False and drilled["name"] == newest.name
    assert name in drilled["message"], drilled
    assert leftovers(mc) == before


def test_an_object_replaced_by_a_valid_one_is_caught_by_its_recorded_sha256(admin_client, mc,
                                                                           chain):
    """age and zstd cannot tell a well-formed object written over the real one: the SHA-256 in
    the signed record does."""
    sent, nas = chain["sent"], chain["nas"]
    newest = sent[-1]
    os.unlink(nas / newest.pack)
    os.link(nas / sent[1].pack, nas / newest.pack)  # another copy's genuine pack, same name
    refused = admin_client.post("/api/offsite/dir/fetch", json={"name": newest.name})
    assert refused.status_code == 400
    reason = refusal(refused)
    assert f"{newest.pack} (of {newest.name}) holds" in reason and "signed record" in reason, \
        reason


def test_a_missing_ancestor_is_named_and_the_chain_before_it_still_fetches(admin_client, mc,
                                                                           chain):
    sent, nas = chain["sent"], chain["nas"]
    os.unlink(nas / sent[2].name)
    refused = admin_client.post("/api/offsite/dir/fetch", json={"name": sent[3].name})
    assert refused.status_code == 400
    reason = refusal(refused)
    assert sent[2].name in reason and "missing" in reason, reason
    [drilled] = drill_all(mc, "test")
    assert drilled["ok"] is False and sent[2].name in drilled["message"]
    ok = admin_client.post("/api/offsite/dir/fetch", json={"name": sent[1].name})
    assert ok.status_code == 200, ok.json


def test_a_planted_ancestor_is_refused_naming_it(admin_client, mc, chain, tmp_path):
    """The ancestor's record is gone here and the manifest beside it is signed by someone else:
    the copy over it is refused, though its own record is genuine."""
    sent, nas = chain["sent"], chain["nas"]
    ancestor = sent[1]
    record = mc.offsite.copy_record("dir", ancestor.name)
    mc.db.execute("DELETE FROM offsite_copies WHERE remote_name = ?", (ancestor.name,))
    (tmp_path / "attacker").mkdir()
    attacker, _ = new_signer(tmp_path / "attacker")
    forged = {k: record[k] for k in ("target", "remote_name", "backup", "size", "sha256",
                                     "plain_size", "plain_sha256", "compressed", "encrypted",
                                     "created_at", "parent", "chain_length", "objects")}
    (nas / (ancestor.name + MANIFEST_SUFFIX)).unlink()
    (nas / (ancestor.name + MANIFEST_SUFFIX)).write_bytes(attacker.sign(forged))
    refused = admin_client.post("/api/offsite/dir/fetch", json={"name": sent[3].name})
    assert refused.status_code == 400
    reason = refusal(refused)
    assert f"needs {ancestor.name}, its ancestor, which is refused" in reason, reason
    assert "does not verify" in reason
    [drilled] = drill_all(mc, "test")
    assert drilled["ok"] is False and ancestor.name in drilled["message"]
    assert drilled["unrecorded"] == [ancestor.name]


def test_the_drill_rebuilds_the_newest_delta_copy(mc, chain):
    sent = chain["sent"]
    [drilled] = drill_all(mc, "test")
    assert drilled["ok"] is True and drilled["mode"] == "full", drilled
    assert drilled["name"] == sent[-1].name
    assert "rebuilt from its chain of 4 copies" in drilled["message"]
    assert not [p for p in mc.backups.dir.iterdir() if p.name.startswith(".mc-")]


def test_without_an_identity_the_drill_hashes_every_object_of_the_chain(mc, chain):
    sent, nas = chain["sent"], chain["nas"]
    mc.settings.reset("offsite.age_identity", "test")
    [drilled] = drill_all(mc, "test")
    assert drilled["ok"] is True and drilled["mode"] == "header_and_hash", drilled
    assert "all 4 copies of its chain" in drilled["message"]
    damage(nas / sent[2].pack, "truncated")
    [drilled] = drill_all(mc, "test")
    assert drilled["ok"] is False and sent[2].pack in drilled["message"], drilled
    assert f"of {sent[2].name}" in drilled["message"]


def test_a_planted_manifest_describing_a_huge_copy_writes_nothing(tmp_path, mc, chain):
    """Reassembly checks the size a manifest describes against the signed record before it
    writes a byte (here straight from the folder, without the SHA-256 check that would catch a
    replaced manifest first)."""
    sent, nas = chain["sent"], chain["nas"]
    record = mc.offsite.copy_record("dir", sent[-1].name)
    out = tmp_path / "out" / "rebuilt.db"
    out.parent.mkdir()
    with pytest.raises(DeltaError, match="its signed record says 1: nothing was written"):
        rebuild(nas, sent[-1].backup.name, out, chain["identity"], plain_size=1)
    assert list(out.parent.iterdir()) == []
    done = rebuild(nas, sent[-1].backup.name, out, chain["identity"],
                   plain_size=record["plain_size"])
    assert done.sha256 == record["plain_sha256"]


def run_cli(mc, *argv):
    return subprocess.run([sys.executable, "-m", "mission_control", *argv, "--data-dir",
                           str(mc.config.data_dir)], capture_output=True, text=True, timeout=120)


@pytest.mark.slow  # two CLI runs
def test_the_cli_lists_the_kind_and_fetches_a_delta_copy_by_its_name(mc, chain):
    sent = chain["sent"]
    listed = run_cli(mc, "offsite", "list", "dir", "--json")
    assert listed.returncode == 0, listed.stderr
    kinds = {c["name"]: c["kind"] for c in json.loads(listed.stdout)["backups"]}
    assert kinds[sent[0].name] == "full" and kinds[sent[-1].name] == "delta"
    text = run_cli(mc, "offsite", "list", "dir")
    assert f"{sent[-1].name}\t" in text.stdout and "incremental" in text.stdout
    fetched = run_cli(mc, "offsite", "fetch", "dir", sent[-1].name)
    assert fetched.returncode == 0, fetched.stderr
    assert f"offsite-{sent[-1].backup.name}" in fetched.stdout
    assert (mc.backups.dir / f"offsite-{sent[-1].backup.name}").read_bytes() == \
        sent[-1].backup.path.read_bytes()
