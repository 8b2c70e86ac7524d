"""`mission-control recover --at`: the database at a moment, from a sealed point-in-time stream alone
(real Litestream replicating a real database; each of its files sealed with age as the sealer does)."""
import os
import shutil
import sqlite3
import time
from datetime import datetime, timezone

import pytest

from mission_control.builtins.pitr.litestream import find_binary
from mission_control.offsite.codec import AGE_MAGIC
from mission_control.offsite.storage import FolderStorage
from tests.support.cli_run import run_cli
from tests.support.offsite import new_key
from tests.support.offsite_catalog import new_signer
from tests.support.sealed_stream import replicate, seal_replica

BINARY = find_binary(None)
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(BINARY is None, reason="Litestream is not installed")]
pytest.importorskip("pyrage")


def iso(ts):
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def add_agent(db, name):
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO agents (name, status, created_at, updated_at) "
                 "VALUES (?, 'online', 1, 1)", (name,))
    conn.commit()
    conn.close()


def agents(db):
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT name FROM agents ORDER BY name")]
    finally:
        conn.close()


@pytest.fixture
def stream(make_mc, tmp_path):
    """A sealed stream in a folder: agent-0 before `moment`, agent-1 after it."""
    mc = make_mc()
    db = mc.config.db_path
    mc.close()
    add_agent(db, "agent-0")

    def then_agent_1():
        moment = time.time()
        time.sleep(0.5)
        add_agent(db, "agent-1")
        return moment
    replica = tmp_path / "replica"
    moment = replicate(BINARY, db, replica, then_agent_1)
    identity, recipient = new_key()
    sealed = tmp_path / "sealed"
    sealed.mkdir()
    signer, verify = new_signer(tmp_path)
    seal_replica(replica, FolderStorage(sealed), recipient, signer.private_key(), tmp_path)
    assert all(p.read_bytes().startswith(AGE_MAGIC) for p in sealed.rglob("*.age"))
    key = tmp_path / "key.txt"
    key.write_text(identity + "\n")
    return {"folder": sealed, "key": key, "moment": moment, "verify": verify,
            "recipient": recipient}


def test_recover_at_a_moment_from_a_sealed_stream(stream, tmp_path):
    base = ["recover", "--from", stream["folder"], "--identity", stream["key"], "--json",
            "--verify-key", stream["verify"]]
    then = run_cli(*base, "--to", tmp_path / "then", "--at", iso(stream["moment"]))
    assert then.code == 0, then.out + then.err
    assert then.json["recovered"]["restored_to"] <= stream["moment"] * 1000
    assert then.json["authenticity"] == "verified" and then.json["skipped"] == []
    assert agents(tmp_path / "then" / "mission-control.db") == ["agent-0"]
    now = run_cli(*base, "--to", tmp_path / "now", "--at", iso(time.time()))
    assert now.code == 0, now.out + now.err
    assert agents(tmp_path / "now" / "mission-control.db") == ["agent-0", "agent-1"]
    wrong = tmp_path / "wrong.txt"
    wrong.write_text(new_key()[0] + "\n")
    refused = run_cli("recover", "--from", stream["folder"], "--identity", wrong, "--json",
                      "--verify-key", stream["verify"], "--to", tmp_path / "wrong",
                      "--at", iso(time.time()))
    assert refused.code == 1, refused.out
    assert any("cannot decrypt" in s["reason"] for s in refused.json["skipped"])
    assert not (tmp_path / "wrong").exists()


def test_recover_at_trusts_only_files_signed_by_the_key_given(stream, tmp_path):
    base = ["recover", "--from", stream["folder"], "--identity", stream["key"], "--json",
            "--at", iso(time.time())]
    # No verification key: nothing proves the stream's files were made by the service.
    bare = run_cli(*base, "--to", tmp_path / "bare")
    assert bare.code == 2 and "no verification key" in bare.json["error"]
    assert not (tmp_path / "bare").exists()
    # Another service's key: every file is refused as possibly planted, nothing is written.
    (tmp_path / "other").mkdir()
    other = new_signer(tmp_path / "other")[1]
    refused = run_cli(*base, "--verify-key", other, "--to", tmp_path / "refused")
    assert refused.code == 1, refused.out
    assert any("does not verify" in s["reason"] for s in refused.json["skipped"])
    assert not (tmp_path / "refused").exists()
    # --unverified restores, and says loudly that nothing was checked.
    loose = run_cli(*base, "--unverified", "--to", tmp_path / "loose")
    assert loose.code == 0, loose.out + loose.err
    assert loose.json["authenticity"] == "NOT CHECKED" and "NOT CHECKED" in loose.json["warning"]
    assert agents(tmp_path / "loose" / "mission-control.db") == ["agent-0", "agent-1"]


def test_files_stored_late_are_named_and_as_of_a_later_time_trusts_them(stream, tmp_path):
    base = ["recover", "--from", stream["folder"], "--identity", stream["key"],
            "--verify-key", stream["verify"], "--json"]
    moment = stream["moment"]
    for path in stream["folder"].rglob("*.age"):  # the storage was down: all went up late
        os.utime(path, (moment + 600, moment + 600))
    late = run_cli(*base, "--to", tmp_path / "late", "--at", iso(moment))
    assert late.code == 1, late.out + late.err
    assert "first stored 600 s after the moment" in late.out and "--as-of" in late.out
    assert not (tmp_path / "late").exists()
    trusted = run_cli(*base, "--to", tmp_path / "later", "--at", iso(moment),
                      "--as-of", iso(moment + 700))
    assert trusted.code == 0, trusted.out + trusted.err
    assert trusted.json["late"] == [] and trusted.json["skipped"] == []
    assert agents(tmp_path / "later" / "mission-control.db") == ["agent-0"]
    wrong = run_cli(*base, "--to", tmp_path / "wrong", "--at", iso(moment),
                    "--as-of", iso(moment - 10))
    assert wrong.code == 2 and "cannot be before --at" in wrong.out


def test_a_stream_that_cannot_give_the_moment_falls_back_to_the_next_source(stream, tmp_path):
    """The first --from holds the stream with every file damaged: it is named with why, and the
    next --from gives the moment."""
    broken = tmp_path / "broken"
    shutil.copytree(stream["folder"], broken)
    for path in broken.rglob("*.age"):
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size // 2)
    ran = run_cli("recover", "--from", broken, "--from", stream["folder"], "--identity",
                  stream["key"], "--verify-key", stream["verify"], "--json",
                  "--to", tmp_path / "to", "--at", iso(stream["moment"]))
    assert ran.code == 0, ran.out + ran.err
    assert ran.json["recovered"]["source"] == str(stream["folder"])
    assert agents(tmp_path / "to" / "mission-control.db") == ["agent-0"]
    assert ran.json["skipped"] and {s["source"] for s in ran.json["skipped"]} == {str(broken)}
    assert any(s["name"] == "point-in-time stream" for s in ran.json["skipped"])
    alone = run_cli("recover", "--from", broken, "--identity", stream["key"], "--verify-key",
                    stream["verify"], "--json", "--to", tmp_path / "alone",
                    "--at", iso(stream["moment"]))
    assert alone.code == 1 and not (tmp_path / "alone").exists()
