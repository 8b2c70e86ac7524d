"""Sending a backup off-site, once for every storage: pack, put, check, sign, catalog, keep, report.

A target plugin only says where (a `FolderStorage`, an `S3Storage`) and how (`Codec`, `Policy`):
`StorageTarget` is that pair, and is also what fetches and drills read copies back from. Then
`send` does, for every kind of storage alike:

1. packs the backup (zstd, age) into a private scratch file beside it, or takes the backup itself
   when the copy is plain;
2. puts it under its remote name, locked when the policy says so (S3 Object Lock: mode and
   retain-until on the very upload, with its SHA-256 checksum);
3. checks what landed: its size, and the SHA-256 the store computed (S3's checksum) or, when the
   store reports none or the policy asks, a full read-back compared with what was written; and
   that the landed version carries the lock asked for (a store may ignore the headers);
4. puts the signed manifest (``<name>.manifest.json``) and the encrypted, signed catalog entry
   (``catalog/<name>.json.age``) beside it, under the same lock, and remembers the version id
   each of the three landed as;
5. keeps the newest ``policy.keep`` copies that are authentic (in this service's record, or with
   a manifest that verifies): anything else under the root is never counted and never deleted. A
   kept copy without a catalog entry gets one. A copy whose lock has not expired is not deleted
   but reported as held until its date; kept copies have the locks of their own versions
   extended to ``lock_days`` from now, each in its own mode; with ``no_delete`` nothing is ever
   deleted (the bucket's lifecycle rules expire old copies). A copy of the newest kept that
   was replaced (`changed`) or deleted (`missing`) by someone else is reported, and fails the
   verdict;
6. reports the result through ``mc.offsite.succeeded`` / ``failed``.

Putting and checking each object is `putting`'s; step 5 is `keeping`'s.
"""
import json
import os
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from functools import cached_property

from ..errors import describe_error
from ..files import remove_files, sha256_file
from ..backup.scratch import create_scratch
from .codec import REMOTE_PATTERN, Codec, Encoded, encode
from .keeping import retain
from .putting import (DAY, PACK_PREFIX, backup_shape, put_beside, put_copy, put_entry,
                      version_ids)
from .signing import MANIFEST_SUFFIX
from .storage import Lock
from .targets import RemoteCopy

MISSING_KEY = ("NoSuchKey", "404", "NotFound")


@dataclass(frozen=True)
class Policy:
    """What a target does beyond putting bytes: retention, locks, verification.

    :param keep: how many authentic copies to keep.
    :param lock_mode: "" (no lock), "GOVERNANCE" or "COMPLIANCE".
    :param lock_days: how long each upload is locked, and how far kept copies' locks are extended.
    :param no_delete: never call a delete: old copies are left to the storage's own expiry.
    :param verify_download: check every upload by reading it back in full.
    """

    keep: int = 10
    lock_mode: str = ""
    lock_days: int = 0
    no_delete: bool = False
    verify_download: bool = False

    def lock(self, now):
        """The `Lock` an upload at `now` carries, or None."""
        return Lock(self.lock_mode, now + self.lock_days * DAY) if self.lock_mode else None


