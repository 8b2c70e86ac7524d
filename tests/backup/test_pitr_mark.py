"""The mark a restore leaves on the Litestream child it stops: it names the process (pid and start
time), it is cleared when the stop fails or the marked child still runs at `resume`, so a real
crash later is never taken for a planned stop. Real processes standing in for the child."""
import subprocess
import sys
import time

import pytest

from mission_control.builtins.pitr import _engine, litestream
from mission_control.builtins.pitr.supervisor import write_state


@pytest.fixture
def child(mc):
    """A running process that `litestream.is_ours` takes for our `litestream replicate`."""
    files = _engine(mc).files
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "replicate",
                             str(files.config)], stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10  # its command line is read once the exec is done
    while not litestream.is_ours(proc.pid, files) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert litestream.is_ours(proc.pid, files)
    yield proc
    proc.kill()
    proc.wait()


def start_time(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        return int(f.read().rsplit(b")", 1)[-1].split()[19])


def test_the_mark_names_the_process_by_pid_and_start_time(mc, child):
    files = _engine(mc).files
    identity = litestream.mark_planned_stop(files, child.pid)
    assert identity == f"{child.pid}:{start_time(child.pid)}"
    assert litestream.planned_stop(files) == identity == litestream.process_identity(child.pid)
    litestream.clear_planned_stop(files, f"{child.pid}:1")  # another process of that pid: kept
    assert litestream.planned_stop(files) == identity
    litestream.clear_planned_stop(files, identity)
    assert litestream.planned_stop(files) is None and files.pause.exists()  # emptied, kept
    child.kill()
    deadline = time.monotonic() + 10
    while litestream.process_identity(child.pid, running=True) and time.monotonic() < deadline:
        time.sleep(0.01)  # dying
    assert litestream.process_identity(child.pid, running=True) is None  # a zombie, not reaped
    assert litestream.process_identity(child.pid) == identity
    child.wait()
    assert litestream.mark_planned_stop(files, child.pid) is None  # gone: nothing to mark
    assert litestream.planned_stop(files) is None


def test_a_failed_stop_leaves_no_mark(mc, child, monkeypatch):
    engine = _engine(mc)
    write_state(engine.files, pid=child.pid)
    monkeypatch.setattr(litestream, "stop_process", lambda *args: False)  # it would not die
    with pytest.raises(RuntimeError, match="did not stop"):
        engine.pause()
    assert child.poll() is None and litestream.planned_stop(engine.files) is None
    monkeypatch.undo()
    engine.pause()  # the pause lock was given back; this time it stops
    # Gone from stop_process's view once its command line is emptied at exit; reaped a moment later.
    assert child.wait(timeout=10) is not None


def test_resume_clears_the_mark_of_a_child_still_running(mc, child):
    engine = _engine(mc)
    write_state(engine.files, pid=2 ** 22 + 1)  # a child recorded that is gone: nothing stopped
    engine.pause()
    identity = litestream.mark_planned_stop(engine.files, child.pid)
    engine.resume()
    assert identity and litestream.planned_stop(engine.files) is None
    # A child stopped by the restore keeps its mark for its owner to see.
    write_state(engine.files, pid=child.pid)
    engine.pause()
    assert child.wait(timeout=30) is not None
    engine.resume()
    assert litestream.planned_stop(engine.files) == identity
