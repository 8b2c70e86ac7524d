"""Off-site copies are authentic: a copy planted with the public age key alone is refused.

Whoever can write to the folder or bucket can encrypt a file to the age recipient. Only copies in
the signed record of copies this service made (its database, or a manifest signed with its
Ed25519 key beside the copy) are fetched, drilled or restored.
"""
import json
import logging
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mission_control import MANIFEST_SUFFIX, encode
from mission_control.config import Config
from mission_control.errors import BadRequest
from mission_control.health import backup_status
from mission_control.logs import TEXT_FORMAT, TextFormatter
from mission_control.offsite.codec import Codec
from mission_control.offsite.drill import drill_all
from mission_control.offsite.signing import KEY_FILE
from mission_control.offsite.signing import FORMAT
from mission_control.offsite.targets import fetch

from tests.support.cli_run import run_cli
from tests.support.offsite import damage, new_key

#: In the slow lane (`serve` processes, CLI runs and S3 round trips: ~3.5 s on the 2-core machine).
pytestmark = pytest.mark.slow

pytest.importorskip("pyrage")
pytest.importorskip("zstandard")

PLANTED = "mc-backup-2099-01-01_00-00-00.db"  # newer than any real copy: the drill's old pick
ROOT = Path(__file__).resolve().parents[2]


def planted_database(mc, tmp_path):
    """A genuine-looking backup in which `mallory` is an admin (the live database, edited)."""
    path = tmp_path / PLANTED
    live, conn = sqlite3.connect(mc.config.db_path), sqlite3.connect(path)
    live.backup(conn)
    live.close()
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("INSERT INTO users (username, display_name, role, password_hash, created_at,"
                 " updated_at) VALUES ('mallory', 'mallory', 'admin', 'x', 0, 0)")
    conn.commit()
    conn.close()
    return path


def plant(mc, tmp_path, recipient):
    """`(name, bytes)` of a planted copy: the edited backup encrypted to the public key alone."""
    out = tmp_path / "planted.age"
    with open(out, "wb") as sink:
        encode(planted_database(mc, tmp_path), sink, Codec(recipients=(recipient,)))
    return PLANTED + ".age", out.read_bytes()


def usernames(mc):
    return sorted(u.username for u in mc.users.list())


@pytest.fixture
def keys():
    return new_key()


@pytest.fixture
def nas(mc, tmp_path, keys):
    identity, recipient = keys
    folder = tmp_path / "nas"
    folder.mkdir()
    mc.settings.update({"offsite.dir.path": str(folder), "offsite.dir.compress": "zstd",
                        "offsite.dir.age_recipients": recipient,
                        "offsite.age_identity": identity}, actor="test")
    return folder


def test_a_copy_planted_in_the_folder_is_refused_by_fetch_drill_and_restore(admin_client, mc, nas,
                                                                             keys, tmp_path):
    genuine = f"{mc.backups.create(actor='test').name}.zst.age"
    name, data = plant(mc, tmp_path, keys[1])
    (nas / name).write_bytes(data)
    before = usernames(mc)

    refused = admin_client.post("/api/offsite/dir/fetch", json={"name": name})
    assert refused.status_code == 400, refused.json
    assert "not in the signed record" in refused.json["error"], refused.json
    [event] = mc.audit_store.query(action="offsite_fetch_refused")[0]
    assert event["detail"]["name"] == name and "signed record" in event["detail"]["reason"]
    assert not (mc.backups.dir / f"offsite-{PLANTED}").exists()
    by_cli = run_cli("offsite", "fetch", "dir", name, "--data-dir", mc.config.data_dir)
    assert by_cli.code == 2 and "not in the signed record" in by_cli.err, by_cli

    # The drill checks the newest *recorded* copy, and the planted one is a problem.
    [result] = drill_all(mc, "test")
    assert result["ok"] is False and result["name"] == genuine and result["mode"] == "full"
    assert result["unrecorded"] == [name]
    assert "matches the backup that was sent" in result["message"]
    assert "not in the signed record" in result["message"] and name in result["message"]
    assert backup_status(mc)["verdict"] == "fail"

    # Nothing was fetched, so there is nothing to restore; a planted file already in the folder
    # (fetched by a version that did not sign) is refused by restore too.
    missing = admin_client.post("/api/backup/restore", json={"name": f"offsite-{PLANTED}"})
    assert missing.status_code == 404
    shutil.copyfile(tmp_path / PLANTED, mc.backups.dir / f"offsite-{PLANTED}")
    restored = admin_client.post("/api/backup/restore", json={"name": f"offsite-{PLANTED}"})
    assert restored.status_code == 400, restored.json
    assert "no signed record" in restored.json["error"]
    assert usernames(mc) == before and "mallory" not in before
    [failed] = mc.audit_store.query(action="backup_restore_failed")[0]
    assert "signed record" in failed["detail"]["reason"]

    fetched = admin_client.post("/api/offsite/dir/fetch", json={"name": genuine})
    assert fetched.status_code == 200, fetched.json
    assert fetched.json["sha256_match"] is True


