"""The storage primitives against a real folder and a real object store (SeaweedFS)."""
import json
import os
import time

import pytest
from botocore.exceptions import ClientError

from mission_control.offsite.catalog import build, copy_name, entry_key, read
from mission_control.offsite.codec import CopyDamaged
from mission_control.offsite.signing import NotAuthentic, Signer
from mission_control.offsite.storage import (FolderStorage, Lock, ObjectHeld, S3Storage,
                                             check_key, open_storage)
from tests.support.seaweed import ADMIN, SERVICE

pytestmark = pytest.mark.slow


@pytest.fixture(params=["folder", "s3"])
def storage(request, tmp_path):
    if request.param == "folder":
        root = tmp_path / "remote"
        root.mkdir()
        return FolderStorage(root)
    seaweed = request.getfixturevalue("seaweed")
    return S3Storage(seaweed.client(SERVICE), seaweed.bucket(lock=False), "pre/fix")


def test_put_list_open_head_delete(storage, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(1000))
    stored = storage.put("a/b.bin", src)
    assert stored.size == 1000
    storage.put_bytes("c.json", b"{}")
    assert [o.key for o in storage.list()] == ["a/b.bin", "c.json"]
    assert [o.key for o in storage.list("a/")] == ["a/b.bin"]
    with storage.open("a/b.bin") as f:
        assert f.read() == src.read_bytes()
    assert storage.head("missing") is None
    storage.delete("c.json")
    assert [o.key for o in storage.list()] == ["a/b.bin"]


@pytest.mark.parametrize("key", ["", "/abs", "../up", "a/../b", "a//b", "a/./b", "a\\b"])
def test_keys_that_leave_the_root_are_refused(key):
    with pytest.raises(ValueError):
        check_key(key)


def test_a_folder_never_overwrites(tmp_path):
    storage = FolderStorage(tmp_path)
    storage.put_bytes("k", b"one")
    with pytest.raises(FileExistsError):
        storage.put_bytes("k", b"two")
    assert (tmp_path / "k").read_bytes() == b"one"
    assert os.listdir(tmp_path) == ["k"]  # no temporary file left


def test_object_lock_holds_and_extends(seaweed, tmp_path):
    bucket = seaweed.bucket(lock=True)
    storage = S3Storage(seaweed.client(SERVICE), bucket, "p/")
    plain = S3Storage(seaweed.client(SERVICE), seaweed.bucket(lock=False), "p/")
    assert storage.lock_enabled() and not plain.lock_enabled()
    until = time.time() + 86400
    stored = storage.put_bytes("x.db", b"data", lock=Lock("COMPLIANCE", until))
    assert stored.lock_mode == "COMPLIANCE" and abs(stored.retain_until - until) < 2
    assert stored.sha256 == "3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7"
    storage.extend_lock("x.db", stored.version_id, Lock("COMPLIANCE", until + 86400))
    assert storage.head("x.db").retain_until > until + 86000
    with pytest.raises(ClientError) as shortened:  # shortening is refused by the store
        storage.extend_lock("x.db", stored.version_id, Lock("COMPLIANCE", until))
    assert shortened.value.response["Error"]["Code"] == "AccessDenied"
    assert shortened.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert storage.head("x.db").retain_until > until + 86000
    storage.delete("x.db")  # only a delete marker on a versioned bucket
    versions = storage.versions()
    assert [(v.delete_marker, v.is_latest) for v in versions] == [(True, True), (False, False)]
    with storage.open("x.db", versions[1].version_id) as f:
        assert f.read() == b"data"


def test_a_locked_version_cannot_be_deleted(seaweed):
    storage = S3Storage(seaweed.client(SERVICE), seaweed.bucket(lock=True), "")
    stored = storage.put_bytes("y.db", b"data", lock=Lock("GOVERNANCE", time.time() + 3600))
    client = seaweed.client(SERVICE)
    with pytest.raises(ClientError) as refused:
        client.delete_object(Bucket=storage.bucket, Key="y.db", VersionId=stored.version_id)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert storage.head("y.db", stored.version_id) is not None
    admin = seaweed.client(ADMIN)  # a bucket owner may bypass GOVERNANCE, never COMPLIANCE
    admin.delete_object(Bucket=storage.bucket, Key="y.db", VersionId=stored.version_id,
                        BypassGovernanceRetention=True)
    assert storage.head("y.db", stored.version_id) is None


def test_open_storage_addresses(tmp_path):
    assert isinstance(open_storage(str(tmp_path)), FolderStorage)
    assert open_storage(f"file://{tmp_path}").root == str(tmp_path)
    for bad in ("relative/path", "http://x/y", "s3://"):
        with pytest.raises(ValueError):
            open_storage(bad)


def test_catalog_entry_round_trip_and_forgery(tmp_path):
    pyrage = pytest.importorskip("pyrage")
    ident = pyrage.x25519.Identity.generate()
    signer = Signer(str(tmp_path / "k"), announce=lambda _: None)
    other = Signer(str(tmp_path / "other"), announce=lambda _: None)
    record = {"target": "s3", "remote_name": "mc-backup-20261205-120000.db.age",
              "backup": "mc-backup-20261205-120000.db", "size": 10, "sha256": "a" * 64,
              "plain_size": 9, "plain_sha256": "b" * 64, "compressed": False,
              "encrypted": True, "created_at": 1}
    key, data = build(signer.private_key(), record, 6, 4096, [str(ident.to_public())])
    assert key == entry_key(record["remote_name"], True) and copy_name(key) == record["remote_name"]
    assert data.startswith(b"age-encryption.org/v1")
    mine = (signer.private_key().public_key(),)
    entry = read(data, str(ident), mine)
    assert entry["schema_version"] == 6 and entry["plain_sha256"] == "b" * 64
    with pytest.raises(CopyDamaged):
        read(data, str(pyrage.x25519.Identity.generate()), mine)
    _, forged = build(other.private_key(), record, 6, 4096, [str(ident.to_public())])
    with pytest.raises(NotAuthentic):
        read(forged, str(ident), mine)


