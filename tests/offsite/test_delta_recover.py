"""Incremental copies from the storage alone (issue 24): `recover` rebuilds a delta copy from its chain
(folder and SeaweedFS, `--as-of` choosing each object's version), skips a chain that cannot be
completed for an older copy; the shipped script and plain age | zstd read what was sent."""
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mission_control.offsite.drill import drill_all
from mission_control.offsite.recovery import Keys, recover
from mission_control.offsite.signing import parse_verify_keys
from mission_control.offsite.storage import FolderStorage, S3Storage
from mission_control.offsite.targets import fetch
from tests.support.chains import send_chain
from tests.support.cli_run import run_cli
from tests.support.offsite import damage, new_key
from tests.support.seaweed import SERVICE

pytest.importorskip("pyrage")
pytest.importorskip("zstandard")

SCRIPT = Path(sys.executable).parent / "mission-control-reassemble"


def rows(path):
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return sorted(conn.execute("SELECT name FROM agents"))
    finally:
        conn.close()


def iso(ts):
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def made(mc, clock):
    """Four backups of a database that changes a little between them, oldest first."""
    backups = []
    for i in range(4):
        mc.db.execute("INSERT INTO agents (name, status, created_at, updated_at) "
                      "VALUES (?, 'online', 1, 1)", (f"agent-{i}",))
        backups.append(mc.backups.create(actor="test"))
        clock.advance(3600)
    return backups


@pytest.fixture
def key(tmp_path):
    identity, recipient = new_key()
    path = tmp_path / "key.txt"
    path.write_text(f"# created: test\n{identity}\n")
    return {"identity": identity, "recipient": recipient, "file": path}


def send_to_folder(mc, made, key, tmp_path):
    nas, scratch = tmp_path / "nas", tmp_path / "scratch"
    nas.mkdir()
    scratch.mkdir()
    mc.settings.update({"offsite.dir.path": str(nas), "offsite.dir.compress": "zstd",
                        "offsite.dir.age_recipients": key["recipient"]}, actor="test")
    return nas, send_chain(mc, mc.offsite.targets()["dir"], made, scratch=scratch)


def keys_of(mc, key):
    return Keys(key["identity"], parse_verify_keys(mc.offsite.signer.verify_key()))


def test_recover_rebuilds_the_newest_delta_copy_from_a_folder(mc, made, key, tmp_path):
    nas, sent = send_to_folder(mc, made, key, tmp_path)
    to = tmp_path / "new-host"
    ran = run_cli("recover", "--from", nas, "--identity", key["file"], "--verify-key",
                  mc.offsite.signer.verify_key(), "--to", to, "--json")
    assert ran.code == 0, ran.out + ran.err
    assert ran.json["recovered"]["backup"] == made[-1].name
    assert ran.json["skipped"] == []
    assert os.listdir(to) == ["mission-control.db"]
    assert (to / "mission-control.db").read_bytes() == made[-1].path.read_bytes()


def test_a_chain_that_cannot_be_completed_is_skipped_for_an_older_copy(mc, made, key,
                                                                       tmp_path):
    nas, sent = send_to_folder(mc, made, key, tmp_path)
    os.unlink(nas / sent[2].name)  # the manifest of copy 2: copies 2 and 3 cannot be rebuilt
    damage(nas / sent[1].pack, "flipped")  # copy 1's pack: it cannot be either
    done = recover([FolderStorage(nas)], tmp_path / "to", keys_of(mc, key))
    assert done.entry["remote_name"] == sent[0].name
    assert rows(done.path) == rows(made[0].path)
    reasons = {s.name: s.reason for s in done.skipped}
    assert reasons[sent[3].name] == (f"{sent[2].name} (of {sent[2].name}), needed by its chain, "
                                     "is missing")
    assert reasons[sent[2].name] == "the copy is missing"
    assert sent[1].pack in reasons[sent[1].name] and "cannot be rebuilt" in reasons[sent[1].name]
    assert sorted(os.listdir(tmp_path / "to")) == ["mission-control.db"]