def test_a_damaged_real_copy_fails_the_drill_even_beside_a_newer_planted_one(mc, nas, keys,
                                                                            tmp_path):
    genuine = f"{mc.backups.create(actor='test').name}.zst.age"
    [result] = drill_all(mc, "test")
    assert result["ok"] is True and result["unrecorded"] == []
    name, data = plant(mc, tmp_path, keys[1])
    (nas / name).write_bytes(data)
    damage(nas / genuine, "flipped")
    [result] = drill_all(mc, "test")
    assert result["ok"] is False and result["name"] == genuine
    assert result["message"].startswith("cannot decrypt"), result["message"]
    assert result["unrecorded"] == [name]


def test_manifests_that_do_not_verify_are_refused(mc, nas, keys, tmp_path):
    genuine = f"{mc.backups.create(actor='test').name}.zst.age"
    manifest = json.loads((nas / (genuine + MANIFEST_SUFFIX)).read_bytes())
    assert manifest["format"] == FORMAT and manifest["record"]["remote_name"] == genuine
    name, data = plant(mc, tmp_path, keys[1])
    (nas / name).write_bytes(data)

    # A genuine manifest copied beside the planted copy describes another copy.
    shutil.copyfile(nas / (genuine + MANIFEST_SUFFIX), nas / (name + MANIFEST_SUFFIX))
    with pytest.raises(BadRequest, match="describes another copy"):
        fetch(mc, "dir", name, "test")
    # A manifest for the planted copy, signed with a key of the attacker's own.
    from mission_control.offsite.signing import Signer
    forger = Signer(tmp_path / "forger.key", announce=lambda text: None)  # a key of its own
    record = {**manifest["record"], "remote_name": name, "backup": PLANTED}
    (nas / (name + MANIFEST_SUFFIX)).write_bytes(forger.sign(record))
    with pytest.raises(BadRequest, match="signature does not verify"):
        fetch(mc, "dir", name, "test")
    [result] = drill_all(mc, "test")
    assert result["name"] == genuine and result["unrecorded"] == [name]


def test_the_same_name_with_other_bytes_is_refused(mc, tmp_path):
    folder = tmp_path / "nas"
    folder.mkdir()
    mc.settings.update({"offsite.dir.path": str(folder)}, actor="test")  # no extras needed
    made = mc.backups.create(actor="test")
    shutil.copyfile(planted_database(mc, tmp_path), folder / made.name)
    with pytest.raises(BadRequest, match="differs from the signed record"):
        fetch(mc, "dir", made.name, "test")
    [result] = drill_all(mc, "test")
    assert result["ok"] is False and "differs from the signed record" in result["message"]


def test_a_new_host_trusts_the_old_hosts_verification_key(mc, make_mc, nas, keys, tmp_path):
    genuine = f"{mc.backups.create(actor='test').name}.zst.age"
    name, data = plant(mc, tmp_path, keys[1])
    (nas / name).write_bytes(data)
    old_key = mc.offsite.signer.verify_key()

    def new_host(folder, environ):
        other = make_mc(config=Config.from_env(environ, data_dir=tmp_path / folder))
        other.settings.update({"offsite.dir.path": str(nas),
                               "offsite.age_identity": keys[0]}, actor="test")
        return other

    stranger = new_host("stranger", {})
    with pytest.raises(BadRequest, match="signature does not verify"):
        fetch(stranger, "dir", genuine, "test")
    heir = new_host("heir", {"MC_OFFSITE_VERIFY_KEYS": old_key})
    assert fetch(heir, "dir", genuine, "test")["sha256_match"] is True
    with pytest.raises(BadRequest, match="not in the signed record"):
        fetch(heir, "dir", name, "test")
    [result] = drill_all(heir, "test")
    assert result["name"] == genuine and result["unrecorded"] == [name]


def test_a_manifest_signed_for_another_target_is_refused(mc, make_mc, nas, keys):
    """A genuine copy and its manifest moved from one target to another are not in the record
    of copies made at the second one: the record names the target it was sent to."""
    genuine = f"{mc.backups.create(actor='test').name}.zst.age"
    record = json.loads((nas / (genuine + MANIFEST_SUFFIX)).read_bytes())["record"]
    assert record["target"] == "dir"
    # What the same copy's manifest in the bucket would be, put in the folder.
    (nas / (genuine + MANIFEST_SUFFIX)).write_bytes(
        mc.offsite.signer.sign({**record, "target": "s3"}))
    heir = make_mc(config=Config.from_env({"MC_OFFSITE_VERIFY_KEYS":
                                           mc.offsite.signer.verify_key()},
                                          data_dir=nas.parent / "heir"))
    heir.settings.update({"offsite.dir.path": str(nas), "offsite.age_identity": keys[0]},
                         actor="test")
    with pytest.raises(BadRequest, match="copy sent to another target"):
        fetch(heir, "dir", genuine, "test")
    assert heir.offsite.copy_record("dir", genuine) is None
    [result] = drill_all(heir, "test")
    assert result["ok"] is False and result["unrecorded"] == [genuine]


