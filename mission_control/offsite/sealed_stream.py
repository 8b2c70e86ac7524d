"""The sealed point-in-time stream: Litestream's LTX files, each age-encrypted, in a storage.

Litestream 0.5 writes a replica as immutable files ``ltx/<level>/<min>-<max>.ltx`` (hex
transaction ids; level 0 each second, higher levels compacted from them, level 9 snapshots).
Sealed, each one is stored as ``ltx/<level>/<min>-<max>.ltx.age``: the same layout, every byte
encrypted to the stream's age recipients. Nothing in the storage is plaintext.

`restore_sealed` reads such a stream back to a moment on any machine: it downloads the newest
snapshot before the moment and the files after it up to the moment, decrypts them into a private
temporary replica folder and runs ``litestream restore -timestamp`` on it. The plugin that streams
(``pitr``) and ``mission-control recover --at`` both use it.
"""
import json
import os
import re
import struct
import subprocess
import tempfile
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..errors import MissionControlError, safe_text
from ..files import open_private
from .codec import CopyDamaged, decode

SNAPSHOT_LEVEL = 9
SEALED_SUFFIX = ".age"
RESTORE_TIMEOUT = 600
_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.ltx$")
_KEY = re.compile(r"^ltx/([0-9])/([0-9a-f]{16}-[0-9a-f]{16}\.ltx)\.age$")
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
    if not found or not 0 <= int(level) <= SNAPSHOT_LEVEL:
        return None
    return LtxFile(int(level), int(found.group(1), 16), int(found.group(2), 16))


def parse_key(key):
    """The `LtxFile` a sealed key stands for, or None when `key` is not one."""
    found = _KEY.match(key) if isinstance(key, str) else None
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


def _fetch(storage, item, replica, identities):
    """Download and decrypt `item` into the replica folder; its header's timestamp (ms)."""
    path = item.path_in(replica)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with storage.open(item.key) as reader, open_private(path) as out:
        decode(reader, out, compressed=False, encrypted=True, identities=identities)
    stamp = read_timestamp(path, item)
    os.utime(path, ns=(stamp * 1_000_000, stamp * 1_000_000))  # Litestream reads the mtime
    return stamp


def fetch_until(storage, identities, at_ms, replica):
    """Fill the file replica folder `replica` with what a restore to `at_ms` needs.

    The newest snapshot written before `at_ms` (and the newer ones looked at on the way), then,
    level by level, the files after it in transaction order, up to and including the first one
    written at or after `at_ms`: Litestream refuses a moment later than every file it sees.

    :return: `{LtxFile: timestamp}` of the files fetched.
    :raises NothingToRestore: no snapshot before `at_ms`.
    :raises CopyDamaged: a file cannot be decrypted, or is not what its name says.
    """
    files = sealed_files(storage)
    stamps = {}
    base = None
    for snapshot in sorted((f for f in files if f.level == SNAPSHOT_LEVEL),
                           key=lambda f: f.max_txid, reverse=True):
        stamps[snapshot] = _fetch(storage, snapshot, replica, identities)
        if stamps[snapshot] < at_ms:
            base = snapshot
            break
    if base is None:
        raise NothingToRestore("The point-in-time stream holds nothing from before that moment")
    for level in range(SNAPSHOT_LEVEL):
        for item in sorted((f for f in files if f.level == level and f.max_txid > base.max_txid),
                           key=lambda f: f.min_txid):
            stamps[item] = _fetch(storage, item, replica, identities)
            if stamps[item] >= at_ms:
                break  # a level's files are written in transaction order
    return stamps


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


def restore_sealed(storage, identities, at_ms, dest, litestream_binary, environ):
    """Write the database as it was at `at_ms` from a sealed stream to the new file `dest`.

    The decrypted files live in a private (0700) temporary folder beside `dest`, removed after.

    :param storage: where the stream is (a storage of `mission_control.offsite.storage`).
    :param identities: age secret key(s) (``AGE-SECRET-KEY-1…``) of one of its recipients.
    :param at_ms: the moment wanted (unix ms).
    :param dest: `pathlib.Path` of a file that does not exist yet.
    :param litestream_binary: path of Litestream 0.5.
    :param environ: the environment Litestream runs with.
    :return: unix ms of the moment the copy actually holds: the timestamp of the newest LTX
        file Litestream applied, at or before `at_ms` (its compaction decides which remain).
    :raises NothingToRestore: nothing in the stream is older than `at_ms`.
    :raises CopyDamaged: a file cannot be decrypted (wrong key, altered) or is not what it says.
    :raises MissionControlError: Litestream failed.
    """
    dest = Path(dest)
    with tempfile.TemporaryDirectory(prefix=".mc-pitr-restore-", dir=dest.parent) as tmp:
        replica = Path(tmp)
        stamps = fetch_until(storage, identities, at_ms, replica)
        # Past every file, Litestream refuses the moment: the newest state is the one asked for.
        past_all = max(stamps.values()) < at_ms
        txid = run_restore(litestream_binary, replica, None if past_all else at_ms, dest,
                           environ)
    applied = [ts for f, ts in stamps.items() if f.max_txid == txid and ts < at_ms]
    return max(applied or [ts for ts in stamps.values() if ts < at_ms])
