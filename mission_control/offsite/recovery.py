"""Recovery on an empty machine: choose, fetch, check and place an off-site copy from the storage alone.

Needs no database, no settings and no service: the storages (`offsite.storage`), the age identity
and the verification key(s) the admin kept. Each storage's catalog (`offsite.catalog`) says which
copies the service made; only entries whose signature verifies are trusted, since whoever can write
to the bucket can encrypt to the public recipient. The newest trusted copy (at or before `as_of`)
is downloaded, its stored and plain SHA-256 compared with its entry, unpacked no larger than its
recorded plain size, checked with ``integrity_check`` and the schema allowlist, and only then
placed as ``mission-control.db`` in the destination folder. Any copy that fails is skipped with
its reason and the next one is tried, then the next storage.

On a versioned bucket `as_of` reads object versions: the state of each key at that moment is its
newest version at or before it (a delete marker there means absent), so copies deleted or
overwritten later, by ransomware say, are still found.

An incremental copy (`codec.is_delta`) is rebuilt from its chain (`readback`): every ancestor needs
a trusted catalog entry, and every object of the chain (full copy, manifests, packs) a version of
the size and SHA-256 its entry records (the newest such at `as_of`); the rebuilt database must have
the entry's plain SHA-256. A chain that cannot be completed skips the copy, with the reason.
"""
import errno
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..errors import MissionControlError, describe_error
from ..files import (fsync_dir, open_private, place_without_overwrite, remove_files,
                     sweep_dead_leftovers)
from ..backup.verify import inspect
from . import catalog
from .codec import CopyDamaged, MissingExtra, is_delta, parse_remote_name
from .readback import StorageSource, chain_records, expected_objects, rebuild_copy
from .sealed_stream import TEMP_PREFIX as RESTORE_PREFIX
from .signing import NotAuthentic
from .targets import CopyUnwritable, plain_cap, unpack, unwritable

#: The database file `serve --data-dir DIR` starts on (`config.Config.from_env`).
DB_NAME = "mission-control.db"
SCRATCH_PREFIX = ".mc-recover-"


class NothingRecoverable(MissionControlError):
    """Every copy of every storage was skipped; `skipped` says why for each."""

    status = 500

    def __init__(self, message, skipped):
        super().__init__(message, details=[s.line() for s in skipped])
        self.skipped = skipped


@dataclass(frozen=True)
class Skip:
    """A copy (or catalog entry, or whole storage) not used, and why."""

    source: str
    name: str
    reason: str

    def line(self):
        return f"{self.source} {self.name}: {self.reason}"

    def to_json(self):
        return {"source": self.source, "name": self.name, "reason": self.reason}


@dataclass
class Recovered:
    """The database placed at `path`, from copy `entry` (its signed catalog entry) at `source`."""

    path: Path
    source: str
    entry: dict
    version_id: str | None
    schema_version: int
    versioned: bool
    skipped: list = field(default_factory=list)


def iso(ts):
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def prepare_destination(folder):
    """Make `folder` (0700) when missing; refuse one that is not a folder or not empty.

    What a killed ``recover`` left in it (`sweep_leftovers`) does not count: it is removed.

    :return: True when it was made here (so a failure removes it again).
    :raises MissionControlError: 400, it is a file or holds something.
    """
    folder = Path(folder)
    if folder.exists() or folder.is_symlink():
        if not folder.is_dir():
            raise MissionControlError(f"--to {folder} is not a folder: give a new or empty one",
                                      status=400)
        sweep_leftovers(folder)
        if any(folder.iterdir()):
            raise MissionControlError(f"--to {folder} is not empty: give a new or empty folder "
                                      "(nothing is ever overwritten)", status=400)
        return False
    folder.mkdir(mode=0o700, parents=True)
    return True


def sweep_leftovers(folder):
    """Remove a killed ``recover``'s scratch files (``.mc-recover-<pid>-….tmp`` and SQLite's
    files beside them) and temporary replica folders from `folder`: only ours by name and owner,
    and only when that process is gone."""
    sweep_dead_leftovers(folder, SCRATCH_PREFIX)
    sweep_dead_leftovers(folder, RESTORE_PREFIX, folders=True)


def _scratch(folder, token):
    return folder / f"{SCRATCH_PREFIX}{os.getpid()}-{token(8)}.tmp"


