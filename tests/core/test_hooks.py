"""The hook points and the plugin manager: isolation of failures, ordering, blocking, validation."""
import shutil
import threading

import pluggy
import pytest

from mission_control import hookimpl, hookspecs
from mission_control.plugin_manager import DEFAULT_PLUGINS
from mission_control.plugin_manager import get_plugin_manager


class Recorder:
    def __init__(self):
        self.backups, self.events = [], []

    @hookimpl
    def post_backup(self, mc, backup, actor):
        self.backups.append((backup.name, str(actor), backup.path.exists()))

    @hookimpl
    def audit(self, event):
        self.events.append(event["action"])


class Broken:
    @hookimpl(tryfirst=True)
    def post_backup(self):
        raise RuntimeError("off-site target unreachable")

    @hookimpl(tryfirst=True)
    def audit(self):
        raise OSError("sink is down")


def test_post_backup_sees_the_finished_file(make_mc):
    recorder = Recorder()
    mc = make_mc(plugins=[recorder])
    made = mc.backups.create("alice")
    assert recorder.backups == [(made.name, "alice", True)]


def test_a_failing_post_backup_never_fails_the_backup_nor_silences_others(make_mc):
    recorder = Recorder()
    mc = make_mc(plugins=[recorder, Broken()])
    made = mc.backups.create("alice")
    assert made.path.exists()
    assert recorder.backups == [(made.name, "alice", True)]
    errors = [e for e in mc.audit_store.query(action="plugin_error")[0]
              if e["detail"]["hook"] == "post_backup"]
    assert len(errors) == 1 and "unreachable" in errors[0]["detail"]["error"]


def test_a_failing_audit_sink_does_not_stop_the_audit_log(make_mc):
    recorder = Recorder()
    mc = make_mc(plugins=[recorder, Broken()])
    mc.backups.create("alice")
    actions = [e["action"] for e in mc.audit_store.query()[0]]
    assert "backup_create" in actions
    # The other sinks hear that one sink failed, and about which event.
    notices = mc.audit_store.query(action="plugin_error")[0]
    assert any(n["detail"] == {"hook": "audit", "plugin": n["target_id"],
                               "error": "OSError: sink is down", "event": "backup_create"}
               for n in notices)
    assert "plugin_error" in recorder.events


def test_a_plugin_can_replace_the_retention_policy(make_mc, clock):
    class KeepAll:
        @hookimpl
        def prune(self, backups, keep_names):
            assert len(keep_names) == 1 and keep_names <= {b.name for b in backups}
            return []

    mc = make_mc(plugins=[KeepAll()])
    mc.settings.update({"general.backup_retention_count": "1"}, actor="t")
    for _ in range(3):
        mc.backups.create("t")
        clock.advance(1)
    assert len(mc.backups.list()) == 3


def test_a_plugin_returning_none_defers_to_the_builtin_policy(make_mc, clock):
    seen = []

    class Observer:
        @hookimpl
        def prune(self, backups):
            seen.append(len(backups))
            return None

    mc = make_mc(plugins=[Observer()])
    mc.settings.update({"general.backup_retention_count": "1"}, actor="t")
    for _ in range(3):
        mc.backups.create("t")
        clock.advance(1)
    assert seen == [1, 2, 2] and len(mc.backups.list()) == 1


def test_prune_cannot_delete_what_the_host_protects(make_mc, clock):
    class Greedy:
        @hookimpl
        def prune(self, mc, backups):
            return [b.name for b in backups] + ["keep-forever.db", "../mission-control.db"]

    mc = make_mc(plugins=[Greedy()])
    (mc.backups.dir / "keep-forever.db").write_bytes(b"x")
    made = mc.backups.create("t")
    assert {b.name for b in mc.backups.list()} == {made.name, "keep-forever.db"}
    assert mc.config.db_path.exists()


