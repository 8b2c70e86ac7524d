"""Restoring the live database from a backup while the service runs, in one atomic step.

The steps, all under the backup lock (so no backup or other restore runs meanwhile):
1. copy the backup into a private file in the kernel (`copy_file_range`) and verify that copy,
   once (header, `integrity_check`, Mission Control's schema, not from a newer version, and its
   SHA-256 computed beside the check): what passed is exactly what is swapped in. Meanwhile the
   page swap's child takes its snapshot (`page_swap`), and then step 3 runs in a thread;
2. prepare that copy in place (no journal on disk, no fsync: it is a temporary file): same page
   size as the live database, migrated forward, with the live
   verification records (never the file's) and every live audit event it lacks carried over,
   then check that it can be swapped in (encoding, page size); unless told otherwise, also the
   live protection settings, scheduler state and off-site records, so that restoring an old
   backup cannot switch the daily backup or an off-site copy off;
3. take a pre-restore safety backup of the live database (`pre-restore-...db`), once the
   `pre_backup` plugins (the disk guard) allow it (`SafetyCopy`); the page swap brings it up to
   the data it replaces; after the swap only the newest `general.safety_copies_keep` safety
   copies are kept;
4. swap the prepared file's content into the live database in one write transaction, the only
   step that holds the live database's write lock: where the `sqlean.py` SQLite is installed, a
   child writes only the pages that differ (`page_swap`); otherwise, or when that does not apply,
   SQLite's backup API copies every page. The live database stays in WAL mode, and every other
   connection sees either the old or the new data. The new pages are then checkpointed at once
   on the swap's connection (see `_settle`).
The swap is the last step that can fail; a failure after it is reported as such, never as a
failed restore, because the data was replaced.
"""
import dataclasses
import logging
import os
import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict

from .. import db as dbmod
from ..actor import as_actor
from .service import TEMP_PREFIX
from .service import snapshot
from .snapshot import quick_check
from ..errors import (BackupFailed, BackupRefused, FileRejected, MissionControlError,
                     NotAuthentic, describe_error)
from ..files import copy_private, database_size, remove_files
from .names import FETCHED_PREFIX, OFFSITE_FETCH, SAFETY_COPY
from . import page_swap
from .pruning import keep_newest
from .verify import VerificationStore
from .verify import remember_creation_check
from .verify import HEADER_SIZE, MMAP_SIZE, check_file, header_problems
from .verify import verify_backup

log = logging.getLogger(__name__)

BUSY = "A backup or restore is already in progress"
AUDIT_COLUMNS = ("action", "actor", "actor_id", "target_type", "target_id", "detail",
                 "ip_address", "user_agent", "created_at")
#: What protection has done so far (runs, off-site results, copies and drills), kept with the
#: protection settings (`_keep_protection`): the file's rows would describe copies of its own day.
PROTECTION_STATE_TABLES = ("scheduler_state", "offsite_results", "offsite_copies", "offsite_drills")


class RestoreFailed(MissionControlError):
    """The restore broke after verification; the live database is unchanged (500)."""

    status = 500
    default_message = "Restore failed"


class RestoredWithErrors(MissionControlError):
    """The data was replaced, but a step after the swap failed (500); `details` says which."""

    status = 500
    default_message = "Restored: the live data was replaced, but a step after the swap failed"


