"""The task timer (auto-backup, off-site restore drill): a thread that runs each cron slot once."""
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timezone

from ..actor import SCHEDULER, as_actor
from ..errors import (BackupFailed, BackupRefused, Conflict, MissionControlError, TooManyRequests,
                     describe_error, safe_text)
from ..offsite.drill import drill_task
from .cron import describe
from .cron import next_run
from .cron import slot_start
from .state import SchedulerState

log = logging.getLogger(__name__)

#: The thread re-checks at least this often (seconds), so a wall clock that jumps is noticed.
MAX_SLEEP = 300.0
MAX_MESSAGE = 500


@dataclass(frozen=True)
class Task:
    """A scheduled task: runs at each slot of the cron setting `schedule` (UTC) while it is on.

    It is on while the bool setting `setting` is true, or, for a task with no such setting,
    while `enabled()` says so. `run(actor, rate_key=None)` does the work and returns
    `(backup_or_None, message)`, or raises. Each run is audited as `audit` (None: the task
    audits its own work).
    """

    id: str
    name: str
    setting: str | None
    schedule: str
    run: object
    enabled: object = None
    audit: str | None = "auto_backup"


@dataclass(frozen=True)
class RunResult:
    ok: bool
    message: str
    backup: object = None  # the new BackupInfo, when there is one
    #: A failed run's HTTP status, as the API would answer the error (507: a plugin refused the
    #: backup, the disk too full; 500: it failed), so the CLI exits as `backup create` does.
    status: int | None = None


@dataclass(frozen=True)
class TaskStatus:
    """What `GET /api/scheduler` shows of a task; times are unix milliseconds."""

    id: str
    name: str
    enabled: bool
    last_run: int | None
    next_run: int
    running: bool
    last_ok: bool | None
    last_message: str | None
    last_finished: int | None
    schedule: str = ""
    description: str = ""
    running_since: int | None = None  # when the oldest run still going in this process started

    def to_json(self):
        """The task as `GET /api/scheduler` (and `scheduler list --json`) show it."""
        last_result = None
        if self.last_ok is not None:
            last_result = {"ok": self.last_ok, "message": self.last_message,
                           "timestamp": self.last_finished or self.last_run}
        return {"id": self.id, "name": self.name, "enabled": self.enabled,
                "lastRun": self.last_run, "nextRun": self.next_run, "running": self.running,
                "lastResult": last_result, "schedule": self.schedule,
                "description": self.description, "runningSince": self.running_since}


