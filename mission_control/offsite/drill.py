"""Restore drills: fetch each target's newest copy to a temporary file and prove it restores.

For every off-site target that can give copies back, the newest copy in the signed record of
copies this service made (`offsite_signing.authentic_record`) is unpacked (decrypted with the
secret setting ``offsite.age_identity``, decompressed) into a hidden scratch file, checked like
an upload (``integrity_check``, Mission Control's schema) and both its SHA-256s compared with the
record; the file is then deleted. An encrypted copy without an identity configured can only be
checked by its age header and the SHA-256 of the stored bytes, and the result says so. As a fetch
does, a drill asks the disk guard first and stops unpacking past the copy's recorded plain
size. An incremental copy is rebuilt from its chain (`targets.rebuild_chain`): every copy of
the chain must be authentic and every object (full copy, manifests, packs) as it was sent; without
an identity every object of the chain is read whole and compared with its record. A copy at the
target that is not in the signed record (planted by
whoever can write there) fails the drill, named in `unrecorded`. Each result is remembered
(`mc.offsite.drills()`), audited as ``offsite_verify`` and counted by backup health.
"""
from contextlib import closing

from ..actor import as_actor
from ..errors import MissionControlError, describe_error
from .codec import AGE_MAGIC
from .codec import CHUNK
from .codec import CopyDamaged
from .codec import Digesting
from .codec import is_delta
from .codec import parse_remote_name
from .readback import check_stored
from .readback import expected_objects
from .signing import NotAuthentic
from .signing import authentic_record
from .targets import chain_of
from .targets import list_copies
from .targets import plain_cap
from .targets import read_back
from .targets import unwritable
from ..backup.scratch import SCRATCH_PREFIX
from ..backup.uploads import UploadSink
from ..backup.verify import inspect

FULL, HEADER_AND_HASH = "full", "header_and_hash"
DRILL_SCRATCH = f"{SCRATCH_PREFIX}drill-"
#: The `pre_backup` hook's `kind` when a drill asks the disk guard before unpacking.
DRILL_KIND = "offsite_drill"


class _Discard:
    def write(self, data):
        return len(data)


def _stored_digest(target, name):
    """`(starts like an age file, sha256 of the stored bytes)`, streaming the copy once."""
    out = Digesting(_Discard())
    with closing(target.open_copy(name)) as reader:
        head = reader.read(len(AGE_MAGIC))
        out.write(head)
        for chunk in iter(lambda: reader.read(CHUNK), b""):
            out.write(chunk)
    return head == AGE_MAGIC, out.sha256


def _check_stored(target, name, records):
    """The header-and-hash check of an encrypted copy (and of every object of its chain, for an
    incremental copy); returns the message, raises CopyDamaged."""
    if is_delta(name):
        check_stored(target.storage, expected_objects(records))
        return (f"age headers and SHA-256 of the stored bytes of all {len(records)} copies of "
                "its chain (manifests and packs too) match what was sent; not decrypted (no "
                "offsite.age_identity set), so not rebuilt")
    record = records[-1]
    is_age, digest = _stored_digest(target, name)
    if not is_age:
        raise CopyDamaged("the copy does not start with an age header")
    if digest != record["sha256"]:
        raise CopyDamaged("the stored bytes' SHA-256 differs from what was sent")
    return ("age header and SHA-256 of the stored bytes match what was sent; not decrypted "
            "(no offsite.age_identity set), so not restored")


def _check_restorable(mc, target, name, records, identity, actor):
    """The full drill: unpack (or rebuild) into a scratch file, inspect, compare; returns the
    message."""
    mc.backups.check_before(as_actor(actor), DRILL_KIND)
    cap = plain_cap(records[-1])
    sink = UploadSink(mc.backups.dir, cap.size, DRILL_SCRATCH)
    try:
        read_back(target, name, sink, identity, records, cap)
        try:
            sink.finish()
        except OSError as exc:
            raise unwritable(exc) from None
        found = inspect(sink.path, timeout=mc.config.verify_timeout, clock=mc.clock)
        if not found.ok:
            raise CopyDamaged("the unpacked backup is not restorable: " +
                              "; ".join(found.problems[:3]))
    finally:
        sink.discard()
    if is_delta(name):
        return (f"rebuilt from its chain of {len(records)} copies, passed integrity_check, and "
                "its SHA-256 matches the backup that was sent")
    return "unpacked, passed integrity_check, and its SHA-256 matches the backup that was sent"