def restore_backup(mc, name, actor, *, session_token=None, keep_settings=True):
    """Replace the live database's content with backup `name`.

    :param actor: who asked: an `Actor`, or a plain name.
    :param session_token: the caller's session token, to tell them whether it survived.
    :param keep_settings: keep the live protection settings (`Settings.protection_keys`), scheduler
        state and off-site records; False takes them from the backup too.
    :return: dict with `restored` (name, sha256, schema versions), `safety_backup`, `session` and
        `kept_settings` (the protection keys whose live value differed from the backup's, kept).
    :raises ValidationFailed: bad name (400); `FileRejected`, its subclass: the backup failed
        verification (400, `details`).
    :raises NotFound: no such backup (404).
    :raises Conflict: a backup or another restore is running (409, `Retry-After`).
    :raises BackupRefused: a `pre_backup` plugin refused the safety copy (its status, 507 from the
        disk guard); nothing was changed.
    :raises RestoreFailed: anything else went wrong before the swap; nothing was changed (500).
    :raises RestoredWithErrors: the data was replaced, but something after the swap failed (500).
    """
    actor = as_actor(actor)
    path = mc.backups.readable_path(name)
    with mc.backups.exclusive(BUSY):
        # A file whose first bytes rule it out is refused at once: no safety copy is started.
        with open(path, "rb") as f:
            wanted = not header_problems(f.read(HEADER_SIZE))
        with _restoring(mc, actor, wanted) as (prepared, safety, swapper):
            # Copied first and the copy verified: what passed is exactly what is swapped in.
            check = verify_backup(mc, name, actor, copy_to=prepared)
            refuse_unrecorded_fetch(mc, name, check, actor)
            return _restore_checked(mc, prepared, check, actor, name, {"name": name},
                                    session_token, keep_settings, safety, swapper)


def refuse_unrecorded_fetch(mc, name, check, actor):
    """A copy fetched back from off-site is restored only if it is one this service sent.

    `fetch` already refuses a copy outside the signed record; this also holds for an
    ``offsite-…`` file fetched before copies were signed, or put into the folder by hand.
    :raises NotAuthentic: no record of a copy of that backup has its SHA-256 (400), audited.
    """
    if not name.startswith(OFFSITE_FETCH.prefix):
        return
    records = mc.offsite.records_of(name[len(FETCHED_PREFIX):])
    if any(r["plain_sha256"] == check["sha256"] for r in records):
        return
    reason = ("it was fetched from off-site, but matches no signed record of a copy this service "
              "made (it may have been planted)")
    mc.audit.emit("backup_restore_failed", actor, target_type="backup", target_id=name,
                  detail={"name": name, "reason": reason})
    raise NotAuthentic(f"Restore refused: {reason}")


def restore_prepared_file(mc, path, actor, *, label, detail, session_token=None,
                          keep_settings=True):
    """Replace the live database's content with `path`, a temporary file that is not a backup.

    The entry point for sources other than the backups folder (a point-in-time copy made by a
    replication engine): the same checks, safety backup, swap and audit as `restore_backup`,
    but the file is not recorded as a verified backup. The caller deletes `path` afterwards.

    :param label: what the audit trail and the answer call the source (`target_id`, `name`).
    :param detail: extra audit detail (e.g. `{"timestamp": ...}`).
    :return, raises: as `restore_backup`.
    """
    actor = as_actor(actor)
    with mc.backups.exclusive(BUSY), _restoring(mc, actor) as (prepared, safety, swapper):
        copy_private(path, prepared)
        found, digest = check_file(prepared, timeout=mc.config.verify_timeout, clock=mc.clock)
        check = {**asdict(found), "sha256": digest}
        return _restore_checked(mc, prepared, check, actor, label, {"name": label, **detail},
                                session_token, keep_settings, safety, swapper)


@contextmanager
def _restoring(mc, actor, wanted=True):
    """What a restore works with, under the backup lock: `(prepared, safety, swapper)`: the path
    of its private copy, its `SafetyCopy` and the page swap's `page_swap.Child` (None without
    `sqlean.py`), the child started first (its snapshot must come before the safety copy's).
    All are given up or removed when the block ends, unless taken.

    :param wanted: False: the restore will be refused anyway; neither is started.
    """
    prepared = _prepared_path(mc)
    swapper = None
    if wanted and page_swap.available():
        swapper = page_swap.Child.start(mc.config.db_path, busy_ms=dbmod.BUSY_TIMEOUT_MS)
    safety = SafetyCopy.start(mc, actor, swapper, wanted=wanted)
    try:
        yield prepared, safety, swapper
    finally:
        safety.discard_unless_taken()  # first: it may still wait for the swapper's snapshot
        if swapper is not None:
            swapper.close()
        _remove_prepared(prepared)


