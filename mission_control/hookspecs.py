"""The hook points plugins implement: `pre_backup`, `post_backup`, `prune`, `audit` and more.

Every hook receives `mc`, the running `MissionControl` (config, settings, backups, audit), so a
plugin needs no globals. A plugin implements only the arguments it names.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import pluggy

from . import NAME

if TYPE_CHECKING:  # for the annotations only: importing these here would be a cycle
    from .actor import Actor
    from .backups import BackupInfo
    from .core import MissionControl
    from .settings import SettingDef, Settings, SettingsView

hookspec = pluggy.HookspecMarker(NAME)


@hookspec
def pre_backup(mc: MissionControl, actor: Actor, db_path: Path, kind: str) -> None:
    """Called before a backup, an upload or a pre-restore safety copy is written; may refuse it.

    For a backup and a safety copy the backup lock is held; an upload is asked before its body is
    read, without the lock (a slow client must not hold up backups).

    :param mc: the running MissionControl.
    :param actor: who asked for the backup: a ``mission_control.Actor`` (``name``, ``id``,
        ``ip_address``, ``user_agent``); ``str(actor)`` is the name (username, ``"scheduler"``,
        ``"api"``, ``"cli:alice"``, ...).
    :param db_path: ``pathlib.Path`` of the live database.
    :param kind: ``"backup"``, ``"upload"`` (an uploaded backup file), ``"safety_copy"`` (the
        snapshot a restore takes first), ``"offsite_fetch"`` (a copy fetched back) or
        ``"offsite_drill"`` (a restore drill's scratch copy); a monitor that pings on each
        backup checks it.
    :return: nothing.
    :raises mission_control.BackupRefused: to refuse; its reason and status (507 by default) go
        back to the client and the refusal is audited (``backup_refused`` for a backup,
        ``backup_upload_refused``, ``backup_restore_failed``). Any other exception fails it
        (500; a backup is audited as ``backup_failed``). Nothing has been written yet.
    """


@hookspec
def post_backup(mc: MissionControl, backup: BackupInfo, actor: Actor) -> None:
    """Called after a backup file is complete, renamed into place and audited.

    Off-site copies belong here. They should catch their own failures and report each result
    with ``mc.offsite.succeeded(...)`` / ``mc.offsite.failed(...)``, which records the target's
    last result (``GET /api/offsite``) and audits ``offsite_copy`` / ``offsite_failed``.

    :param mc: the running MissionControl.
    :param backup: the new ``BackupInfo`` (``name``, ``size``, ``created_at``, ``path``).
    :param actor: who asked for the backup (a ``mission_control.Actor``, as for ``pre_backup``);
        pass it on to ``mc.offsite.succeeded``/``failed`` so the audit event names them.
    :return: ignored.
    :raises: anything; the host logs the traceback and audits ``plugin_error``, and the other
        implementations still run. The backup stays made: a failure here never fails it.
    """


@hookspec
def backup_finished(mc: MissionControl, actor: Actor, backup: BackupInfo | None,
                    error: BaseException | None) -> None:
    """Called once at the very end of every backup that was made, failed or refused.

    This is where alerts belong: it comes after ``post_backup`` (so off-site results are
    recorded) and after the outcome is in the audit trail (``backup_create``, ``backup_failed``
    or ``backup_refused``), so ``mc``'s health reflects this backup. A backup turned away before
    it started (over the rate limit, or another backup holding the lock) does not call it.
    Implementations run in the request or scheduler run that made the backup: anything slow
    (network) belongs on ``mc.outbox``.

    :param mc: the running MissionControl.
    :param actor: who asked for the backup (a ``mission_control.Actor``, as for ``pre_backup``);
        ``actor == mission_control.SCHEDULER`` for the daily scheduled run.
    :param backup: the new ``BackupInfo``, or ``None`` when the backup failed or was refused.
    :param error: ``None`` on success, else the ``mission_control.BackupFailed`` or
        ``BackupRefused`` the caller receives (``error.reason`` is a safe sentence).
    :return: ignored.
    :raises: anything; the host logs it and audits ``plugin_error``; the other implementations
        still run, and the backup's outcome is unchanged.
    """


@hookspec
def periodic_check(mc: MissionControl) -> None:
    """Called every few minutes (at most 5 apart) while the service runs, for time-driven alerts.

    Some trouble comes with time alone, with no event to react to: a backup that is now overdue,
    an off-site copy that is late. The scheduler's thread calls this after each of its checks;
    only a running service (``mission-control serve``) has that thread, so the CLI and scripts
    never call it. Run quick checks here and queue anything slow on ``mc.outbox``.

    :param mc: the running MissionControl.
    :return: ignored.
    :raises: anything; the host logs it (no audit event, since it would repeat every few
        minutes), the other implementations still run and the scheduler carries on.
    """


@hookspec
def offsite_targets(mc: MissionControl) -> Iterable[str | Any] | None:
    """Name the off-site targets this plugin copies every backup to, as configured right now.

    This is the one answer to "is this off-site copy configured?": backup health
    (``GET /api/backup/status``, ``/metrics``, the admin page) holds every target named here to
    account. Its last copy must not have failed, and the newest backup must have a verified copy
    there within ``offsite.max_lag_minutes``. Answer exactly when your ``post_backup`` would try a
    copy, and report each result under the same name with ``mc.offsite.succeeded``/``failed``.

    An item may be a plain name, or a target object that can also give copies back (listing,
    ``/api/offsite/<name>/fetch``, the weekly restore drill):

    - ``name``: the target's name (``"dir"``, ``"s3"``);
    - ``list_copies()``: the copies it holds, as ``mission_control.RemoteCopy(name, size,
      created_at)``, in any order; names ``mission_control.parse_remote_name`` does not know
      are ignored;
    - ``open_copy(name)``: a binary reader (``read(n)``, ``close()``) streaming that copy's stored
      bytes; the host closes it;
    - optionally ``read_manifest(name, limit)``: at most `limit` bytes of the manifest stored
      beside the copy (``name + mission_control.MANIFEST_SUFFIX``), or None when there is none.

    The host unpacks what it reads (zstd, age) as the name says, so a target only moves bytes.
    Only copies in the signed record of copies this service made are fetched or drilled: record
    each one with ``mc.offsite.record_copy(target, backup, remote_name, encoded)`` (which returns
    the signed manifest to store beside it) or ``mc.offsite.succeeded(..., remote_name=...,
    encoded=...)``; both SHA-256s are compared with the record when it comes back.

    :param mc: the running MissionControl.
    :return: a list of target names or target objects; an empty list or ``None`` when not
        configured.
    :raises: anything; the host logs it and counts no target for that plugin. An exception from
        ``list_copies``/``open_copy`` is answered as 502 "cannot be read".
    """


@hookspec(firstresult=True)
def prune(mc: MissionControl, backups: list[BackupInfo], keep_names: frozenset[str],
          settings: Settings | SettingsView) -> Iterable[str] | Any | None:
    """Choose which backups to delete (the retention policy): after each successful backup, for
    ``POST /api/backup/prune`` and ``mission-control backup prune``, and for their previews.

    The first implementation to return an answer wins; return ``None`` to defer to the next one.
    The built-in ``retention`` plugin runs last (``trylast``) and applies keep-last
    (``general.backup_retention_count``) and its ``retention.keep_*`` rules.

    :param mc: the running MissionControl.
    :param backups: ``BackupInfo`` list of the rotating backups only (``mc-backup-<UTC time>.db``
        names that are a real time), newest first by the time in the name, the backup just made
        first. Other ``*.db`` files are never offered: they are kept forever.
    :param keep_names: names the host will not delete whatever is returned (the backup just made;
        empty for a prune on demand).
    :param settings: read settings here (``settings.get(key)``), not from ``mc.settings``: for a
        preview it answers the values an admin is about to save.
    :return: names to delete (any iterable of ``str``), or a ``mission_control.RetentionPlan``
        (the same names, plus why each kept backup is kept, shown by the preview), or ``None``.
        The host deletes only names that are in ``backups`` and not in ``keep_names``, and audits
        each deletion as ``backup_prune``. The hook must not delete anything itself: a preview
        calls it too.
    :raises: anything; the host logs it, audits ``plugin_error`` and deletes nothing this time.
    """


@hookspec
def audit(mc: MissionControl, event: dict[str, Any]) -> None:
    """Called for every audit event; this is how audit sinks receive the trail.

    The built-in ``audit_log`` plugin writes the ``audit_log`` table that ``GET /api/audit`` reads.

    :param mc: the running MissionControl.
    :param event: ``dict`` with ``action``, ``actor``, ``actor_id``, ``target_type``, ``target_id``,
        ``detail`` (a dict or ``None``), ``ip_address``, ``user_agent``, ``created_at`` (unix seconds).
    :return: ignored.
    :raises: anything; the host logs it and tells the other sinks with a ``plugin_error`` event.
        The action that was being audited is not undone.
    """


@hookspec
def register_settings(mc: MissionControl) -> Iterable[SettingDef] | None:
    """Called once when the service opens, to collect the settings plugins declare.

    Declared settings are validated, listed and changed through ``/api/settings`` like the host's
    own; a plugin reads them with ``mc.settings.get(key)``. Prefix keys with the plugin's name
    (``offsite.dir.path``).

    :param mc: the MissionControl being opened (its settings registry is not built yet).
    :return: a list of ``mission_control.SettingDef``, or ``None``.
    :raises: anything; opening the service fails, since a plugin's settings are part of its config.
    """


@hookspec
def serve_start(mc: MissionControl) -> None:
    """Called by ``mission-control serve`` once the service is open, before it takes requests.

    Background work that must run only inside a long-lived server (never in the CLI, a script or
    ``create_app``) starts here: the ``pitr`` plugin starts supervising Litestream.

    :param mc: the running MissionControl.
    :return: ignored.
    :raises: anything; the host logs it, audits ``plugin_error`` and serves anyway.
    """


@hookspec
def serve_stop(mc: MissionControl) -> None:
    """Called when ``serve`` shuts down, before the database closes: stop what ``serve_start``
    began.

    :param mc: the running MissionControl.
    :return: ignored.
    :raises: anything; the host logs it and goes on shutting down.
    """


@hookspec
def restore_pause(mc: MissionControl, actor: Actor) -> None:
    """Called during a restore, under the backup lock, just before the live database is replaced.

    Stop whatever reads or writes the database file behind SQLite's back (a replication process
    such as Litestream); ``restore_resume`` follows, whatever the outcome.

    :param mc: the running MissionControl.
    :param actor: who asked for the restore (a ``mission_control.Actor``).
    :return: ignored.
    :raises: anything, to refuse the restore: it fails (500) and nothing is replaced.
    """


@hookspec
def restore_resume(mc: MissionControl, actor: Actor) -> None:
    """Called after every ``restore_pause`` (even one that raised), still under the backup lock,
    once the swap succeeded or failed.

    :param mc: the running MissionControl.
    :param actor: who asked for the restore.
    :return: ignored.
    :raises: anything; the host logs it and audits ``plugin_error``; the restore's result stands.
    """


@hookspec(firstresult=True)
def pitr_status(mc: MissionControl, fresh: bool) -> dict[str, Any] | None:
    """The state of continuous protection (point-in-time recovery), for ``GET /api/backup/pitr``,
    health and metrics (``fresh`` false), and a restore to a moment (``fresh`` true).

    :param mc: the running MissionControl.
    :param fresh: false: answer from state kept in the background, without starting a process
        or waiting on the replica (health is scraped often, by several monitors at once); true:
        ask the engine now (a restore must see the window as it is).
    :return: a dict with ``enabled``, ``installed``, ``running``, ``pid``, ``replica``,
        ``earliest`` and ``latest`` (unix ms or None: the restorable window), ``lag_seconds``,
        ``checked_at`` (unix ms of the state's last check, or None), ``last_error``; or None to
        defer (no engine: the host answers "not installed").
    :raises: anything; the request fails with a 500.
    """


@hookspec(firstresult=True)
def pitr_restore_to(mc: MissionControl, at_ms: int, dest: Path) -> bool | None:
    """Write the database as it was at ``at_ms`` (unix ms) to the new file ``dest``.

    The host then restores ``dest`` through the same path as every restore (verification,
    safety backup, swap, audit) and deletes it.

    :param mc: the running MissionControl.
    :param at_ms: the moment wanted, inside the window ``pitr_status`` reported.
    :param dest: ``pathlib.Path`` of a file that does not exist yet, in the backups folder.
    :return: True when written; None to defer to another implementation.
    :raises mission_control.MissionControlError: e.g. a 400 when ``at_ms`` is outside the window.
    """