def test_a_manifest_that_cannot_be_read_is_a_502_audited(admin_client, mc, nas, keys, tmp_path):
    """The target's own error reading a manifest (here a folder in its place; in a bucket, an
    AccessDenied) is the target's failure: 502 without a host path, audited, nothing kept."""
    mc.backups.create(actor="test")
    name, data = plant(mc, tmp_path, keys[1])
    (nas / name).write_bytes(data)
    (nas / (name + MANIFEST_SUFFIX)).mkdir()
    answer = admin_client.post("/api/offsite/dir/fetch", json={"name": name})
    assert answer.status_code == 502, answer.json
    assert "manifest cannot be read" in answer.json["error"]
    assert str(nas) not in json.dumps(answer.json)
    [event] = mc.audit_store.query(action="offsite_fetch_refused")[0]
    assert event["detail"]["status"] == 502 and "manifest" in event["detail"]["reason"]
    assert not (mc.backups.dir / f"offsite-{PLANTED}").exists()
    [result] = drill_all(mc, "test")
    assert result["ok"] is False and "manifest cannot be read" in result["message"]


def test_a_bad_verification_key_in_the_environment_is_a_config_error():
    from mission_control.config import ConfigError
    with pytest.raises(ConfigError, match="MC_OFFSITE_VERIFY_KEYS"):
        Config.from_env({"MC_OFFSITE_VERIFY_KEYS": "ed25519:short"}, data_dir="/nowhere")


def test_a_copy_planted_in_the_bucket_is_refused(mc, s3, s3_server, bucket, keys, tmp_path):
    identity, recipient = keys
    mc.settings.update({"offsite.s3.bucket": bucket, "offsite.s3.endpoint_url": s3_server.url,
                        "offsite.s3.region": "us-east-1", "offsite.s3.age_recipients": recipient,
                        "offsite.age_identity": identity}, actor="test")
    genuine = f"{mc.backups.create(actor='test').name}.age"
    name, data = plant(mc, tmp_path, recipient)
    s3.put_object(Bucket=bucket, Key=f"mission-control/{name}", Body=data)
    with pytest.raises(BadRequest, match="not in the signed record"):
        fetch(mc, "s3", name, "test")
    assert not (mc.backups.dir / f"offsite-{PLANTED}").exists()
    [result] = drill_all(mc, "test")
    assert result["ok"] is False and result["name"] == genuine and result["mode"] == "full"
    assert result["unrecorded"] == [name]
    assert fetch(mc, "s3", genuine, "test")["sha256_match"] is True


def test_the_signing_key_is_private_and_its_verification_key_shown(admin_client, mc, nas):
    assert admin_client.get("/api/offsite").json["verify_key"] is None  # none made yet
    mc.backups.create(actor="test")
    key_file = mc.config.db_path.parent / KEY_FILE
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    shown = admin_client.get("/api/offsite").json["verify_key"]
    assert shown.startswith("ed25519:") and len(shown) == len("ed25519:") + 44
    ran = run_cli("--json", "offsite", "key", "--data-dir", mc.config.data_dir)
    assert ran.code == 0 and ran.json == {"verify_key": shown, "created": False}
    assert key_file.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_the_new_key_is_announced_on_one_log_line(mc, nas, caplog):
    caplog.set_level(logging.WARNING, logger="mission_control.offsite")
    mc.backups.create(actor="test")  # the first copy makes the key: a WARNING says so
    [record] = [r for r in caplog.records if "verification key is ed25519:" in r.getMessage()]
    line = TextFormatter(TEXT_FORMAT).format(record)
    assert "\n" not in line and "\\x0a" not in line, line
    assert "keep it with the age identity" in line and "mission-control offsite key" in line


def test_a_signing_key_others_can_read_is_named_with_its_mode_and_left_alone(mc, nas):
    mc.backups.create(actor="test")
    key_file = mc.config.db_path.parent / KEY_FILE
    os.chmod(key_file, 0o644)  # as a careless restore of the data folder leaves it
    ran = run_cli("offsite", "key", "--data-dir", mc.config.data_dir)
    assert ran.code == 0
    assert f"the off-site signing key {key_file} can be read by other users (mode 0o644)" \
        in ran.err, ran.err
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o644


def test_serve_shows_the_verification_key_once_on_first_start(tmp_path):
    data = tmp_path / "data"

    def start():
        env = {**os.environ, "AUTH_USER": "alice", "AUTH_PASS": "correct-horse-battery",
               "MC_LOG_LEVEL": "WARNING"}
        proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--port", "0",
                                 "--data-dir", str(data)], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "http://" in line:
                break
        proc.terminate()
        proc.communicate(timeout=30)
        return "".join(lines)

    first = start()
    assert "verification key is ed25519:" in first, first
    key = first.split("verification key is ", 1)[1].split()[0]
    second = start()
    assert "verification key" not in second and "http://" in second
    ran = run_cli("offsite", "key", "--data-dir", data)
    assert ran.code == 0 and ran.out.splitlines()[0] == key