def test_an_ancestor_without_a_trusted_catalog_entry_breaks_the_chain(mc, made, key, tmp_path):
    nas, sent = send_to_folder(mc, made, key, tmp_path)
    entry = nas / "catalog" / f"{sent[1].name}.json.age"
    entry.write_bytes(entry.read_bytes()[:-10])  # no longer decrypts
    done = recover([FolderStorage(nas)], tmp_path / "to", keys_of(mc, key))
    assert done.entry["remote_name"] == sent[0].name
    reasons = {s.name: s.reason for s in done.skipped}
    assert "catalog entry refused" in reasons[sent[1].name]
    for copy in (sent[2], sent[3]):
        assert f"needs {sent[1].name}, its ancestor, which has no signed record" in \
            reasons[copy.name], reasons


@pytest.mark.slow  # two subprocesses
@pytest.mark.skipif(not (os.path.exists("/usr/bin/age") and shutil.which("zstd")),
                    reason="Debian's age and zstd commands are not installed")
def test_the_shipped_script_rebuilds_the_chain_and_age_zstd_give_the_full_copy(mc, made, key,
                                                                               tmp_path):
    nas, sent = send_to_folder(mc, made, key, tmp_path)
    out = tmp_path / "rebuilt.db"
    done = subprocess.run([str(SCRIPT), "--identity", str(key["file"]), "--from", str(nas),
                           made[-1].name, "-o", str(out)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == made[-1].path.read_bytes()
    assert f"rebuilt {made[-1].name}" in done.stdout
    plain = subprocess.run(f"/usr/bin/age -d -i '{key['file']}' '{nas / sent[0].name}' | zstd -d",
                           shell=True, capture_output=True, check=True).stdout
    assert plain == made[0].path.read_bytes()


@pytest.mark.slow  # SeaweedFS
def test_fetch_drill_and_recover_as_of_against_seaweedfs(mc, made, key, seaweed, tmp_path):
    """A versioned bucket: the chain fetches and drills; then ransomware deletes the newest
    manifest and overwrites a pack: recovery now skips those copies, and as of before the attack
    rebuilds the newest from the versions under them."""
    bucket = seaweed.bucket(lock=False, versioned=True)
    mc.settings.update({**seaweed.settings(bucket), "offsite.s3.compress": "zstd",
                        "offsite.s3.age_recipients": key["recipient"],
                        "offsite.age_identity": key["identity"]}, actor="test")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    sent = send_chain(mc, mc.offsite.targets()["s3"], made, scratch=scratch)
    result = fetch(mc, "s3", sent[-1].name, "test")
    assert (mc.backups.dir / result["backup"]["name"]).read_bytes() == \
        made[-1].path.read_bytes()
    [drilled] = drill_all(mc, "test")
    assert drilled["ok"] is True and drilled["name"] == sent[-1].name, drilled

    storage = S3Storage(seaweed.client(SERVICE), bucket, "mission-control/")
    time.sleep(1.1)  # SeaweedFS's LastModified has whole seconds
    before = time.time()
    time.sleep(1.1)
    storage.delete(sent[3].name)
    storage.put_bytes(sent[2].pack, os.urandom(100))
    [drilled] = drill_all(mc, "test")  # the newest listed is now copy 2, whose pack is altered
    assert drilled["ok"] is False and drilled["name"] == sent[2].name, drilled
    assert sent[2].pack in drilled["message"]

    keys = keys_of(mc, key)
    now = recover([storage], tmp_path / "now", keys)
    assert now.entry["remote_name"] == sent[1].name
    assert rows(now.path) == rows(made[1].path)
    reasons = {s.name: s.reason for s in now.skipped}
    assert reasons[sent[3].name] == "the copy is deleted (a delete marker)"
    assert reasons[sent[2].name].startswith(
        f"{sent[2].pack} (of {sent[2].name}), needed by its chain, is not as sent: truncated"), \
        reasons

    then = recover([storage], tmp_path / "then", keys, as_of=before)
    assert then.entry["remote_name"] == sent[3].name and then.versioned
    assert (tmp_path / "then" / "mission-control.db").read_bytes() == \
        made[-1].path.read_bytes()
    ran = run_cli("recover", "--from", f"s3://{bucket}/mission-control", "--identity",
                  key["file"], "--verify-key", mc.offsite.signer.verify_key(), "--to",
                  tmp_path / "cli", "--endpoint-url", seaweed.url, "--as-of", iso(before),
                  "--json", env=seaweed.environ())
    assert ran.code == 0, ran.out + ran.err
    assert ran.json["recovered"]["backup"] == made[-1].name
