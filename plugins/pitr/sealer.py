"""Seals the point-in-time stream: every LTX file Litestream writes to the staging folder is
age-encrypted and uploaded to the real replica; a file Litestream deletes there is deleted
remotely too, unless the bucket's lock holds it or the service never deletes (``no_delete``).

Litestream writes each LTX file to a temporary name, fsyncs it and renames it into place, and
never changes it after: a file under its final name (``ltx/<level>/<min>-<max>.ltx``) is whole
and can be sealed at once. The sealer runs two threads in the process that runs Litestream, each
polling the folder every `POLL` seconds: one seals only level 0 (the newest transactions, the
recovery point), so a big snapshot upload on the other (higher levels, deletions) never holds
them up. Nothing it uploads is plaintext, and a file whose sealing fails is not uploaded at all
(tried again after a pause).
"""
import bisect
import heapq
import logging
import os
import secrets
import stat
import threading
import time
from dataclasses import dataclass

from mission_control import (Lock, ObjectHeld, describe_error, open_private, parse_ltx_key,
                             parse_ltx_name, read_ltx_timestamp, remove_files, stream_window)

log = logging.getLogger(__name__)

POLL = 0.1
MAX_BACKOFF = 10.0
DAY = 86400
#: A refused delete that named no date is tried again after this long (s).
HELD_RETRY = 3600
#: `stop`'s default budget; the supervisor passes what is left of its own.
STOP_TIMEOUT = 20.0
#: The part of a stop budget kept for an upload already under way when it runs out.
STOP_MARGIN = 5.0
TMP_PREFIX = ".seal-"
#: In the staging folder: `<key> <size>` of each sealed object uploaded, checked at start.
LEDGER = ".sealed-sizes"
#: The ledger is rewritten once it holds this many lines more than twice the files it records.
LEDGER_SLACK = 64
LEVEL0, HIGHER = "level-0", "higher levels"


@dataclass(frozen=True)
class Protection:
    """What the stream's objects get from the bucket, as for off-site copies.

    :param lock_mode: "" (none), "GOVERNANCE" or "COMPLIANCE": every upload carries it.
    :param lock_days: how long each upload stays locked.
    :param no_delete: never call a delete (Litestream's compaction is not mirrored).
    """

    lock_mode: str = ""
    lock_days: int = 0
    no_delete: bool = False

    def lock(self, now):
        return Lock(self.lock_mode, now + self.lock_days * DAY) if self.lock_mode else None