def objects_at(storage, as_of=None):
    """`({key: [StoredObject, ...]}, versioned)`: the versions of each key of `storage` at
    `as_of` (unix s; None: now), newest first.

    Versioned: the versions stored at or before `as_of` (only the current one when None), down
    to the first delete marker; a key whose newest is a delete marker is ``[marker]`` (the
    caller reads it as "deleted"). Not versioned: the current objects, whatever `as_of` says
    (there is nothing older to read).
    """
    found = storage.versions()
    versioned = any(o.version_id not in (None, "null") for o in found)
    if not versioned:
        return {o.key: [o] for o in found if o.is_latest and not o.delete_marker}, False
    state = {}
    for item in sorted(found, key=lambda o: (-o.modified, not o.is_latest)):
        if as_of is None and not item.is_latest:
            continue
        if as_of is not None and item.modified > as_of:
            continue
        versions = state.setdefault(item.key, [])
        if not (versions and versions[-1].delete_marker):
            versions.append(item)
    return {k: v if v[0].delete_marker else [o for o in v if not o.delete_marker]
            for k, v in state.items()}, True


def _read_entry(storage, item):
    with storage.open(item.key, item.version_id) as f:
        return f.read(catalog.MAX_ENTRY_BYTES + 1)


def _when(as_of):
    return "" if as_of is None else f" as of {iso(as_of)}"


def trusted_entries(storage, state, keys, skipped, as_of=None):
    """The copies' entries of `storage` that verify (and were made at or before `as_of`), newest
    first; every other catalog entry is added to `skipped` with its reason.

    :param keys: `Keys` (identities, verify keys, whether signatures are checked).
    """
    entries = []
    for key, versions in sorted(state.items()):
        name = catalog.copy_name(key)
        if name is None:
            continue
        skip = lambda reason: skipped.append(Skip(storage.location, name, reason))  # noqa: E731
        if versions[0].delete_marker:
            skip(f"its catalog entry is deleted (a delete marker){_when(as_of)}")
            continue
        reasons = []
        for item in versions:  # an overwrite may hide the genuine entry: older versions too
            entry, reason = _entry_of(storage, item, name, keys)
            if entry is not None:
                break
            reasons.append(reason)
        else:
            skip("; ".join(dict.fromkeys(reasons)) + (
                f" ({len(versions)} versions tried)" if len(versions) > 1 else ""))
            continue
        if as_of is not None and entry["created_at"] > as_of:
            continue  # made after the moment asked for: not a candidate, not a failure
        entries.append(entry)
    return sorted(entries, key=lambda e: (e["created_at"], e["remote_name"]), reverse=True)


def _entry_of(storage, item, name, keys):
    """`(entry, None)` when version `item` of copy `name`'s catalog entry verifies, else
    `(None, reason)`."""
    try:
        entry = catalog.read(_read_entry(storage, item), keys.identities, keys.verify_keys,
                             check_signature=keys.check_signature)
    except (CopyDamaged, NotAuthentic, MissingExtra) as exc:
        return None, f"catalog entry refused: {getattr(exc, 'message', None) or exc}"
    except Exception as exc:  # noqa: BLE001 - OSError, botocore's many kinds
        return None, f"its catalog entry cannot be read: {describe_error(exc)}"
    if entry["remote_name"] != name or parse_remote_name(name) is None:
        return None, "its signed catalog entry describes another copy (moved or planted)"
    return entry, None


@dataclass(frozen=True)
class Keys:
    """What recovery decrypts and trusts with."""

    identities: str
    verify_keys: tuple
    check_signature: bool = True


class _Version:
    """`storage` seen as a target of `targets.unpack`, reading one version of each copy."""

    def __init__(self, storage, version_id):
        self.storage, self.version_id = storage, version_id

    def open_copy(self, name):
        return self.storage.open(name, self.version_id)


def fetch_checked(storage, entry, item, dest, identities):
    """Download copy `entry` (`item`: its object or version) into `dest`, checked; its schema
    version.

    `dest` is a new file (0600), fsynced; the caller removes it on failure.
    :raises CopyDamaged, NotAuthentic, MissionControlError: the reason this copy is not usable.
    """
    with open_private(dest) as sink:
        unpack(_Version(storage, item.version_id), entry["remote_name"], sink, identities,
               entry, plain_cap(entry))
        sink.flush()
        os.fsync(sink.fileno())
    return _checked(dest, entry)


def rebuild_checked(source, entry, dest, identities):
    """Rebuild delta copy `entry` from `source` (a `StorageSource` of its chain) into `dest`,
    checked; its schema version. As `fetch_checked`."""
    open_private(dest).close()
    with open(dest, "r+b") as f:  # read back while rebuilding: the private file, reopened
        try:
            rebuild_copy(source, entry, f, identities)
        except MissingExtra as exc:
            raise MissionControlError(str(exc), status=501) from None
        f.flush()
        os.fsync(f.fileno())
    return _checked(dest, entry)


