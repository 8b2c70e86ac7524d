"""The daily auto-backup rules, driven by a fake clock through `run_due()` (no sleeping)."""
import re
import sqlite3

import pytest

from mission_control import Actor, BackupRefused, hookimpl
from mission_control.db import migrate, migrations
from mission_control.scheduling.scheduler import safe_message
from tests.support.scheduling import backups, enable, events, ts


def test_enabled_at_0259_runs_at_0300_once(smc, at):
    at("2026-03-04 02:59:00")
    enable(smc)
    at("2026-03-04 02:59:59")
    assert smc.scheduler.run_due() == [] and backups(smc) == []
    at("2026-03-04 03:00:00")
    [result] = smc.scheduler.run_due()
    assert result.ok and re.fullmatch(r"Backup created \(\d+KB\)", result.message)
    assert backups(smc) == ["mc-backup-2026-03-04_03-00-00.db"]
    at("2026-03-04 03:00:05")
    assert smc.scheduler.run_due() == []
    at("2026-03-04 23:59:59")
    assert smc.scheduler.run_due() == []
    assert len(backups(smc)) == 1
    [event] = events(smc)
    assert event["actor"] == "scheduler"
    assert event["detail"]["ok"] is True and event["detail"]["trigger"] == "schedule"
    assert event["detail"]["backup"] == "mc-backup-2026-03-04_03-00-00.db"
    assert [e["actor"] for e in events(smc, "backup_create")] == ["scheduler"]


def test_enabled_at_0301_waits_for_the_next_day(smc, at):
    at("2026-03-04 03:01:00")
    enable(smc)
    for moment in ("2026-03-04 03:01:00", "2026-03-04 12:00:00", "2026-03-04 23:59:59",
                   "2026-03-05 00:00:00", "2026-03-05 02:59:59"):
        at(moment)
        assert smc.scheduler.run_due() == [], moment
    assert smc.scheduler.status()[0].next_run == ts("2026-03-05 03:00:00") * 1000
    at("2026-03-05 03:00:00")
    assert len(smc.scheduler.run_due()) == 1
    assert backups(smc) == ["mc-backup-2026-03-05_03-00-00.db"]


def test_around_midnight_next_run_is_the_coming_0300(smc, at):
    at("2026-12-31 23:59:59")
    assert smc.scheduler.status()[0].next_run == ts("2027-01-01 03:00:00") * 1000
    at("2027-01-01 00:00:00")
    assert smc.scheduler.status()[0].next_run == ts("2027-01-01 03:00:00") * 1000
    at("2027-01-01 03:00:00")
    assert smc.scheduler.status()[0].next_run == ts("2027-01-02 03:00:00") * 1000


def test_next_run_is_shown_while_disabled(smc, at):
    at("2026-03-04 10:00:00")
    task = smc.scheduler.status()[0]
    assert task.enabled is False and task.next_run == ts("2026-03-05 03:00:00") * 1000
    assert task.last_run is None and task.last_ok is None and task.running is False


def test_disabled_during_the_slot_skips_that_day(smc, at):
    at("2026-03-04 01:00:00")
    enable(smc)
    at("2026-03-04 02:59:30")
    enable(smc, False)
    at("2026-03-04 03:00:00")
    assert smc.scheduler.run_due() == []
    at("2026-03-04 03:30:00")
    enable(smc)  # back on after the slot: no late backup for today
    assert smc.scheduler.run_due() == []
    at("2026-03-04 20:00:00")
    assert smc.scheduler.run_due() == []
    at("2026-03-05 03:00:00")
    assert len(smc.scheduler.run_due()) == 1
    assert backups(smc) == ["mc-backup-2026-03-05_03-00-00.db"]


def test_turning_off_before_the_slot_takes_effect_at_once(smc, at):
    at("2026-03-04 01:00:00")
    enable(smc)
    at("2026-03-04 02:00:00")
    enable(smc, False)
    at("2026-03-05 03:00:00")
    assert smc.scheduler.run_due() == [] and backups(smc) == []


def test_restart_after_a_missed_slot_runs_it_once(make_mc, make_config, at):
    config = make_config()
    at("2026-03-04 10:00:00")
    first = make_mc(config=config, clock=at.clock)
    enable(first)
    first.close()
    at("2026-03-07 09:15:00")  # down through three 03:00 slots
    second = make_mc(config=config, clock=at.clock)
    assert len(second.scheduler.run_due()) == 1
    assert backups(second) == ["mc-backup-2026-03-07_09-15-00.db"]
    assert second.scheduler.run_due() == []
    second.close()
    at("2026-03-07 11:00:00")  # a second restart the same day does not run it again
    third = make_mc(config=config, clock=at.clock)
    assert third.scheduler.run_due() == []
    at("2026-03-08 03:00:00")
    assert len(third.scheduler.run_due()) == 1


