"""Sending a backup off-site, written once for every storage: pack, put, check what landed, sign, catalog, keep, report.

A target plugin only says where (a `FolderStorage`, an `S3Storage`) and how (`Codec`, `Policy`):
`StorageTarget` is that pair, and is also what fetches and drills read copies back from. Then
`send` does, for every kind of storage alike:

1. packs the backup (zstd, age) into a private scratch file beside it, or takes the backup itself
   when the copy is plain;
2. puts it under its remote name, locked when the policy says so (S3 Object Lock: mode and
   retain-until on the very upload, with its SHA-256 checksum);
3. checks what landed: its size, and the SHA-256 the store computed (S3's checksum) or, when the
   store reports none or the policy asks, a full read-back compared with what was written;
4. puts the signed manifest (``<name>.manifest.json``) and the encrypted, signed catalog entry
   (``catalog/<name>.json.age``) beside it, under the same lock;
5. keeps the newest ``policy.keep`` copies that are authentic (in this service's record, or with
   a manifest that verifies): anything else under the root is never counted and never deleted. A
   copy whose lock has not expired is not deleted but reported as held until its date; kept
   copies have their lock extended to ``lock_days`` from now; with ``no_delete`` nothing is ever
   deleted (the bucket's lifecycle rules expire old copies);
6. reports the result through ``mc.offsite.succeeded`` / ``failed``.
"""
import hashlib
import json
import os
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from functools import cached_property

from .. import db as dbmod
from ..errors import describe_error
from ..files import sha256_file
from ..files import remove_files
from ..backup.scratch import SCRATCH_PREFIX
from ..backup.scratch import create_scratch
from . import catalog
from .codec import CHUNK, REMOTE_PATTERN, Codec, Encoded, encode
from .signing import MANIFEST_SUFFIX, ManifestUnreadable, NotAuthentic, authentic_record
from .storage import Lock, ObjectHeld
from .targets import RemoteCopy

DAY = 86400
MISSING_KEY = ("NoSuchKey", "404", "NotFound")
PACK_PREFIX = f"{SCRATCH_PREFIX}send-"


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


