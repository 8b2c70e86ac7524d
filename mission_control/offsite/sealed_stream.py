"""The sealed point-in-time stream: Litestream's LTX files, each age-encrypted, in a storage.

Litestream 0.5 writes a replica as immutable files ``ltx/<level>/<min>-<max>.ltx`` (hex
transaction ids; level 0 each second, higher levels compacted from them, level 9 snapshots).
Sealed, each one is stored as ``ltx/<level>/<min>-<max>.ltx.age``: the same layout, every byte
encrypted to the stream's age recipients. Nothing in the storage is plaintext.

Each file is signed by the service inside its envelope (`sealing`).

`restore_sealed` reads such a stream back to a moment on any machine: it reads the storage as it
was at the moment (object versions: an overwrite or delete made later changes nothing),
downloads the newest snapshot before the moment and only the files after it that Litestream
applies up to the moment, unseals and verifies each into a private temporary replica folder and
runs ``litestream restore -timestamp`` on it. A file that cannot be decrypted or verified is
skipped (and named): the restore goes around it through another level's files or an older
snapshot, and fails only when no complete chain reaches the moment. A file first stored more
than `UPLOAD_LAG_MS` after the moment is not trusted for it (a defence against whoever holds the
host's signing key), and is named when it holds what the moment needs. The plugin that streams
(``pitr``) and ``mission-control recover --at`` both use it.
"""
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..errors import MissionControlError, NotAuthentic, describe_error, safe_text
from ..files import open_private, remove_files, sweep_dead_leftovers
from .codec import CopyDamaged
from .sealing import open_sealed

SNAPSHOT_LEVEL = 9
SEALED_SUFFIX = ".age"
RESTORE_TIMEOUT = 600
TEMP_PREFIX = ".mc-pitr-restore-"
_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.ltx$")
_KEY = re.compile(r"^ltx/([0-9])/([0-9a-f]{16}-[0-9a-f]{16}\.ltx)\.age$")
_PLAIN_KEY = re.compile(r"^ltx/([0-9])/([0-9a-f]{16}-[0-9a-f]{16}\.ltx)$")
_LEVEL = re.compile(r"^[0-9]$")
_HEADER = struct.Struct(">4sIIIQQq")  # magic, flags, page size, commit, min, max, timestamp (ms)


class NothingToRestore(MissionControlError):
    """The sealed stream holds no snapshot before the moment asked for (400)."""

    status = 400


@dataclass(frozen=True, order=True)
class LtxFile:
    """One LTX file of a replica: its compaction `level` and transaction range."""

    level: int
    min_txid: int
    max_txid: int

    @property
    def name(self):
        return f"{self.min_txid:016x}-{self.max_txid:016x}.ltx"

    @property
    def key(self):
        """Its key in the sealed stream (relative to the storage's root)."""
        return f"ltx/{self.level}/{self.name}{SEALED_SUFFIX}"

    def path_in(self, replica):
        """Where a file replica rooted at `replica` (a Path) keeps it."""
        return replica / "ltx" / str(self.level) / self.name


def parse_name(level, name):
    """The `LtxFile` named `name` in level folder `level`, or None (a temporary file, say)."""
    found = _NAME.match(name)
    if not found or not _LEVEL.match(str(level)):  # ASCII only: "\u00b2".isdigit() is True
        return None
    return LtxFile(int(level), int(found.group(1), 16), int(found.group(2), 16))


def parse_key(key, sealed=True):
    """The `LtxFile` a sealed key stands for, or None when `key` is not one.

    :param sealed: False: a key as plain Litestream uploads it (``ltx/<level>/<name>.ltx``).
    """
    found = (_KEY if sealed else _PLAIN_KEY).match(key) if isinstance(key, str) else None
    return parse_name(found.group(1), found.group(2)) if found else None


