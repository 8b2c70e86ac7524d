"""Incremental copies, the sender's side: which parent a new copy builds on, or why it is a full one.

Also the page hashes kept locally of each target's last copy.

A delta is always relative to the previous copy at the same target and location, and only when
the rules of `plan` all hold; otherwise the copy is a full one and `Plan.reason` says why. The
page hashes of a target's last copy are kept in ``offsite-hashes/<target>/`` beside the service's
database, one file (``<schema version>-<remote name>.hashes``, `delta.save_hashes`); the files of
older copies are removed when a new one is saved.
"""
import os
import re
from dataclasses import dataclass

from ..errors import describe_error
from ..files import remove_files
from . import delta
from .extras import missing as missing_module

HASHES_FOLDER = "offsite-hashes"
HASHES_SUFFIX = ".hashes"
#: Target names that can name a folder (the built-ins' ``dir`` and ``s3``, most plugins').
SAFE_TARGET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Plan:
    """What the next copy is: a delta over `parent` (its record) with the parent's page `hashes`,
    or a full copy (`parent` None) for `reason` (None: incremental copies are off)."""

    parent: dict = None
    hashes: delta.PageHashes = None
    reason: str = None

    @property
    def is_delta(self):
        return self.parent is not None


def hashes_folder(mc, target_name):
    """The folder of `target_name`'s page hashes, or None when the name cannot name a folder."""
    if not SAFE_TARGET.match(target_name) or target_name.startswith("."):
        return None
    return mc.config.db_path.parent / HASHES_FOLDER / target_name


def _hash_files(folder):
    try:
        return [entry for entry in os.scandir(folder)
                if entry.name.endswith(HASHES_SUFFIX) and entry.is_file(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def _file_name(schema_version, remote_name):
    return f"{int(schema_version)}-{remote_name}{HASHES_SUFFIX}"


def kept_hashes(mc, target_name, remote_name):
    """`(schema_version, PageHashes)` kept for copy `remote_name` at `target_name`, or None."""
    folder = hashes_folder(mc, target_name)
    for entry in _hash_files(folder) if folder else ():
        version, _, rest = entry.name.partition("-")
        if rest == remote_name + HASHES_SUFFIX and version.isdigit():
            try:
                return int(version), delta.load_hashes(entry.path)
            except (OSError, delta.DeltaError):
                return None
    return None


def save(mc, target_name, remote_name, schema_version, hashes):
    """Keep `hashes` as those of `target_name`'s last copy `remote_name`; drop older ones."""
    folder = hashes_folder(mc, target_name)
    if folder is None:
        return
    os.makedirs(folder, mode=0o700, exist_ok=True)
    name = _file_name(schema_version, remote_name)
    delta.save_hashes(folder / name, hashes)
    for entry in _hash_files(folder):
        if entry.name != name:
            remove_files(entry.path)


def forget(mc, target_name):
    """Remove every page hash file of `target_name` (incremental copies turned off)."""
    folder = hashes_folder(mc, target_name)
    for entry in _hash_files(folder) if folder else ():
        remove_files(entry.path)


def plan(mc, target, backup, shape):
    """Whether the copy of `backup` at `target` (a `StorageTarget`) is a delta, and over what.

    :param shape: `(schema_version, page_size)` of the backup file (`putting.backup_shape`).
    :return: a `Plan`; never raises for the store's sake (an unreachable parent is a reason).
    """
    policy, name = target.policy, target.name
    if not policy.incremental:
        return Plan(reason=None)
    why_not = missing_module("zstandard")
    if why_not:
        return Plan(reason=f"incremental copies need {why_not}")
    if hashes_folder(mc, name) is None:
        return Plan(reason="the target's name cannot name a folder for page hashes")
    newest = mc.offsite.newest_recorded(name, target.location, 1)
    parent = mc.offsite.copy_record(name, newest[0]) if newest else None
    if parent is None:
        return Plan(reason="no earlier copy is recorded at this target and location")
    if parent["backup"] >= backup.name:
        return Plan(reason=f"the last copy, {parent['remote_name']}, is not of an older backup")
    if (parent["chain_length"] or 0) >= policy.full_every:
        return Plan(reason=f"{parent['chain_length']} incremental copies since the last full "
                           f"copy (offsite.{name}.full_every is {policy.full_every})")
    kept = kept_hashes(mc, name, parent["remote_name"])
    if kept is None or kept[1].sha256 != parent["plain_sha256"] \
            or kept[1].size != parent["plain_size"]:
        return Plan(reason=f"no page hashes are kept here for the last copy, "
                           f"{parent['remote_name']}")
    schema_version, hashes = kept
    if hashes.page_size != shape[1]:
        return Plan(reason=f"the page size changed ({hashes.page_size} to {shape[1]})")
    if schema_version != shape[0]:
        return Plan(reason=f"the schema version changed ({schema_version} to {shape[0]})")
    try:
        trouble = chain_trouble(mc, target, parent)
    except Exception as exc:  # noqa: BLE001 - the store's many kinds: then a full copy
        trouble = f"the chain of {parent['remote_name']} could not be checked: " \
                  f"{describe_error(exc)}"
    if trouble:
        return Plan(reason=trouble)
    return Plan(parent=parent, hashes=hashes)


def chain_objects(record):
    """`{key: (size, sha256, etag)}` of copy `record`'s own objects: the copy (full copy or
    manifest) and its packs."""
    found = {record["remote_name"]: (record["size"], record["sha256"], record.get("etag"))}
    for key, info in (record.get("objects") or {}).items():
        found[key] = (info["size"], info["sha256"], None)
    return found


def chain_trouble(mc, target, record):
    """Why copy `record` and its ancestors cannot be built on (an object gone or not what was
    uploaded, an ancestor not recorded here), or None."""
    seen = set()
    while True:
        name = record["remote_name"]
        if name in seen or len(seen) > delta.MAX_CHAIN:
            return f"the chain of {name} loops"
        seen.add(name)
        versions = mc.offsite.copy_objects(target.name, name)[0] or {}
        for key, (size, sha256, etag) in chain_objects(record).items():
            found = target.storage.head(key)
            if found is None:
                return f"{key} ({'the last copy' if len(seen) == 1 else 'in its chain'}) is " \
                       "missing at the target"
            uploaded = versions.get(key)
            if found.size != size or (found.sha256 and found.sha256 != sha256) \
                    or (etag and found.etag and found.etag != etag) \
                    or (uploaded and found.version_id and found.version_id != uploaded):
                return f"{key} is no longer what was uploaded"
        if record["kind"] != "delta":
            return None
        parent = mc.offsite.copy_record(target.name, record["parent"])
        if parent is None:
            return f"{record['parent']}, in the chain, is not recorded here"
        record = parent
