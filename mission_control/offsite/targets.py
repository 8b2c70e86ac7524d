"""Coming back from off-site: the targets plugins offer, their copies, and fetching one back as a backup.

A target is an object a plugin returns from the ``offsite_targets`` hook with a ``name``, a
``list_copies()`` and an ``open_copy(name)`` (see `mission_control.hookspecs` and
`mc.offsite.targets`). A copy fetched back is unpacked into a hidden scratch file, checked like
an upload, and kept as ``offsite-<backup name>`` in the backups folder, where the normal restore
path can restore it; the newest ``general.safety_copies_keep`` of them are kept.

A copy not in the signed record of copies this service made is refused before it is downloaded
(`offsite_signing`); unpacking stops as soon as the copy grows past the plain size in its record:
a small zstd file can unpack to any size. An incremental copy (`codec.is_delta`) is rebuilt from
its chain (`readback`): every copy of the chain must be authentic, every object as it was sent,
and the rebuilt file is checked as a full copy is.
"""
import errno
from contextlib import closing
from dataclasses import dataclass

from ..actor import as_actor
from ..errors import BadRequest, MissionControlError, NotFound, ValidationFailed, describe_error
from ..files import fsync_dir
from ..files import place_without_overwrite
from ..files import sha256_file
from ..backup.names import FETCHED_PREFIX, OFFSITE_FETCH  # noqa: F401 - FETCHED_PREFIX re-exported
from .codec import (CHUNK, CopyDamaged, DigestingReader, MissingExtra, decode, is_delta,
                    parse_remote_name)
from .readback import (StorageSource, chain_records, expected_objects, present_objects,
                       rebuild_copy)
from .signing import NotAuthentic
from .signing import authentic_record
from ..backup.pruning import keep_newest
from ..backup.scratch import SCRATCH_PREFIX
from ..units import human_size
from ..backup.uploads import UploadSink
from ..backup.uploads import check_received
from ..backup.uploads import keep_received

FETCH_SCRATCH = f"{SCRATCH_PREFIX}fetch-"


@dataclass(frozen=True)
class RemoteCopy:
    """One copy held by a target: its remote `name`, stored `size` and `created_at` (unix s)."""

    name: str
    size: int
    created_at: int

    @property
    def kind(self):
        """``"delta"`` for an incremental copy (its manifest object), else ``"full"``."""
        return "delta" if is_delta(self.name) else "full"

    def to_json(self):
        _, compressed, encrypted = parse_remote_name(self.name)
        return {"name": self.name, "size": self.size, "created_at": self.created_at,
                "encrypted": encrypted, "compressed": compressed, "kind": self.kind}


class TargetUnavailable(MissionControlError):
    """The target's storage could not be read (unmounted share, unreachable bucket, ...)."""

    status = 502


def find_target(mc, name):
    """:raises NotFound: no plugin offers a configured target of that name (404)."""
    target = mc.offsite.targets().get(name)
    if target is None:
        raise NotFound(f"No configured off-site target named {str(name)[:40]!r}")
    return target


def list_copies(target):
    """The target's copies (`RemoteCopy`), newest first.

    :raises TargetUnavailable: the target could not be listed (502).
    """
    try:
        copies = [c for c in target.list_copies() if parse_remote_name(c.name)]
    except Exception as exc:  # noqa: BLE001 - OSError, botocore's many kinds: all "unreadable"
        raise TargetUnavailable(f"The off-site target cannot be read: "
                                f"{describe_error(exc)}") from None
    return sorted(copies, key=lambda c: (parse_remote_name(c.name)[0], c.created_at),
                  reverse=True)


class CopyTooLarge(CopyDamaged):
    """The copy unpacks to more bytes than it may have (`plain_cap`)."""


class CopyUnwritable(MissionControlError):
    """The unpacked copy could not be written here (a full disk: 507)."""


@dataclass(frozen=True)
class PlainCap:
    """The most bytes a copy may unpack to, and why (said in the refusal)."""

    size: int
    why: str


def plain_cap(record):
    """The cap on the copy of signed `record`: its plain size when it was sent."""
    return PlainCap(record["plain_size"], f"the {human_size(record['plain_size'])} recorded "
                    "when it was sent")


def unwritable(exc):
    """`CopyUnwritable` for an OSError of writing the unpacked copy (507 when the disk is full)."""
    return CopyUnwritable("The off-site copy cannot be stored in the backups folder: "
                          f"{describe_error(exc)}",
                          status=507 if exc.errno in (errno.ENOSPC, errno.EDQUOT) else 500)


