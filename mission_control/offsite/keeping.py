"""Step 5 of sending a copy: which copies a target keeps, deletes or holds; their catalog entries
and locks.

Only copies this service made count (its record, or a manifest that verifies), so planted objects
never push a real copy out. A kept copy without a catalog entry gets one (`recover` reads only
copies that have one). Locks are extended on exactly the versions a copy was uploaded as, each
in its own mode.
"""
import hashlib
import os
from dataclasses import dataclass, field

from ..backup.scratch import create_scratch
from ..errors import describe_error
from ..files import remove_files
from .codec import REMOTE_PATTERN, is_delta
from .putting import (DAY, PACK_PREFIX, backup_shape, iso, put_entry, read_sha256, side_keys,
                      version_ids)
from .signing import MANIFEST_SUFFIX, ManifestUnreadable, NotAuthentic, authentic_record
from .storage import Lock, ObjectHeld
from .readback import StorageSource, expected_objects, present_objects, rebuild_copy
from .targets import chain_of, plain_cap, unpack


def _authentic(mc, target, obj, keys, changed, heads, records, gone):
    """Whether `obj` is a copy this service made (its record, or a manifest that verifies) and
    still the object it was sent as: its size, its SHA-256 where the storage keeps one (S3's
    checksum, read by `head`), the ETag its upload got where one was recorded, and the version
    it was uploaded as where versions were recorded; a delta copy's packs too. Planted objects
    are not; nothing is downloaded for an object without a manifest beside it. A copy of ours
    that no longer matches is named in `changed` (someone with write access replaced it), a
    delta copy whose pack is gone in `gone`. Each `head` is kept in `heads` (pruning reads it
    from there), each authentic copy's record in `records`."""
    record = mc.offsite.copy_record(target.name, obj.key)
    if record is None:
        if obj.key + MANIFEST_SUFFIX not in keys:
            return False
        try:
            authentic_record(mc, target, obj.key)
        except (NotAuthentic, ManifestUnreadable):
            return False
        record = mc.offsite.copy_record(target.name, obj.key)  # remembered by the check
        if record is None:
            return False
    if record["size"] == obj.size:
        found = heads[obj.key] = target.storage.head(obj.key)
        if found is None:
            return False  # pruned meanwhile by another process
        versions = mc.offsite.copy_objects(target.name, obj.key)[0] or {}
        if _matches(found, record["sha256"], record.get("etag"), versions.get(obj.key)):
            trouble = _pack_trouble(target, record, keys, versions, heads)
            if trouble is None:
                records[obj.key] = record
                return True
            if trouble == "missing":
                gone.append(obj.key)
                return False
    changed.append(obj.key)
    return False


def _matches(found, sha256, etag, version):
    """Whether the `StoredObject` `found` is what was uploaded (as far as the store tells)."""
    return (not found.sha256 or found.sha256 == sha256) and \
        (not etag or not found.etag or found.etag == etag) and \
        (not version or not found.version_id or found.version_id == version)


def _pack_trouble(target, record, keys, versions, heads):
    """None when every pack of copy `record` is there as uploaded; else "missing" or
    "changed"."""
    for key, info in sorted((record.get("objects") or {}).items()):
        found = heads[key] = target.storage.head(key) if key in keys else None
        if found is None:
            return "missing"
        if found.size != info["size"] or not _matches(found, info["sha256"], None,
                                                       versions.get(key)):
            return "changed"
    return None


def _chains(copies, records):
    """`({copy: [its ancestors, nearest first]}, {broken copy: the ancestor it lacks})` of the
    authentic `copies` (their `records`): a delta copy's ancestors must all be authentic too."""
    present, ancestry, broken = set(copies), {}, {}
    for name in copies:
        line, record, seen = [], records[name], {name}
        while record.get("kind") == "delta":
            parent = record["parent"]
            if parent not in present or parent in seen:
                broken[name] = parent
                break
            line.append(parent)
            seen.add(parent)
            record = records[parent]
        ancestry[name] = line
    return ancestry, broken


