"""Coming back from off-site: the targets plugins offer, their copies, and fetching one back as a backup.

A target is an object a plugin returns from the ``offsite_targets`` hook with a ``name``, a
``list_copies()`` and an ``open_copy(name)`` (see `mission_control.hookspecs` and
`mc.offsite.targets`). A copy fetched back is unpacked into a hidden scratch file, checked like
an upload, and kept as ``offsite-<backup name>`` in the backups folder, where the normal restore
path can restore it; the newest ``general.safety_copies_keep`` of them are kept.

Unpacking stops as soon as the copy grows past its plain size recorded when it was sent (or,
with no record here, ``MC_MAX_UPLOAD_MB``): a small zstd file can unpack to any size.
"""
import errno
from contextlib import closing
from dataclasses import dataclass

from .actor import as_actor
from .errors import BadRequest, MissionControlError, NotFound, ValidationFailed, describe_error
from .fsutil import fsync_dir, place_without_overwrite, sha256_file
from .names import OFFSITE_FETCH
from .offsite_codec import CopyDamaged, MissingExtra, decode, parse_remote_name
from .pruning import keep_newest
from .scratch_files import SCRATCH_PREFIX
from .units import human_size
from .uploads import UploadSink, check_received, keep_received

FETCHED_PREFIX = "offsite-"
FETCH_SCRATCH = f"{SCRATCH_PREFIX}fetch-"


@dataclass(frozen=True)
class RemoteCopy:
    """One copy held by a target: its remote `name`, stored `size` and `created_at` (unix s)."""

    name: str
    size: int
    created_at: int

    def to_json(self):
        _, compressed, encrypted = parse_remote_name(self.name)
        return {"name": self.name, "size": self.size, "created_at": self.created_at,
                "encrypted": encrypted, "compressed": compressed}


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


def plain_cap(mc, record):
    """The cap on `record`'s copy: its plain size when it was sent, else MC_MAX_UPLOAD_MB."""
    if record is not None and record["plain_size"]:
        return PlainCap(record["plain_size"], f"the {human_size(record['plain_size'])} "
                        "recorded when it was sent")
    limit = mc.config.max_upload_mb
    return PlainCap(limit * 1024 * 1024, f"the {limit} MB limit (MC_MAX_UPLOAD_MB) on a copy "
                    "this server has no record of")


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


def unpack(target, remote_name, sink, identity, cap):
    """Download `remote_name` from `target` and unpack it into `sink`; `(size, plain_sha256)`.

    :param cap: a `PlainCap`: nothing past it is written.
    :raises CopyTooLarge: the copy unpacks to more than `cap` (a CopyDamaged).
    :raises CopyDamaged: wrong identity, truncated or altered copy.
    :raises CopyUnwritable: `sink` could not take it (disk full: 507).
    :raises TargetUnavailable: the copy could not be read.
    """
    _, compressed, encrypted = parse_remote_name(remote_name)
    out = _Bounded(sink, cap)
    try:
        with closing(target.open_copy(remote_name)) as reader:
            return decode(reader, out, compressed=compressed, encrypted=encrypted,
                          identities=identity)
    except Exception as exc:  # noqa: BLE001 - OSError, botocore's many kinds: all "unreadable"
        if out.failure is not None:  # the cap or our disk, not the copy or the target
            raise out.failure from None
        if isinstance(exc, CopyDamaged):
            raise
        if isinstance(exc, MissingExtra):
            raise MissionControlError(str(exc), status=501) from None
        raise TargetUnavailable(f"The off-site copy cannot be read: "
                                f"{describe_error(exc)}") from None


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
    :return: `{"backup": {name, size, created_at, sha256}, "sha256_match": bool or None}`
        (None when this server has no record of the copy).
    :raises ValidationFailed: not a copy's name (400). :raises NotFound: no such target or copy.
    :raises BadRequest: the copy cannot be decrypted or unpacked, unpacks to more than it may
        (`plain_cap`), is not a valid backup, or differs from what was sent (400); nothing is
        left behind.
    :raises BackupRefused: the disk guard (a `pre_backup` plugin) refused (507).
    """
    target = find_target(mc, target_name)
    parsed = parse_remote_name(remote_name)
    if parsed is None:
        raise ValidationFailed(["name: must be an off-site copy's name "
                                "(mc-backup-…db, optionally .zst and/or .age)"])
    if remote_name not in {c.name for c in list_copies(target)}:
        raise NotFound("The off-site target holds no copy of that name")
    record = mc.offsite.copy_record(target.name, remote_name)
    mc.backups.check_before(as_actor(actor), OFFSITE_FETCH.name)
    cap = plain_cap(mc, record)
    sink = UploadSink(mc.backups.dir, cap.size, FETCH_SCRATCH)
    match = None

    def accept():
        nonlocal match
        try:
            unpack(target, remote_name, sink, identity or mc.settings.get("offsite.age_identity"),
                   cap)
        except CopyDamaged as exc:
            raise BadRequest(f"The off-site copy was refused: {exc}") from None
        sink.finish()
        digest, found = check_received(mc, sink, "The off-site copy is not a valid Mission "
                                                 "Control backup")
        match = None if record is None else record["plain_sha256"] == digest
        if match is False:
            raise BadRequest("The off-site copy was refused: its SHA-256 differs from the backup "
                             "that was sent")
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
                          "sha256": backup["sha256"], "sha256_match": match})
    keep_newest(mc, OFFSITE_FETCH, backup["name"], actor)
    return {"backup": backup, "sha256_match": match}
