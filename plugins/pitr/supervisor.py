"""Runs one `litestream replicate` per database across every `serve` process sharing it.

Each `serve` process runs a supervisor thread. The one that holds the election lock (a `flock`,
released by the kernel when its process dies) owns the child; the others wait for the lock. The
owner restarts a child that dies, with a growing pause (audited `pitr_restarted`), restarts it
when its settings change, and stops it on shutdown. A restore, in any process, takes the pause
lock, marks the child as stopped on purpose (`litestream.mark_planned_stop`: its pid and start
time) and stops it; the owner starts a new one once the pause lock is free again. The mark is
cleared when the stop fails, by `resume` for a marked child still running, and by the owner once
it has seen the planned stop (and before it starts a child), so it never hides a real crash. A planned stop (restore, new settings,
shutdown) is no error and no restart event, and resets the back-off.

While it owns the child, a second thread checks the replica in the background
(`replica_check`) and keeps the result in the state file, which every process reads. For a
sealed stream, a `sealer` (two threads) seals and uploads what the child writes to the staging
folder, from just before the child starts until just after it stopped (its last files are sealed
too, within what is left of `stop`'s timeout). A sealer that dies stops the child and fails
health with its reason (`sealer_error` in the state file) until a new one records its state.
"""
import json
import logging
import os
import re
import secrets
import subprocess
import threading
import time

from mission_control import Actor, FileLock, describe_error, open_private

from . import litestream, replica_check

log = logging.getLogger(__name__)
engine_log = logging.getLogger("litestream")

SYSTEM = Actor("pitr")
FIRST_BACKOFF, MAX_BACKOFF = 1.0, 60.0
STABLE_AFTER = 60.0  # a child that ran this long resets the backoff
POLL = 0.2
STOP_WAIT = 15.0
STOP_TIMEOUT = 30.0
#: Kept of `stop`'s timeout for joining the threads once the sealer's final sweep is done.
STOP_MARGIN = 2.0
#: The sealer's final sweep when the child is restarted (new settings, a death), not stopped.
RESTART_SEAL_WAIT = 20.0
_LEVEL = re.compile(r"\blevel=(\w+)")
_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING,
           "ERROR": logging.ERROR}


