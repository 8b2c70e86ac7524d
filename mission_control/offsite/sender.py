"""Sending a backup off-site, once for every storage: pack, put, check, sign, catalog, keep, report.

A target plugin only says where (a `FolderStorage`, an `S3Storage`) and how (`Codec`, `Policy`):
`StorageTarget` is that pair, and is also what fetches and drills read copies back from. Then
`send` does, for every kind of storage alike:

1. packs the backup (zstd, age) into a private scratch file beside it, or takes the backup itself
   when the copy is plain; a storage that offers its temporary file (a folder,
   `FolderStorage.writing`) has the backup packed straight into it instead, every byte read
   back as it is written and compared, and the file named only once all matched
   (`putting.pack_into`): no scratch copy to copy again;
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

With ``policy.incremental`` a copy may instead be a delta over the previous one (`chains.plan`
says when): steps 1 and 2 write its pack and manifest (`delta.write_delta`) into a private
scratch folder and put the pack, then the manifest, each checked as in step 3; the copy's name
is its manifest's. Retention then keeps the chains of the copies it keeps.

Putting and checking each object is `putting`'s; step 5 is `keeping`'s; choosing full or delta
and the page hashes kept locally are `chains`'.
"""
import json
import logging
import os
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from functools import cached_property

from ..errors import describe_error
from ..files import remove_files, sha256_file
from ..backup.scratch import create_scratch, scratch_folder
from . import chains
from .codec import REMOTE_PATTERN, Codec, Encoded, encode
from .delta import DeltaError, manifest_name, page_hashes, write_delta
from .keeping import retain
from .putting import (DAY, PACK_PREFIX, backup_shape, pack_into, put_beside, put_copy,
                      put_entry, version_ids)
from .signing import MANIFEST_SUFFIX
from .storage import Lock
from .targets import RemoteCopy

MISSING_KEY = ("NoSuchKey", "404", "NotFound")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Policy:
    """What a target does beyond putting bytes: retention, locks, verification.

    :param keep: how many authentic copies to keep.
    :param lock_mode: "" (no lock), "GOVERNANCE" or "COMPLIANCE".
    :param lock_days: how long each upload is locked, and how far kept copies' locks are extended.
    :param no_delete: never call a delete: old copies are left to the storage's own expiry.
    :param verify_download: check every upload by reading it back in full.
    :param incremental: after a full copy, send only the pages that changed (`chains`).
    :param full_every: at most this many incremental copies follow a full copy.
    """

    keep: int = 10
    lock_mode: str = ""
    lock_days: int = 0
    no_delete: bool = False
    verify_download: bool = False
    incremental: bool = False
    full_every: int = 7

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

def upload(mc, target, backup, remote_name, shape):
    """Steps 1 to 4 of the module's list for a full copy; the copy's `Encoded`.

    The version each object landed as is remembered with the copy's record (locks are later
    extended on exactly those versions), and so are the target's location and the copy's ETag
    (retention tells a deleted or replaced copy by them).
    :param shape: `(schema_version, page_size)` of the backup (`backup_shape`).
    :raises Exception: whatever failed (I/O, the store, a missing extra); nothing is reported.
    """
    storage = target.storage
    lock = target.policy.lock(mc.clock())
    verify = target.policy.verify_download
    if target.codec.plain or not hasattr(storage, "writing"):
        with packed(backup, target.codec) as (path, encoded):
            landed = {remote_name: put_copy(storage, remote_name, path, encoded, lock, verify)}
    else:  # a folder: packed straight into its temporary file
        encoded, copy = pack_into(storage, remote_name, backup.path, target.codec, lock, verify)
        landed = {remote_name: copy}
    manifest = mc.offsite.record_copy(target.name, backup, remote_name, encoded,
                                      location=target.location,
                                      etag=getattr(landed[remote_name], "etag", None))
    _put_sides(mc, target, remote_name, manifest, shape, lock, landed)
    return encoded


def _put_sides(mc, target, remote_name, manifest, shape, lock, landed):
    """Step 4: the signed manifest and catalog entry beside copy `remote_name`; then remember
    the versions of all its objects (`landed`, added to)."""
    landed[remote_name + MANIFEST_SUFFIX] = put_beside(target.storage,
                                                       remote_name + MANIFEST_SUFFIX, manifest,
                                                       lock)
    record = json.loads(manifest)["record"]
    landed.update(put_entry(mc, target, record, shape, lock))
    mc.offsite.set_versions(target.name, remote_name, version_ids(landed))