def test_a_failing_prune_keeps_everything(make_mc, clock):
    class Crashing:
        @hookimpl(tryfirst=True)
        def prune(self):
            raise ValueError("policy bug")

    mc = make_mc(plugins=[Crashing()])
    mc.settings.update({"general.backup_retention_count": "1"}, actor="t")
    mc.backups.create("t")
    clock.advance(1)
    mc.backups.create("t")
    assert len(mc.backups.list()) == 2
    assert mc.audit_store.query(action="plugin_error")[0][0]["detail"]["hook"] == "prune"


def test_pre_backup_crash_fails_the_backup_cleanly(make_mc):
    from mission_control.errors import BackupFailed

    class Crashing:
        @hookimpl
        def pre_backup(self):
            raise KeyError("bug")

    mc = make_mc(plugins=[Crashing()])
    with pytest.raises(BackupFailed):
        mc.backups.create("t")
    assert mc.backups.list() == []
    assert mc.audit_store.query(action="backup_failed")[1] == 1


class Finished:
    """Records each `backup_finished` call, with what the trail and post_backup had seen by then."""

    def __init__(self):
        self.calls, self.post = [], []

    @hookimpl
    def post_backup(self, backup):
        self.post.append(backup.name)

    @hookimpl
    def backup_finished(self, mc, actor, backup, error):
        newest = mc.audit_store.query(limit=1)[0][0]["action"]
        self.calls.append((actor, backup.name if backup else None, type(error).__name__,
                           newest, list(self.post)))


def test_backup_finished_comes_last_after_a_success(make_mc):
    from mission_control import Actor

    finished = Finished()
    mc = make_mc(plugins=[finished])
    made = mc.backups.create(Actor("alice", 7))
    assert finished.calls == [(Actor("alice", 7), made.name, "NoneType", "backup_create",
                               [made.name])]


def test_backup_finished_after_a_refusal_and_a_failure(make_mc):
    from mission_control import BackupRefused
    from mission_control.errors import BackupFailed

    class Refuses:
        on = True

        @hookimpl
        def pre_backup(self):
            if self.on:
                raise BackupRefused("quiet hours", 503)

    finished, refuses = Finished(), Refuses()
    mc = make_mc(plugins=[finished, refuses])
    with pytest.raises(BackupRefused):
        mc.backups.create("t")
    assert finished.calls[-1][1:4] == (None, "BackupRefused", "backup_refused")

    refuses.on = False
    shutil.rmtree(mc.backups.dir)
    mc.backups.dir.write_bytes(b"a file where the backups folder should be")
    with pytest.raises(BackupFailed):
        mc.backups.create("t")
    assert finished.calls[-1][1:4] == (None, "BackupFailed", "backup_failed")
    assert len(finished.calls) == 2 and finished.post == []


def test_backup_finished_is_not_called_for_a_backup_turned_away(make_mc):
    from mission_control.errors import TooManyRequests

    finished = Finished()
    mc = make_mc(plugins=[finished], backup_rate_limit=1)
    mc.backups.create("alice", rate_key="alice")
    with pytest.raises(TooManyRequests):
        mc.backups.create("alice", rate_key="alice")
    assert len(finished.calls) == 1


def test_a_failing_backup_finished_changes_nothing(make_mc):
    class Crashing:
        @hookimpl(tryfirst=True)
        def backup_finished(self):
            raise RuntimeError("alert bug")

    finished = Finished()
    mc = make_mc(plugins=[finished, Crashing()])
    made = mc.backups.create("t")
    assert made.path.exists() and len(finished.calls) == 1
    [error] = mc.audit_store.query(action="plugin_error")[0]
    assert error["detail"]["hook"] == "backup_finished"


def test_periodic_check_is_called_by_the_running_scheduler_only(make_mc):
    called = threading.Event()

    class Checks:
        @hookimpl
        def periodic_check(self, mc):
            called.set()

    class Crashing:
        @hookimpl(tryfirst=True)
        def periodic_check(self):
            raise RuntimeError("check bug")

    mc = make_mc(plugins=[Checks(), Crashing()])
    mc.backups.create("t")
    assert not called.is_set()  # backups alone (the CLI, scripts) never call it
    mc.scheduler.start()
    assert called.wait(30) and mc.scheduler.is_alive()
    assert mc.audit_store.query(action="plugin_error")[1] == 0  # logged, not audited


