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
from .targets import RemoteCopy, plain_cap, unpack

DAY = 86400
#: How far a landed lock's retain-until may fall short of the one asked (stores keep whole seconds).
LOCK_SLACK = 2
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


def _read_sha256(storage, key, version_id=None):
    digest = hashlib.sha256()
    with closing(storage.open(key, version_id)) as body:
        for chunk in iter(lambda: body.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_lock(landed, lock, key):
    """Raise ValueError unless `landed` (a `StoredObject`) carries `lock`.

    A store may take the lock headers and keep no lock (or a shorter one); a copy it holds
    unlocked must not be reported as immutable. A longer lock than asked is kept as it is.
    """
    if lock is None:
        return
    if landed is not None and landed.lock_mode == lock.mode \
            and (landed.retain_until or 0) >= lock.until - LOCK_SLACK:
        return
    held = "no lock"
    if landed is not None and landed.lock_mode:
        held = f"{landed.lock_mode} until " + \
            (_iso(landed.retain_until) if landed.retain_until else "no date")
    raise ValueError(f"the store did not keep the Object Lock asked for {key} ({lock.mode} "
                     f"until {_iso(lock.until)}); it holds {held}")


def put_copy(storage, key, path, encoded, lock, verify_download=False):
    """Put the packed copy and check what landed against `encoded` (and `lock`).

    A storage that never overwrites (a folder) and already holds `key` is accepted only when
    that object is this very copy.
    :return: the `StoredObject` of the version that holds the copy.
    :raises ValueError: what landed differs from what was written, or another object holds
        the name, or the store did not keep the lock.
    """
    try:
        landed = storage.put(key, path, lock=lock)
    except FileExistsError:
        if _read_sha256(storage, key) != encoded.sha256:
            raise ValueError(f"a different file named {key} is already at the target") from None
        return storage.head(key)
    if landed is None or landed.size != encoded.size:
        raise ValueError(f"the uploaded copy has {getattr(landed, 'size', 0)} bytes, expected "
                         f"{encoded.size}")
    if landed.sha256 is not None and landed.sha256 != encoded.sha256:
        raise ValueError("the store's SHA-256 of the uploaded copy differs from what was written")
    if landed.sha256 is None or verify_download:
        if _read_sha256(storage, key, landed.version_id) != encoded.sha256:
            raise ValueError("the copy read back differs from what was written (SHA-256)")
    check_lock(landed, lock, key)
    return landed


def put_beside(storage, key, data, lock):
    """Put a small object (manifest, catalog entry); a folder's older one of that name is
    replaced (the copy it described was just written again).

    :return: the `StoredObject` that landed. :raises ValueError: the store kept no lock.
    """
    try:
        landed = storage.put_bytes(key, data, lock=lock)
    except FileExistsError:
        storage.delete(key)
        landed = storage.put_bytes(key, data, lock=lock)
    check_lock(landed, lock, key)
    return landed


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

    The version each object landed as is remembered with the copy's record: locks are later
    extended on exactly those versions.
    :raises Exception: whatever failed (I/O, the store, a missing extra); nothing is reported.
    """
    storage = target.storage
    lock = target.policy.lock(mc.clock())
    with packed(backup, target.codec) as (path, encoded):
        landed = {remote_name: put_copy(storage, remote_name, path, encoded, lock,
                                        target.policy.verify_download)}
    manifest = mc.offsite.record_copy(target.name, backup, remote_name, encoded)
    landed[remote_name + MANIFEST_SUFFIX] = put_beside(storage, remote_name + MANIFEST_SUFFIX,
                                                       manifest, lock)
    record = json.loads(manifest)["record"]
    landed.update(put_entry(mc, target, record, backup_shape(backup.path), lock))
    mc.offsite.set_versions(target.name, remote_name, _version_ids(landed))
    return encoded


def put_entry(mc, target, record, shape, lock):
    """Sign, encrypt and put the catalog entry of copy `record`; `{key: StoredObject}`.

    :param shape: `(schema_version, page_size)` of the backup (`backup_shape`).
    """
    key, entry = catalog.build(mc.offsite.signer.private_key(), record, *shape,
                               target.codec.recipients)
    return {key: put_beside(target.storage, key, entry, lock)}


def _version_ids(landed):
    return {key: getattr(found, "version_id", None) for key, found in landed.items()}


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
    """What retention did: copies deleted, held by their lock, whose lock was extended, left to
    the storage's expiry, whose missing catalog entry was written, or could not be."""

    pruned: list = field(default_factory=list)
    held: list = field(default_factory=list)
    extended: list = field(default_factory=list)
    left: list = field(default_factory=list)
    cataloged: list = field(default_factory=list)
    uncataloged: list = field(default_factory=list)

    def to_json(self):
        return {"pruned": self.pruned, "held": self.held, "extended": self.extended,
                "left_to_expiry": self.left, "cataloged": self.cataloged,
                "uncataloged": self.uncataloged}


def _iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def retain(mc, target, just_made):
    """Step 5: keep the newest authentic copies, delete or hold the rest, extend locks.

    Every kept copy without a catalog entry at the target gets one (`recover` reads only
    copies that have one). Each copy past the count is looked at once (`head`) and deleted
    only when unlocked; a locked one is held, not retried. Kept copies older than a day get
    their lock moved to ``lock_days`` from now when that gains a day or more.
    :return: a `Kept`.
    """
    storage, policy, now = target.storage, target.policy, mc.clock()
    objects = storage.list()
    keys = {o.key for o in objects}
    copies = sorted((o.key for o in objects if REMOTE_PATTERN.match(o.key)
                     and (o.key == just_made or _authentic(mc, target, o, keys))), reverse=True)
    kept = copies[:policy.keep]
    result = Kept()
    for name in kept:
        if not any(side in keys for side in side_keys(name)[1:]):
            if _write_entry(mc, target, name, result):
                result.cataloged.append(name)
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
        _extend(mc, target, kept, now, result)
    return result


def _write_entry(mc, target, name, result, renewing=False):
    """Put a new catalog entry for kept copy `name` and remember its version; `{key: object}`,
    or {} with the reason in ``result.uncataloged`` when it cannot be written."""
    try:
        record = mc.offsite.copy_record(target.name, name)
        if record is None:
            raise NotAuthentic(f"{name} is not in the record of copies this service made")
        record = {**record, "compressed": bool(record["compressed"]),
                  "encrypted": bool(record["encrypted"])}
        written = put_entry(mc, target, record, _shape(mc, target, name, record),
                            target.policy.lock(mc.clock()))
    except Exception as exc:  # noqa: BLE001 - the store, the copy, a missing identity
        reason = exc.message if isinstance(exc, NotAuthentic) else describe_error(exc)
        if renewing:
            reason = f"its older catalog entry is kept but not extended: {reason}"
        result.uncataloged.append({"name": name, "reason": reason})
        return {}
    versions, _ = mc.offsite.copy_objects(target.name, name)
    if versions is not None:
        mc.offsite.set_versions(target.name, name, {**versions, **_version_ids(written)})
    return written


def _shape(mc, target, name, record):
    """`(schema_version, page_size)` of the backup in copy `name`: read from the local backup
    while it is still here, else from the copy unpacked (checked against `record`) into a
    scratch file beside the backups.

    :raises CopyDamaged: the copy is encrypted and no ``offsite.age_identity`` opens it, or
        it is damaged; :raises NotAuthentic: it differs from `record`.
    """
    local = mc.backups.dir / os.path.basename(record["backup"])
    try:
        if os.stat(local).st_size == record["plain_size"]:
            return backup_shape(local)
    except FileNotFoundError:
        pass
    path, out = create_scratch(mc.backups.dir, PACK_PREFIX)
    try:
        with out:
            unpack(target, name, out, mc.settings.get("offsite.age_identity"), record,
                   plain_cap(record))
            out.flush()
        return backup_shape(path)
    finally:
        remove_files(path)


def _extend(mc, target, kept, now, result):
    """Move the locks of the kept copies' own versions (never a later version someone wrote
    over them) to ``lock_days`` from now, each in the mode it already has."""
    storage, policy = target.storage, target.policy
    wanted = now + policy.lock_days * DAY
    for name in kept:
        record = mc.offsite.copy_record(target.name, name)
        if record is None or record["created_at"] + policy.lock_days * DAY > wanted - DAY:
            continue  # sent within the last day: its upload lock is still good enough
        versions, manifest = mc.offsite.copy_objects(target.name, name)
        if versions is None:
            versions = _recorded_versions(mc, target, name, record, manifest, result)
        touched = False
        for key, version in sorted(versions.items()):
            found = storage.head(key, version)
            if found is None or (found.retain_until or 0) > wanted - DAY:
                continue
            # A COMPLIANCE lock stays COMPLIANCE whatever the setting says now (S3 refuses
            # to weaken it, and the switch would fail every run).
            storage.extend_lock(key, version, Lock(found.lock_mode or policy.lock_mode, wanted))
            touched = True
        if touched:
            result.extended.append(name)


def _recorded_versions(mc, target, name, record, manifest, result):
    """`{key: version_id}` of a copy uploaded before versions were recorded, remembered now.

    The copy's version is the one whose SHA-256 is the recorded one, the manifest's the one
    holding the manifest kept here; the catalog entry cannot be told from a planted one
    without the age identity, so a new one is written (and its version recorded).
    """
    storage, found = target.storage, {}
    wanted = {name: record["sha256"]}
    if manifest:
        wanted[name + MANIFEST_SUFFIX] = hashlib.sha256(manifest.encode()).hexdigest()
    for key, digest in wanted.items():
        for version in storage.versions(key):
            if version.key != key or version.delete_marker:
                continue
            head = storage.head(key, version.version_id)
            if head is not None and (head.sha256 or _read_sha256(
                    storage, key, version.version_id)) == digest:
                found[key] = version.version_id
                break
    found.update(_version_ids(_write_entry(mc, target, name, result, renewing=True)))
    mc.offsite.set_versions(target.name, name, found)
    return found


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