def test_restart_without_a_missed_slot_runs_nothing(make_mc, make_config, at):
    config = make_config()
    at("2026-03-04 02:00:00")
    first = make_mc(config=config, clock=at.clock)
    enable(first)
    at("2026-03-04 03:00:00")
    assert len(first.scheduler.run_due()) == 1
    first.close()
    at("2026-03-04 08:00:00")
    second = make_mc(config=config, clock=at.clock)
    assert second.scheduler.run_due() == []


def test_restart_while_disabled_catches_nothing_up(make_mc, make_config, at):
    config = make_config()
    at("2026-03-04 10:00:00")
    first = make_mc(config=config, clock=at.clock)
    enable(first)
    enable(first, False)
    first.close()
    at("2026-03-06 09:00:00")
    second = make_mc(config=config, clock=at.clock)
    assert second.scheduler.run_due() == [] and backups(second) == []


def test_last_run_and_result_survive_a_restart(make_mc, make_config, at):
    config = make_config()
    at("2026-03-04 02:00:00")
    first = make_mc(config=config, clock=at.clock)
    enable(first)
    at("2026-03-04 03:00:00")
    [result] = first.scheduler.run_due()
    before = first.scheduler.status()[0]
    first.close()
    at("2026-03-04 04:00:00")
    after = make_mc(config=config, clock=at.clock).scheduler.status()[0]
    assert after.last_run == ts("2026-03-04 03:00:00") * 1000 == before.last_run
    assert (after.last_ok, after.last_message, after.last_finished) == \
        (True, result.message, before.last_finished)
    assert after.enabled is True


def test_clock_going_back_does_not_rerun_a_day(smc, at):
    at("2026-03-04 02:00:00")
    enable(smc)
    at("2026-03-05 03:00:00")
    assert len(smc.scheduler.run_due()) == 1
    at("2026-03-04 03:00:10")  # the wall clock is set back a day
    assert smc.scheduler.run_due() == []


class Refuser:
    def __init__(self, exc):
        self.exc = exc

    @hookimpl
    def pre_backup(self):
        if self.exc:
            raise self.exc


def test_failed_run_is_recorded_without_host_paths_and_the_timer_goes_on(make_mc, at):
    refuser = Refuser(RuntimeError("cannot write /srv/secret/place/x.db"))
    mc = make_mc(plugins=[refuser], clock=at.clock)
    at("2026-03-04 02:00:00")
    enable(mc)
    at("2026-03-04 03:00:00")
    [result] = mc.scheduler.run_due()
    assert result.ok is False and "/srv" not in result.message
    assert result.message == "Backup failed: RuntimeError: cannot write <path>"
    task = mc.scheduler.status()[0]
    assert task.last_ok is False and task.last_message == result.message
    assert events(mc)[0]["detail"]["ok"] is False
    assert mc.scheduler.run_due() == []  # no retry storm within the slot
    refuser.exc = None
    at("2026-03-05 03:00:00")
    assert mc.scheduler.run_due()[0].ok is True
    assert mc.scheduler.status()[0].last_ok is True


def test_refused_run_is_a_failed_result(make_mc, at):
    mc = make_mc(plugins=[Refuser(BackupRefused("only 3 MB free on /var/lib/mc"))], clock=at.clock)
    result = mc.scheduler.run_now("auto_backup", "alice")
    assert (result.ok, result.message) == (False, "Backup refused: only 3 MB free on <path>")


@pytest.mark.parametrize("text, expected", [
    ("No space left on device", "No space left on device"),
    ("open /var/lib/mc/backups/x.db failed", "open <path> failed"),
    ("see '/home/me/file' and ~/x", "see '<path>' and <path>"),
    ("read and/or write", "read and/or write"),
])
def test_safe_message(text, expected):
    assert safe_message(text) == expected


def test_manual_run_updates_last_result_and_keeps_the_slot(smc, at):
    at("2026-03-04 02:30:00")
    enable(smc)
    result = smc.scheduler.run_now("auto_backup", Actor("alice", 1))
    assert result.ok and result.backup.name == "mc-backup-2026-03-04_02-30-00.db"
    assert smc.scheduler.status()[0].last_run == ts("2026-03-04 02:30:00") * 1000
    at("2026-03-04 03:00:00")
    assert len(smc.scheduler.run_due()) == 1  # a manual run never uses up the day's slot
    assert [e["actor"] for e in events(smc)] == ["scheduler", "alice"]


def test_migration_adds_last_finished_to_a_version_1_database(tmp_path):
    conn = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    [(_, version_1)] = [m for m in migrations() if m[0] == 1]
    conn.executescript(version_1)
    conn.execute("PRAGMA user_version=1")
    conn.execute("INSERT INTO scheduler_state (task_id, last_run, last_ok, last_message, last_slot,"
                 " updated_at) VALUES ('auto_backup', 5000, 1, 'Backup created (1KB)', 'x', 5)")
    assert migrate(conn)[0] == 1
    assert conn.execute("SELECT last_run, last_finished FROM scheduler_state").fetchall() == \
        [(5000, None)]