class _Bounded:
    """The writer a copy unpacks into: refuses to pass `cap` bytes, and keeps why a write failed
    (pyrage turns a writer's exception into its own error)."""

    def __init__(self, sink, cap):
        self._sink, self._cap = sink, cap
        self.size = 0
        self.failure = None

    def write(self, data):
        if self.size + len(data) > self._cap.size:
            self.failure = CopyTooLarge(f"it is larger than {self._cap.why}: unpacking "
                                        "stopped there")
            raise self.failure
        try:
            self._sink.write(data)
        except OSError as exc:
            self.failure = unwritable(exc)
            raise
        self.size += len(data)
        return len(data)

    def flush(self):
        pass


def unpack(target, remote_name, sink, identity, record, cap):
    """Download `remote_name` from `target` and unpack it into `sink`; `(size, plain_sha256)`.

    :param record: the copy's signed record (`offsite_signing.authentic_record`): both SHA-256s
        must match it.
    :param cap: a `PlainCap`: nothing past it is written.
    :raises CopyTooLarge: the copy unpacks to more than `cap` (a CopyDamaged).
    :raises CopyDamaged: wrong identity, truncated or altered copy.
    :raises NotAuthentic: the stored or the plain bytes differ from the signed record.
    :raises CopyUnwritable: `sink` could not take it (disk full: 507).
    :raises TargetUnavailable: the copy could not be read.
    """
    _, compressed, encrypted = parse_remote_name(remote_name)
    out = _Bounded(sink, cap)
    try:
        with closing(target.open_copy(remote_name)) as raw:
            stored = DigestingReader(raw)
            size, digest = decode(stored, out, compressed=compressed, encrypted=encrypted,
                                  identities=identity)
            for _ in iter(lambda: stored.read(CHUNK), b""):
                pass  # bytes after what decode needed are part of the stored object's SHA-256
    except Exception as exc:  # noqa: BLE001 - OSError, botocore's many kinds: all "unreadable"
        if out.failure is not None:  # the cap or our disk, not the copy or the target
            raise out.failure from None
        if isinstance(exc, CopyDamaged):
            raise
        if isinstance(exc, MissingExtra):
            raise MissionControlError(str(exc), status=501) from None
        raise TargetUnavailable(f"The off-site copy cannot be read: "
                                f"{describe_error(exc)}") from None
    if stored.sha256 != record["sha256"]:
        raise NotAuthentic("its stored bytes' SHA-256 differs from the signed record of the "
                           "copy that was uploaded")
    if digest != record["plain_sha256"]:
        raise NotAuthentic("the unpacked backup's SHA-256 differs from the signed record of the "
                           "backup that was sent")
    return size, digest


def chain_of(mc, target, record):
    """The authentic records of the chain of copy `record` at `target`, its full copy first
    (`[record]` for a full copy).

    :raises NotAuthentic: an ancestor is not in the signed record (named: it may be planted).
    :raises ChainBroken: the chain does not hold together (a CopyDamaged).
    """
    return chain_records(lambda name: authentic_record(mc, target, name), record)


def _failed_read(exc):
    """The error for an exception rebuilding a copy that is neither the copy's nor ours."""
    if isinstance(exc, MissingExtra):
        return MissionControlError(str(exc), status=501)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return unwritable(exc)
    return TargetUnavailable(f"The off-site copy cannot be read: {describe_error(exc)}")


def rebuild_chain(target, records, sink, identity):
    """Rebuild delta copy `records[-1]` from `target`'s storage into `sink` (an `UploadSink`,
    written in place by its path); `(size, plain_sha256)`.

    :param records: `chain_of` the copy.
    :raises CopyDamaged: an object of the chain is missing, damaged or not as sent (named).
    :raises NotAuthentic: the rebuilt backup differs from the signed record.
    :raises TargetUnavailable: the storage could not be read (502); `CopyUnwritable` (507).
    """
    storage = getattr(target, "storage", None)
    if storage is None:
        raise MissionControlError("This off-site target cannot give an incremental copy's "
                                  "objects back", status=501)
    objects = expected_objects(records)
    try:
        present = present_objects(objects, {o.key: o.size for o in storage.list()})
        with open(sink.path, "r+b") as f:
            size, digest = rebuild_copy(StorageSource(storage, objects, present), records[-1], f,
                                        identity)
            f.flush()
    except (CopyDamaged, NotAuthentic):
        raise
    except Exception as exc:  # noqa: BLE001 - OSError, botocore's many kinds, a missing extra
        raise _failed_read(exc) from None
    sink.filled(size, digest)
    return size, digest