def _read_sha256(storage, key):
    digest = hashlib.sha256()
    with closing(storage.open(key)) as body:
        for chunk in iter(lambda: body.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def put_copy(storage, key, path, encoded, lock, verify_download=False):
    """Put the packed copy and check what landed against `encoded`.

    A storage that never overwrites (a folder) and already holds `key` is accepted only when
    that object is this very copy.
    :raises ValueError: what landed differs from what was written, or another object holds
        the name.
    """
    try:
        landed = storage.put(key, path, lock=lock)
    except FileExistsError:
        if _read_sha256(storage, key) != encoded.sha256:
            raise ValueError(f"a different file named {key} is already at the target") from None
        return
    if landed is None or landed.size != encoded.size:
        raise ValueError(f"the uploaded copy has {getattr(landed, 'size', 0)} bytes, expected "
                         f"{encoded.size}")
    if landed.sha256 is not None and landed.sha256 != encoded.sha256:
        raise ValueError("the store's SHA-256 of the uploaded copy differs from what was written")
    if landed.sha256 is None or verify_download:
        if _read_sha256(storage, key) != encoded.sha256:
            raise ValueError("the copy read back differs from what was written (SHA-256)")


def put_beside(storage, key, data, lock):
    """Put a small object (manifest, catalog entry); a folder's older one of that name is
    replaced (the copy it described was just written again)."""
    try:
        storage.put_bytes(key, data, lock=lock)
    except FileExistsError:
        storage.delete(key)
        storage.put_bytes(key, data, lock=lock)


def backup_shape(path):
    """`(schema_version, page_size)` of the backup file, opened read-only."""
    conn = dbmod.open_file(path, immutable=True)
    try:
        return (conn.execute("PRAGMA user_version").fetchone()[0],
                conn.execute("PRAGMA page_size").fetchone()[0])
    finally:
        conn.close()


def side_keys(name):
    """The objects that belong with copy `name`: its manifest and its catalog entry."""
    return (name + MANIFEST_SUFFIX, catalog.entry_key(name, True), catalog.entry_key(name, False))


def upload(mc, target, backup, remote_name):
    """Steps 1 to 4 of the module's list; the copy's `Encoded`.

    :raises Exception: whatever failed (I/O, the store, a missing extra); nothing is reported.
    """
    storage = target.storage
    lock = target.policy.lock(mc.clock())
    with packed(backup, target.codec) as (path, encoded):
        put_copy(storage, remote_name, path, encoded, lock, target.policy.verify_download)
    manifest = mc.offsite.record_copy(target.name, backup, remote_name, encoded)
    put_beside(storage, remote_name + MANIFEST_SUFFIX, manifest, lock)
    record = json.loads(manifest)["record"]
    schema_version, page_size = backup_shape(backup.path)
    key, entry = catalog.build(mc.offsite.signer.private_key(), record, schema_version,
                               page_size, target.codec.recipients)
    put_beside(storage, key, entry, lock)
    return encoded


def _authentic(mc, target, obj, keys):
    """Whether `obj` is a copy this service made (its record, or a manifest that verifies) and
    still the size it was sent with. Planted objects are not; nothing is downloaded for an
    object without a manifest beside it."""
    record = mc.offsite.copy_record(target.name, obj.key)
    if record is None:
        if obj.key + MANIFEST_SUFFIX not in keys:
            return False
        try:
            record = authentic_record(mc, target, obj.key)
        except (NotAuthentic, ManifestUnreadable):
            return False
    return record["size"] == obj.size


@dataclass
class Kept:
    """What retention did: copies deleted, held by their lock, whose lock was extended."""

    pruned: list = field(default_factory=list)
    held: list = field(default_factory=list)
    extended: list = field(default_factory=list)
    left: list = field(default_factory=list)

    def to_json(self):
        return {"pruned": self.pruned, "held": self.held, "extended": self.extended,
                "left_to_expiry": self.left}


def _iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def retain(mc, target, just_made):
    """Step 5: keep the newest authentic copies, delete or hold the rest, extend locks.

    Each copy past the count is looked at once (`head`) and deleted only when unlocked; a
    locked one is held, not retried. Kept copies older than a day get their lock moved to
    ``lock_days`` from now when that gains a day or more.
    :return: a `Kept`.
    """
    storage, policy, now = target.storage, target.policy, mc.clock()
    objects = storage.list()
    keys = {o.key for o in objects}
    copies = sorted((o.key for o in objects if REMOTE_PATTERN.match(o.key)
                     and (o.key == just_made or _authentic(mc, target, o, keys))), reverse=True)
    kept = copies[:policy.keep]
    result = Kept()
    for name in copies[policy.keep:]:
        if name == just_made:
            continue
        if policy.no_delete:
            result.left.append(name)
            continue
        found = storage.head(name)
        if found is None:
            continue  # pruned meanwhile by another process
        if found.retain_until and found.retain_until > now:
            result.held.append({"name": name, "until": int(found.retain_until)})
            continue
        try:
            storage.delete(name)
        except ObjectHeld as exc:
            result.held.append({"name": name, "until": int(exc.until) if exc.until else None})
            continue
        for side in side_keys(name):
            if side in keys:
                try:
                    storage.delete(side)
                except ObjectHeld:
                    pass  # it expires with its own lock; the copy it describes is gone
        result.pruned.append(name)
    if policy.lock_mode:
        _extend(mc, target, kept, keys, now, result)
    return result


def _extend(mc, target, kept, keys, now, result):
    storage, policy = target.storage, target.policy
    wanted = now + policy.lock_days * DAY
    for name in kept:
        record = mc.offsite.copy_record(target.name, name)
        if record is not None and record["created_at"] + policy.lock_days * DAY > wanted - DAY:
            continue  # sent within the last day: its upload lock is still good enough
        found = storage.head(name)
        if found is None or (found.retain_until or 0) > wanted - DAY:
            continue
        lock = Lock(policy.lock_mode, wanted)
        storage.extend_lock(name, found.version_id, lock)
        for side in side_keys(name):
            if side in keys:
                storage.extend_lock(side, None, lock)
        result.extended.append(name)


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


def held_text(held):
    """``name (held until <date>)`` for each held copy, for the CLI."""
    return [f"{h['name']} held until {_iso(h['until']) if h.get('until') else 'its lock expires'}"
            for h in held]