def _prepared_path(mc):
    """A new name for the private copy a restore prepares (a temporary file: a start after a
    crash removes it)."""
    return mc.backups.dir / f"{TEMP_PREFIX}restore-{os.getpid()}-{secrets.token_hex(6)}.tmp"


def _remove_prepared(prepared):
    remove_files(prepared, f"{prepared}-journal", f"{prepared}-wal", f"{prepared}-shm")


def _restore_checked(mc, prepared, check, actor, name, detail, session_token, keep_settings,
                     safety_copy, swapper):
    """Steps 2-4 and the audit, for `prepared`, the private copy whose verification result is
    `check`; it is changed in place (migrated, records carried over) and swapped in.
    `safety_copy` is the `SafetyCopy` started beside the verification, `swapper` the page swap's
    `page_swap.Child` (or None)."""
    started = time.perf_counter()
    if not check["ok"]:
        mc.audit.emit("backup_restore_failed", actor, target_type="backup", target_id=name,
                      detail={**detail, "reason": "; ".join(check["problems"])})
        raise FileRejected(check["problems"], "Backup failed verification")
    safety_copy.refused(name, detail)
    size = os.path.getsize(prepared)
    paused, live = False, None
    try:
        migrated_to, carried = _prepare(mc, prepared)
        kept = _keep_protection(mc, prepared) if keep_settings else []
        safety = safety_copy.take()
        _top_up_audit(mc, prepared, carried)
        # Whatever reads the database file itself (a replication process) stops for the swap.
        paused = True  # from here on, restore_resume follows whatever happens
        mc.hooks.restore_pause(actor)
        live = dbmod.connect(mc.config.db_path)
        swapped = _swap(prepared, live, swapper, safety)
    except Exception as exc:  # noqa: BLE001 - every failure ends the same safe way
        if live is not None:
            live.close()
        if paused:
            _resume(mc, actor)
        reason = describe_error(exc)
        log.exception("restore of %s failed: %s", name, reason)
        mc.audit.emit("backup_restore_failed", actor, target_type="backup", target_id=name,
                      detail={**detail, "reason": reason})
        raise RestoreFailed() from exc
    restored = {**detail, "name": name, "sha256": check["sha256"],
                "schema_version": check["schema_version"], "migrated_to": migrated_to}
    measures = {"size": size,
                "duration_seconds": round(time.perf_counter() - started, 3), "swap": swapped}
    try:
        if swapped.get("safety_patched"):
            safety, swapped["safety_checked"] = recheck_safety_copy(mc, safety, actor)
        return _after_swap(mc, live, restored, safety, actor, session_token, measures, kept)
    except Exception as exc:  # noqa: BLE001 - the data is replaced whatever failed here
        reason = describe_error(exc)
        log.exception("restore of %s: a step after the swap failed: %s", name, reason)
        raise RestoredWithErrors(details=[
            reason, f"the data before the restore is in the safety backup {safety.name}"]) \
            from exc
    finally:
        live.close()
        _resume(mc, actor)


def _resume(mc, actor):
    """Call `restore_resume` on every plugin; one that fails is logged and audited."""
    mc.hooks.restore_resume(actor)


def _after_swap(mc, live, restored, safety, actor, session_token, measures, kept):
    """Settle the live database (`live`, the swap's connection) and tell the world about a
    restore whose swap is done.

    `measures` (the restored file's `size`, the restore's `duration_seconds`) and `kept` (the
    protection settings kept) go to the audit.

    :return: the restore's JSON answer.
    """
    _settle(live)
    # Written after the swap, so the restored audit trail records its own restore.
    mc.audit.emit("backup_restore", actor, target_type="backup", target_id=restored["name"],
                  detail={**restored, "safety_backup": safety.name, **measures,
                          "kept_settings": kept})
    keep_newest(mc, SAFETY_COPY, safety.name, actor)  # after the swap, so the restored trail has it
    mc.settings.notify()  # the restored settings may differ (general.auto_backup, say)
    return {"success": True, "restored": restored, "safety_backup": safety.to_json(),
            "session": session_after_restore(mc, session_token), "kept_settings": kept}