def read_state(files):
    """The owner's state file: `{"pid", "started_at", "last_error"}` (empty when none)."""
    try:
        return json.loads(files.state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def write_state(files, **changes):
    state = {**read_state(files), **changes}
    tmp = files.state.with_name(f"{files.state.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    with open_private(tmp, exclusive=False) as f:
        f.write(json.dumps(state).encode())
    os.replace(tmp, files.state)


class Supervisor:
    """The supervisor thread of one `serve` process, and its replica-check thread.

    :param mc: the running MissionControl (settings, audit, clock).
    :param engine: the plugin's `Engine` (binary, files, config, environment).
    """

    def __init__(self, mc, engine):
        self.mc = mc
        self.engine = engine
        self._stopping = threading.Event()
        self._restart = threading.Event()
        self._thread = None
        self._checker = None
        self._owning = threading.Event()  # set while this process runs the child
        self._check_soon = threading.Event()
        self._state_lock = threading.Lock()  # the log reader writes the state file too
        self._deadline = None  # monotonic time by which `stop` must be done
        self._lingering = None  # a sealer whose `stop` timed out (its threads may still run)
        self._child = None  # `litestream.process_identity` of the child it started last

    def _state(self, **changes):
        with self._state_lock:
            write_state(self.engine.files, **changes)

    def start(self):
        self._thread = threading.Thread(target=self._run, name="pitr-supervisor", daemon=True)
        self._thread.start()
        self._checker = threading.Thread(target=self._check_loop, name="pitr-check",
                                         daemon=True)
        self._checker.start()

    def stop(self, timeout=STOP_TIMEOUT):
        """Stop the child (if ours), let the sealer seal its last files with what is left of
        `timeout`, and stop the threads; True when all are gone in time."""
        deadline = time.monotonic() + timeout
        self._deadline = deadline
        self._stopping.set()
        self._check_soon.set()
        for thread in (self._thread, self._checker):
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t is not None and t.is_alive() for t in (self._thread, self._checker))

    def _check_loop(self):
        """While this process owns the child: check the replica every `replica_check.interval`,
        and at once after each start of the child."""
        while not self._stopping.is_set():
            wait = replica_check.interval(self.mc.settings.get("pitr.max_lag_seconds"))
            self._check_soon.wait(wait)
            self._check_soon.clear()
            if self._owning.is_set() and not self._stopping.is_set():
                try:
                    self.check_replica()
                except Exception:  # noqa: BLE001 - the next check may work; never die silently
                    log.exception("checking the point-in-time replica failed")

    def check_replica(self):
        """Check the replica once (`replica_check.check`) and keep the result in the state file."""
        engine = self.engine
        binary, replica = engine.binary(), engine.replica_url()
        if not (binary and replica):
            return
        engine.write_config()
        state = read_state(engine.files)
        now = self.mc.clock()
        since = state["started_at"] / 1000 if state.get("started_at") else now
        found = replica_check.check(binary, engine.files, engine.environ, replica,
                                    state.get("check"), now, since,
                                    engine.window if engine.sealed() else None)
        self._state(check=found)

    def settings_changed(self, keys):
        """`mc.settings.on_change` listener: restart the child with a new config if it differs."""
        if any(self.engine.restarts_on(k) for k in keys):
            self._restart.set()

    def _run(self):
        election = FileLock(self.engine.files.election)
        while not self._stopping.is_set():
            if not self.engine.wanted():
                with election.hold(0) as elected:
                    if elected:  # no sealer nor child runs anywhere: nothing reads the folder
                        self._drop_staging()
                self._stopping.wait(1.0)
                continue
            with election.hold(0) as elected:
                if elected:
                    log.info("this process runs Litestream for %s", self.engine.files.db_path.name)
                    self._owning.set()
                    try:
                        self._own()
                    finally:
                        self._owning.clear()
            if not elected:
                self._stopping.wait(1.0)

    def _own(self):
        """While elected and wanted: keep one child running."""
        pause = FileLock(self.engine.files.pause)
        backoff = FIRST_BACKOFF
        while not self._stopping.is_set() and self.engine.wanted():
            self._restart.clear()
            sealer = proc = None
            with pause.hold(0) as free:
                if free:
                    # No restore runs: a mark left now is of no child of ours (its owner died).
                    litestream.clear_planned_stop(self.engine.files)
                    if not self.engine.sealed():
                        self._drop_staging()  # elected, and the last sealer stopped
                    sealer = self._start_sealer()
                    ready = sealer is not None or not self.engine.sealed()
                    proc = self._spawn() if ready else None
            try:
                if proc is None:
                    # A restore holds the pause lock, or the sealer or the child failed to start.
                    self._stopping.wait(POLL if not free else backoff)
                    backoff = backoff if not free else min(MAX_BACKOFF, backoff * 2)
                    continue
                backoff = self._watch(proc, pause, backoff, sealer)
            finally:
                if sealer is not None and not sealer.stop(self._seal_budget()):
                    self._lingering = sealer

    def _drop_staging(self):
        """Drop the staging folder (`Engine.drop_staging`) when wanted; called holding the
        election lock, and never while a sealer of ours that did not stop in time still runs."""
        if self._lingering is not None and not self._lingering.ended():
            return
        self._lingering = None
        self.engine.drop_staging()

    def _seal_budget(self):
        """How long the sealer's final sweep may take: what is left of `stop`'s timeout."""
        if self._deadline is None:
            return RESTART_SEAL_WAIT
        return max(0.0, self._deadline - time.monotonic() - STOP_MARGIN)

    def _start_sealer(self):
        """For a sealed stream, a running `Sealer` (its record goes to the state file); None
        when the stream is not sealed or the sealer could not be made."""
        if not self.engine.sealed():
            return None
        try:
            sealer = self.engine.sealer(
                lambda found: self._state(sealed_stream=found, sealer_error=None))
        except Exception as exc:  # noqa: BLE001 - the storage's settings; the next round may work
            reason = f"cannot open the sealed replica: {describe_error(exc)}"
            log.error("%s", reason)
            self._state(last_error=reason)
            return None
        sealer.start()
        return sealer

    def _watch(self, proc, pause, backoff, sealer=None):
        """Wait until the child ends, or stop it (shutdown, new settings, a dead sealer); the
        next backoff."""
        started = time.monotonic()
        while proc.poll() is None and not self._stopping.is_set() and \
                not self._restart.is_set() and (sealer is None or sealer.alive()):
            self._stopping.wait(POLL)
        if proc.poll() is None:  # shutdown, or new settings: a clean stop, not a failure
            litestream.stop_process(proc.pid, self.engine.files, STOP_WAIT, time.sleep)
            proc.wait()
            self._state(pid=None)
            if sealer is not None and not sealer.alive() and not self._stopping.is_set():
                return self._sealer_died(sealer, backoff)
            return FIRST_BACKOFF
        self._state(pid=None)
        # A restore marks the child it stops before stopping it: its lock may be free again
        # already (a small database restores within one poll), so the lock alone cannot say.
        # The mark names the process (pid and start time): never a later one given the pid.
        marked = litestream.planned_stop(self.engine.files)
        planned = marked is not None and marked == self._child
        with pause.hold(0) as free:
            if free and planned:
                litestream.clear_planned_stop(self.engine.files, marked)  # used: said once
        if planned or not free:
            log.info("Litestream stopped for a restore; it starts again once the restore is "
                     "done")
            return FIRST_BACKOFF  # a planned stop: no error, no restart event
        if time.monotonic() - started >= STABLE_AFTER:
            backoff = FIRST_BACKOFF
        self._died(proc.returncode, backoff)
        self._stopping.wait(backoff)
        return min(MAX_BACKOFF, backoff * 2)

    def _spawn(self):
        files = self.engine.files
        try:
            self.engine.write_config()
            proc = subprocess.Popen(
                litestream.replicate_command(self.engine.binary(), files),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                env=litestream.child_environment(self.engine.environ), text=True,
                preexec_fn=litestream.die_with_parent(), umask=litestream.PRIVATE_UMASK)
        except OSError as exc:
            self._state(pid=None, last_error=f"cannot start Litestream: {exc.strerror}")
            log.error("cannot start Litestream: %s", exc.strerror)
            return None
        self._child = litestream.process_identity(proc.pid)  # read before it can be reaped
        self._state(pid=proc.pid, started_at=int(self.mc.clock() * 1000))
        self._check_soon.set()
        threading.Thread(target=self._read_log, args=(proc,), name="litestream-log",
                         daemon=True).start()
        return proc

    def _read_log(self, proc):
        """Copy the child's log lines into ours, at their level; remember the last error."""
        for line in proc.stdout:
            line = line.rstrip()
            found = _LEVEL.search(line)
            level = _LEVELS.get(found.group(1).upper(), logging.INFO) if found else logging.INFO
            engine_log.log(level, "%s", re.sub(r"^time=\S+\s*", "", line))
            if level >= logging.ERROR:
                self._state(last_error=litestream.error_message(line))

    def _sealer_died(self, sealer, backoff):
        """A sealer thread ended: nothing was uploaded since, so health fails with why; a new
        sealer (and child) start after the backoff."""
        reason = sealer.died or "its thread ended"
        log.error("the point-in-time sealer stopped (%s); starting it again in %.0f s", reason,
                  backoff)
        self._state(sealer_error=reason)
        self._stopping.wait(backoff)
        return min(MAX_BACKOFF, backoff * 2)

    def _died(self, returncode, backoff):
        reason = f"Litestream exited with status {returncode}"
        log.error("%s; starting it again in %.0f s", reason, backoff)
        self._state(last_error=reason)
        self.mc.audit.emit("pitr_restarted", SYSTEM, target_type="pitr",
                           target_id=self.engine.files.db_path.name,
                           detail={"returncode": returncode, "backoff_seconds": backoff})
