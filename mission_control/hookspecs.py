"""The hook points plugins implement (`pre_backup`, `post_backup`, `prune`, `audit`, ...) and
`PluginContext`, the `mc` every hook is handed.

Every hook receives `mc`, the running `MissionControl`, so a plugin needs no globals. A plugin
implements only the arguments it names, and may rely on the attributes of `mc` that
`PluginContext` lists; anything else on `mc` is internal and may change.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, TypeVar, runtime_checkable

import pluggy

from . import NAME
from .actor import Actor
from .backup.names import BackupInfo
from .offsite.codec import Encoded
from .settings import SettingDef

T = TypeVar("T")


@runtime_checkable
class SettingValues(Protocol):
    """Settings to read: `mc.settings`, or the values a `prune` preview is about to save."""

    def get(self, key: str) -> Any:
        """The typed value of `key`; :raises KeyError: `key` is not a declared setting."""


@runtime_checkable
class PluginSettings(SettingValues, Protocol):
    """`mc.settings`: the host's settings and every plugin's (`register_settings`)."""

    def get_raw(self, key: str) -> str:
        """The stored text of `key` (its default when unset), unchecked."""

    def on_change(self, callback: Callable[[list[str]], Any]) -> None:
        """Call `callback(changed_keys)` after every committed update or reset."""


@runtime_checkable
class BackupFolder(Protocol):
    """`mc.backups`: the backups folder."""

    dir: Path

    def list(self) -> list[BackupInfo]:
        """Every backup in the folder, newest first."""


@runtime_checkable
class AuditTrail(Protocol):
    """`mc.audit`: hands an event to every audit sink (the `audit` hook)."""

    def emit(self, action: str, actor: Actor | str, *, target_type: str | None = None,
             target_id: Any = None, detail: dict[str, Any] | None = None) -> dict[str, Any]:
        """Build the event, hand it to every sink and return it."""


@runtime_checkable
class AuditRecords(Protocol):
    """`mc.audit_store`: the `audit_log` table that ``GET /api/audit`` reads."""

    def insert(self, event: dict[str, Any]) -> int:
        """Write one event (as the `audit` hook receives it); returns its id."""

    def query(self, action: str | None = None, actor: str | None = None,
              since: int | None = None, until: int | None = None, limit: int = 100,
              offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Events newest first, and how many match the filters before paging."""


@runtime_checkable
class Signing(Protocol):
    """`mc.offsite.signer`: the service's own Ed25519 key (``offsite-signing.key``), which signs
    what it puts off-site (copies' manifests, catalog entries, the sealed stream's files)."""

    def private_key(self) -> Any:
        """The ``Ed25519PrivateKey``, made (and its verification key announced) on first use."""

    def trusted(self) -> tuple[Any, ...]:
        """Every ``Ed25519PublicKey`` a signature may verify with: ours, and the extra ones."""


@runtime_checkable
class OffsiteReport(Protocol):
    """`mc.offsite`: where off-site plugins report each copy (``GET /api/offsite``, the audit)."""

    signer: Signing

    def succeeded(self, target: str, backup: BackupInfo, actor: Actor | str, *, location: str,
                  detail: dict[str, Any] | None = None, remote_name: str | None = None,
                  encoded: Encoded | None = None) -> None:
        """Record and audit (``offsite_copy``) a verified copy of `backup` at `location`."""

    def failed(self, target: str, backup: BackupInfo | None, actor: Actor | str,
               error: BaseException | str, *, location: str | None = None) -> str:
        """Record and audit (``offsite_failed``) a failed copy; returns the reason recorded."""

    def record_copy(self, target: str, backup: BackupInfo, remote_name: str,
                    encoded: Encoded, *, location: str | None = None,
                    etag: str | None = None) -> bytes:
        """Sign and remember the copy (with where it went and its upload's ETag, when known);
        returns the manifest to store beside it."""


@runtime_checkable
class Background(Protocol):
    """`mc.outbox`: background queues for slow, best-effort work (alert pings, mail)."""

    cancelled: threading.Event

    def submit(self, channel: str, job: Callable[[], Any]) -> bool:
        """Queue `job` on `channel`'s thread; False when the channel is full or closing."""

    def retry(self, attempt: Callable[[], T], delays: Iterable[float] | None = None) -> T:
        """Call `attempt()` until it returns, waiting in between; re-raises the last failure."""