def session_after_restore(mc, session_token):
    """What the caller needs to know to log in again: the restored tables decide who is logged in."""
    still = bool(session_token) and mc.auth.authenticate(session_token=session_token) is not None
    admins = [u.username for u in mc.users.list() if u.role == "admin"]
    if still:
        message = "Your session exists in the restored database; you are still logged in."
    else:
        message = ("Users, passwords and sessions are now those of the backup. Log in again "
                   "with an admin account and the password it had when the backup was taken.")
    if not admins:
        message += (" The backup has no admin: create one with "
                    "`mission-control user add NAME --role admin`.")
    return {"logged_in": still, "admins": admins, "message": message}


def _prepare(mc, prepared):
    """Bring the checked copy `prepared` to the live page size, migrate it, and carry the live
    records over into it, in place.

    :return: `(schema version after migration, id of the last live audit event carried over)`.
    """
    live = mc.db.conn()
    page_size = live.execute("PRAGMA page_size").fetchone()[0]
    verifications = VerificationStore(mc.db).all()
    with open(prepared, "r+b") as f:  # a rollback-journal database: no -wal file beside it
        f.seek(18)
        f.write(b"\x01\x01")
    dst = _open_prepared(prepared)
    try:
        if dst.execute("PRAGMA page_size").fetchone()[0] != page_size:
            # The backup API refuses to copy into a WAL database of another page size.
            dst.execute(f"PRAGMA page_size={int(page_size)}")
            dst.execute("VACUUM")
        _, version = dbmod.migrate(dst)
        dst.execute("BEGIN IMMEDIATE")
        carried = _carry_over_audit(live, dst)
        VerificationStore.replace_rows(dst, verifications)
        dst.execute("COMMIT")
        check_swappable(dst, live)
        return version, carried
    finally:
        dst.close()


def _open_prepared(prepared):
    """A connection to the private copy a restore prepares: its changes need no journal on disk
    and no fsync (a crash leaves a temporary file to be removed at the next start; the swap makes
    the live database durable)."""
    dst = sqlite3.connect(str(prepared), isolation_level=None)
    dst.execute("PRAGMA journal_mode=MEMORY")
    dst.execute("PRAGMA synchronous=OFF")
    return dst


def _carry_over_audit(live, dst, after_id=0):
    """Append to `dst` every event of the live trail (after id `after_id`) it does not hold.

    The audit trail is never rolled back, and nothing in the file can hide a live event: an
    event counts as held only when the file has a row equal in every column, as often as the
    live trail has it (times in the file are not trusted, so no cutoff is taken from them).

    :return: the id of the last live event read.
    """
    columns = ", ".join(AUDIT_COLUMNS)
    same = " AND ".join(f"a.{c} IS l.{c}" for c in AUDIT_COLUMNS)
    last = [after_id]

    def events():
        for event_id, *row in live.execute(f"SELECT id, {columns} FROM audit_log WHERE id > ?"
                                           " ORDER BY id", (after_id,)):
            last[0] = event_id
            yield row
    dst.execute(f"CREATE TEMP TABLE live_audit AS SELECT {columns} FROM main.audit_log WHERE 0")
    dst.executemany(f"INSERT INTO temp.live_audit VALUES ({', '.join('?' * len(AUDIT_COLUMNS))})",
                    events())
    dst.execute(
        f"INSERT INTO main.audit_log ({columns}) SELECT {columns} FROM ("
        f" SELECT rowid AS seq, *, ROW_NUMBER() OVER (PARTITION BY {columns} ORDER BY rowid) AS n"
        " FROM temp.live_audit) AS l"
        f" WHERE n > (SELECT COUNT(*) FROM main.audit_log AS a WHERE a.created_at = l.created_at"
        f" AND {same}) ORDER BY seq")
    dst.execute("DROP TABLE temp.live_audit")
    return last[0]