def test_disabled_plugins_are_blocked(make_mc, clock):
    mc = make_mc(disabled_plugins=("retention",))
    mc.settings.update({"general.backup_retention_count": "1"}, actor="t")
    for _ in range(3):
        mc.backups.create("t")
        clock.advance(1)
    assert len(mc.backups.list()) == 3
    assert mc.pm.get_plugin("retention") is None and mc.pm.get_plugin("audit_log") is not None


def test_misspelt_hooks_are_caught_at_start():
    class Typo:
        @hookimpl
        def post_bakup(self, backup):
            pass

    with pytest.raises(pluggy.PluginValidationError):
        get_plugin_manager(extra=[Typo()], entry_points=False)


def test_builtins_are_registered_under_short_names():
    pm = get_plugin_manager(entry_points=False)
    names = {pm.get_name(p) for p in pm.get_plugins()}
    assert {d.rsplit(".", 1)[-1] for d in DEFAULT_PLUGINS} <= names


def test_plugin_settings_join_the_registry(make_mc):
    from mission_control import SettingDef

    class Declares:
        @hookimpl
        def register_settings(self):
            return [SettingDef("demo.level", "int", "3", "A demo level", "demo", 1, 5)]

    mc = make_mc(plugins=[Declares()])
    assert mc.settings.get("demo.level") == 3
    mc.settings.update({"demo.level": 5}, actor="t")
    assert mc.settings.get("demo.level") == 5


def test_every_hook_has_a_test():
    """datasette's meta-test: a hook that no test names is a hook nobody checked."""
    import pathlib
    source = "".join(p.read_text() for p in pathlib.Path(__file__).parents[1].rglob("*.py"))
    hooks = [name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "mission_control_spec")]
    assert hooks, "no hookspecs found"
    for name in hooks:
        assert f"def {name}(" in source, f"hook {name} has no test implementing it"


HOOK_NAMES = sorted(name for name in dir(hookspecs)
                    if hasattr(getattr(hookspecs, name), "mission_control_spec"))


def test_every_hookspec_has_one_hooks_method_taking_its_arguments(make_mc):
    import inspect

    from mission_control.hooks import Hooks

    mc = make_mc()
    assert {name for name in vars(mc.pm.hook) if not name.startswith("_")} == set(HOOK_NAMES)
    methods = {name for name, _ in inspect.getmembers(Hooks, inspect.isfunction)
               if not name.startswith("_")}
    assert methods - {"failed"} == set(HOOK_NAMES)
    for name in HOOK_NAMES:
        wanted = set(inspect.signature(getattr(hookspecs, name)).parameters) - {"mc"}
        taken = set(inspect.signature(getattr(Hooks, name)).parameters) - {"self"}
        assert wanted <= taken, f"mc.hooks.{name} does not take {wanted - taken}"


def test_only_mc_hooks_calls_the_plugin_manager():
    """Services call `mc.hooks.<name>(...)`; no second way past its failure policies."""
    import pathlib
    import re

    import mission_control

    package = pathlib.Path(mission_control.__file__).parent
    calls = re.compile(r"\.hook\.|\bmc\.hook\b|get_hookimpls|call_isolated")
    offenders = [f"{path.relative_to(package)}:{number}"
                 for path in package.rglob("*.py") if path.name != "hooks.py"
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if calls.search(line)]
    assert offenders == []


