"""Coming back from off-site: listing a target's copies and fetching one back, over HTTP and the CLI."""
import io
import os
import subprocess
import sys

import pytest

from mission_control import RemoteCopy, encode, hookimpl
from mission_control.offsite.codec import Codec

from tests.support.offsite import PACKINGS, damage, expected_name, new_key, packing

#: In the slow lane (every packing to a folder and to moto's S3, and CLI runs: ~6 s on the 2-core machine).
pytestmark = pytest.mark.slow

pytest.importorskip("pyrage")
pytest.importorskip("zstandard")


@pytest.fixture
def nas(mc, tmp_path):
    folder = tmp_path / "nas"
    folder.mkdir()
    mc.settings.update({"offsite.dir.path": str(folder)}, actor="test")
    return folder


def leftovers(mc):
    return sorted(p.name for p in mc.backups.dir.iterdir() if not p.name.endswith(".lock"))


@pytest.mark.parametrize("compress,encrypt", PACKINGS)
def test_fetch_from_a_folder_in_every_packing(admin_client, mc, nas, compress, encrypt):
    identity, recipient = new_key()
    mc.settings.update(packing("dir", compress, encrypt, recipient), actor="test")
    made = mc.backups.create(actor="test")
    remote = expected_name(made.name, compress, encrypt)
    listed = admin_client.get("/api/offsite/dir/backups")
    assert listed.status_code == 200
    assert listed.json["backups"] == [{
        "name": remote, "size": (nas / remote).stat().st_size,
        "created_at": int((nas / remote).stat().st_mtime),
        "encrypted": encrypt, "compressed": compress == "zstd", "kind": "full"}]
    fetched = admin_client.post("/api/offsite/dir/fetch", json={
        "name": remote, **({"identity": identity} if encrypt else {})})
    assert fetched.status_code == 200, fetched.json
    assert fetched.json["sha256_match"] is True
    kept = mc.backups.dir / f"offsite-{made.name}"
    assert fetched.json["backup"]["name"] == kept.name
    assert kept.read_bytes() == made.path.read_bytes()
    [event] = mc.audit_store.query(action="offsite_fetch")[0]
    assert event["detail"]["name"] == remote and event["actor"] == "alice"
    restored = admin_client.post("/api/backup/restore", json={"name": kept.name})
    assert restored.status_code == 200, restored.json


@pytest.mark.parametrize("compress,encrypt", PACKINGS)
def test_fetch_from_a_bucket_in_every_packing(mc, s3, s3_server, bucket, compress, encrypt):
    identity, recipient = new_key()
    mc.settings.update({"offsite.s3.bucket": bucket, "offsite.s3.endpoint_url": s3_server.url,
                        "offsite.s3.region": "us-east-1", "offsite.age_identity": identity,
                        **packing("s3", compress, encrypt, recipient)}, actor="test")
    made = mc.backups.create(actor="test")
    from mission_control.offsite.targets import fetch
    result = fetch(mc, "s3", expected_name(made.name, compress, encrypt), "test")
    assert result["sha256_match"] is True
    assert (mc.backups.dir / f"offsite-{made.name}").read_bytes() == made.path.read_bytes()


@pytest.mark.parametrize("compress,encrypt,how", [
    ("zstd", True, "wrong identity"), ("zstd", True, "truncated"), ("zstd", True, "flipped"),
    ("zstd", False, "truncated"), ("zstd", False, "flipped"),
    ("none", False, "truncated"), ("none", False, "flipped"), ("none", True, "flipped")])
def test_damaged_copies_and_wrong_keys_are_refused_leaving_nothing(admin_client, mc, nas, compress,
                                                                   encrypt, how):
    identity, recipient = new_key()
    mc.settings.update(packing("dir", compress, encrypt, recipient), actor="test")
    made = mc.backups.create(actor="test")
    remote = nas / expected_name(made.name, compress, encrypt)
    if how == "wrong identity":
        identity = new_key()[0]
    else:
        damage(remote, how)
    before = leftovers(mc)
    refused = admin_client.post("/api/offsite/dir/fetch", json={"name": remote.name,
                                                                "identity": identity})
    assert refused.status_code == 400, refused.json
    reason = " ".join([refused.json["error"], *refused.json.get("details", [])])
    if how == "wrong identity":
        assert "cannot decrypt" in reason, reason
    elif encrypt:
        assert "cannot decrypt" in reason, reason  # age authenticates every 64 KiB chunk
    elif compress == "zstd":
        assert {"truncated": "truncated", "flipped": "checksum"}[how] in reason, reason
    assert leftovers(mc) == before  # no offsite-* file, no temporary file
    [event] = mc.audit_store.query(action="offsite_fetch_refused")[0]
    assert event["detail"]["name"] == remote.name and event["detail"]["reason"]
    assert identity not in str(event) and identity not in refused.get_data(as_text=True)


