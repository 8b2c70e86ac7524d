"""Accepting an uploaded backup file: streamed to a hidden temporary file, checked, then named.

An upload counts against the admin's hourly backup budget and asks the `pre_backup` plugins (the
disk guard) before its body is read. A file is accepted only when it is a SQLite database that
passes `integrity_check` and has Mission Control's schema. It is stored as
`uploaded-YYYY-MM-DD_HH-MM-SS.db`; the newest `general.safety_copies_keep` uploads are kept. A
refused or broken upload leaves nothing behind.
"""
import hashlib
import os
import sqlite3
from contextlib import contextmanager

from ..errors import BackupFailed, BackupRefused, BadRequest, FileRejected, PayloadTooLarge
from ..files import fsync_dir
from ..files import fsync_file
from ..files import place_at_free_name
from ..files import remove_files
from ..files import sha256_file
from .names import UPLOAD
from .names import created_at
from .pruning import keep_newest
from .scratch import create_scratch
from .verify import VerificationStore
from .verify import inspect

UPLOAD_PREFIX = ".mc-upload-"  # hidden: never listed; swept at start once its writer is gone


class UploadSink:
    """A write-only scratch file in the backups folder that hashes, counts and caps what it gets.

    The file stays open (and so locked against a start's sweep, see `scratch_files`) until
    `close` or `discard`.

    :param prefix: the file name's start: `UPLOAD_PREFIX`, or a fetch's or drill's scratch prefix.
    :raises PayloadTooLarge: from `write`, once more than `limit` bytes arrived.
    """

    def __init__(self, folder, limit, prefix=UPLOAD_PREFIX):
        self.limit = limit
        self.size = 0
        self.used = False
        self._digest = hashlib.sha256()
        self._filled = None
        self.path, self._file = create_scratch(folder, prefix)

    def write(self, data):
        self.used = True
        self.size += len(data)
        if self.size > self.limit:
            raise PayloadTooLarge(f"Upload too large: the limit is {self.limit // (1024 * 1024)} MB"
                                  " (MC_MAX_UPLOAD_MB)")
        self._digest.update(data)
        self._file.write(data)
        return len(data)

    def seek(self, *args):  # werkzeug's form parser rewinds a file part when it ends
        return self._file.seek(*args)

    @property
    def sha256(self):
        return self._filled or self._digest.hexdigest()

    def filled(self, size, sha256):
        """Take what was written to `path` through another handle (an off-site copy rebuilt in
        place, its pages at their places): its `size` and `sha256`."""
        self.used, self.size, self._filled = True, size, sha256

    def finish(self):
        """Flush and fsync what was written; the file stays open (locked) until `close`."""
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self):
        """Let go of the file once it is renamed into place."""
        self._file.close()

    def discard(self):
        self._file.close()
        remove_files(self.path, f"{self.path}-journal", f"{self.path}-wal", f"{self.path}-shm")


@contextmanager
def upload_slot(mc, actor, rate_key):
    """Admit one upload by `actor` for the `with` block, before its body is read.

    The upload takes a slot of `rate_key`'s hourly backup budget (an admin's username; None, for
    the CLI and scripts, counts nothing; given back when the block raises: nothing was stored),
    then the `pre_backup` plugins are asked with kind "upload"; a
    refusal is audited as `backup_upload_refused`.

    :raises TooManyRequests: over the budget (429, `Retry-After`).
    :raises BackupRefused: a plugin refused, e.g. the disk guard (its status, 507 by default).
    :raises BackupFailed: a plugin crashed (500).
    """
    with mc.backups.budget(rate_key):
        try:
            mc.backups.check_before(actor, UPLOAD.name)
        except (BackupRefused, BackupFailed) as exc:
            mc.audit.emit("backup_upload_refused", actor, target_type="backup",
                          detail={"reason": exc.reason, "status": exc.status})
            raise
        yield


def _self_contained(path):
    """Switch a file uploaded in WAL mode to rollback-journal mode, so it is one file like a backup."""
    with open(path, "rb") as f:
        header = f.read(20)
    if len(header) < 20 or header[18:20] == b"\x01\x01":
        return False
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=DELETE")
    finally:
        conn.close()
    return True


def check_received(mc, sink, refusal):
    """Check a complete file received in `sink` (an upload, a fetched off-site copy) as a backup.

    It must be a SQLite database that passes `integrity_check` and has Mission Control's schema;
    one saved in WAL mode is made self-contained first (the check is bounded by
    `mc.config.verify_timeout`). The file is fsynced.

    :return: `(sha256, Inspection)` of the file as it now is.
    :raises FileRejected: with `refusal` as the message and the problems as details (400).
    """
    digest = sink.sha256
    try:
        if _self_contained(sink.path):
            digest = sha256_file(sink.path)
    except sqlite3.DatabaseError:
        pass  # inspect() says what is wrong with it
    found = inspect(sink.path, timeout=mc.config.verify_timeout, clock=mc.clock)
    if not found.ok:
        raise FileRejected(found.problems, refusal)
    fsync_file(sink.path)
    return digest, found


def keep_received(mc, sink, actor, accept, refused):
    """Keep the file received in `sink` if `accept()` takes it; on any refusal leave nothing.

    :param accept: checks the file and places it: returns `(final_path, sha256, Inspection)`.
    :param refused: ``mc.audit.emit`` keyword arguments (``action``, ``target_type``, ...,
        ``detail``) for the event audited when `accept` refuses; ``detail`` gains ``reason``.
        None when the caller audits every failure itself.
    :return: dict with `name`, `size`, `created_at`, `sha256` of the kept file, whose
        verification is recorded.
    :raises BadRequest / FileRejected: what `accept` raised (400), after the audit.
    """
    try:
        final, digest, found = accept()
    except BadRequest as exc:
        sink.discard()
        if refused is None:
            raise
        event = dict(refused)
        event["detail"] = {**event.get("detail", {}),
                           "reason": "; ".join(exc.details or [exc.message])}
        mc.audit.emit(event.pop("action"), actor, **event)
        raise
    except BaseException:
        sink.discard()
        raise
    sink.close()
    st = os.stat(final)
    VerificationStore(mc.db).record(final.name, st, digest, found, int(mc.clock()), str(actor))
    return {"name": final.name, "size": st.st_size, "created_at": created_at(final.name, st),
            "sha256": digest}


def accept_upload(mc, sink, actor, *, original_name=None):
    """Check the complete upload in `sink` and store it; on any refusal nothing is left behind.

    :return: dict with `name`, `size`, `created_at`, `sha256`.
    :raises BadRequest: empty (400). :raises FileRejected: not SQLite, corrupt, or not ours (400).
    """
    def accept():
        sink.finish()
        if sink.size == 0:
            raise BadRequest("Upload is empty: send the backup file as the request body")
        digest, found = check_received(mc, sink, "Upload is not a valid Mission Control backup")
        final = place_at_free_name(sink.path, mc.backups.dir, UPLOAD.name_format,
                                   int(mc.clock()))
        fsync_dir(mc.backups.dir)
        return final, digest, found

    result = keep_received(mc, sink, actor, accept, {
        "action": "backup_upload_refused", "target_type": "backup",
        "detail": {"original_name": original_name, "size": sink.size}})
    mc.audit.emit("backup_upload", actor, target_type="backup", target_id=result["name"],
                  detail={**result, "original_name": original_name})
    keep_newest(mc, UPLOAD, result["name"], actor)
    return result