class Sealer:
    """Mirrors the staging folder into a storage, sealed.

    :param staging: the staging folder (a Path): the file replica Litestream writes.
    :param storage: the real replica (`mission_control.open_storage`).
    :param codec: a `Sealing`: signs each file and encrypts it to the stream's recipients.
    :param report: called with `state()` whenever what the storage holds (or an error) changes;
        the supervisor keeps it in its state file.
    :param protection: a `Protection` (locks, no_delete). :param clock: unix seconds.
    """

    def __init__(self, staging, storage, codec, report, *, protection=Protection(),
                 clock=time.time):
        if not codec.encrypted:
            raise ValueError("the point-in-time stream is only ever uploaded sealed")
        self.staging = staging
        self.storage = storage
        self.codec = codec
        self.report = report
        self.protection = protection
        self.clock = clock
        self.uploads = 0  # puts made by this sealer
        self.died = None  # why a worker thread ended other than by `stop`
        self._stamps = None  # LtxFile -> timestamp (ms) of each file the storage holds sealed
        self._level0_txid = None  # every level-0 file of the staging folder up to it is sealed
        self._held = {}  # LtxFile -> unix s: deleted here, its delete refused by a lock until then
        self._dates = []  # heap of (until, LtxFile) of `_held`: the next one due on top
        self._due = set()  # held files whose date has come: tried again until handled
        self._kept = set()  # deleted here, left in the storage (no_delete)
        self._plaintext = 0  # plaintext .ltx objects under the prefix (an unsealed setup's)
        self._errors = {}  # worker -> its last error
        self._unsealed = {}  # worker -> files its final sweep had no time for
        self._mutex = threading.Lock()  # the two workers share the records above
        self._stop = threading.Event()
        self._cutoff = None  # monotonic time after which the final sweep starts no upload
        self._threads = []
        self._unlisted = False  # the staging listing was missing or empty (warned once)
        self._uncovered = 0  # files gone here that no local file covers (warned when it grows)
        self._resealing = set()  # found at start not as sealed (their size): to seal again
        self._resealed = 0  # of those, sealed and uploaded again
        self._mismatched = set()  # of those, left as they are (the storage never replaces)
        self._sizes = {}  # LtxFile -> size of the sealed object uploaded (the ledger's content)
        self._ledger_lines = 0  # lines in the ledger file (appended since its last rewrite)
        self._ledger_error = None  # why the ledger could not be written last (then rewritten)

    def local(self):
        """The LTX files in the staging folder now (set of `LtxFile`); None when its ``ltx``
        folder is missing (the staging folder wiped, or not written yet)."""
        found = set()
        try:
            levels = list(os.scandir(self.staging / "ltx"))
        except FileNotFoundError:
            return None
        for level in levels:
            if not level.is_dir(follow_symlinks=False):
                continue
            try:
                names = os.listdir(level.path)
            except FileNotFoundError:
                continue
            found.update(f for f in (parse_ltx_name(level.name, n) for n in names) if f)
        return found

    def _prepare(self, local):
        """Once: sweep a killed run's temporary files, and learn what the storage already
        holds of the staging folder (after a restart) and what plaintext an unsealed setup
        left there. True the first time."""
        with self._mutex:
            if self._stamps is not None:
                return False
            self._sweep_leftovers()
            listed = self.storage.list("ltx/")
            remote = {}
            for obj in listed:
                item = _sealed_item(obj.key)
                if item is not None:
                    remote[item] = obj.size
            sizes = {f: n for f, n in self._read_ledger().items() if f in local}
            stamps = {}
            for item in set(remote) & local:
                if item in sizes and sizes[item] != remote[item]:
                    # Not what was sealed (truncated, overwritten): sealed and uploaded again.
                    log.warning("%s in the point-in-time replica is %d bytes, %d were sealed: "
                                "sealing it again", item.key, remote[item], sizes[item])
                    self._resealing.add(item)
                    continue
                try:
                    stamps[item] = read_ltx_timestamp(item.path_in(self.staging), item)
                except FileNotFoundError:
                    pass
            self._plaintext = sum(1 for o in listed if _plaintext(o.key))
            # Kept for those to seal again too: after another restart (or a crash before the
            # upload) the object is still known as not what was sealed.
            self._sizes = {f: n for f, n in sizes.items()
                           if f in stamps or f in self._resealing}
            self._save_ledger(rewrite=True)
            self._stamps = stamps
            return True

    def _read_ledger(self):
        """`{LtxFile: size}` of the sealed objects uploaded from this staging folder."""
        try:
            text = (self.staging / LEDGER).read_text(encoding="ascii", errors="replace")
        except FileNotFoundError:
            return {}
        except OSError as exc:  # unreadable: nothing to check against, sealing goes on
            self._ledger_error = ("reading the sizes of the sealed files failed: "
                                  f"{describe_error(exc)}")
            log.error("%s", self._ledger_error)
            return {}
        sizes = {}
        for line in text.splitlines():
            key, _, size = line.partition(" ")
            item = _sealed_item(key)
            if item is not None and size.isdigit():
                sizes[item] = int(size)
        return sizes

    def _write_ledger(self):
        """Rewrite the ledger with the sizes of the files the storage holds sealed now (at
        start, and once appended lines outnumber them: it does not grow without bound)."""
        if not self.staging.is_dir():
            return
        tmp = self.staging / f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}.tmp"
        try:
            with open_private(tmp) as out:
                out.write("".join(f"{f.key} {n}\n"
                                  for f, n in sorted(self._sizes.items())).encode())
            os.replace(tmp, self.staging / LEDGER)
        finally:
            remove_files(tmp)
        self._ledger_lines = len(self._sizes)

    def _record_size(self, item, size):
        """Append what was uploaded for `item` to the ledger (the next start checks it)."""
        self._sizes[item] = size
        if self._ledger_error is not None:  # lines were missed: written whole once it can be
            self._save_ledger(rewrite=True)
            return
        rewrite = self._ledger_lines + 1 > 2 * len(self._sizes) + LEDGER_SLACK
        self._save_ledger(rewrite, f"{item.key} {size}\n")

    def _save_ledger(self, rewrite, line=""):
        """Append `line` to the ledger, or rewrite it whole. A failure (a full disk) stops no
        sealing: it is logged and reported (`ledger_error`; the start after it checks only the
        sizes recorded), and the ledger is rewritten whole at the next upload."""
        try:
            if rewrite:
                self._write_ledger()
            else:
                fd = os.open(self.staging / LEDGER, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                             0o600)
                try:
                    os.write(fd, line.encode())
                finally:
                    os.close(fd)
                self._ledger_lines += 1
        except OSError as exc:
            error = f"recording the sizes of the sealed files failed: {describe_error(exc)}"
            if error != self._ledger_error:
                log.error("%s", error)
            self._ledger_error = error
        else:
            self._ledger_error = None

    def _sweep_leftovers(self):
        """Remove the `.seal-*.tmp` files a killed run left (ours: regular, owned by us)."""
        try:
            entries = list(os.scandir(self.staging))
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.name.startswith(TMP_PREFIX) and entry.name.endswith(".tmp"):
                found = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(found.st_mode) and found.st_uid == os.geteuid():
                    remove_files(entry.path)

    def sweep(self):
        """Seal and upload each new file, then mirror deletions; True when the storage changed.

        :raises Exception: an upload or deletion failed (the next sweep tries again).
        """
        changed = self._sweep_level0()
        return self._sweep_higher() or changed

    def _sweep_level0(self):
        local = self.local() or set()
        changed = self._prepare(local)
        level0 = {f for f in local if f.level == 0}
        changed |= self._mark_level0(level0)  # new files waiting: said before their uploads
        try:
            changed |= self._seal_all(LEVEL0, level0)
        finally:
            changed |= self._mark_level0(level0)
        return changed

    def _mark_level0(self, level0):
        """Record up to which transaction every level-0 file listed (`level0`) is sealed: just
        before the first one still waiting, else the newest sealed. True when it moved.

        The storage's newest file (`replica_txid`) is no such mark: the other thread may upload
        a level-1 file holding transactions whose level-0 files are still waiting here, and a
        restore to a moment between two of them needs those level-0 files (the level-1 file's
        timestamp is its last transaction's)."""
        with self._mutex:
            sealed = {f for f in self._stamps if f.level == 0}
            waiting = level0 - sealed
            mark = (min(f.min_txid for f in waiting) - 1 if waiting
                    else max((f.max_txid for f in sealed), default=None))
            moved, self._level0_txid = mark != self._level0_txid, mark
        return moved

    def _sweep_higher(self):
        local = self.local() or set()
        changed = self._prepare(local)
        changed |= self._seal_all(HIGHER, {f for f in local if f.level != 0})
        return self._mirror_deletions() or changed

    def _seal_all(self, worker, files):
        with self._mutex:
            new = sorted(files - set(self._stamps))
        changed = False
        for n, item in enumerate(new):
            if self._cutoff is not None and time.monotonic() > self._cutoff:
                self._unsealed[worker] = len(new) - n
                return changed
            changed |= self._seal(item)
        self._unsealed.pop(worker, None)
        return changed

    def _seal(self, item):
        source = item.path_in(self.staging)
        tmp = self.staging / f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}.tmp"
        again = item in self._resealing
        try:
            stamp = read_ltx_timestamp(source, item)
            with open_private(tmp) as out:
                self.codec.seal(item, source, out)
            size = os.path.getsize(tmp)
            self.storage.put(item.key, tmp, lock=self.protection.lock(self.clock()))
        except FileNotFoundError:
            # Compacted away before it was sealed: nothing to keep. One to seal again is left
            # to the deletions (its object is not what was sealed).
            return False
        except FileExistsError:
            if not again:
                raise
            # A storage that never replaces an object (a folder): reported, left as it is.
            log.error("%s in the point-in-time replica is not what was sealed and cannot be "
                      "replaced", item.key)
            with self._mutex:
                self._resealing.discard(item)
                self._mismatched.add(item)
                self._stamps[item] = stamp
            return True
        finally:
            remove_files(tmp)
        with self._mutex:
            self._stamps[item] = stamp  # first: a failing ledger write never uploads it again
            self.uploads += 1
            if again:
                self._resealing.discard(item)
                self._resealed += 1
            self._record_size(item, size)
        return True

    def _mirror_deletions(self):
        """Delete in the storage what Litestream deleted from the staging folder: never once
        the stream is stopping (the final sweep only uploads), never from a listing that is
        missing or empty while the storage holds files (staging wiped, a disk glitch):
        Litestream always keeps a snapshot, so that is never a compaction; and only a file a
        local file of the same or a higher level covers (its transactions), as Litestream
        compacts: a file gone otherwise (staging or a level's folder wiped) stays."""
        if self._stop.is_set() or self._cutoff is not None:
            return False
        now = self.clock()
        with self._mutex:
            # A held file is tried again once its lock has run out (never before).
            # Only the heap's top is looked at: thousands of held files cost nothing per poll.
            while self._dates and self._dates[0][0] <= now:
                until, item = heapq.heappop(self._dates)
                if self._held.get(item) == until:
                    self._due.add(item)
            known = set(self._stamps) | self._due | self._resealing
        # Listed after: a file the level-0 thread sealed meanwhile is not taken for gone.
        local = self.local()
        if not local:
            if known and not self._unlisted:
                log.warning("the point-in-time staging folder %s; the sealer mirrors no "
                            "deletion until Litestream writes there again",
                            "is missing" if local is None else "lists no file")
            self._unlisted = bool(known)
            return False
        self._unlisted = False
        gone = known - local
        covered = _coverage(local)
        uncovered = {f for f in gone if not covered(f)}
        if len(uncovered) > self._uncovered:
            log.warning("%d file(s) of the point-in-time stream are gone from the staging "
                        "folder with no compaction covering them (staging wiped?): not deleted "
                        "remotely", len(uncovered))
        self._uncovered = len(uncovered)
        changed = False
        for item in sorted(gone - uncovered):
            if self._stop.is_set():
                break  # stopping meanwhile: the rest waits for the next start
            self._delete(item, now)
            changed = True
        return changed

    def _delete(self, item, now):
        if self.protection.no_delete:
            self._forget(item, kept=True)
            return
        found = self.storage.head(item.key)
        if found is not None and found.retain_until and found.retain_until > now:
            # Held like an off-site copy: not even a delete marker over a locked file.
            self._forget(item, until=found.retain_until)
            return
        try:
            if found is not None:
                self.storage.delete(item.key)
        except ObjectHeld as exc:
            self._forget(item, until=exc.until or now + HELD_RETRY)
            return
        self._forget(item)

    def _forget(self, item, until=None, kept=False):
        with self._mutex:
            self._stamps.pop(item, None)
            self._sizes.pop(item, None)
            self._held.pop(item, None)
            self._due.discard(item)
            self._resealing.discard(item)
            self._mismatched.discard(item)
            if until is not None:
                log.info("%s is held by the bucket's lock; left in place", item.key)
                self._held[item] = until
                heapq.heappush(self._dates, (until, item))
            if kept:
                self._kept.add(item)

    def state(self):
        """What the storage holds (the window, `replica_txid` its newest transaction,
        `level0_txid` the one up to which every level-0 file is sealed), the last error and
        what is left there."""
        with self._mutex:
            stamps = dict(self._stamps or {})
            level0 = self._level0_txid
            held = len(self._held)
            # The top of the heap is the earliest date (entries left over from files no longer
            # held are skipped).
            while self._dates and self._held.get(self._dates[0][1]) != self._dates[0][0]:
                heapq.heappop(self._dates)
            dates = [self._held[f] for f in self._due if f in self._held]
            first = min(dates + [d for d, _ in self._dates[:1]], default=None)
            kept = len(self._kept)
        errors = [e for e in (self._errors.get(w) for w in (LEVEL0, HIGHER, "report")) if e]
        return {**stream_window(stamps),
                "replica_txid": max((f.max_txid for f in stamps), default=None),
                "level0_txid": level0,
                "error": errors[0] if errors else None,
                "lock": self.protection.lock_mode or None,
                "no_delete": self.protection.no_delete,
                "held": held, "held_until": int(first * 1000) if first is not None else None,
                "kept_remote": kept, "plaintext_objects": self._plaintext,
                "resealed": self._resealed, "mismatched": len(self._mismatched),
                "ledger_error": self._ledger_error,
                "unsealed": sum(self._unsealed.values())}

    def start(self):
        self._threads = [
            threading.Thread(target=self._loop, args=(LEVEL0, self._sweep_level0),
                             name="pitr-sealer-0", daemon=True),
            threading.Thread(target=self._loop, args=(HIGHER, self._sweep_higher),
                             name="pitr-sealer", daemon=True)]
        for thread in self._threads:
            thread.start()

    def alive(self):
        """Whether every worker thread runs (False once one died, or after `stop`)."""
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def ended(self):
        """Whether no worker thread runs any more (after `stop`, or before `start`)."""
        return not any(t.is_alive() for t in self._threads)

    def stop(self, timeout=STOP_TIMEOUT):
        """Seal what Litestream wrote last, within `timeout` s, then stop; True when the
        threads ended in time. Files the final sweep has no time for stay in the staging folder
        (`unsealed` in the state, and logged): the next start seals them."""
        self._cutoff = time.monotonic() + max(0.0, timeout - min(STOP_MARGIN, timeout / 2))
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        ended = not any(t.is_alive() for t in self._threads)
        left = sum(self._unsealed.values())
        if left:
            log.warning("%d file(s) of the point-in-time stream are left unsealed in the staging "
                        "folder (no time left to upload them); the next start seals them", left)
        if not ended:
            log.error("the point-in-time sealer did not stop within %.0f s", timeout)
        return ended

    def _report(self):
        try:
            self.report(self.state())
        except Exception as exc:  # noqa: BLE001 - a full disk, say: keep sealing, try again
            error = f"recording the sealed stream's state failed: {describe_error(exc)}"
            if error != self._errors.get("report"):
                log.error("%s", error)
            self._errors["report"] = error
        else:
            self._errors.pop("report", None)

    def _loop(self, worker, sweep):
        try:
            self._run(worker, sweep)
        except BaseException as exc:
            # Seen by the supervisor (`alive`), which fails health with this reason.
            self.died = f"its {worker} thread ended: {describe_error(exc)}"
            log.exception("the point-in-time sealer's %s thread ended", worker)
            raise

    def _run(self, worker, sweep):
        wait = POLL
        while True:
            stopping = self._stop.wait(wait)
            before = self._errors.get(worker)
            try:
                changed = sweep()
            except Exception as exc:  # noqa: BLE001 - the storage may answer again later
                error = f"sealing the point-in-time stream failed: {describe_error(exc)}"
                if error != before:
                    log.error("%s", error)
                self._errors[worker], changed = error, True
                wait = min(MAX_BACKOFF, max(1.0, wait * 2))
            else:
                self._errors.pop(worker, None)
                changed = changed or before is not None
                wait = POLL
            if changed or self._errors.get("report") or (stopping and self._unsealed):
                self._report()
            if stopping:
                return


def _coverage(files):
    """`covered(item)`: whether one of `files` (`LtxFile`s) at the same or a higher level holds
    every transaction of `item` (Litestream deletes a file only once such a file exists)."""
    levels = {}
    for f in sorted(files, key=lambda f: (f.min_txid, f.max_txid)):
        mins, reach = levels.setdefault(f.level, ([], []))
        mins.append(f.min_txid)
        reach.append(max(f.max_txid, reach[-1] if reach else 0))  # the furthest by then

    def covered(item):
        for level, (mins, reach) in levels.items():
            if level >= item.level:
                n = bisect.bisect_right(mins, item.min_txid)
                if n and reach[n - 1] >= item.max_txid:
                    return True
        return False
    return covered


def _sealed_item(key):
    """The `LtxFile` a sealed object's key (``ltx/<level>/<name>.ltx.age``) names, or None
    (ASCII digits only: a planted ``ltx/\u00b2/...`` is not one)."""
    return parse_ltx_key(key)


def _plaintext(key):
    """Whether `key` (under ``ltx/``) is an LTX file as plain Litestream uploads it."""
    return parse_ltx_key(key, sealed=False) is not None