RECORDER = '''
import shutil

from mission_control import hookimpl


def _fired(mc, name):
    with open(mc.config.db_path.parent / "fired.txt", "a") as f:
        f.write(name + "\\n")


@hookimpl
def register_settings(mc):
    _fired(mc, "register_settings")


@hookimpl
def pre_backup(mc):
    _fired(mc, "pre_backup")


@hookimpl
def post_backup(mc):
    _fired(mc, "post_backup")


@hookimpl
def backup_finished(mc):
    _fired(mc, "backup_finished")


@hookimpl
def periodic_check(mc):
    _fired(mc, "periodic_check")


@hookimpl
def offsite_targets(mc):
    _fired(mc, "offsite_targets")


@hookimpl
def prune(mc):
    _fired(mc, "prune")  # and defers to the built-in policy


@hookimpl
def alert_channels(mc):
    _fired(mc, "alert_channels")


@hookimpl
def metrics(mc):
    _fired(mc, "metrics")


@hookimpl
def audit(mc):
    _fired(mc, "audit")


@hookimpl
def check_settings(mc):
    _fired(mc, "check_settings")


@hookimpl
def serve_start(mc):
    _fired(mc, "serve_start")


@hookimpl
def serve_stop(mc):
    _fired(mc, "serve_stop")


@hookimpl
def restore_pause(mc):
    _fired(mc, "restore_pause")


@hookimpl
def restore_resume(mc):
    _fired(mc, "restore_resume")


@hookimpl(tryfirst=True)
def pitr_status(mc):
    _fired(mc, "pitr_status")
    return {"enabled": True, "installed": True, "running": True, "pid": 1, "replica": "x",
            "earliest": 1_000_000, "latest": 2_000_000, "lag_seconds": 0, "last_error": None}


@hookimpl(tryfirst=True)
def pitr_restore_to(mc, dest):
    _fired(mc, "pitr_restore_to")
    shutil.copyfile(mc.backups.list()[0].path, dest)
    return True
'''


def test_every_hook_fires_through_the_services(make_config, tmp_path):
    """datasette's meta-test, made real: a drop-in plugin implementing every hook hears each one
    from the code paths that call it (opening, a backup, health, the scheduler's check, restores,
    `serve`)."""
    import os
    import signal

    from mission_control import metrics
    from mission_control.backup import point_in_time
    from mission_control.core import MissionControl
    from mission_control.health import backup_status
    from mission_control.backup.restore import restore_backup
    from mission_control.server import serve

    dropins = tmp_path / "dropins"
    dropins.mkdir()
    (dropins / "recorder.py").write_text(RECORDER)
    config = make_config(plugins_dir=dropins, port=0, host="127.0.0.1")
    with MissionControl(config, create=True, entry_points=False) as mc:
        made = mc.backups.create("t")
        mc.settings.update({"general.site_name": "recorded"}, "t")
        mc.offsite.configured()
        mc.scheduler.periodic_check()
        restore_backup(mc, made.name, "t")
        point_in_time.restore_at(mc, "1970-01-01T00:20:00Z", "t")
        backup_status(mc)  # asks which alert channels are configured
        metrics.render(mc)  # a scrape asks the plugins for their gauges

    def stop_once_serving(line):
        # The banner comes after serve's own signal handlers are in place, and a stop noted
        # during start-up ends the service right after `serve_start`.
        if line.startswith("Mission Control backup service on"):
            os.kill(os.getpid(), signal.SIGTERM)

    assert serve(config, announce=stop_once_serving) == 0
    fired = set((config.db_path.parent / "fired.txt").read_text().split())
    assert sorted(fired) == HOOK_NAMES


class Faulty:
    """Fails in every hook whose failure the host isolates and audits."""

    @hookimpl(tryfirst=True)
    def post_backup(self):
        raise RuntimeError("boom")

    @hookimpl(tryfirst=True)
    def backup_finished(self):
        raise RuntimeError("boom")

    @hookimpl(tryfirst=True)
    def prune(self):
        raise RuntimeError("boom")

    @hookimpl(tryfirst=True)
    def restore_resume(self):
        raise RuntimeError("boom")

    @hookimpl(tryfirst=True)
    def audit(self, event):
        if event["action"] == "backup_create":
            raise RuntimeError("boom")


