"""A restore's planned stop of Litestream is no alarm: no error, no `pitr_restarted`, and the
back-off reset; a death is still one. The real Litestream binary, under a real supervisor."""
import logging
import os
import signal

import pytest

from mission_control.backup import restore as restore_module
from mission_control.builtins.pitr import _engine, litestream
from mission_control.builtins.pitr.supervisor import Supervisor, read_state

from tests.support.backup_files import add_tasks
from tests.support.pitr_live import BINARY, wait_for

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(BINARY is None, reason="the Litestream binary is not installed")]


def running(engine, other_than=None):
    """The pid of our running child once it is not `other_than`, else None."""
    pid = read_state(engine.files).get("pid")
    return pid if pid and pid != other_than and litestream.is_ours(pid, engine.files) else None


def restarts(mc):
    """The back-off of each `pitr_restarted`, oldest first."""
    return [e["detail"]["backoff_seconds"]
            for e in reversed(mc.audit_store.query(action="pitr_restarted")[0])]


def test_a_restore_is_no_alarm_and_resets_the_backoff(make_mc, tmp_path, caplog):
    mc = make_mc()
    add_tasks(mc, "old")
    name = mc.backups.create("test").name
    mc.settings.update({"pitr.enabled": True,
                        "pitr.replica_url": f"file://{tmp_path / 'replica'}"}, "test")
    engine = _engine(mc)
    supervisor = Supervisor(mc, engine)
    supervisor.start()
    caplog.set_level(logging.INFO)
    try:
        first = wait_for(lambda: running(engine), timeout=20)
        assert first, caplog.text
        restore_module.restore_backup(mc, name, "carol")
        second = wait_for(lambda: running(engine, first), timeout=20)
        assert second, caplog.text
        assert restarts(mc) == []
        assert read_state(engine.files).get("last_error") is None
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
        # Deaths: each an alarm, the back-off growing.
        os.kill(second, signal.SIGKILL)
        third = wait_for(lambda: running(engine, second), timeout=20)
        os.kill(third, signal.SIGKILL)
        fourth = wait_for(lambda: running(engine, third), timeout=20)
        assert fourth and restarts(mc) == [1.0, 2.0]
        # A planned stop again: no alarm, and the next death waits the first back-off only.
        restore_module.restore_backup(mc, name, "carol")
        fifth = wait_for(lambda: running(engine, fourth), timeout=20)
        assert fifth and restarts(mc) == [1.0, 2.0]
        os.kill(fifth, signal.SIGKILL)
        assert wait_for(lambda: running(engine, fifth), timeout=20)
        assert restarts(mc) == [1.0, 2.0, 1.0]
    finally:
        assert supervisor.stop()


def test_a_child_that_did_not_stop_keeps_its_alarm(make_mc, tmp_path, caplog, monkeypatch):
    mc = make_mc()
    name = mc.backups.create("test").name
    mc.settings.update({"pitr.enabled": True,
                        "pitr.replica_url": f"file://{tmp_path / 'replica'}"}, "test")
    engine = _engine(mc)
    supervisor = Supervisor(mc, engine)
    supervisor.start()
    caplog.set_level(logging.INFO)
    try:
        first = wait_for(lambda: running(engine), timeout=20)
        assert first, caplog.text
        with monkeypatch.context() as patched:  # the child does not die when told to
            patched.setattr(litestream, "stop_process", lambda *args: False)
            with pytest.raises(Exception):
                restore_module.restore_backup(mc, name, "carol")
        assert running(engine) == first and litestream.planned_stop(engine.files) is None
        os.kill(first, signal.SIGKILL)  # later, a real crash of that same child
        assert wait_for(lambda: running(engine, first), timeout=20), caplog.text
        assert restarts(mc) == [1.0]
        assert "exited with status" in (read_state(engine.files).get("last_error") or "")
        assert "stopped for a restore" not in caplog.text
    finally:
        assert supervisor.stop()
