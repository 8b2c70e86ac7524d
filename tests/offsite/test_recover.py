"""`mission-control recover`: a database from off-site copies alone, into an empty folder, checked,
with every unusable copy skipped for its reason (folder and SeaweedFS; the CLI as a subprocess)."""
import json
import os
import re
import sqlite3
import subprocess
import time
import urllib.request
from datetime import datetime, timezone

import pytest

from mission_control.offsite import catalog
from mission_control.offsite.storage import FolderStorage, S3Storage
from tests.support.cli_run import COMMAND, run_cli
from tests.support.offsite import new_key
from tests.support.offsite_catalog import new_signer, publish
from tests.support.seaweed import SERVICE

pytestmark = pytest.mark.slow

pytest.importorskip("pyrage")
pytest.importorskip("zstandard")


def rows(path):
    """Every row of every table of the database at `path`."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return {t: sorted(map(repr, conn.execute(f'SELECT * FROM "{t}"'))) for t in tables}
    finally:
        conn.close()


def iso(ts):
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def backups(make_mc, clock):
    """Five backups of a database whose rows differ between them, oldest first."""
    mc = make_mc()
    made = []
    for i in range(5):
        mc.db.execute("INSERT INTO agents (name, status, created_at, updated_at) "
                      "VALUES (?, 'online', 1, 1)", (f"agent-{i}",))
        made.append(mc.backups.create(actor="test").path)
        clock.advance(3600)
    return made


@pytest.fixture
def keys(tmp_path):
    identity, recipient = new_key()
    key_file = tmp_path / "key.txt"
    key_file.write_text(f"# created: today\n{identity}\n")
    signer, verify_key = new_signer(tmp_path)
    return {"identity": key_file, "recipient": recipient, "signer": signer, "verify": verify_key}


@pytest.fixture
def scratch(tmp_path):
    folder = tmp_path / "scratch"
    folder.mkdir()
    return folder


@pytest.fixture
def nas(tmp_path):
    folder = tmp_path / "nas"
    folder.mkdir()
    return FolderStorage(folder)


def recover(keys, *sources, to, extra=(), env=None):
    args = ["recover", "--identity", keys["identity"], "--verify-key", keys["verify"],
            "--to", to, *extra]
    for source in sources:
        args += ["--from", source]
    return run_cli(*args, env=env)


def test_recover_from_a_folder_into_an_empty_folder(backups, keys, nas, scratch, tmp_path):
    for when, path in enumerate(backups):
        publish(nas, path, keys["signer"], target="dir", recipients=[keys["recipient"]],
                created_at=1_800_000_000 + when, scratch=scratch)
    to = tmp_path / "new-host"
    ran = recover(keys, nas.root, to=to, extra=["--json"])
    assert ran.code == 0, ran.out + ran.err
    answer = ran.json
    db = to / "mission-control.db"
    assert answer["recovered"]["path"] == str(db)
    assert answer["recovered"]["backup"] == backups[-1].name
    assert answer["authenticity"] == "verified" and answer["skipped"] == []
    assert answer["serve"] == f"mission-control serve --data-dir {to}"
    assert os.listdir(to) == ["mission-control.db"]
    assert oct(db.stat().st_mode & 0o777) == "0o600"
    assert rows(db) == rows(backups[-1])
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    # The text form names the command that starts the service on it.
    again = recover(keys, nas.root, to=tmp_path / "other")
    assert again.code == 0, again.err
    assert f"mission-control serve --data-dir {tmp_path / 'other'}" in again.out


def _serve(folder):
    """`mission-control serve --data-dir FOLDER` on a free port: (process, base URL)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MC_", "MISSION_CONTROL_"))}
    proc = subprocess.Popen([COMMAND, "serve", "--data-dir", str(folder), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**env, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        found = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        if found:
            return proc, found.group(1)
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise AssertionError("serve did not start")


def test_recover_from_s3_then_serve_starts_on_it(backups, keys, seaweed, scratch, tmp_path):
    bucket = seaweed.bucket(lock=False)
    storage = S3Storage(seaweed.client(SERVICE), bucket, "mission-control/")
    for path in backups:
        publish(storage, path, keys["signer"], recipients=[keys["recipient"]], scratch=scratch)
    to = tmp_path / "new-host"
    ran = recover(keys, f"s3://{bucket}/mission-control", to=to,
                  extra=["--endpoint-url", seaweed.url, "--json"], env=seaweed.environ())
    assert ran.code == 0, ran.out + ran.err
    assert ran.json["recovered"]["backup"] == backups[-1].name
    assert rows(to / "mission-control.db") == rows(backups[-1])
    proc, base = _serve(to)
    try:
        with urllib.request.urlopen(base + "/api/health", timeout=30) as response:
            assert response.status == 200
            assert json.loads(response.read())
    finally:
        proc.terminate()
        proc.wait(30)
    restored = rows(to / "mission-control.db")
    assert restored["agents"] == rows(backups[-1])["agents"]


def test_every_unusable_copy_is_skipped_with_its_reason(backups, keys, nas, scratch, tmp_path):
    """Newest first: a planted entry signed by another key, a copy encrypted to another key, a
    missing object, a truncated copy; then the oldest, good one is recovered."""
    good, truncated, missing, other_key, planted_source = backups
    publish(nas, good, keys["signer"], recipients=[keys["recipient"]], created_at=100,
            scratch=scratch)
    publish(nas, truncated, keys["signer"], recipients=[keys["recipient"]], created_at=200,
            scratch=scratch)
    copy = nas.root + "/" + truncated.name + ".zst.age"
    with open(copy, "r+b") as f:
        f.truncate(os.path.getsize(copy) - 100)
    record = publish(nas, missing, keys["signer"], recipients=[keys["recipient"]],
                     created_at=300, scratch=scratch)
    os.unlink(nas.root + "/" + record["remote_name"])
    _, stranger = new_key()
    publish(nas, other_key, keys["signer"], recipients=[stranger], compress="none",
            created_at=400, scratch=scratch)
    (tmp_path / "attacker").mkdir()
    attacker, _ = new_signer(tmp_path / "attacker")
    planted = planted_source
    publish(nas, planted, attacker, recipients=[keys["recipient"]], created_at=500,
            scratch=scratch)

    to = tmp_path / "new-host"
    ran = recover(keys, nas.root, to=to, extra=["--json"])
    assert ran.code == 0, ran.out + ran.err
    assert ran.json["recovered"]["backup"] == good.name
    assert rows(to / "mission-control.db") == rows(good)
    reasons = {s["name"]: s["reason"] for s in ran.json["skipped"]}
    assert "does not verify" in reasons[planted.name + ".zst.age"]
    assert "cannot be decrypted with this age identity" in reasons[other_key.name + ".age"]
    assert reasons[missing.name + ".zst.age"] == "the copy is missing"
    assert "truncated" in reasons[truncated.name + ".zst.age"] \
        or "SHA-256" in reasons[truncated.name + ".zst.age"]
    assert len(reasons) == 4, reasons

    text = recover(keys, nas.root, to=tmp_path / "text")
    assert text.code == 0
    assert text.out.count("skipped ") == 4


def test_a_target_with_no_usable_copy_falls_back_to_the_next_target(backups, keys, nas, scratch,
                                                                    tmp_path):
    """The first --from holds only unusable copies (damaged, encrypted to another key): each is
    skipped with its reason and source, then the next --from gives its newest good copy; a third
    --from with a newer copy is never reached."""
    damaged, other_key, good, _, newest = backups
    record = publish(nas, damaged, keys["signer"], recipients=[keys["recipient"]],
                     created_at=300, scratch=scratch)
    with open(nas.root + "/" + record["remote_name"], "r+b") as f:
        f.seek(200)
        f.write(b"garbage")
    _, stranger = new_key()
    publish(nas, other_key, keys["signer"], recipients=[stranger], compress="none",
            created_at=400, scratch=scratch)
    for folder in ("usb", "spare"):
        (tmp_path / folder).mkdir()
    usb, spare = FolderStorage(tmp_path / "usb"), FolderStorage(tmp_path / "spare")
    publish(usb, good, keys["signer"], recipients=[keys["recipient"]], created_at=200,
            scratch=scratch)
    publish(spare, newest, keys["signer"], recipients=[keys["recipient"]], created_at=500,
            scratch=scratch)

    to = tmp_path / "new-host"
    ran = recover(keys, nas.root, usb.root, spare.root, to=to, extra=["--json"])
    assert ran.code == 0, ran.out + ran.err
    assert ran.json["recovered"]["backup"] == good.name
    assert ran.json["recovered"]["source"] == usb.root
    assert rows(to / "mission-control.db") == rows(good)
    reasons = {s["name"]: s for s in ran.json["skipped"]}
    assert set(reasons) == {damaged.name + ".zst.age", other_key.name + ".age"}, reasons
    assert {s["source"] for s in reasons.values()} == {nas.root}
    assert "cannot be decrypted with this age identity" in \
        reasons[other_key.name + ".age"]["reason"]
    text = recover(keys, nas.root, usb.root, to=tmp_path / "text")
    assert text.code == 0, text.err
    assert text.out.count("skipped ") == 2 and f"from {usb.root}" in text.out


def test_nothing_recoverable_leaves_nothing_and_lists_every_reason(backups, keys, nas, scratch,
                                                                   tmp_path):
    for when, path in enumerate(backups[:3]):
        record = publish(nas, path, keys["signer"], recipients=[keys["recipient"]],
                         created_at=100 + when, scratch=scratch)
        with open(nas.root + "/" + record["remote_name"], "r+b") as f:
            f.seek(200)
            f.write(b"garbage")
    missing_to = tmp_path / "never-made"
    ran = recover(keys, nas.root, str(tmp_path / "no-such-folder"), to=missing_to,
                  extra=["--json"])
    assert ran.code == 1, ran.out + ran.err
    assert ran.json["error"].startswith("no copy could be recovered")
    assert len(ran.json["skipped"]) == 4  # three copies and the missing folder
    assert {s["name"] for s in ran.json["skipped"]} >= {p.name + ".zst.age" for p in backups[:3]}
    assert not missing_to.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    text = recover(keys, nas.root, to=empty)
    assert text.code == 1 and "no copy could be recovered" in text.err
    assert text.err.count(backups[0].name) == 1
    assert os.listdir(empty) == []


def test_the_verification_key_is_required_unless_unverified(backups, keys, nas, scratch,
                                                            tmp_path):
    publish(nas, backups[0], keys["signer"], recipients=[keys["recipient"]], scratch=scratch)
    base = ["recover", "--from", nas.root, "--identity", keys["identity"]]
    ran = run_cli(*base, "--to", tmp_path / "a")
    assert ran.code == 2
    assert "mission-control offsite key" in ran.err and not (tmp_path / "a").exists()
    by_env = run_cli(*base, "--to", tmp_path / "b", "--json",
                     env={"MC_OFFSITE_VERIFY_KEYS": keys["verify"]})
    assert by_env.code == 0 and by_env.json["authenticity"] == "verified"
    loose = run_cli(*base, "--to", tmp_path / "c", "--unverified", "--json")
    assert loose.code == 0
    assert loose.json["authenticity"] == "NOT CHECKED"
    assert "AUTHENTICITY NOT CHECKED" in loose.json["warning"]
    text = run_cli(*base, "--to", tmp_path / "d", "--unverified")
    assert text.out.startswith("WARNING: AUTHENTICITY NOT CHECKED")


@pytest.mark.parametrize("args,says", [
    (["--to", "{full}"], "not empty"),
    (["--to", "{file}"], "not a folder"),
    (["--to", "{new}", "--as-of", "yesterday"], "ISO 8601"),
    (["--to", "{new}", "--verify-key", "ed25519:nope"], "not an off-site verification key"),
    (["--to", "{new}", "--identity", "{file}"], "not an age secret key"),
])
def test_bad_usage_is_exit_2_and_touches_nothing(args, says, keys, nas, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    (full / "mission-control.db").write_text("precious")
    (tmp_path / "file").write_text("not a key")
    names = {"full": full, "file": tmp_path / "file", "new": tmp_path / "new"}
    args = [a.format(**names) for a in args]
    ran = run_cli("recover", "--from", nas.root, "--identity", keys["identity"],
                  "--verify-key", keys["verify"], *args)
    assert ran.code == 2, ran.out + ran.err
    assert says in ran.err
    assert (full / "mission-control.db").read_text() == "precious"
    assert not (tmp_path / "new").exists()


def test_a_delete_marker_is_skipped_and_as_of_reads_the_version_before(backups, keys, seaweed,
                                                                       scratch, tmp_path):
    bucket = seaweed.bucket(lock=False, versioned=True)
    storage = S3Storage(seaweed.client(SERVICE), bucket, "p/")
    older, newer = backups[0], backups[1]
    publish(storage, older, keys["signer"], recipients=[keys["recipient"]], scratch=scratch,
            created_at=time.time() - 10)
    publish(storage, newer, keys["signer"], recipients=[keys["recipient"]], scratch=scratch)
    time.sleep(2.1)  # SeaweedFS's LastModified has whole seconds
    before = time.time()
    time.sleep(1.1)
    storage.delete(newer.name + ".zst.age")
    args = ["--endpoint-url", seaweed.url, "--json"]
    now = recover(keys, f"s3://{bucket}/p", to=tmp_path / "now", extra=args,
                  env=seaweed.environ())
    assert now.code == 0, now.out
    assert now.json["recovered"]["backup"] == older.name
    assert now.json["skipped"] == [{"source": f"s3://{bucket}/p/",
                                    "name": newer.name + ".zst.age",
                                    "reason": "the copy is deleted (a delete marker)"}]
    then = recover(keys, f"s3://{bucket}/p", to=tmp_path / "then",
                   extra=[*args, "--as-of", iso(before)], env=seaweed.environ())
    assert then.code == 0, then.out
    assert then.json["recovered"]["backup"] == newer.name and then.json["versions_read"]
    assert rows(tmp_path / "then" / "mission-control.db") == rows(newer)


def test_as_of_walks_older_versions_to_the_genuine_entry_and_copy(backups, keys, seaweed,
                                                                  scratch, tmp_path):
    """Ransomware overwrote the newest copy and its catalog entry before the moment asked for:
    the versions under them are the genuine ones."""
    bucket = seaweed.bucket(lock=False, versioned=True)
    storage = S3Storage(seaweed.client(SERVICE), bucket, "p/")
    older, newer = backups[0], backups[1]
    publish(storage, older, keys["signer"], recipients=[keys["recipient"]], scratch=scratch,
            created_at=time.time() - 10)
    record = publish(storage, newer, keys["signer"], recipients=[keys["recipient"]],
                     scratch=scratch, created_at=time.time() - 5)
    genuine = storage.head(record["remote_name"]).version_id
    time.sleep(1.1)  # SeaweedFS's LastModified has whole seconds
    storage.put_bytes(record["remote_name"], os.urandom(record["size"]))  # same size, not ours
    storage.put_bytes(catalog.entry_key(record["remote_name"], True), b"ransom note")
    time.sleep(1.1)
    ran = recover(keys, f"s3://{bucket}/p", to=tmp_path / "to",
                  extra=["--endpoint-url", seaweed.url, "--json", "--as-of", iso(time.time())],
                  env=seaweed.environ())
    assert ran.code == 0, ran.out
    assert ran.json["recovered"]["backup"] == newer.name
    assert ran.json["recovered"]["version_id"] == genuine
    assert rows(tmp_path / "to" / "mission-control.db") == rows(newer)


def _write(path):
    path.write_bytes(b"half a database")


def test_a_killed_recovers_leftovers_do_not_block_a_rerun(backups, keys, nas, scratch,
                                                         tmp_path):
    publish(nas, backups[-1], keys["signer"], recipients=[keys["recipient"]], scratch=scratch)
    gone = subprocess.Popen(["true"])
    gone.wait()
    to = tmp_path / "to"
    to.mkdir()
    _write(to / f".mc-recover-{gone.pid}-00112233aabbccdd.tmp")
    _write(to / f".mc-recover-{gone.pid}-00112233aabbccdd.tmp-wal")
    (to / f".mc-pitr-restore-{gone.pid}-k3x9" / "ltx" / "0").mkdir(parents=True)
    ran = recover(keys, nas.root, to=to, extra=["--json"])
    assert ran.code == 0, ran.out + ran.err
    assert os.listdir(to) == ["mission-control.db"]
    assert rows(to / "mission-control.db") == rows(backups[-1])

    # Only a dead recover's own files: a live process's, a link named like one, and anything
    # else still make the folder "not empty", and stay.
    outside = tmp_path / "precious"
    _write(outside)
    for n, (name, make) in enumerate([
            (f".mc-recover-{os.getpid()}-aa.tmp", _write),
            (f".mc-recover-{gone.pid}-bb.tmp", lambda p: p.symlink_to(outside)),
            (f".mc-pitr-restore-{gone.pid}-cc", lambda p: p.symlink_to(tmp_path)),
            ("notes.txt", _write)]):
        other = tmp_path / f"other-{n}"
        other.mkdir()
        make(other / name)
        ran = recover(keys, nas.root, to=other)
        assert ran.code == 2 and "not empty" in ran.err, (name, ran.out, ran.err)
        assert os.listdir(other) == [name]
    assert outside.read_bytes() == b"half a database"