def test_a_plugin_failure_is_reported_in_one_shape_in_every_hook(make_mc, caplog):
    from mission_control.errors import MissionControlError
    from mission_control.backup.restore import restore_backup

    faulty = Faulty()
    mc = make_mc(plugins=[faulty])
    name = mc.pm.get_name(faulty)
    made = mc.backups.create("t")
    with pytest.raises(MissionControlError):
        mc.pruning.run("t")
    restore_backup(mc, made.name, "t")
    events = mc.audit_store.query(action="plugin_error")[0]
    shapes = {}
    for event in events:
        detail = dict(event["detail"])
        assert (event["target_type"], event["target_id"]) == ("plugin", name)
        assert detail.pop("event", "backup_create") == "backup_create"
        shapes.setdefault(detail.pop("hook"), set()).add(tuple(sorted(detail.items())))
    one_shape = {(("error", "RuntimeError: boom"), ("plugin", name))}
    assert shapes == {"post_backup": one_shape, "backup_finished": one_shape, "prune": one_shape,
                      "restore_resume": one_shape, "audit": one_shape}
    logged = {r.getMessage() for r in caplog.records if r.name == "mission_control.hooks"}
    assert {f"plugin {name} failed in {hook}: RuntimeError: boom" for hook in shapes} <= logged


def test_a_crashing_pre_backup_is_logged_under_its_plugins_name(make_mc, caplog):
    from mission_control.errors import BackupFailed

    class Crashing:
        @hookimpl
        def pre_backup(self):
            raise KeyError("bug")

    crashing = Crashing()
    mc = make_mc(plugins=[crashing])
    with pytest.raises(BackupFailed):
        mc.backups.create("t")
    assert f"plugin {mc.pm.get_name(crashing)} failed in pre_backup: KeyError: 'bug'" in \
        caplog.text
    [failed] = mc.audit_store.query(action="backup_failed")[0]
    assert failed["detail"] == {"reason": "pre_backup plugin: KeyError: 'bug'"}


def test_a_prune_answer_that_is_neither_names_nor_a_plan_is_a_policy_failure(make_mc, clock):
    class Garbled:
        @hookimpl(tryfirst=True)
        def prune(self):
            return 42

    mc = make_mc(plugins=[Garbled()])
    mc.settings.update({"general.backup_retention_count": "1"}, actor="t")
    mc.backups.create("t")
    clock.advance(1)
    mc.backups.create("t")
    assert len(mc.backups.list()) == 2
    events = mc.audit_store.query(action="plugin_error")[0]
    assert len(events) == 2 and all(
        e["detail"] == {"hook": "prune", "plugin": "?",
                        "error": "TypeError: 'int' object is not iterable"} for e in events)


def test_check_settings_refuses_a_change_whole_and_a_crash_refuses_too(make_mc):
    """A plugin's check of a change against the world outside: its problems are a 400 with
    `details`, nothing written; a check that crashes refuses the change rather than skip it."""
    from mission_control.errors import ValidationFailed

    seen = []

    class Picky:
        @hookimpl
        def check_settings(self, settings, changed):
            seen.append((settings.get("general.site_name"), list(changed)))
            if settings.get("general.site_name") == "forbidden":
                return ["general.site_name: the outside world says no"]
            return None

    class Crashing:
        @hookimpl
        def check_settings(self, changed):
            if "general.auto_backup" in changed:
                raise RuntimeError("cannot reach it")

    crashing = Crashing()
    mc = make_mc(plugins=[Picky(), crashing])
    mc.settings.update({"general.site_name": "fine"}, actor="t")
    assert seen[-1] == ("fine", ["general.site_name"])
    with pytest.raises(ValidationFailed) as refused:
        mc.settings.update({"general.site_name": "forbidden", "general.auto_backup": "false"},
                           actor="t")
    crashed = (f"{mc.pm.get_name(crashing)}: could not check the change: "
               "RuntimeError: cannot reach it")
    assert sorted(refused.value.details) == sorted(
        ["general.site_name: the outside world says no", crashed])
    assert mc.settings.get("general.site_name") == "fine"  # nothing written