def read_timestamp(path, expected=None):
    """Unix ms in the header of the LTX file at `path` (when its last transaction was written).

    :param expected: the `LtxFile` its name says it is; its transaction range must match.
    :raises CopyDamaged: not an LTX file, or not the one its name says.
    """
    with open(path, "rb") as f:
        head = f.read(_HEADER.size)
    if len(head) < _HEADER.size or head[:4] != b"LTX1":
        raise CopyDamaged("a file of the point-in-time stream is not an LTX file")
    _, _, _, _, min_txid, max_txid, timestamp = _HEADER.unpack(head)
    if expected is not None and (min_txid, max_txid) != (expected.min_txid, expected.max_txid):
        raise CopyDamaged(f"{expected.key} does not hold the transactions its name says")
    return timestamp


def sealed_files(storage):
    """The `LtxFile`s a storage holds, sorted; objects under ``ltx/`` named otherwise are ignored."""
    found = (parse_key(item.key) for item in storage.list("ltx/"))
    return sorted(f for f in found if f is not None)


def window(stamps):
    """`{"earliest", "latest"}` (unix ms) a restore can reach, from `{LtxFile: timestamp}`.

    A file counts for a moment strictly after its timestamp (Litestream's rule), hence the +1.
    """
    snapshots = [ts for f, ts in stamps.items() if f.level == SNAPSHOT_LEVEL]
    if not snapshots:
        return {"earliest": None, "latest": None}
    return {"earliest": min(snapshots) + 1, "latest": max(stamps.values()) + 1}


@dataclass(frozen=True)
class Trust:
    """What a restore decrypts and trusts the stream's files with.

    :param identities: age secret key(s) (``AGE-SECRET-KEY-1…``) of one of its recipients.
    :param verify_keys: ``Ed25519PublicKey``s a file's signed line must verify with.
    :param check_signature: False only for ``recover --at --unverified`` (said loudly there).
    """

    identities: str
    verify_keys: tuple = ()
    check_signature: bool = True


#: How long after a moment a file written before it may still be uploaded: a restore trusts
#: no file first stored later than this (a file planted later, even one signed with the
#: service's key, neither stops nor changes restores to earlier moments). A genuine file
#: uploaded later (the storage down, a slow first snapshot, the final sweep out of time) is
#: left out too, and named (`LATE`): a later limit (`stored_by_ms`) reads it.
UPLOAD_LAG_MS = 60_000
#: How the reason of a file left out for being first stored late begins.
LATE = "first stored "


def late_files(skipped):
    """The keys of `skipped` (`{key: reason}`) left out for being first stored late."""
    return sorted(k for k, reason in skipped.items() if reason.startswith(LATE))


def versions_at(storage, at_ms, late=None, stored_by_ms=None):
    """`{LtxFile: [StoredObject, ...]}`: for each file of the stream, the versions to try, best
    first, as the storage held them at `at_ms` (unix ms).

    A file present then: its newest version stored at or before the moment, then older ones (an
    overwrite or delete after the moment changes nothing). A file first stored after it (the
    last seconds' files are uploaded just after they are written): its first version only, since
    Litestream writes a name once and any later version is not its, and only when that version
    was stored by `stored_by_ms` (default: `UPLOAD_LAG_MS` after the moment); a file first
    stored later is not trusted for the moment. A file deleted by then (a delete marker) is
    absent.

    :param late: a dict that gets `{LtxFile: StoredObject}` of the files left out for being
        first stored after `stored_by_ms` (the version that would be read).
    """
    at = at_ms / 1000
    stored_by = (at_ms + UPLOAD_LAG_MS if stored_by_ms is None else stored_by_ms) / 1000
    found = {}
    for obj in storage.versions("ltx/"):
        item = parse_key(obj.key)
        if item is not None:
            found.setdefault(item, []).append(obj)
    chosen = {}
    for item, objects in found.items():
        before = sorted((o for o in objects if o.modified <= at), key=lambda o: -o.modified)
        after = sorted((o for o in objects if o.modified > at and not o.delete_marker),
                       key=lambda o: o.modified)
        if before and before[0].delete_marker:
            continue
        first = [o for o in after[:1] if o.modified <= stored_by]
        candidates = [o for o in before if not o.delete_marker] or first
        if candidates:
            chosen[item] = candidates
        elif after and late is not None:
            late[item] = after[0]
    return chosen