@dataclass
class Kept:
    """What retention did: copies deleted, held by their lock, whose lock was extended, left to
    the storage's expiry, whose missing (or not renewed) catalog entry was written, or could
    not be; copies of ours whose stored object no longer matches what was uploaded (not
    counted; `changed` among the newest kept, `changed_past_keep` older than those, which
    would have been pruned anyway: never deleted here either); and copies among the newest
    kept by this service's record that are gone from the target without having been pruned
    here (`missing`: someone deleted them, or a delta copy's pack). Ancestors of kept copies kept
    only because a kept copy's chain needs them are `chained`; a delta copy among the newest
    whose chain lacks an ancestor (missing, or changed) cannot be restored: `broken`, each
    ``{"name", "ancestor"}`` (not counted, not deleted, and a failure)."""

    pruned: list = field(default_factory=list)
    held: list = field(default_factory=list)
    extended: list = field(default_factory=list)
    left: list = field(default_factory=list)
    cataloged: list = field(default_factory=list)
    uncataloged: list = field(default_factory=list)
    changed: list = field(default_factory=list)
    changed_past_keep: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    chained: list = field(default_factory=list)
    broken: list = field(default_factory=list)

    def to_json(self):
        return {"pruned": self.pruned, "held": self.held, "extended": self.extended,
                "left_to_expiry": self.left, "cataloged": self.cataloged,
                "uncataloged": self.uncataloged, "changed": self.changed,
                "changed_past_keep": self.changed_past_keep, "missing": self.missing,
                "chained": self.chained, "broken": self.broken}


def retain(mc, target, just_made):
    """Step 5: keep the newest authentic copies, delete or hold the rest, extend locks.

    Every kept copy without a catalog entry at the target gets one (`recover` reads only
    copies that have one), and so does one whose entry could not be renewed on an earlier
    run. Each copy past the count is deleted only when unlocked (its lock read by the `head`
    that checked it); a locked one is held, not retried. Kept copies older than a day get
    their lock moved to ``lock_days`` from now when that gains a day or more; so do those of
    copies someone replaced or deleted (what is left of them is the evidence).
    :return: a `Kept`.
    """
    storage, policy, now = target.storage, target.policy, mc.clock()
    objects = storage.list()  # from `now`: what another send records later is not in it
    keys = {o.key for o in objects}
    result, changed, heads, records, gone = Kept(), [], {}, {}, []
    copies = sorted((o.key for o in objects if REMOTE_PATTERN.match(o.key) and (
        o.key == just_made or _authentic(mc, target, o, keys, changed, heads, records, gone))),
        reverse=True)
    if just_made in copies and just_made not in records:
        records[just_made] = mc.offsite.copy_record(target.name, just_made) or {}
    ancestry, broken = _chains(copies, records)
    kept = [name for name in copies if name not in broken][:policy.keep]
    needed = {parent for name in kept for parent in ancestry[name]}
    result.chained = sorted(needed - set(kept), reverse=True)
    for name in sorted(changed + gone):
        newer = sum(1 for copy in copies if copy > name)
        if name in gone:
            if newer < policy.keep:
                result.missing.append(name)
        else:
            (result.changed if newer < policy.keep else result.changed_past_keep).append(name)
    for name in copies:
        if name in broken and sum(1 for copy in copies if copy > name) < policy.keep:
            result.broken.append({"name": name, "ancestor": broken[name]})
    spared = {item["name"] for item in result.broken}
    # The ancestor a reported broken chain lacks is named too, however old it is.
    lacking = {item["ancestor"] for item in result.broken}
    for name in sorted(lacking & set(result.changed_past_keep)):
        result.changed_past_keep.remove(name)
        result.changed.append(name)
    result.missing = sorted(set(result.missing) | set(_missing(mc, target, objects, keys, now))
                            | {name for name in lacking if name not in keys or name in gone})
    for name in kept:
        renewing = False
        if any(side in keys for side in side_keys(name)[1:]):
            renewing = _renewal_pending(mc, target, name)
            if not renewing:
                continue
        if _write_entry(mc, target, name, result, renewing=renewing):
            result.cataloged.append(name)
    for name in copies:
        if name in kept or name in needed or name in spared or name == just_made:
            continue
        if policy.no_delete:
            result.left.append(name)
            continue
        _prune(mc, target, name, records[name], keys, heads, now, result)
    if policy.lock_mode:
        # A changed or deleted copy's own versions still hold what was uploaded (and the
        # evidence): their locks are kept running too. A deleted one gets no new catalog entry.
        _extend(mc, target, kept + result.chained + sorted(result.changed + result.missing),
                now, result, gone=result.missing)
    return result


def _prune(mc, target, name, record, keys, heads, now, result):
    """Delete copy `name` (a delta copy: its manifest, then its packs) and the objects beside
    it, unless it (or a pack of it) is locked: then it is held."""
    storage = target.storage
    found = heads.get(name) or storage.head(name)
    if found is None:
        return  # pruned meanwhile by another process
    packs = sorted(record.get("objects") or {})
    until = max([found.retain_until or 0] + [(heads.get(key) or storage.head(key)
                                              or found).retain_until or 0 for key in packs])
    if until > now:
        result.held.append({"name": name, "until": int(until)})
        return
    try:
        storage.delete(name)
    except ObjectHeld as exc:
        result.held.append({"name": name, "until": int(exc.until) if exc.until else None})
        return
    mc.offsite.pruned(target.name, name)
    for side in (*packs, *side_keys(name)):
        if side in keys:
            try:
                storage.delete(side)
            except ObjectHeld:
                pass  # it expires with its own lock; the copy it belongs to is gone
    result.pruned.append(name)