def _top_up_audit(mc, prepared, carried):
    """Carry over the live events written since `_prepare` read the trail (while the safety
    backup was made), so only the last milliseconds before the swap are not in the restored trail;
    and the live file checks again, which now hold the safety backup's check at creation.
    """
    dst = _open_prepared(prepared)
    try:
        dst.execute("BEGIN IMMEDIATE")
        _carry_over_audit(mc.db.conn(), dst, carried)
        VerificationStore.replace_rows(dst, VerificationStore(mc.db).all())
        dst.execute("COMMIT")
    finally:
        dst.close()


def check_swappable(prepared, live):
    """Check that the backup API can copy the `prepared` connection's database into `live`'s.

    Pages are copied verbatim: a file of another text encoding or page size would be swapped in
    and then be unreadable by every connection of the service.

    :raises ValueError: the encodings or page sizes differ (which, named in the message).
    """
    for pragma in ("encoding", "page_size"):
        ours, theirs = (c.execute(f"PRAGMA {pragma}").fetchone()[0] for c in (live, prepared))
        if ours != theirs:
            raise ValueError(f"the prepared copy's {pragma} is {theirs}, the live one's {ours}")


def room_for_safety_copy(mc, name, detail, actor):
    """Ask the `pre_backup` plugins about the safety copy; a refusal fails the restore, audited."""
    try:
        mc.backups.check_before(actor, SAFETY_COPY.name)
    except (BackupRefused, BackupFailed) as exc:
        _audit_refusal(mc, actor, name, detail, exc)
        raise


def _audit_refusal(mc, actor, name, detail, exc):
    """Audit the `pre_backup` plugins' refusal `exc` of a restore's safety copy."""
    mc.audit.emit("backup_restore_failed", actor, target_type="backup", target_id=name,
                  detail={**detail, "reason": exc.reason, "status": exc.status})


def _keep_protection(mc, prepared):
    """Put the live protection settings and `PROTECTION_STATE_TABLES` rows into `prepared`.

    A key at its default live loses the backup's row too, so it reads as the default after the
    swap. Secrets travel like any other value. Both sides are at the newest schema by now.
    :return: the protection keys whose live value differs from the backup's, sorted.
    """
    keys = mc.settings.protection_keys()
    live = {r["key"]: r for r in mc.db.query(
        "SELECT key, value, updated_by, updated_at FROM settings")}
    state = {table: mc.db.query(f"SELECT * FROM {table}") for table in PROTECTION_STATE_TABLES}
    dst = _open_prepared(prepared)
    try:
        stored = dict(dst.execute("SELECT key, value FROM settings").fetchall())
        defaults = {k: mc.settings.definitions[k].default for k in keys}
        kept = [k for k in keys if (live[k]["value"] if k in live else defaults[k])
                != stored.get(k, defaults[k])]
        dst.execute("BEGIN IMMEDIATE")
        dst.executemany("DELETE FROM settings WHERE key = ?", [(k,) for k in keys])
        dst.executemany("INSERT INTO settings (key, value, updated_by, updated_at)"
                        " VALUES (?, ?, ?, ?)", [tuple(live[k].values()) for k in keys if k in live])
        for table, rows in state.items():
            dst.execute(f"DELETE FROM {table}")
            if rows:
                dst.executemany(f"INSERT INTO {table} ({', '.join(rows[0])})"
                                f" VALUES ({', '.join('?' * len(rows[0]))})",
                                [tuple(r.values()) for r in rows])
        dst.execute("COMMIT")
        return kept
    finally:
        dst.close()