def test_identity_comes_from_the_secret_setting_and_is_never_shown(admin_client, mc, nas):
    identity, recipient = new_key()
    mc.settings.update({"offsite.dir.age_recipients": recipient}, actor="test")
    made = mc.backups.create(actor="test")
    missing = admin_client.post("/api/offsite/dir/fetch", json={"name": f"{made.name}.age"})
    assert missing.status_code == 400 and "identity" in missing.json["error"]
    put = admin_client.put("/api/settings", json={"settings": {"offsite.age_identity": identity}})
    assert put.status_code == 200
    fetched = admin_client.post("/api/offsite/dir/fetch", json={"name": f"{made.name}.age"})
    assert fetched.status_code == 200 and fetched.json["sha256_match"] is True
    for url in ("/api/settings", "/api/audit?limit=1000", "/api/offsite"):
        assert identity not in admin_client.get(url).get_data(as_text=True)


def test_bad_requests(admin_client, mc, nas):
    made = mc.backups.create(actor="test")
    assert admin_client.get("/api/offsite/nowhere/backups").status_code == 404
    assert admin_client.post("/api/offsite/dir/fetch",
                             json={"name": "../../etc/passwd"}).status_code == 400
    assert admin_client.post("/api/offsite/dir/fetch",
                             json={"name": made.name, "extra": 1}).status_code == 400
    gone = admin_client.post("/api/offsite/dir/fetch",
                             json={"name": "mc-backup-2000-01-01_00-00-00.db"})
    assert gone.status_code == 404
    mc.settings.update({"offsite.dir.path": str(nas / "unmounted")}, actor="test")
    unreadable = admin_client.get("/api/offsite/dir/backups")
    assert unreadable.status_code == 502 and str(nas) not in unreadable.get_data(as_text=True)


def run_cli(mc, *argv):
    return subprocess.run([sys.executable, "-m", "mission_control", *argv, "--data-dir",
                           str(mc.config.data_dir)], capture_output=True, text=True, timeout=120)


def test_cli_lists_and_fetches_with_an_identity_file(mc, nas, tmp_path):
    identity, recipient = new_key()
    mc.settings.update(packing("dir", "zstd", True, recipient), actor="test")
    made = mc.backups.create(actor="test")
    listed = run_cli(mc, "offsite", "list", "dir")
    assert listed.returncode == 0 and f"{made.name}.zst.age" in listed.stdout
    key = tmp_path / "key.txt"
    key.write_text(f"# created: now\n# public key: {recipient}\n{identity}\n")
    fetched = run_cli(mc, "offsite", "fetch", "dir", f"{made.name}.zst.age", "--identity-file",
                      str(key))
    assert fetched.returncode == 0, fetched.stderr
    assert f"offsite-{made.name}" in fetched.stdout and "matches" in fetched.stdout
    again = run_cli(mc, "offsite", "fetch", "dir", f"{made.name}.zst.age")
    assert again.returncode == 2 and "identity" in again.stderr
    assert "Traceback" not in again.stderr


class MemoryTarget:
    """A third-party target: copies kept in a dict, packed with the host's `encode`."""

    name = "memory"

    def __init__(self):
        self.copies = {}

    def list_copies(self):
        return [RemoteCopy(name, len(data), 0) for name, data in self.copies.items()]

    def open_copy(self, name):
        return io.BytesIO(self.copies[name])


def test_a_third_party_target_takes_part(make_mc):
    target = MemoryTarget()

    class Plugin:
        @hookimpl
        def offsite_targets(self, mc):
            return [target]

        @hookimpl
        def post_backup(self, mc, backup, actor):
            sink = io.BytesIO()
            encoded = encode(backup.path, sink, Codec("zstd", 1))
            target.copies[backup.name + ".zst"] = sink.getvalue()
            mc.offsite.succeeded("memory", backup, actor, location="memory",
                                 remote_name=backup.name + ".zst", encoded=encoded)

    mc = make_mc(plugins=[Plugin()])
    made = mc.backups.create(actor="test")
    from mission_control.offsite.targets import fetch
    assert fetch(mc, "memory", made.name + ".zst", "test")["sha256_match"] is True
    assert os.path.exists(mc.backups.dir / f"offsite-{made.name}")
