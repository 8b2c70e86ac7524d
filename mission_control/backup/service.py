"""The backup service: hot snapshots, listing, deletion and pruning, for the API, CLI and scripts."""
import logging
import os
import secrets
import stat
import time
from contextlib import contextmanager
from pathlib import Path

from ..actor import as_actor
from ..errors import (BackupFailed, BackupRefused, BadRequest, Conflict, MissionControlError,
                     NotFound, TooManyRequests, ValidationFailed, describe_error)
from .removal import remove_gently
from ..files import FileLock
from ..files import fsync_dir
from ..files import place_at_free_name
from ..files import remove_files
from .names import NAME_FORMAT
from .names import PATTERN
from .names import BackupInfo
from .names import created_at
from ..files import PRIVATE_DIR
from ..ratelimit import RateLimiter
from .snapshot import copy_database
from .verify import remember_creation_check

log = logging.getLogger(__name__)

TEMP_PREFIX = ".mc-backup-"  # hidden, never listed, removed at start
LOCK_NAME = ".backup.lock"
RETRY_AFTER_BUSY = 10


def validate_name(name):
    """The problems with a backup name given by a user, as `"name: ..."` sentences (empty: fine)."""
    if not isinstance(name, str):
        return ["name: must be a string"]
    if not name.strip():
        return ["name: must not be empty"]
    problems = []
    if len(name) > 255:
        problems.append("name: must be at most 255 characters")
    if not name.endswith(".db"):
        problems.append("name: must end in .db")
    if "/" in name or "\\" in name or ".." in name:
        problems.append("name: must not contain /, \\ or ..")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        problems.append("name: must not contain NUL or control characters")
    return problems