def _checked(dest, entry):
    found = inspect(dest)
    if not found.ok:
        raise CopyDamaged("the unpacked database fails its checks: " + "; ".join(found.problems))
    if found.schema_version != entry["schema_version"]:
        raise CopyDamaged(f"its schema version is {found.schema_version}, its signed entry says "
                          f"{entry['schema_version']}")
    return found.schema_version


def recover(storages, folder, keys, *, as_of=None, token=secrets.token_hex):
    """Place the newest usable copy of the first storage that has one in `folder` as `DB_NAME`.

    :param storages: storages (`offsite.storage`), tried in order.
    :param folder: a new or empty folder (`prepare_destination`); left as it was on failure.
    :param keys: `Keys`.
    :param as_of: unix seconds: only copies made at or before it, read from the objects as they
        were then when the bucket keeps versions.
    :return: `Recovered`.
    :raises NothingRecoverable: no copy could be used (each reason in `skipped`).
    :raises CopyUnwritable: the destination could not take the copy (a full disk).
    """
    folder = Path(folder).absolute()
    created = prepare_destination(folder)
    skipped = []
    try:
        for storage in storages:
            found = _from_storage(storage, folder, keys, as_of, skipped, token)
            if found is not None:
                found.skipped = skipped
                return found
    except BaseException:
        _undo(folder, created)
        raise
    _undo(folder, created)
    raise NothingRecoverable(f"no copy could be recovered{_when(as_of)}", skipped)


def _undo(folder, created):
    if created:
        try:
            folder.rmdir()
        except OSError:
            pass


def _from_storage(storage, folder, keys, as_of, skipped, token):
    try:
        state, versioned = objects_at(storage, as_of)
    except Exception as exc:  # noqa: BLE001 - OSError, botocore's many kinds
        skipped.append(Skip(storage.location, "*", f"cannot be listed: {describe_error(exc)}"))
        return None
    entries = trusted_entries(storage, state, keys, skipped, as_of)
    if not entries and not any(catalog.copy_name(k) for k in state):
        skipped.append(Skip(storage.location, "*", f"holds no catalog entry{_when(as_of)}"))
    trusted = {e["remote_name"]: e for e in entries}  # a chain's ancestors are older: all here
    for entry in entries:
        if is_delta(entry["remote_name"]):
            found = _place_delta(storage, entry, state, trusted, folder, keys, as_of, skipped,
                                 token)
        else:
            found = _place_copy(storage, entry, state.get(entry["remote_name"]), folder, keys,
                                as_of, skipped, token)
        if found is not None:
            return Recovered(folder / DB_NAME, storage.location, entry, found.version_id,
                             found.schema_version, versioned)
    return None


@dataclass(frozen=True)
class _Placed:
    version_id: str | None
    schema_version: int


def _matching(storage, entry, versions):
    """The versions of a copy that can be the one `entry` describes, and why each other is not:
    its size must match, and its SHA-256 too where the storage knows it."""
    usable, reasons = [], []
    for item in versions:
        if item.size != entry["size"]:  # known from the listing: no need to download it
            reasons.append(("truncated" if item.size < entry["size"] else "altered") +
                           f": it holds {item.size} bytes, its signed catalog entry says "
                           f"{entry['size']}")
            continue
        if len(versions) > 1:  # one version: the download's own check says it all
            try:
                head = storage.head(item.key, item.version_id)
            except Exception:  # noqa: BLE001 - the download will say what is wrong
                head = None
            if head is not None and head.sha256 and head.sha256 != entry["sha256"]:
                reasons.append("altered: its SHA-256 differs from its signed catalog entry's")
                continue
        usable.append(item)
    return usable, reasons


def _place_copy(storage, entry, versions, folder, keys, as_of, skipped, token):
    """Fetch the first version of copy `entry` that checks out into `folder` as `DB_NAME`."""
    name = entry["remote_name"]
    if not versions or versions[0].delete_marker:
        skipped.append(Skip(storage.location, name,
                            "the copy is deleted (a delete marker)" if versions
                            else f"the copy is missing{_when(as_of)}"))
        return None
    usable, reasons = _matching(storage, entry, versions)
    for item in usable:
        tmp = _scratch(folder, token)
        try:
            schema = fetch_checked(storage, entry, item, tmp, keys.identities)
            place_without_overwrite(tmp, folder / DB_NAME)
            fsync_dir(folder)
            return _Placed(item.version_id, schema)
        except CopyUnwritable:
            raise
        except (CopyDamaged, NotAuthentic, MissionControlError) as exc:
            reasons.append(getattr(exc, "message", None) or str(exc))
        finally:
            remove_files(tmp)
    skipped.append(Skip(storage.location, name, "; ".join(dict.fromkeys(reasons)) + (
        f" ({len(versions)} versions tried)" if len(versions) > 1 else "")))
    return None


