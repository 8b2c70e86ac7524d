"""`Hooks`: the one way the host calls plugins, one typed method per hookspec, each with its
failure policy.

pluggy stops at the first exception, so notification hooks are called here one implementation
at a time and a failure is reported, never raised. Every plugin failure is reported in one shape:
the log line ``plugin <name> failed in <hook>: <reason>`` (with the traceback) and, where the
hook's contract says it is audited, a ``plugin_error`` event with target ``plugin``/<name> and the
detail ``{"hook", "plugin", "error"}``, the error as `errors.describe_error` words it.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from .actor import Actor
from .errors import BackupFailed, BackupRefused, describe_error

if TYPE_CHECKING:  # annotations only: the host's types sit above this module
    from .backup.names import BackupInfo
    from .settings import SettingDef, Settings, SettingsView

log = logging.getLogger(__name__)

#: The plugin named in a report when the failing implementation cannot be told apart.
UNKNOWN_PLUGIN = "?"


def failure_detail(hook: str, plugin: str, exc: BaseException) -> dict[str, str]:
    """The ``plugin_error`` audit detail of `plugin` failing in `hook` (one shape everywhere)."""
    return {"hook": hook, "plugin": plugin, "error": describe_error(exc)}


def _log_failure(hook, plugin, exc):
    log.error("plugin %s failed in %s: %s", plugin, hook, describe_error(exc), exc_info=exc)


def _culprit(caller, exc):
    """The name of the plugin whose implementation of `caller`'s hook raised `exc`: the deepest
    frame of the traceback that runs one of them (pluggy's own call does not say)."""
    codes = {}
    for impl in caller.get_hookimpls():
        code = getattr(getattr(impl.function, "__func__", impl.function), "__code__", None)
        if code is not None:
            codes[code] = impl.plugin_name
    name, tb = UNKNOWN_PLUGIN, exc.__traceback__
    while tb is not None:
        name = codes.get(tb.tb_frame.f_code, name)
        tb = tb.tb_next
    return name


class Hooks:
    """Calls the hooks of one service; ``mc.hooks``. Services call ``mc.hooks.post_backup(...)``,
    never the plugin manager.

    :param relay: the plugin manager's hook relay (``pm.hook``), and nothing else of it.
    :param mc: the `MissionControl` handed to every hook; failures are audited through its
        ``audit`` (which is there before any hook that audits a failure is called).
    """

    def __init__(self, relay, mc):
        self._relay = relay
        self._mc = mc

    # -- opening -------------------------------------------------------------------------------
    def register_settings(self) -> list[SettingDef]:
        """Every setting the plugins declare, flattened.

        :raises Exception: whatever a plugin raised; opening the service fails.
        """
        return [d for found in self._relay.register_settings(mc=self._mc) for d in found or ()]

    def check_settings(self, settings: SettingsView, changed: list[str]) -> list[str]:
        """Every plugin's problems with a settings change, flattened. A plugin that raises is
        logged and answers a problem naming it: the change is refused, not let through."""
        problems = []

        def crashed(hook, plugin, exc):
            _log_failure(hook, plugin, exc)
            problems.append(f"{plugin}: could not check the change: {describe_error(exc)}")

        for found in self._each("check_settings", crashed, settings=settings,
                                changed=list(changed)):
            problems.extend(str(p) for p in found or ())
        return problems

    # -- backups -------------------------------------------------------------------------------
    def pre_backup(self, actor: Actor, db_path: Path, kind: str) -> None:
        """Ask whether a file of `kind` may be written now. Audits nothing: each caller audits
        its refusal under its own action.

        :raises BackupRefused: a plugin refused (re-raised as it is).
        :raises BackupFailed: a plugin crashed (500); logged with its traceback.
        """
        caller = self._relay.pre_backup
        try:
            caller(mc=self._mc, actor=actor, db_path=db_path, kind=kind)
        except BackupRefused:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken plugin fails the write, cleanly
            _log_failure("pre_backup", _culprit(caller, exc), exc)
            raise BackupFailed(describe_error(exc)) from exc

    def post_backup(self, backup: BackupInfo, actor: Actor) -> None:
        """Tell every plugin `backup` is made; failures are logged and audited, never raised."""
        self._each("post_backup", self._audited(actor), backup=backup, actor=actor)

    def backup_finished(self, actor: Actor, backup: BackupInfo | None,
                        error: BaseException | None) -> None:
        """The end of every backup made, failed or refused; failures logged and audited."""
        self._each("backup_finished", self._audited(actor), actor=actor, backup=backup,
                   error=error)

    def prune(self, backups: list[BackupInfo], keep_names: frozenset[str],
              settings: Settings | SettingsView, actor: Actor) -> Iterable[str] | Any | None:
        """The first policy's answer (``firstresult``), or None when none answered.

        :param actor: whom a failure is audited for (the hook itself is not told).
        :raises Exception: whatever the policy raised, after it was logged and audited: the
            caller decides whether that fails its request.
        """
        caller = self._relay.prune
        try:
            return caller(mc=self._mc, backups=backups, keep_names=keep_names, settings=settings)
        except Exception as exc:
            self._audited(actor)("prune", _culprit(caller, exc), exc)
            raise

    # -- restores ------------------------------------------------------------------------------
    def restore_pause(self, actor: Actor) -> None:
        """Stop whatever reads the database file behind SQLite's back.

        :raises Exception: whatever a plugin raised: the restore is refused.
        """
        self._relay.restore_pause(mc=self._mc, actor=actor)

    def restore_resume(self, actor: Actor) -> None:
        """After every `restore_pause`; failures logged and audited, never raised."""
        self._each("restore_resume", self._audited(actor), actor=actor)

    def pitr_status(self, fresh: bool) -> dict[str, Any] | None:
        """The point-in-time engine's state (``firstresult``), or None when there is no engine.

        :raises Exception: whatever the engine raised (the request fails).
        """
        return self._relay.pitr_status(mc=self._mc, fresh=fresh)

    def pitr_restore_to(self, at_ms: int, dest: Path) -> bool | int | dict | None:
        """Have the engine write the database as it was at `at_ms` to `dest` (``firstresult``).

        :raises Exception: whatever the engine raised (a `MissionControlError` reaches the client).
        """
        return self._relay.pitr_restore_to(mc=self._mc, at_ms=at_ms, dest=dest)

    # -- the running service -------------------------------------------------------------------
    def serve_start(self, actor: Actor) -> None:
        """The server is about to take requests; failures logged and audited by `actor`."""
        self._each("serve_start", self._audited(actor))

    def serve_stop(self, actor: Actor) -> None:
        """The server is shutting down; failures logged and audited by `actor`."""
        self._each("serve_stop", self._audited(actor))

    def periodic_check(self) -> None:
        """The scheduler's regular call; failures are logged only (they would repeat)."""
        self._each("periodic_check", _log_failure)

    def offsite_targets(self) -> list[Iterable[str | Any] | None]:
        """Each plugin's answer; a plugin that raises is logged and gives no answer."""
        return self._each("offsite_targets", _log_failure)

    def alert_channels(self) -> list[Iterable[Any] | None]:
        """Each plugin's answer; a plugin that raises is logged and gives no answer."""
        return self._each("alert_channels", _log_failure)

    def metrics(self) -> list[Iterable[dict[str, Any]] | None]:
        """Each plugin's gauges; a plugin that raises is logged and gives none."""
        return self._each("metrics", _log_failure)

    # -- the audit trail -----------------------------------------------------------------------
    def audit(self, event: dict[str, Any]) -> None:
        """Hand `event` to every sink. A failing sink is logged, and the sinks that did not fail
        hear of it as a ``plugin_error`` event (the failed one does not, so it cannot loop)."""
        failed = []

        def note(hook, plugin, exc):
            _log_failure(hook, plugin, exc)
            failed.append((plugin, exc))

        self._each("audit", note, event=event)
        for plugin, exc in failed:
            notice = dict(event, action="plugin_error", target_type="plugin", target_id=plugin,
                          detail={**failure_detail("audit", plugin, exc),
                                  "event": event["action"]})
            self._each("audit", self._quiet_sink, skip=plugin, event=notice)

    @staticmethod
    def _quiet_sink(hook, plugin, exc):
        log.error("audit sink %s failed while reporting another sink's failure: %s", plugin,
                  describe_error(exc), exc_info=exc)

    # -- reporting ---------------------------------------------------------------------------
    def failed(self, hook: str, plugin: str, exc: BaseException, actor: Actor) -> None:
        """Report `plugin`'s failure in `hook` the one way: the log line with its traceback, and
        a ``plugin_error`` audit event by `actor`. For the rare failure found after the hook
        returned (a `prune` answer that is neither names nor a plan)."""
        _log_failure(hook, plugin, exc)
        self._mc.audit.emit("plugin_error", actor, target_type="plugin", target_id=plugin,
                            detail=failure_detail(hook, plugin, exc))

    def _audited(self, actor):
        """An `on_error` that reports each failure with `failed`, by `actor`."""
        return lambda hook, plugin, exc: self.failed(hook, plugin, exc, actor)

    # -- machinery -----------------------------------------------------------------------------

    def _each(self, hook: str, on_error: Callable[[str, str, BaseException], None], *,
              skip: str | None = None, **kwargs) -> list[Any]:
        """Call every implementation of `hook` on its own, in pluggy's order (tryfirst first,
        trylast last), so one that raises does not silence the others.

        :param on_error: called as ``on_error(hook, plugin_name, exc)`` for each failure.
        :param skip: a plugin name not to call.
        :return: the answers of the implementations that did not fail, in calling order.
        """
        kwargs["mc"] = self._mc
        answers = []
        for impl in reversed(getattr(self._relay, hook).get_hookimpls()):
            if getattr(impl, "hookwrapper", False) or getattr(impl, "wrapper", False):
                continue
            if impl.plugin_name == skip:
                continue
            try:
                answers.append(impl.function(**{name: kwargs[name] for name in impl.argnames}))
            except Exception as exc:  # noqa: BLE001 - isolating plugins is the point
                on_error(hook, impl.plugin_name, exc)
        return answers