class BackupService:
    """Makes, lists and deletes backups of one database, calling the backup hooks on the way.

    :param mc: the MissionControl whose `config`, `hooks`, `audit`, `settings` and `clock` it uses.
    """

    def __init__(self, mc):
        self.mc = mc
        self.db_path = Path(mc.config.db_path)
        self.dir = Path(mc.config.backups_dir)
        #: The cross-process lock: held by a running backup, and by a restore (one at a time).
        self.lock = FileLock(self.dir / LOCK_NAME)
        self._lock_timeout = mc.config.backup_lock_timeout
        self.rate = RateLimiter(mc.config.backup_rate_limit, 3600, mc.clock)

    def ensure_dir(self):
        self.dir.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)

    # -- listing -------------------------------------------------------------------------------
    def list(self):
        """Every regular `*.db` file in the folder (no hidden file, no symlink), newest first, as
        `BackupInfo`s."""
        folder = self.dir
        return [BackupInfo(name, size, made, folder, mtime_ns)
                for made, name, size, mtime_ns in self.scan()]

    def scan(self):
        """What `list` lists, as `(created_at, name, size, mtime_ns)` tuples, newest first: for
        answers about thousands of files that need no object per file. `created_at` is the
        time in a name the service made (`names.name_time`), else the file's mtime.

        :raises MissionControlError: the folder exists but cannot be read (500).
        """
        found = []
        try:
            entries = os.scandir(self.dir)
        except FileNotFoundError:
            return found
        except OSError as exc:  # replaced by a file, unreadable, ...: say so, without the path
            log.error("cannot list the backups folder: %s", describe_error(exc))
            raise MissionControlError("The backups folder cannot be read: "
                                      f"{describe_error(exc)}") from None
        is_regular = stat.S_ISREG
        with entries:
            for entry in entries:
                name = entry.name
                if name[0] == "." or not name.endswith(".db"):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)  # exact sizes: never a cached answer
                except FileNotFoundError:
                    continue
                if is_regular(st.st_mode):
                    found.append((created_at(name, st), name, st.st_size, st.st_mtime_ns))
        # Tuples sort faster than objects by a key. Newest first; ties: newest name first.
        found.sort(reverse=True)
        return found

    # -- creation ------------------------------------------------------------------------------
    def create(self, actor, *, rate_key=None):
        """Make one backup: lock, `pre_backup`, snapshot, audit, prune, `post_backup`, and last
        `backup_finished` (also after a failure or refusal).

        :param actor: who asked: an `Actor`, or a plain name (scripts).
        :param rate_key: when given (an admin's username), the backup counts against that key's
            hourly budget; scheduled runs, the CLI and scripts pass None.
        :return: the new `BackupInfo`.
        :raises TooManyRequests: over the hourly budget (429, `Retry-After`).
        :raises Conflict: another backup kept the lock for `backup_lock_timeout` seconds (409).
        :raises BackupRefused: a `pre_backup` plugin refused (its status, 507 by default).
        :raises BackupFailed: anything went wrong; no partial file is left (500).
        """
        actor = as_actor(actor)
        try:
            made = self._create(actor, rate_key)
        except (BackupFailed, BackupRefused) as exc:
            self._finished(actor, None, exc)
            raise
        self.mc.hooks.post_backup(made, actor)
        self._finished(actor, made, None)
        return made

    def _create(self, actor, rate_key):
        made = None
        with self.budget(rate_key):
            try:
                self.ensure_dir()
                with self.exclusive("A backup is already in progress", self._lock_timeout):
                    started = time.perf_counter()
                    self._pre_backup(actor)
                    disk_errors = []
                    made, copied_by = self._snapshot(actor, disk_errors)
                    # The copy passed `quick_check` before it got its name: remembered for the
                    # file as written (`GET /api/backup` says `checked_at_creation`).
                    remember_creation_check(self.mc, made, actor)
                    detail = {"name": made.name, "size": made.size, "path": str(made.path),
                              "duration_seconds": round(time.perf_counter() - started, 3),
                              "copy": copied_by}
                    if disk_errors:  # health warns until a backup meets none (see health.py)
                        detail["disk_error"] = disk_errors[0]
                    self.mc.audit.emit("backup_create", actor, target_type="backup",
                                       target_id=made.name, detail=detail)
                    self.mc.pruning.after_backup(made, actor)
            except OSError as exc:  # the folder or its lock file is unusable (a file, read-only...)
                if made is not None:
                    raise
                raise self._failed(exc, actor) from exc
        return made

    @contextmanager
    def exclusive(self, message, timeout=0):
        """Hold the backup lock for the block, waiting at most `timeout` seconds for it.

        :raises Conflict: `message`, when another backup or restore kept it (409, `Retry-After`).
        """
        with self.lock.hold(timeout) as locked:
            if not locked:
                raise Conflict(message, headers={"Retry-After": str(RETRY_AFTER_BUSY)})
            yield

    def _finished(self, actor, made, error):
        self.mc.hooks.backup_finished(actor, made, error)

    @contextmanager
    def budget(self, rate_key):
        """Count what the `with` block makes against `rate_key`'s hourly backup budget.

        Backups and uploads share the budget (`MC_BACKUP_RATE_LIMIT`). The slot is given back when
        the block raises: a refused or failed attempt does not use it up.

        :param rate_key: an admin's username, or None for no limit (scheduler, CLI, scripts).
        :raises TooManyRequests: over the budget (429, `Retry-After`); nothing has run.
        """
        if rate_key is None:
            yield
            return
        token, wait = self.rate.reserve(rate_key)
        if token is None:
            # When to try again is in Retry-After (the page says it in words): said once.
            raise TooManyRequests(
                f"Too many backups: at most {self.rate.limit} per hour, uploads included",
                retry_after=wait)
        try:
            yield
        except BaseException:
            self.rate.release(rate_key, token)
            raise

    def check_before(self, actor, kind="backup"):
        """Ask the `pre_backup` plugins (the disk guard, ...) whether a file may be written now.

        Audits nothing: each caller audits its refusal under its own action.

        :param kind: "backup", or the `FileKind.name` of an upload or safety copy.
        :raises BackupRefused: a plugin refused (its status, 507 by default).
        :raises BackupFailed: a plugin crashed (500); the traceback is logged.
        """
        self.mc.hooks.pre_backup(actor, self.db_path, kind)

    def _pre_backup(self, actor):
        try:
            self.check_before(actor)
        except BackupRefused as exc:
            self.mc.audit.emit("backup_refused", actor, target_type="backup",
                               detail={"reason": exc.reason, "status": exc.status})
            raise
        except BackupFailed as exc:
            self.mc.audit.emit("backup_failed", actor, target_type="backup",
                               detail={"reason": f"pre_backup plugin: {exc.reason}"})
            raise

    def _snapshot(self, actor, disk_errors):
        try:
            limit = self.mc.settings.get("backup.io_limit_mb_s") * 10**6
            return snapshot(self.db_path, self.dir, NAME_FORMAT, int(self.mc.clock()),
                            io_limit=limit, disk_errors=disk_errors)
        except Exception as exc:  # noqa: BLE001 - every failure ends the same safe way
            raise self._failed(exc, actor) from exc

    def _failed(self, exc, actor):
        """Log and audit a failed backup; returns the `BackupFailed` to raise."""
        reason = describe_error(exc)
        log.error("backup failed: %s", reason, exc_info=exc)
        self.mc.audit.emit("backup_failed", actor, target_type="backup", detail={"reason": reason})
        return BackupFailed(reason)

    # -- deletion ------------------------------------------------------------------------------
    def path_of(self, name):
        """The path of backup `name`: a regular file in the backups folder, as listed.

        :raises ValidationFailed: not a plain `.db` file name (400).
        :raises NotFound: no regular file of that name; hidden files and symlinks are not
            backups (404).
        """
        problems = validate_name(name)
        if problems:
            raise ValidationFailed(problems)
        path = self.dir / name
        try:
            if name.startswith(".") or not stat.S_ISREG(os.lstat(path).st_mode):
                raise NotFound("Backup not found")
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound("Backup not found") from None
        return path

    def readable_path(self, name):
        """`path_of(name)`, for opening: never the live database or its `-wal`/`-shm` file under
        another name (a hard link). Closing any descriptor of the live database would drop this
        process's SQLite locks on it, so such a file is refused before it is ever opened.

        :raises ValidationFailed, NotFound: as `path_of`.
        :raises BadRequest: the file is one of the live database's files (400).
        """
        path = self.path_of(name)
        st = os.lstat(path)
        if st.st_nlink > 1:  # a file with one name cannot also be the live database
            for live in (self.db_path, f"{self.db_path}-wal", f"{self.db_path}-shm"):
                try:
                    other = os.stat(live)
                except OSError:
                    continue
                if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
                    raise BadRequest("This file is the live database (a hard link to it or to its"
                                     " -wal/-shm file), not a backup: it is never opened")
        return path

    def delete(self, name, actor):
        """Delete one backup file by name; `actor` is an `Actor` or a plain name.

        :raises ValidationFailed, NotFound: as `path_of`.
        """
        path = self.path_of(name)
        try:
            size = self.remove_file(path)
        except FileNotFoundError:
            raise NotFound("Backup not found") from None
        fsync_dir(self.dir)
        self.mc.audit.emit("backup_delete", as_actor(actor), target_type="backup",
                           target_id=name, detail={"name": name, "size": size})

    def remove_file(self, path):
        """Delete the file `path` of the backups folder (never following a symlink), a large one
        in steps so that the live database's writers are not stalled (`remove_gently`); returns
        its size.

        :raises FileNotFoundError: no such file.
        :raises OSError: it could not be removed.
        """
        return remove_gently(path, self.dir / f"{TEMP_PREFIX}delete-{secrets.token_hex(6)}.tmp")

    # -- start-up ------------------------------------------------------------------------------
    def remove_leftovers(self):
        """Delete temporary files of backups that a crash interrupted; returns how many.

        Only done while holding the backup lock, so another process's running backup is safe.
        """
        removed = 0
        if not self.dir.is_dir():
            return removed
        with self.lock.hold(0) as locked:
            if not locked:
                return removed
            for entry in os.scandir(self.dir):
                if entry.name.startswith(TEMP_PREFIX) and entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)
                    removed += 1
        if removed:
            log.warning("removed %d unfinished backup file(s) left by an interrupted run", removed)
        return removed