def _newest_recorded(mc, target, copies):
    """`(name, record)` of the newest of `copies` in the signed record (or `(None, None)`), and
    the names of the others that are not in it."""
    newest, unrecorded = (None, None), []
    for copy in copies:
        try:
            record = authentic_record(mc, target, copy.name)
        except NotAuthentic:
            unrecorded.append(copy.name)
            continue
        if newest[0] is None:
            newest = (copy.name, record)
    return newest, unrecorded


def _drill(mc, target, actor, unrecorded):
    """`(ok, name, mode, message)` of drilling `target`'s newest recorded copy.

    :param unrecorded: a list that gains the copies not in the signed record.
    """
    name = None
    try:
        copies = list_copies(target)
        if not copies:
            # Not a failed drill: a target with no copy yet is what copy health reports.
            return True, None, None, "the target holds no copy yet: nothing to drill"
        (name, record), planted = _newest_recorded(mc, target, copies)
        unrecorded.extend(planted)
        if name is None:
            return False, None, None, "no copy at the target is in the signed record of copies " \
                                      "this service made"
        records = chain_of(mc, target, record)
        _, _, encrypted = parse_remote_name(name)
        identity = mc.settings.get("offsite.age_identity")
        if encrypted and not identity:
            return True, name, HEADER_AND_HASH, _check_stored(target, name, records)
        return True, name, FULL, _check_restorable(mc, target, name, records, identity, actor)
    except (CopyDamaged, NotAuthentic) as exc:
        return False, name, None, str(exc)
    except MissionControlError as exc:
        return False, name, None, exc.message
    except Exception as exc:  # noqa: BLE001 - a target's own errors (OSError, botocore's, ...)
        return False, name, None, f"the copy cannot be read: {describe_error(exc)}"


def drill_target(mc, target, actor):
    """Drill one target's newest recorded copy; remember and audit the result.

    :return: dict with `target`, `ok`, `name` (the copy drilled, or None), `mode` ("full" or
        "header_and_hash", or None when nothing was drilled), `message`, and `unrecorded`: the
        copies at the target that are not in the signed record (any of them fails the drill).
    """
    unrecorded = []
    ok, name, mode, message = _drill(mc, target, actor, unrecorded)
    if unrecorded:
        ok = False
        message += (f"; {len(unrecorded)} cop{'y' if len(unrecorded) == 1 else 'ies'} at the "
                    "target not in the signed record of copies this service made (planted by "
                    f"whoever can write there?): {', '.join(unrecorded[:5])}")
    result = {"target": target.name, "ok": ok, "name": name, "mode": mode, "message": message,
              "unrecorded": unrecorded}
    mc.offsite.drilled(target.name, ok, name, message, result)
    mc.audit.emit("offsite_verify", actor, target_type="offsite", target_id=target.name,
                  detail=result)
    return result


def drill_all(mc, actor):
    """Drill every configured target that can give copies back; a list of `drill_target` results."""
    return [drill_target(mc, target, actor)
            for _, target in sorted(mc.offsite.targets().items())]


class DrillFailed(MissionControlError):
    """A scheduled or manual drill found a target whose newest copy would not restore."""


def drill_task(mc, actor):
    """The scheduler's `offsite_verify` task: drill every target; `(None, summary)`.

    :raises DrillFailed: a target failed its drill (the summary names it and why).
    """
    results = drill_all(mc, actor)
    if not results:
        return None, "No off-site target that can give copies back is configured"
    words = {FULL: "restored and compared", HEADER_AND_HASH: "age header and SHA-256 only, no "
             "offsite.age_identity", None: "nothing drilled"}
    summary = "; ".join(f"{r['target']}: " + (f"passed ({words[r['mode']]})" if r["ok"] else
                                              f"FAILED: {r['message']}") for r in results)
    if not all(r["ok"] for r in results):
        raise DrillFailed(f"Restore drill failed: {summary}")
    return None, f"Restore drill passed: {summary}"