class _Fetcher:
    """Downloads, unseals and checks files of the stream into a cache folder, each at most once.

    A file none of whose versions unseals and checks out is recorded in `skipped` (`{key:
    reason}`) and reads as None.
    """

    def __init__(self, storage, versions, trust, cache):
        self.storage, self.versions, self.trust, self.cache = storage, versions, trust, cache
        self.stamps = {}
        self.skipped = {}

    def __call__(self, item):
        if item not in self.stamps:
            self.stamps[item] = self._fetch(item)
        return self.stamps[item]

    def _fetch(self, item):
        path = item.path_in(self.cache)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        reason = "no version of it can be read"
        for version in self.versions[item]:
            try:
                with self.storage.open(item.key, version.version_id) as reader, \
                        open_private(path) as out:
                    open_sealed(reader, out, item.key, self.trust.identities,
                                self.trust.verify_keys,
                                check_signature=self.trust.check_signature)
                stamp = read_timestamp(path, item)
            except (CopyDamaged, NotAuthentic) as exc:
                reason = getattr(exc, "message", None) or str(exc)
            except Exception as exc:  # noqa: BLE001 - OSError, botocore's many kinds
                reason = f"cannot be read: {describe_error(exc)}"
            else:
                os.utime(path, ns=(stamp * 1_000_000, stamp * 1_000_000))  # Litestream reads it
                return stamp
            remove_files(path)
        self.skipped[item.key] = reason
        return None


def _chain(files, base, at_ms, fetch):
    """The files after snapshot `base` Litestream applies to reach `at_ms`, walked as it does:
    levels from the highest down, each in (min, max) transaction order, a file only when it
    continues the transactions so far. An unreadable file is stepped past: another file of its
    level (or a lower one) may continue the chain instead.

    :param files: the files a restore may read (`versions_at`: none first stored long after
        the moment).
    :return: `(chain, beyond)`: the files applied (`base` first), and the readable files written
        at or after `at_ms` found on the way (Litestream refuses a moment later than every file
        it sees); None when the files cannot reach the moment (a gap, or an unreadable file no
        other file goes around).
    """
    chain, beyond, txid = [base], [], base.max_txid
    for level in range(SNAPSHOT_LEVEL - 1, -1, -1):
        for item in sorted((f for f in files if f.level == level and f.max_txid > txid),
                           key=lambda f: (f.min_txid, f.max_txid)):
            if item.max_txid <= txid:
                continue  # covered by a file applied before it in this level
            if item.min_txid > txid + 1:
                break  # a gap in this level; a lower one may fill it
            stamp = fetch(item)
            if stamp is None:
                continue  # skipped (named): the next file of the level may go around it
            if stamp >= at_ms:
                beyond.append(item)
                break
            chain.append(item)
            txid = item.max_txid
    if beyond:
        return chain, beyond
    # Past the last file the stream holds, the newest state is the moment: unless a file that
    # could continue it is unreadable or beyond a gap.
    for item in files:
        if item.level < SNAPSHOT_LEVEL and item.max_txid > txid:
            stamp = fetch(item)  # beyond a gap: written before the moment, or after it?
            if stamp is None or stamp < at_ms:
                return None
    return chain, beyond