@dataclass
class StorageTarget:
    """An off-site target over a storage, as ``offsite_targets`` offers it.

    :param name: the target's name (``dir``, ``s3``).
    :param make_storage: returns the storage; called once, when first needed (so naming the
        target needs no boto3 and no connection).
    :param codec: how copies are packed. :param policy: a `Policy`.
    :param location: where copies go, for messages (a folder, ``s3://bucket/prefix/``).
    :param notes: sentences health shows beside the target (e.g. that it never deletes).
    """

    name: str
    make_storage: object
    codec: Codec = field(default_factory=Codec)
    policy: Policy = field(default_factory=Policy)
    location: str = ""
    notes: tuple = ()

    @cached_property
    def storage(self):
        return self.make_storage()

    def where(self, key):
        """The address of `key`, for messages and the audit."""
        if "://" in self.location:
            return self.location + key
        return os.path.join(self.location, key)

    # -- what fetches and drills read --------------------------------------------------------
    def list_copies(self):
        return [RemoteCopy(o.key, o.size, int(o.modified)) for o in self.storage.list()
                if REMOTE_PATTERN.match(o.key)]

    def open_copy(self, name):
        if not REMOTE_PATTERN.match(name):  # the host checks too; a path never gets through
            raise FileNotFoundError(name)
        return self.storage.open(name)

    def read_manifest(self, name, limit):
        if not REMOTE_PATTERN.match(name):
            raise FileNotFoundError(name)
        key = name + MANIFEST_SUFFIX
        try:
            reader = self.storage.open(key)
        except FileNotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001 - botocore's ClientError, without importing it
            if getattr(exc, "response", {}).get("Error", {}).get("Code") in MISSING_KEY:
                return None
            raise  # unreadable (AccessDenied, a folder in its place, ...): not "no manifest"
        with closing(reader):
            return reader.read(limit)


@contextmanager
def packed(backup, codec):
    """`(path, Encoded)` of what to upload: the backup itself, or a packed scratch copy of it."""
    if codec.plain:
        digest = sha256_file(backup.path)
        size = os.stat(backup.path).st_size
        yield backup.path, Encoded(size, digest, size, digest, False, False)
        return
    path, out = create_scratch(backup.path.parent, PACK_PREFIX)
    try:
        with out:  # open (so locked against a start's sweep) until the upload is done
            encoded = encode(backup.path, out, codec)
            out.flush()
            os.fsync(out.fileno())
            yield path, encoded
    finally:
        remove_files(path)

def upload(mc, target, backup, remote_name):
    """Steps 1 to 4 of the module's list; the copy's `Encoded`.

    The version each object landed as is remembered with the copy's record (locks are later
    extended on exactly those versions), and so are the target's location and the copy's ETag
    (retention tells a deleted or replaced copy by them).
    :raises Exception: whatever failed (I/O, the store, a missing extra); nothing is reported.
    """
    storage = target.storage
    lock = target.policy.lock(mc.clock())
    with packed(backup, target.codec) as (path, encoded):
        landed = {remote_name: put_copy(storage, remote_name, path, encoded, lock,
                                        target.policy.verify_download)}
    manifest = mc.offsite.record_copy(target.name, backup, remote_name, encoded,
                                      location=target.location,
                                      etag=getattr(landed[remote_name], "etag", None))
    landed[remote_name + MANIFEST_SUFFIX] = put_beside(storage, remote_name + MANIFEST_SUFFIX,
                                                       manifest, lock)
    record = json.loads(manifest)["record"]
    landed.update(put_entry(mc, target, record, backup_shape(backup.path), lock))
    mc.offsite.set_versions(target.name, remote_name, version_ids(landed))
    return encoded

def send(mc, target, backup, actor):
    """Send `backup` to `target` (a `StorageTarget`) and report the result; never raises."""
    remote_name = target.codec.remote_name(backup.name)
    location = target.where(remote_name)
    started = time.perf_counter()
    try:
        encoded = upload(mc, target, backup, remote_name)
    except Exception as exc:  # noqa: BLE001 - I/O, the store's many kinds, a missing extra
        mc.offsite.failed(target.name, backup, actor, exc, location=location)
        return
    try:
        kept = retain(mc, target, remote_name)
    except Exception as exc:  # noqa: BLE001
        mc.offsite.failed(target.name, backup, actor, "copied and verified, but keeping the "
                          f"newest copies failed: {describe_error(exc)}", location=location)
        return
    detail = {**kept.to_json(), "duration_seconds": round(time.perf_counter() - started, 3)}
    if target.policy.lock_mode:
        detail["lock"] = {"mode": target.policy.lock_mode,
                          "until": int(target.policy.lock(mc.clock()).until)}
    mc.offsite.succeeded(target.name, backup, actor, location=location, detail=detail,
                         remote_name=remote_name, encoded=encoded)