def slot_id(slot):
    """The slot's ISO time, as stored in `scheduler_state.last_slot` (sorts as text)."""
    return datetime.fromtimestamp(slot, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def safe_message(text):
    """`text` with anything that looks like a host path replaced, cut to a sane length."""
    return safe_text(text, MAX_MESSAGE)


def _ms(seconds):
    return int(round(seconds * 1000))


class Scheduler:
    """Runs `auto_backup` and `offsite_verify` on their cron schedules. It owns a thread only
    after `start()` (`serve`).

    Tests drive it without the thread: set the fake clock and call `run_due()`, which is what the
    thread calls on every wake.
    """

    def __init__(self, mc):
        self.mc = mc
        self.state = SchedulerState(mc.db)
        self.tasks = {
            "auto_backup": Task("auto_backup", "Auto Backup", "general.auto_backup",
                                "general.auto_backup_schedule", self._backup),
            "offsite_verify": Task("offsite_verify", "Off-site Restore Drill", None,
                                   "offsite.verify_schedule",
                                   lambda actor, rate_key=None: drill_task(mc, actor),
                                   enabled=lambda: bool(mc.offsite.targets()), audit=None),
        }
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = None
        self._running = {}  # task id -> start times (unix seconds) of its runs in this process
        self._lock = threading.Lock()
        mc.settings.on_change(lambda keys: self.wake())

    # -- the work ------------------------------------------------------------------------------
    def _backup(self, actor, rate_key=None):
        made = self.mc.backups.create(actor, rate_key=rate_key)
        # The original Mission Control's words, which its clients may match (CONTRACT.md).
        return made, f"Backup created ({int(made.size / 1024 + 0.5)}KB)"

    def _on(self, task):
        return bool(task.enabled()) if task.setting is None else \
            bool(self.mc.settings.get(task.setting))

    def _due(self, task, now):
        """The latest slot is due when the task is on, and it and its schedule were already
        set as they are at that slot."""
        if not self._on(task):
            return None
        slot = slot_start(now, self.mc.settings.get(task.schedule))
        changes = [self.mc.settings.changed_at(key) for key in (task.setting, task.schedule)
                   if key is not None]
        if any(since is not None and since > slot for since in changes):
            return None  # switched on (or rescheduled) after the slot: the first run is the next
        row = self.state.get(task.id)
        if row and row["last_slot"] and row["last_slot"] >= slot_id(slot):
            return None
        return slot

    def run_due(self):
        """Run every task whose slot has come and that no process has claimed yet.

        Also the catch-up after a restart: only the latest slot is ever considered, so however
        many slots passed while the service was down, the first call runs one of them, once.

        :return: the `RunResult` of each task this call ran (usually none).
        """
        now = self.mc.clock()
        results = []
        for task in self.tasks.values():
            slot = self._due(task, now)
            if slot is not None and self.state.claim_slot(task.id, slot_id(slot), now):
                log.info("running %s for the slot of %s", task.id, slot_id(slot))
                results.append(self._run(task, SCHEDULER, trigger="schedule",
                                         slot=slot_id(slot)))
        return results

    def run_now(self, task_id, actor, *, rate_key=None):
        """Run a task at once, for an admin; it does not use up the current slot.

        :raises KeyError: unknown task.
        :raises TooManyRequests: over the admin's backup budget (nothing is recorded).
        :raises Conflict: another backup held the lock too long (nothing is recorded).
        :return: a `RunResult`; a failed run is recorded and returned with `ok` False.
        """
        return self._run(self.tasks[task_id], as_actor(actor), trigger="manual",
                         rate_key=rate_key)

    def _run(self, task, actor, *, trigger, slot=None, rate_key=None):
        passthrough = (TooManyRequests, Conflict) if trigger == "manual" else ()
        started = self.mc.clock()
        with self._lock:
            self._running.setdefault(task.id, []).append(started)
        try:
            status = None
            try:
                backup, message = task.run(actor, rate_key=rate_key)
                ok = True
            except passthrough:
                raise
            except Exception as exc:  # noqa: BLE001 - a failed run is a result, never a crash
                backup, ok, message = None, False, self._failure(exc)
                status = exc.status if isinstance(exc, MissionControlError) else 500
            self.state.record(task.id, _ms(started), _ms(self.mc.clock()), ok, message)
        finally:
            with self._lock:
                self._running[task.id].remove(started)
        (log.info if ok else log.warning)("%s (%s, %s): %s", task.id, trigger, actor, message)
        if task.audit:
            self.mc.audit.emit(task.audit, actor, target_type="scheduler", target_id=task.id,
                               detail={"ok": ok, "message": message, "trigger": trigger,
                                       "slot": slot, "backup": backup.name if backup else None})
        return RunResult(ok, message, backup, status)

    def _failure(self, exc):
        if isinstance(exc, BackupFailed):
            text = f"Backup failed: {exc.reason}"
        elif isinstance(exc, BackupRefused):
            text = f"Backup refused: {exc.reason}"
        elif isinstance(exc, MissionControlError):
            text = exc.message
        else:
            log.exception("scheduled task failed")
            text = f"Backup failed: {describe_error(exc)}"
        return safe_message(text)

    def periodic_check(self):
        """Call the `periodic_check` hook, each plugin isolated (the thread, after every check)."""
        self.mc.hooks.periodic_check()

    # -- what the API shows --------------------------------------------------------------------
    def status(self):
        """A `TaskStatus` per task; `next_run` is the next slot whether enabled or not."""
        now = self.mc.clock()
        out = []
        for task in self.tasks.values():
            schedule = self.mc.settings.get(task.schedule)
            row = self.state.get(task.id) or {}
            last_ok = row.get("last_ok")
            with self._lock:
                starts = list(self._running.get(task.id, ()))
            out.append(TaskStatus(
                task.id, task.name, self._on(task), row.get("last_run"),
                _ms(next_run(now, schedule)), bool(starts),
                None if last_ok is None else bool(last_ok), row.get("last_message"),
                row.get("last_finished"), schedule, describe(schedule),
                _ms(min(starts)) if starts else None))
        return out

    # -- the thread ----------------------------------------------------------------------------
    def start(self):
        """Start the timer thread (idempotent). Its first check runs a missed slot."""
        if self.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="mc-scheduler", daemon=True)
        self._thread.start()

    def wake(self):
        """Make the thread look again now (a setting changed)."""
        self._wake.set()

    def stop(self, timeout=60.0):
        """Stop the thread; a backup it is making finishes first. Returns True once it has ended."""
        self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.is_alive()

    def is_alive(self):
        return self._thread is not None and self._thread.is_alive()

    def _loop(self):
        while not self._stopping.is_set():
            self._wake.clear()  # before checking, so a change made during the check wakes us again
            try:
                self.run_due()
            except Exception:  # noqa: BLE001 - e.g. the database busy; the next wake retries
                log.exception("scheduler check failed; retrying later")
            self.periodic_check()
            if self._stopping.is_set():
                break
            self._wake.wait(self._sleep_time())

    def _sleep_time(self):
        """Seconds until the first task's next slot, at most `MAX_SLEEP`."""
        now = self.mc.clock()
        try:
            soonest = min(next_run(now, self.mc.settings.get(t.schedule))
                          for t in self.tasks.values())
        except Exception:  # noqa: BLE001 - the database busy, say: look again soon
            log.exception("cannot compute the next slot")
            return MAX_SLEEP
        return min(MAX_SLEEP, max(0.01, soonest - now))