def _name_late(late, txid, at_ms, fetch, skipped, after_txid=None):
    """Name in `skipped` each file left out for being stored late that holds transactions
    after `txid` (where the restore ends) written before `at_ms`: each level in transaction
    order from `txid`, each file downloaded to read when it was written (only to say so: never
    applied). Levels from the lowest up (small files first): a file reaching a transaction
    known to be written at or after the moment (`after_txid`, or a late file's) is after it
    too, and not downloaded (a later snapshot, say)."""
    reach, ceiling = txid, after_txid
    for level in range(SNAPSHOT_LEVEL + 1):
        done = txid
        for item in sorted((f for f in late if f.level == level and f.max_txid > txid),
                           key=lambda f: (f.min_txid, f.max_txid)):
            if item.max_txid <= done:
                continue
            if item.min_txid > max(done, reach) + 1:
                break
            if ceiling is not None and item.max_txid >= ceiling:
                break  # holds a transaction written after the moment: so is its timestamp
            stamp = fetch(item)
            if stamp is not None and stamp >= at_ms:
                ceiling = min(ceiling or item.max_txid, item.max_txid)
                break  # written after the moment: not what it needs
            after = max(0, round(late[item].modified - at_ms / 1000))
            note = "" if stamp is not None else f"; {fetch.skipped.get(item.key)}"
            skipped[item.key] = (
                f"{LATE}{after} s after the moment{note}: a restore trusts only files stored "
                f"within {UPLOAD_LAG_MS // 1000} s of it (recover --at with --as-of a later "
                "time reads it)")
            if stamp is None:
                break
            done = item.max_txid
            reach = max(reach, done)


def fetch_until(storage, trust, at_ms, replica, skipped=None, stored_by_ms=None):
    """Fill the file replica folder `replica` with what a restore to `at_ms` needs, and no more.

    Reads the storage as it was at `at_ms` (`versions_at`). Tries the newest snapshot stored by
    then (then older ones, then any stored later), downloading only the files its chain needs; a
    file that cannot be decrypted or verified is skipped, and the next snapshot tried when the
    chain cannot reach the moment without it. A file first stored after `stored_by_ms` (default
    `UPLOAD_LAG_MS` after the moment) is not trusted; one that holds transactions written
    before the moment beyond where the restore ends is named in `skipped` (its reason begins
    with `LATE`).

    :param skipped: a dict that gets `{key: reason}` of every file skipped.
    :param stored_by_ms: unix ms: trust files first stored up to then (`recover --as-of`).
    :return: `(stamps, past_all)`: `{LtxFile: timestamp}` of the files the restore applies, and
        whether the files it trusts end before `at_ms` (the newest state they hold is the one
        asked for, unless `skipped` names late files).
    :raises NothingToRestore: no snapshot before `at_ms` with a complete chain to it.
    """
    late = {}
    versions = versions_at(storage, at_ms, late, stored_by_ms)
    files = list(versions)
    cache = replica / ".fetched"
    fetch = _Fetcher(storage, versions, trust, cache)
    at = at_ms / 1000
    snapshots = [f for f in files if f.level == SNAPSHOT_LEVEL]
    stored = sorted((f for f in snapshots if versions[f][0].modified <= at),
                    key=lambda f: f.max_txid, reverse=True)
    later = sorted((f for f in snapshots if versions[f][0].modified > at),
                   key=lambda f: f.max_txid)
    found = None
    for snapshot in stored + later:
        stamp = fetch(snapshot)
        if stamp is None:
            continue
        if stamp >= at_ms:
            if snapshot in later:
                break  # every later one is newer still
            continue
        found = _chain(files, snapshot, at_ms, fetch)
        if found is not None:
            break
    left_out = dict(fetch.skipped)
    if late:
        end = found[0][-1].max_txid if found is not None else 0
        beyond = min((f.max_txid for f in found[1]), default=None) if found else None
        _name_late(late, end, at_ms,
                   _Fetcher(storage, {f: [v] for f, v in late.items()}, trust,
                            replica / ".late"), left_out, beyond)
        shutil.rmtree(replica / ".late", ignore_errors=True)
    if skipped is not None:
        skipped.update(left_out)
    if found is None:
        reason = "; ".join(f"{k}: {v}" for k, v in sorted(left_out.items())[:5])
        raise NothingToRestore("The point-in-time stream holds no complete chain of files from "
                               "a snapshot to that moment" + (f" (skipped {reason})"
                                                              if reason else ""))
    chain, beyond = found
    for item in chain + beyond:
        path = item.path_in(replica)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.replace(item.path_in(cache), path)
    shutil.rmtree(cache)
    return {f: fetch.stamps[f] for f in chain}, not beyond