def test_a_delta_copys_chain_fields_are_signed_in_its_manifest_and_catalog_entry(tmp_path):
    signer = Signer(str(tmp_path / "k"), announce=lambda _: None)
    name = "mc-backup-2026-12-05_12-00-00.db"
    pack = {name + ".pages.zst": {"size": 77, "sha256": "c" * 64}}
    record = {"target": "dir", "remote_name": name + ".delta.zst", "backup": name, "size": 10,
              "sha256": "a" * 64, "plain_size": 4096, "plain_sha256": "b" * 64,
              "compressed": True, "encrypted": False, "created_at": 1,
              "parent": "mc-backup-2026-12-05_11-00-00.db.zst", "chain_length": 1,
              "objects": pack}
    manifest = signer.sign(record)
    assert signer.verify(manifest, record["remote_name"]) == record
    mine = (signer.private_key().public_key(),)
    _, entry = build(signer.private_key(), record, 6, 4096)
    assert read(entry, "", mine)["parent"] == record["parent"]
    assert read(entry, "", mine)["objects"] == pack
    # A full copy's record has no chain fields, and signs as it did before they existed.
    full = {k: v for k, v in record.items() if k not in ("parent", "chain_length", "objects")}
    assert "parent" not in signer.verify(signer.sign(full), record["remote_name"])
    # Whoever edits the parent (to graft the copy onto a chain of their own) breaks the signature.
    doc = json.loads(manifest)
    doc["record"]["parent"] = "mc-backup-2026-12-05_10-00-00.db.zst"
    with pytest.raises(NotAuthentic):
        signer.verify(json.dumps(doc).encode(), record["remote_name"])
    doc["record"]["parent"] = "../escape"
    with pytest.raises(NotAuthentic):
        signer.verify(json.dumps(doc).encode(), record["remote_name"])


def test_a_deeply_nested_planted_manifest_or_entry_is_not_authentic_and_raises_nothing_else(
        tmp_path):
    signer = Signer(str(tmp_path / "k"), announce=lambda _: None)
    nested = b"[" * 100_000
    with pytest.raises(NotAuthentic):
        signer.verify(nested, "mc-backup-2099-01-01_00-00-00.db")
    with pytest.raises(CopyDamaged):
        read(nested[:60_000], "", (signer.private_key().public_key(),))


class _RefusingDeletes:
    """A loopback S3 endpoint that refuses every DELETE and heads the object with a lock that
    ends at `until` (unix s): a bucket policy without delete rights, seen from the service."""

    def __init__(self, until):
        import threading
        from email.utils import formatdate
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(until))

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self):  # noqa: N802
                self.send_response(200)
                for name, value in (("Content-Length", "4"),
                                    ("Last-Modified", formatdate(usegmt=True)),
                                    ("x-amz-object-lock-mode", "GOVERNANCE"),
                                    ("x-amz-object-lock-retain-until-date", stamp)):
                    self.send_header(name, value)
                self.end_headers()

            def do_DELETE(self):  # noqa: N802
                body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied'
                        b'</Code><Message>Access Denied.</Message></Error>')
                self.send_response(403)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.mark.parametrize("ahead, held", [(3600, True), (-3600, False)])
def test_a_refused_delete_is_held_only_while_the_lock_runs(ahead, held, aws_env):
    from mission_control.offsite.storage import make_s3_client
    endpoint = _RefusingDeletes(time.time() + ahead)
    try:
        storage = S3Storage(make_s3_client(endpoint.url, "us-east-1"), "bucket", "p/")
        # An expired lock does not hold anything: the refusal is a failure to report.
        with pytest.raises(ObjectHeld if held else ClientError) as refused:
            storage.delete("mc-backup-2026-12-05_12-00-00.db")
        if held:
            assert refused.value.until > time.time()
        else:
            assert refused.value.response["Error"]["Code"] == "AccessDenied"
    finally:
        endpoint.server.shutdown()


def test_an_unversioned_buckets_versions_have_no_version_id(seaweed):
    storage = S3Storage(seaweed.client(SERVICE), seaweed.bucket(lock=False), "p/")
    stored = storage.put_bytes("x.db", b"data")
    [version] = storage.versions()
    assert (version.key, version.version_id, stored.version_id) == ("x.db", None, None)
    with storage.open("x.db", version.version_id) as f:  # usable as it is
        assert f.read() == b"data"


def test_head_gives_the_etag_which_a_same_size_overwrite_changes(seaweed):
    storage = S3Storage(seaweed.client(SERVICE), seaweed.bucket(lock=False), "p/")
    stored = storage.put_bytes("x.db", b"data")
    assert stored.etag and '"' not in stored.etag and storage.head("x.db").etag == stored.etag
    seaweed.client(SERVICE).put_object(Bucket=storage.bucket, Key="p/x.db", Body=b"DATA")
    again = storage.head("x.db")
    assert again.size == stored.size and again.etag != stored.etag