def _missing(mc, target, objects, keys, listed_at):
    """The copies among the newest ``keep`` this service recorded at the target's location,
    and did not prune, that are not there. Copies recorded before locations were are placed
    where they are found first; those not found stay unplaced (they may be elsewhere).

    Only copies recorded before the second the listing began (`listed_at`) are judged: a send
    to the same target can overlap this one (``post_backup`` runs outside the backup lock)
    and record its copy after `objects` was read; it is judged on the next run."""
    mc.offsite.place(target.name, [o.key for o in objects if REMOTE_PATTERN.match(o.key)],
                     target.location)
    return sorted(name for name in mc.offsite.newest_recorded(
        target.name, target.location, target.policy.keep, recorded_before=listed_at)
        if name not in keys)


def _renewal_pending(mc, target, name):
    """Whether copy `name`'s catalog entry was to be renewed (`_recorded_versions`) and could
    not be: its recorded versions name no entry."""
    versions, _ = mc.offsite.copy_objects(target.name, name)
    return versions is not None and not any(key in versions for key in side_keys(name)[1:])


def _write_entry(mc, target, name, result, renewing=False):
    """Put a new catalog entry for kept copy `name` and remember its version; `{key: object}`,
    or {} with the reason in ``result.uncataloged`` when it cannot be written (`renewing`:
    an older entry is there, but cannot be told from a planted one and is not extended; the
    next run tries again)."""
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
        result.uncataloged.append({"name": name, "reason": reason, "renewing": renewing})
        return {}
    versions, _ = mc.offsite.copy_objects(target.name, name)
    if versions is not None:
        mc.offsite.set_versions(target.name, name, {**versions, **version_ids(written)})
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
    identity = mc.settings.get("offsite.age_identity")
    path, out = create_scratch(mc.backups.dir, PACK_PREFIX)
    try:
        with out:
            if is_delta(name):  # rebuilt from its chain, every object checked
                records = chain_of(mc, target, record)
                objects = expected_objects(records)
                present = present_objects(objects, {o.key: o.size for o in target.storage.list()})
                with open(path, "r+b") as f:  # the rebuild reads back what it wrote
                    rebuild_copy(StorageSource(target.storage, objects, present), record, f,
                                 identity)
            else:
                unpack(target, name, out, identity, record, plain_cap(record))
            out.flush()
        return backup_shape(path)
    finally:
        remove_files(path)


def _extend(mc, target, kept, now, result, gone=()):
    """Move the locks of the kept copies' own versions (never a later version someone wrote
    over them) to ``lock_days`` from now, each in the mode it already has. For the copies in
    `gone` (deleted by someone else) only versions that are found are extended: no catalog
    entry is written for them."""
    storage, policy = target.storage, target.policy
    wanted = now + policy.lock_days * DAY
    for name in kept:
        record = mc.offsite.copy_record(target.name, name)
        if record is None or record["created_at"] + policy.lock_days * DAY > wanted - DAY:
            continue  # sent within the last day: its upload lock is still good enough
        versions, manifest = mc.offsite.copy_objects(target.name, name)
        if versions is None:
            versions = _recorded_versions(mc, target, name, record, manifest, result,
                                          entry=name not in gone)
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


def _recorded_versions(mc, target, name, record, manifest, result, entry=True):
    """`{key: version_id}` of a copy uploaded before versions were recorded, remembered now.

    The copy's version is the one whose SHA-256 is the recorded one, the manifest's the one
    holding the manifest kept here; the catalog entry cannot be told from a planted one
    without the age identity, so a new one is written (and its version recorded) when
    `entry` says so: never for a copy someone deleted (an entry for a copy that is gone).
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
            if head is not None and (head.sha256 or read_sha256(
                    storage, key, version.version_id)) == digest:
                found[key] = version.version_id
                break
    if entry:
        found.update(version_ids(_write_entry(mc, target, name, result, renewing=True)))
    mc.offsite.set_versions(target.name, name, found)
    return found


def held_text(held):
    """``name (held until <date>)`` for each held copy, for the CLI."""
    return [f"{h['name']} held until {iso(h['until']) if h.get('until') else 'its lock expires'}"
            for h in held]