def upload_delta(mc, target, backup, plan, shape):
    """Steps 1 to 4 for an incremental copy over ``plan.parent``: `(Encoded, Delta)`.

    The pack and manifest are written into a private scratch folder beside the backups, then
    put pack first (a manifest never names a pack that is not there), each checked like a full
    copy. The record's size and SHA-256 are the manifest object's, its plain ones the whole
    database's. A pack whose manifest could not be put is deleted again (unless locked).
    :raises Exception: whatever failed; nothing is reported.
    """
    storage, codec, parent = target.storage, target.codec, plan.parent
    lock = target.policy.lock(mc.clock())
    landed = {}
    with scratch_folder(mc.backups.dir, PACK_PREFIX) as folder:
        written = write_delta(backup.path, backup.name, parent["backup"], plan.hashes,
                              str(folder), recipients=codec.recipients, level=codec.level)
        if written.pack is not None:
            landed[written.pack.name] = put_copy(storage, written.pack.name,
                                                 folder / written.pack.name, written.pack, lock,
                                                 target.policy.verify_download)
        name = written.manifest.name
        try:
            landed[name] = put_copy(storage, name, folder / name, written.manifest, lock,
                                    target.policy.verify_download)
        except BaseException:
            _withdraw(storage, landed)
            raise
    encoded = Encoded(written.hashes.size, written.hashes.sha256, written.manifest.size,
                      written.manifest.sha256, True, codec.encrypted)
    objects = {written.pack.name: {"size": written.pack.size, "sha256": written.pack.sha256}} \
        if written.pack else {}
    manifest = mc.offsite.record_copy(
        target.name, backup, name, encoded, location=target.location,
        etag=getattr(landed[name], "etag", None), uploaded=written.size,
        delta={"parent": parent["remote_name"], "chain_length": (parent["chain_length"] or 0) + 1,
               "objects": objects})
    _put_sides(mc, target, name, manifest, shape, lock, landed)
    return encoded, written


def _withdraw(storage, landed):
    """Delete the objects of a copy whose upload did not finish (best effort: a locked one
    stays until its lock expires)."""
    for key in landed:
        try:
            storage.delete(key)
        except Exception:  # noqa: BLE001 - held, or the store failing again
            pass


def _keep_hashes(mc, target, remote_name, shape, hashes, backup, encoded):
    """Keep the page hashes of the copy just made (incremental copies only: else none are
    kept); a failure here only means the next copy is a full one."""
    try:
        if not target.policy.incremental:
            chains.forget(mc, target.name)
            return
        if hashes is None:
            hashes = page_hashes(backup.path, shape[1])
        if hashes.sha256 != encoded.plain_sha256:
            raise DeltaError(f"{backup.name} changed after it was copied")
        chains.save(mc, target.name, remote_name, shape[0], hashes)
    except (OSError, DeltaError) as exc:
        log.warning("the page hashes of off-site copy %s at %s could not be kept (the next "
                    "copy is a full one): %s", remote_name, target.name, describe_error(exc))


def send(mc, target, backup, actor):
    """Send `backup` to `target` (a `StorageTarget`) and report the result; never raises.

    A full copy, or with ``policy.incremental`` a delta over the previous copy when `chains.plan`
    allows one; the result's detail says which (``kind``, ``chain_length``, ``uploaded_bytes``;
    a delta's ``parent`` and ``changed_pages``; why a copy is full, ``full_reason``).
    """
    remote_name = target.codec.remote_name(backup.name)
    location = target.where(remote_name)
    started = time.perf_counter()
    try:
        shape = backup_shape(backup.path)
        plan = chains.plan(mc, target, backup, shape)
        if plan.is_delta:
            remote_name = manifest_name(backup.name, target.codec.encrypted)
            location = target.where(remote_name)
            encoded, written = upload_delta(mc, target, backup, plan, shape)
            made = {"kind": "delta", "chain_length": (plan.parent["chain_length"] or 0) + 1,
                    "uploaded_bytes": written.size, "parent": plan.parent["remote_name"],
                    "changed_pages": written.pages}
            hashes = written.hashes
        else:
            encoded = upload(mc, target, backup, remote_name, shape)
            made = {"kind": "full", "chain_length": 0, "uploaded_bytes": encoded.size}
            if plan.reason:
                made["full_reason"] = plan.reason
            hashes = None
    except Exception as exc:  # noqa: BLE001 - I/O, the store's many kinds, a missing extra
        mc.offsite.failed(target.name, backup, actor, exc, location=location)
        return
    _keep_hashes(mc, target, remote_name, shape, hashes, backup, encoded)
    try:
        kept = retain(mc, target, remote_name)
    except Exception as exc:  # noqa: BLE001
        mc.offsite.failed(target.name, backup, actor, "copied and verified, but keeping the "
                          f"newest copies failed: {describe_error(exc)}", location=location)
        return
    detail = {**made, **kept.to_json(),
              "duration_seconds": round(time.perf_counter() - started, 3)}
    if target.policy.lock_mode:
        detail["lock"] = {"mode": target.policy.lock_mode,
                          "until": int(target.policy.lock(mc.clock()).until)}
    mc.offsite.succeeded(target.name, backup, actor, location=location, detail=detail,
                         remote_name=remote_name, encoded=encoded)