@runtime_checkable
class ServiceConfig(Protocol):
    """`mc.config`: where the service's files are, as it was started."""

    db_path: Path
    backups_dir: Path
    litestream_bin: str | None


@runtime_checkable
class PluginContext(Protocol):
    """The `mc` every hook receives: what a plugin may rely on (a `MissionControl` is one).

    Each attribute is described by its own protocol above; a test holds the real
    `MissionControl` to them and every ``mc.<name>`` in the built-in plugins to this list.
    """

    config: ServiceConfig
    #: The time as unix seconds (a fake clock in tests).
    clock: Callable[[], float]
    settings: PluginSettings
    backups: BackupFolder
    audit: AuditTrail
    audit_store: AuditRecords
    offsite: OffsiteReport
    outbox: Background
    #: Objects a plugin keeps for the life of the service, under the plugin's name.
    services: dict[str, Any]


hookspec = pluggy.HookspecMarker(NAME)


@hookspec
def pre_backup(mc: PluginContext, actor: Actor, db_path: Path, kind: str) -> None:
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
def post_backup(mc: PluginContext, backup: BackupInfo, actor: Actor) -> None:
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
def backup_finished(mc: PluginContext, actor: Actor, backup: BackupInfo | None,
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
def periodic_check(mc: PluginContext) -> None:
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
def offsite_targets(mc: PluginContext) -> Iterable[str | Any] | None:
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


@hookspec
def alert_channels(mc: PluginContext) -> Iterable[Any] | None:
    """Name the alert channels this plugin delivers through, as configured right now.

    Health holds each one to account: once a delivery through it failed (audited as
    ``alert_failed`` with ``target_type="alert"`` and ``target_id`` the channel's name) and
    none got through since (``alert_sent``, same target), the verdict is ``warn`` with a reason
    naming the channel, and ``mission_control_alert_channel_ok{channel}`` is 0.
    ``mission-control alerts test`` and ``POST /api/alerts/test`` send a test through each.

    Each item is an object with:

    - ``name``: the channel's name (``"healthchecks"``, ``"email"``), as in its audit events;
    - ``test(actor)``: send one test alert now, in the caller's thread (one attempt, the
      channel's own timeout); return what the receiver answered, in words without secrets
      (``"HTTP 200: OK"``, ``"250 Message accepted"``); raise on failure (the host words the
      exception with ``describe_error`` and audits ``alert_failed``).

    :param mc: the running MissionControl.
    :return: a list of channel objects; an empty list or ``None`` when not configured.
    :raises: anything; the host logs it and counts no channel for that plugin.
    """


@hookspec
def metrics(mc: PluginContext) -> Iterable[dict[str, Any]] | None:
    """Gauges this plugin adds to ``GET /metrics``, read at every scrape (keep it quick).

    :param mc: the running MissionControl.
    :return: a list of ``{"name", "help", "value"}`` dicts, each optionally with ``"labels"`` (a
        dict of label names to values); a name must match ``mission_control_[a-z0-9_]+`` and
        not be one the host exports, and one name keeps the same label names. Items that break
        these rules are logged and left out.
    :raises: anything; the host logs it and the scrape goes on without this plugin's gauges.
    """


@hookspec(firstresult=True)
def prune(mc: PluginContext, backups: list[BackupInfo], keep_names: frozenset[str],
          settings: SettingValues) -> Iterable[str] | Any | None:
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
def audit(mc: PluginContext, event: dict[str, Any]) -> None:
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
def register_settings(mc: PluginContext) -> Iterable[SettingDef] | None:
    """Called once when the service opens, to collect the settings plugins declare.

    Declared settings are validated, listed and changed through ``/api/settings`` like the host's
    own; a plugin reads them with ``mc.settings.get(key)``. Prefix keys with the plugin's name
    (``offsite.dir.path``).

    :param mc: the MissionControl being opened (its settings registry is not built yet).
    :return: a list of ``mission_control.SettingDef``, or ``None``.
    :raises: anything; opening the service fails, since a plugin's settings are part of its config.
    """


@hookspec
def check_settings(mc: PluginContext, settings: SettingValues,
                   changed: list[str]) -> Iterable[str] | None:
    """Called before a settings change is written, to check it against the world outside
    (a bucket that must have Object Lock, a server that must answer), which the setting's own
    validation cannot see.

    :param mc: the running MissionControl.
    :param settings: the settings as they will be if the change is written
        (``settings.get(key)``); ``mc.settings`` still holds the old values.
    :param changed: the keys being changed (each value already passed its own validation).
        Check only when one of yours is among them: every change calls this hook.
    :return: problems, each ``"<setting key>: <reason>"`` (the API answers 400 with them as
        ``details``, the CLI exits 2, and nothing is written), or ``None`` / an empty list.
    :raises: anything; the host logs it and refuses the change with a problem naming the
        plugin (a check that cannot run does not let the change through unchecked).
    """


@hookspec
def serve_start(mc: PluginContext) -> None:
    """Called by ``mission-control serve`` once the service is open, before it takes requests.

    Background work that must run only inside a long-lived server (never in the CLI, a script or
    ``create_app``) starts here: the ``pitr`` plugin starts supervising Litestream.

    :param mc: the running MissionControl.
    :return: ignored.
    :raises: anything; the host logs it, audits ``plugin_error`` and serves anyway.
    """


@hookspec
def serve_stop(mc: PluginContext) -> None:
    """Called when ``serve`` shuts down, before the database closes: stop what ``serve_start``
    began.

    :param mc: the running MissionControl.
    :return: ignored.
    :raises: anything; the host logs it and goes on shutting down.
    """


@hookspec
def restore_pause(mc: PluginContext, actor: Actor) -> None:
    """Called during a restore, under the backup lock, just before the live database is replaced.

    Stop whatever reads or writes the database file behind SQLite's back (a replication process
    such as Litestream); ``restore_resume`` follows, whatever the outcome.

    :param mc: the running MissionControl.
    :param actor: who asked for the restore (a ``mission_control.Actor``).
    :return: ignored.
    :raises: anything, to refuse the restore: it fails (500) and nothing is replaced.
    """


@hookspec
def restore_resume(mc: PluginContext, actor: Actor) -> None:
    """Called after every ``restore_pause`` (even one that raised), still under the backup lock,
    once the swap succeeded or failed.

    :param mc: the running MissionControl.
    :param actor: who asked for the restore.
    :return: ignored.
    :raises: anything; the host logs it and audits ``plugin_error``; the restore's result stands.
    """


@hookspec(firstresult=True)
def pitr_status(mc: PluginContext, fresh: bool) -> dict[str, Any] | None:
    """The state of continuous protection (point-in-time recovery), for ``GET /api/backup/pitr``,
    health and metrics (``fresh`` false), and a restore to a moment (``fresh`` true).

    :param mc: the running MissionControl.
    :param fresh: false: answer from state kept in the background, without starting a process
        or waiting on the replica (health is scraped often, by several monitors at once); true:
        ask the engine now (a restore must see the window as it is).
    :return: a dict with ``enabled``, ``installed``, ``running``, ``pid``, ``replica``,
        ``earliest`` and ``latest`` (unix ms or None: the restorable window), ``lag_seconds``,
        ``checked_at`` (unix ms of the state's last check, or None), ``last_error``, and
        optionally ``sealed``, ``staging_bytes``, ``seal_error`` (why a sealed stream cannot
        run: health fails with it), ``sealing`` (what its uploads left in the bucket) and
        ``seal_warning`` (health warns with it); or None to defer (no engine: the host answers "not
        installed").
    :raises: anything; the request fails with a 500.
    """


@hookspec(firstresult=True)
def pitr_restore_to(mc: PluginContext, at_ms: int, dest: Path) -> bool | int | dict | None:
    """Write the database as it was at ``at_ms`` (unix ms) to the new file ``dest``.

    The host then restores ``dest`` through the same path as every restore (verification,
    safety backup, swap, audit) and deletes it.

    :param mc: the running MissionControl.
    :param at_ms: the moment wanted, inside the window ``pitr_status`` reported.
    :param dest: ``pathlib.Path`` of a file that does not exist yet, in the backups folder.
    :return: True when written, or the unix ms (int) of the moment the copy actually holds
        when it differs (at or before ``at_ms``), or ``{"restored_to": ms, "skipped": [{"key",
        "reason"}, ...]}`` naming also the files of the stream it went around or left out
        (a reason beginning ``first stored``: uploaded too long after the moment to be trusted
        for it); they reach the answer's ``restored.skipped`` and the audit event. None to defer
        to another implementation.
    :raises mission_control.MissionControlError: e.g. a 400 when ``at_ms`` is outside the window.
    """
