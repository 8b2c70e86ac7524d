"""Seals the point-in-time stream: every LTX file Litestream writes to the staging folder is
age-encrypted and uploaded to the real replica; a file Litestream deletes there is deleted
remotely too, unless the bucket's lock holds it.

Litestream writes each LTX file to a temporary name, fsyncs it and renames it into place, and
never changes it after: a file under its final name (``ltx/<level>/<min>-<max>.ltx``) is whole
and can be sealed at once. The sealer runs as a thread of the process that runs Litestream,
polling the folder every `POLL` seconds; nothing it uploads is plaintext, and a file whose
sealing fails is not uploaded at all (tried again after a pause).
"""
import logging
import os
import secrets
import threading

from mission_control import (ObjectHeld, describe_error, open_private, parse_ltx_name,
                             read_ltx_timestamp, remove_files, sealed_files, stream_window)

log = logging.getLogger(__name__)

POLL = 0.1
MAX_BACKOFF = 10.0


class Sealer:
    """Mirrors the staging folder into a storage, sealed.

    :param staging: the staging folder (a Path): the file replica Litestream writes.
    :param storage: the real replica (`mission_control.open_storage`).
    :param codec: a `Sealing`: signs each file and encrypts it to the stream's recipients.
    :param report: called with `{"earliest", "latest", "replica_txid", "error"}` whenever what
        the storage holds (or the last error) changes; the supervisor keeps it in its state file.
    """

    def __init__(self, staging, storage, codec, report):
        if not codec.encrypted:
            raise ValueError("the point-in-time stream is only ever uploaded sealed")
        self.staging = staging
        self.storage = storage
        self.codec = codec
        self.report = report
        self._stamps = None  # LtxFile -> timestamp (ms) of each file the storage holds sealed
        self._error = None
        self._stop = threading.Event()
        self._thread = None

    def local(self):
        """The LTX files in the staging folder now (set of `LtxFile`)."""
        found = set()
        try:
            levels = list(os.scandir(self.staging / "ltx"))
        except FileNotFoundError:
            return found
        for level in levels:
            if not level.is_dir(follow_symlinks=False):
                continue
            try:
                names = os.listdir(level.path)
            except FileNotFoundError:
                continue
            found.update(f for f in (parse_ltx_name(level.name, n) for n in names) if f)
        return found

    def _reconcile(self, local):
        """What the storage already holds of the staging folder (after a restart)."""
        stamps = {}
        for item in set(sealed_files(self.storage)) & local:
            try:
                stamps[item] = read_ltx_timestamp(item.path_in(self.staging), item)
            except FileNotFoundError:
                pass
        return stamps

    def sweep(self):
        """Seal and upload each new file, then mirror deletions; True when the storage changed.

        :raises Exception: an upload or deletion failed (the next sweep tries again).
        """
        local = self.local()
        if self._stamps is None:
            self._stamps = self._reconcile(local)
            changed = True
        else:
            changed = False
        # Level 0 first: it carries the newest transactions (the recovery point).
        for item in sorted(local - set(self._stamps), key=lambda f: (f.level != 0, f)):
            changed |= self._seal(item)
        for item in sorted(set(self._stamps) - local):
            self._delete(item)
            changed = True
        return changed

    def _seal(self, item):
        source = item.path_in(self.staging)
        tmp = self.staging / f".seal-{os.getpid()}-{secrets.token_hex(6)}.tmp"
        try:
            stamp = read_ltx_timestamp(source, item)
            with open_private(tmp) as out:
                self.codec.seal(item, source, out)
            self.storage.put(item.key, tmp)
        except FileNotFoundError:
            return False  # compacted away before it was sealed: nothing to keep
        finally:
            remove_files(tmp)
        self._stamps[item] = stamp
        return True

    def _delete(self, item):
        try:
            self.storage.delete(item.key)
        except ObjectHeld:
            # The bucket's lock keeps it; its expiry is the bucket's business, not a failure.
            log.info("%s is held by the bucket's lock; left in place", item.key)
        del self._stamps[item]

    def state(self):
        stamps = self._stamps or {}
        return {**stream_window(stamps),
                "replica_txid": max((f.max_txid for f in stamps), default=None),
                "error": self._error}

    def start(self):
        self._thread = threading.Thread(target=self._loop, name="pitr-sealer", daemon=True)
        self._thread.start()

    def stop(self, timeout=60):
        """Seal what Litestream wrote last, then stop; True when the thread ended in time."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def _loop(self):
        wait = POLL
        while True:
            stopping = self._stop.wait(wait)
            try:
                changed = self.sweep()
            except Exception as exc:  # noqa: BLE001 - the storage may answer again later
                error = f"sealing the point-in-time stream failed: {describe_error(exc)}"
                if error != self._error:
                    log.error("%s", error)
                self._error, wait = error, min(MAX_BACKOFF, max(1.0, wait * 2))
                self.report(self.state())
            else:
                if changed or self._error is not None:
                    self._error = None
                    self.report(self.state())
                wait = POLL
            if stopping:
                return