def _iso(ms):
    when = datetime.fromtimestamp(ms / 1000, timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def run_restore(litestream_binary, replica, at_ms, dest, environ, timeout=RESTORE_TIMEOUT):
    """`litestream restore -timestamp` from the file replica folder `replica` into `dest`.

    :param at_ms: the moment, or None for the newest state the replica holds.

    :return: the transaction id restored up to (int).
    :raises MissionControlError: Litestream failed (500; the reason names no host path).
    """
    url = "file://" + urllib.parse.quote(str(replica))
    moment = [] if at_ms is None else ["-timestamp", _iso(at_ms)]
    try:
        done = subprocess.run(
            [litestream_binary, "restore", "-json", *moment, "-o", str(dest), url],
            capture_output=True, text=True, timeout=timeout, env=dict(environ), umask=0o077)
    except subprocess.TimeoutExpired:
        raise MissionControlError(f"litestream restore did not finish within {timeout} s") \
            from None
    except OSError as exc:
        raise MissionControlError(f"litestream cannot run: {os.strerror(exc.errno or 0)}") \
            from None
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        reason = lines[-1].strip().removeprefix("Error: ") if lines else "failed"
        raise MissionControlError(f"Litestream could not restore that moment: "
                                  f"{safe_text(reason)}")
    try:
        return int(json.loads(done.stdout)["txid"], 16)
    except (ValueError, KeyError, TypeError):
        raise MissionControlError("litestream restore printed no transaction id") from None


def restore_sealed(storage, trust, at_ms, dest, litestream_binary, environ, skipped=None,
                   stored_by_ms=None):
    """Write the database as it was at `at_ms` from a sealed stream to the new file `dest`.

    The decrypted files live in a private (0700) temporary folder beside `dest`, removed after
    (and swept by the next restore there when this process is killed).

    :param storage: where the stream is (a storage of `mission_control.offsite.storage`).
    :param trust: a `Trust`: the age identities, and the keys each file's signature must verify
        with.
    :param at_ms: the moment wanted (unix ms).
    :param dest: `pathlib.Path` of a file that does not exist yet.
    :param litestream_binary: path of Litestream 0.5.
    :param environ: the environment Litestream runs with.
    :param skipped: a dict that gets `{key: reason}` of each file skipped (not decryptable, not
        signed by a trusted key, altered); the restore went around it. A file left out for being
        first stored more than `UPLOAD_LAG_MS` after the moment is named too (`late_files`):
        the copy is then earlier than the newest state the stream holds before the moment.
    :param stored_by_ms: unix ms: trust files first stored up to then instead (`fetch_until`).
    :return: unix ms of the moment the copy actually holds: the timestamp of the newest LTX
        file Litestream applied, at or before `at_ms` (its compaction decides which remain).
    :raises NothingToRestore: no complete chain of readable files reaches `at_ms`.
    :raises MissionControlError: Litestream failed.
    """
    dest = Path(dest)
    sweep_dead_leftovers(dest.parent, TEMP_PREFIX, folders=True)  # a killed restore's
    with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{os.getpid()}-",
                                     dir=dest.parent) as tmp:
        replica = Path(tmp)
        stamps, past_all = fetch_until(storage, trust, at_ms, replica, skipped, stored_by_ms)
        # Past every file, Litestream refuses the moment: the newest state is the one asked for.
        txid = run_restore(litestream_binary, replica, None if past_all else at_ms, dest,
                           environ)
    applied = [ts for f, ts in stamps.items() if f.max_txid == txid and ts < at_ms]
    return max(applied or [ts for ts in stamps.values() if ts < at_ms])