class SafetyCopy:
    """The pre-restore safety backup, made in a thread of its own while the backup is verified
    (or after it, for a database too large for the page cache: `beside_the_check`).

    On two cores the verification leaves one mostly idle (its `integrity_check` ends well before
    its SHA-256), and the copy is mostly the kernel's and the disk's work. The `pre_backup`
    plugins (the disk guard) are asked first; a refusal is raised only once the backup passed
    its verification (`refused`), so a bad file is still reported as such. A copy that is not
    taken (the verification failed) is removed: the service made it, nobody asked for it.
    """

    def __init__(self, mc, actor, refusal, swapper=None, *, started=True):
        self._mc, self._actor, self._refusal, self._swapper = mc, actor, refusal, swapper
        self._outcome, self._taken = {}, False
        self._given_up = threading.Event()
        self._thread = None
        self._later = False  # made in `take`, after the verification
        if refusal is None and started:
            if beside_the_check(mc.config.db_path):
                self._thread = threading.Thread(target=self._run, name="restore-safety-copy",
                                                daemon=True)
                self._thread.start()
            else:
                self._later = True

    @classmethod
    def start(cls, mc, actor, swapper=None, *, wanted=True):
        """:param swapper: the page swap's `page_swap.Child`, whose snapshot the copy's must
            follow (the copy waits for it to be ready), or None.
        :param wanted: False: the restore will be refused anyway; nothing is started."""
        if not wanted:
            return cls(mc, actor, None, None, started=False)
        try:
            mc.backups.check_before(actor, SAFETY_COPY.name)
        except (BackupRefused, BackupFailed) as exc:
            return cls(mc, actor, exc)
        return cls(mc, actor, None, swapper)

    def _run(self):
        mc = self._mc
        if self._swapper is not None:
            self._swapper.wait_ready()
        if self._given_up.is_set():  # the restore ended before the copy began
            return
        try:  # the file only: the database's thread-bound connections stay in the caller's thread
            self._outcome["made"] = _safety_file(mc)
        except BaseException as exc:  # noqa: BLE001 - raised again by `take`
            self._outcome["error"] = exc

    def refused(self, name, detail):
        """Audit and raise the `pre_backup` plugins' refusal, if there was one."""
        if self._refusal is not None:
            _audit_refusal(self._mc, self._actor, name, detail, self._refusal)
            raise self._refusal

    def take(self):
        """Wait for the copy; its `quick_check` is then remembered. :return: its `BackupInfo`.
        :raises: what making it raised."""
        self._taken = True
        if self._later:
            self._run()
        elif self._thread is None:  # not wanted: the file was ruled out, so never reached here
            raise RuntimeError("no safety copy was started")
        else:
            self._thread.join()
        if "error" in self._outcome:
            raise self._outcome["error"]
        made = self._outcome["made"]
        remember_creation_check(self._mc, made, self._actor)
        return made

    def discard_unless_taken(self):
        """Remove the copy when the restore ended before taking it (one not begun yet never
        begins)."""
        if self._taken or self._thread is None:
            return
        self._given_up.set()
        self._thread.join()
        made = self._outcome.get("made")
        if made is not None:
            remove_files(self._mc.backups.dir / made.name)


#: The safety copy runs beside the verification only while the four files of a restore (the
#: live database, the backup, its private copy and the safety copy) fit in the memory the
#: system has free: otherwise both read from the disk what the other pushed out of the page
#: cache, and the copy's niced check starves (10 GiB on 23 GB: 136 s against about 60 s).
FILES_IN_MEMORY = 4