def snapshot(db_path, folder, name_format, second, *, io_limit=0, disk_errors=None):
    """Copy the live database into `folder` as a new, checked file named by `name_format`.

    The copy goes to a hidden temporary file (`copy_database`), then takes the first free name
    from `second` on, and the folder is fsynced. A failure leaves no file behind.

    :param io_limit: bytes per second the copy may read and write (0: no limit).
    :param disk_errors: a list for the live database's I/O errors, as `copy_database`.

    :return: the new `BackupInfo`, and how it was copied (``"file"``, ``"file+wal"`` or
        ``"pages"``, as `copy_database` says).
    :raises Exception: whatever the copy or the filesystem raised.
    """
    tmp = folder / f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}.tmp"
    try:
        copied_by = copy_database(db_path, tmp, io_limit=io_limit, disk_errors=disk_errors)
        # Stat before placing: once in place, a DELETE may remove it at once (a client that
        # listed an older file of the same name), and that must not turn the backup into a
        # failure. Moving a file keeps its size and mtime.
        st = os.stat(tmp)
        final = place_at_free_name(tmp, folder, name_format, second)
        fsync_dir(folder)
    finally:
        try:
            remove_files(tmp, f"{tmp}-journal")  # gone already once placed
        except OSError:
            log.exception("could not remove a backup's temporary file")
    return (BackupInfo(final.name, st.st_size, created_at(final.name, st), folder,
                       st.st_mtime_ns),
            copied_by)