def read_back(target, remote_name, sink, identity, records, cap):
    """Unpack a full copy (`unpack`) or rebuild a delta copy (`rebuild_chain`) into `sink`.

    :param records: `chain_of` the copy (its own record last).
    """
    if is_delta(remote_name):
        return rebuild_chain(target, records, sink, identity)
    return unpack(target, remote_name, sink, identity, records[-1], cap)


def fetch(mc, target_name, remote_name, actor, identity=None):
    """`_fetch`, with every failure audited as ``offsite_fetch_refused`` with its reason.

    An OSError of storing the copy becomes `CopyUnwritable` (507 when the disk is full).
    """
    try:
        return _fetch(mc, target_name, remote_name, actor, identity)
    except (MissionControlError, OSError) as exc:
        failure = unwritable(exc) if isinstance(exc, OSError) else exc
        mc.audit.emit("offsite_fetch_refused", actor, target_type="offsite",
                      target_id=str(target_name)[:40],
                      detail={"target": str(target_name)[:40], "name": str(remote_name)[:255],
                              "reason": "; ".join(failure.details or [failure.message]),
                              "status": failure.status})
        if failure is exc:
            raise
        raise failure from exc


def _fetch(mc, target_name, remote_name, actor, identity=None):
    """Fetch copy `remote_name` from `target_name` back into the backups folder, checked.

    :param identity: age secret key(s); by default the secret setting ``offsite.age_identity``.
    :return: `{"backup": {name, size, created_at, sha256}, "sha256_match": True}` (a copy
        that does not match its signed record is refused, so the match is always true).
    :raises ValidationFailed: not a copy's name (400). :raises NotFound: no such target or copy.
    :raises BadRequest: the copy is not in the signed record of copies this service made (it may
        have been planted), cannot be decrypted or unpacked, unpacks to more than it may
        (`plain_cap`), is not a valid backup, or differs from its record (400); nothing is left
        behind.
    :raises BackupRefused: the disk guard (a `pre_backup` plugin) refused (507).
    """
    target = find_target(mc, target_name)
    parsed = parse_remote_name(remote_name)
    if parsed is None:
        raise ValidationFailed(["name: must be an off-site copy's name "
                                "(mc-backup-…db, optionally .zst and/or .age)"])
    if remote_name not in {c.name for c in list_copies(target)}:
        raise NotFound("The off-site target holds no copy of that name")
    try:
        record = authentic_record(mc, target, remote_name)  # before a byte is downloaded
        records = chain_of(mc, target, record)  # and every copy its chain needs
    except (NotAuthentic, CopyDamaged) as exc:
        raise NotAuthentic(f"The off-site copy was refused: {exc}") from None
    mc.backups.check_before(as_actor(actor), OFFSITE_FETCH.name)
    cap = plain_cap(record)
    sink = UploadSink(mc.backups.dir, cap.size, FETCH_SCRATCH)

    def accept():
        try:
            read_back(target, remote_name, sink,
                      identity or mc.settings.get("offsite.age_identity"), records, cap)
        except (CopyDamaged, NotAuthentic) as exc:
            raise NotAuthentic(f"The off-site copy was refused: {exc}") from None
        sink.finish()
        digest, found = check_received(mc, sink, "The off-site copy is not a valid Mission "
                                                 "Control backup")
        final = mc.backups.dir / f"{FETCHED_PREFIX}{parsed[0]}"
        try:
            place_without_overwrite(sink.path, final)
        except FileExistsError:
            if sha256_file(final) != digest:
                raise BadRequest(f"{final.name} already exists with other content: delete it "
                                 "first") from None
            sink.discard()
        fsync_dir(mc.backups.dir)
        return final, digest, found

    backup = keep_received(mc, sink, actor, accept, None)
    mc.audit.emit("offsite_fetch", actor, target_type="offsite", target_id=target.name,
                  detail={"target": target.name, "name": remote_name, "backup": backup["name"],
                          "sha256": backup["sha256"], "sha256_match": True})
    keep_newest(mc, OFFSITE_FETCH, backup["name"], actor)
    return {"backup": backup, "sha256_match": True}