def beside_the_check(db_path, meminfo="/proc/meminfo"):
    """Whether a restore of the live database `db_path` should make its safety copy beside the
    verification (True) or after it: beside it only when `FILES_IN_MEMORY` copies of the
    database fit in `MemAvailable`; after it where that is unknown (not Linux)."""
    try:
        with open(meminfo, encoding="ascii") as f:
            available = next(int(line.split()[1]) * 1024 for line in f
                             if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return False
    return database_size(db_path) * FILES_IN_MEMORY <= available


def safety_backup(mc, actor):
    """Snapshot the live database as `pre-restore-<UTC time>.db` (its `quick_check` remembered)."""
    made = _safety_file(mc)
    remember_creation_check(mc, made, actor)
    return made


def _safety_file(mc):
    """The snapshot of the live database as `pre-restore-<UTC time>.db`: its `BackupInfo`."""
    made, _ = snapshot(mc.config.db_path, mc.backups.dir, SAFETY_COPY.name_format,
                       int(mc.clock()))
    return made


def _swap(prepared, live, swapper, safety):
    """Make the live database (`live`, a connection to it) hold `prepared`'s content, in one
    write transaction: the only time a restore holds the live database's write lock.

    With `swapper` (a `page_swap.Child`), only the pages that differ are written, and the safety
    copy `safety` (a `BackupInfo`) is first brought up to the live data the swap replaces;
    otherwise, or when that does not apply, SQLite's backup API writes every page.

    :return: how, for the audit: `method` ("pages" or "backup_api"), `pages` (the restored
        database's), `written`, `lock_ms` (how long the write lock was held) and, for the page
        swap, `safety_patched` (pages written into the safety copy; None: not brought up to date);
        `page_swap_failed`: why the backup API swapped instead (the child failed).
    :raises page_swap.SafetyCopyBroken: nothing was swapped; the half-written safety copy is
        removed.
    """
    if swapper is not None:
        def committed(cookie):
            return live.execute("PRAGMA schema_version").fetchone()[0] == cookie
        path = safety.folder / safety.name
        try:
            done = swapper.swap(prepared, path, committed=committed)
        except page_swap.SafetyCopyBroken:
            remove_files(path)
            raise
        if done is not None:
            return {"method": "pages", "pages": done["pages"], "written": done["written"],
                    "lock_ms": done["lock_ms"], "safety_patched": done.get("safety_patched")}
    started = time.perf_counter()
    src = dbmod.open_file(prepared)
    try:
        src.execute(f"PRAGMA mmap_size={MMAP_SIZE}")  # pages read without a read call each
        pages = src.execute("PRAGMA page_count").fetchone()[0]
        src.backup(live, pages=-1)
    finally:
        src.close()
    swapped = {"method": "backup_api", "pages": pages, "written": pages,
               "lock_ms": round((time.perf_counter() - started) * 1000, 1)}
    if swapper is not None and swapper.failure:
        swapped["page_swap_failed"] = swapper.failure
    return swapped


def recheck_safety_copy(mc, safety, actor):
    """The safety copy was brought up to the data the swap replaced: check it again
    (`quick_check`) and remember that check for its new size and mtime. A copy that fails is
    logged as an error and listed as not checked (it is still the best undo there is).

    :return: its `BackupInfo` now, and whether it passed.
    """
    path = safety.folder / safety.name
    st = os.stat(path)
    now = dataclasses.replace(safety, size=st.st_size, mtime_ns=st.st_mtime_ns)
    rows = quick_check(path)
    if rows == ["ok"]:
        remember_creation_check(mc, now, actor)
    else:
        log.error("the safety copy %s, brought up to the replaced data, fails quick_check: %s",
                  safety.name, "; ".join(rows[:3]))
    return now, rows == ["ok"]


def _settle(live):
    """Right after the swap, on its connection: the live database in WAL mode (as before it) and
    the new pages checkpointed into its file (the swap wrote them all to the WAL).

    At once, so that this checkpoint, not the next commit of a live writer, does the work: SQLite
    runs an automatic checkpoint inside the commit that finds the WAL this long, and that writer
    would wait for all of it; while this one runs, theirs is skipped.
    """
    live.execute("PRAGMA wal_checkpoint(PASSIVE)")
    live.execute("PRAGMA journal_mode=WAL")