def _chain_versions(storage, name, objects, state, as_of):
    """`{object: version id}`: for every object of copy `name`'s chain (`expected_objects`), the
    newest version at `as_of` of the size (and SHA-256, where the storage knows it) that was sent.

    :raises CopyDamaged: an object has no such version (the reason names it and its copy).
    """
    chosen = {}
    for key, (expected, copy) in sorted(objects.items(), key=lambda o: o[0] != name):
        what = "the copy" if key == name else f"{key} (of {copy}), needed by its chain,"
        versions = state.get(key)
        if not versions or versions[0].delete_marker:
            gone = "deleted (a delete marker)" if versions else f"missing{_when(as_of)}"
            raise CopyDamaged(f"{what} is {gone}")
        usable, reasons = _matching(storage, {"size": expected.size, "sha256": expected.sha256},
                                    versions)
        if not usable:
            raise CopyDamaged(f"{what} is not as sent: " + "; ".join(dict.fromkeys(reasons)))
        chosen[key] = usable[0].version_id
    return chosen


def _place_delta(storage, entry, state, trusted, folder, keys, as_of, skipped, token):
    """Rebuild incremental copy `entry` from its chain into `folder` as `DB_NAME` (`_Placed`), or
    skip it with the reason (an ancestor untrusted or missing, an object damaged)."""
    name = entry["remote_name"]
    tmp = _scratch(folder, token)
    try:
        records = chain_records(trusted.get, entry)
        objects = expected_objects(records)
        versions = _chain_versions(storage, name, objects, state, as_of)
        source = StorageSource(storage, objects, set(objects), versions)
        schema = rebuild_checked(source, entry, tmp, keys.identities)
        place_without_overwrite(tmp, folder / DB_NAME)
        fsync_dir(folder)
        return _Placed(versions[name], schema)
    except CopyUnwritable:
        raise
    except (CopyDamaged, NotAuthentic, MissionControlError) as exc:
        reason = getattr(exc, "message", None) or str(exc)
    except Exception as exc:  # noqa: BLE001 - OSError, botocore's many kinds
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise unwritable(exc) from None  # our disk, not the copy: no other copy fits either
        reason = f"its chain cannot be read: {describe_error(exc)}"
    finally:
        remove_files(tmp)
    skipped.append(Skip(storage.location, name, reason))
    return None


@dataclass
class RecoveredAt:
    """The database placed at `path`, as it was at `moment` (unix ms), from a sealed stream."""

    path: Path
    source: str
    moment: int
    schema_version: int
    skipped: list = field(default_factory=list)


def recover_at(storages, folder, at_ms, restore, *, token=secrets.token_hex):
    """Place the database as it was at `at_ms`, from the first sealed point-in-time stream that
    can give it, in `folder` as `DB_NAME` (checked like a copy).

    :param restore: ``restore(storage, at_ms, dest, skipped) -> moment (unix ms)``: the sealed
        stream's restore (`sealed_stream.restore_sealed` with its trust and Litestream bound);
        `skipped` is a dict it fills with `{key: reason}` of each file it went around.
    :raises NothingRecoverable: no stream could give it (each reason in `skipped`).
    """
    folder = Path(folder).absolute()
    created = prepare_destination(folder)
    skipped = []
    try:
        for storage in storages:
            tmp = _scratch(folder, token)
            files = {}
            try:
                moment = restore(storage, at_ms, tmp, files)
                found = inspect(tmp)
                if not found.ok:
                    raise CopyDamaged("the restored database fails its checks: "
                                      + "; ".join(found.problems))
                final = folder / DB_NAME
                place_without_overwrite(tmp, final)
                fsync_dir(folder)
                skipped += [Skip(storage.location, k, v) for k, v in sorted(files.items())]
                return RecoveredAt(final, storage.location, moment, found.schema_version,
                                   skipped)
            except (CopyDamaged, MissionControlError) as exc:
                skipped += [Skip(storage.location, k, v) for k, v in sorted(files.items())]
                skipped.append(Skip(storage.location, "point-in-time stream",
                                    getattr(exc, "message", None) or str(exc)))
            except Exception as exc:  # noqa: BLE001 - OSError, botocore's many kinds
                skipped.append(Skip(storage.location, "point-in-time stream",
                                    f"cannot be read: {describe_error(exc)}"))
            finally:
                remove_files(tmp, f"{tmp}-wal", f"{tmp}-shm")
    except BaseException:
        _undo(folder, created)
        raise
    _undo(folder, created)
    raise NothingRecoverable("the point-in-time stream could not be restored to that moment",
                             skipped)
