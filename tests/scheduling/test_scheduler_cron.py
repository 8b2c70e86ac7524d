"""Auto-backup on cron schedules, driven by a fake clock; the schedule in the API and its preview."""
import subprocess
import sys

import pytest

from tests.support.accounts import logged_in_client
from tests.support.scheduling import RUN_DUE, backups, enable, events, ts


def schedule(mc, expression):
    mc.settings.update({"general.auto_backup_schedule": expression}, "alice")


def runs_between(mc, at, moments):
    """Call run_due at each moment; the moments at which it ran something."""
    ran = []
    for moment in moments:
        at(moment)
        if mc.scheduler.run_due():
            ran.append(moment)
    return ran


def test_hourly(smc, at):
    at("2026-03-04 10:30:00")
    schedule(smc, "0 * * * *")
    enable(smc)
    assert smc.scheduler.status()[0].next_run == ts("2026-03-04 11:00:00") * 1000
    moments = ["2026-03-04 10:59:59", "2026-03-04 11:00:00", "2026-03-04 11:00:30",
               "2026-03-04 11:59:00", "2026-03-04 12:00:05", "2026-03-04 12:30:00"]
    assert runs_between(smc, at, moments) == ["2026-03-04 11:00:00", "2026-03-04 12:00:05"]
    assert backups(smc) == ["mc-backup-2026-03-04_12-00-05.db", "mc-backup-2026-03-04_11-00-00.db"]
    assert [e["detail"]["slot"] for e in events(smc)] == ["2026-03-04T12:00:00Z",
                                                          "2026-03-04T11:00:00Z"]


def test_every_six_hours(smc, at):
    at("2026-03-04 05:00:00")
    schedule(smc, "0 */6 * * *")
    enable(smc)
    moments = ["2026-03-04 05:59:59", "2026-03-04 06:00:00", "2026-03-04 11:59:59",
               "2026-03-04 12:00:00", "2026-03-04 17:00:00", "2026-03-04 18:00:00",
               "2026-03-05 00:00:00"]
    assert runs_between(smc, at, moments) == ["2026-03-04 06:00:00", "2026-03-04 12:00:00",
                                              "2026-03-04 18:00:00", "2026-03-05 00:00:00"]
    task = smc.scheduler.status()[0]
    assert (task.schedule, task.description) == ("0 */6 * * *", "every 6 hours (UTC)")
    assert task.next_run == ts("2026-03-05 06:00:00") * 1000


def test_weekly_on_monday(smc, at):
    at("2026-03-04 10:00:00")  # a Wednesday
    schedule(smc, "30 2 * * 1")
    enable(smc)
    moments = ["2026-03-05 02:30:00", "2026-03-08 23:59:59", "2026-03-09 02:29:59",
               "2026-03-09 02:30:00", "2026-03-10 02:30:00", "2026-03-16 02:30:00"]
    assert runs_between(smc, at, moments) == ["2026-03-09 02:30:00", "2026-03-16 02:30:00"]


def test_daily_through_the_nights_clocks_change_in_europe(smc, at):
    """UTC has no DST: 02:00 UTC runs once each night, the changes' nights included."""
    at("2026-03-27 12:00:00")
    schedule(smc, "0 2 * * *")
    enable(smc)
    moments = [f"2026-03-{day} {t}" for day in (28, 29, 30) for t in ("01:59:59", "02:00:00",
                                                                       "02:59:59", "03:00:00")]
    assert runs_between(smc, at, moments) == ["2026-03-28 02:00:00", "2026-03-29 02:00:00",
                                              "2026-03-30 02:00:00"]


def test_catch_up_after_downtime_is_one_run_not_a_burst(make_mc, make_config, at):
    config = make_config()
    at("2026-03-04 10:30:00")
    first = make_mc(config=config, clock=at.clock)
    schedule(first, "0 * * * *")
    enable(first)
    first.close()
    at("2026-03-04 20:15:00")  # down through ten hourly slots
    second = make_mc(config=config, clock=at.clock)
    assert len(second.scheduler.run_due()) == 1
    assert second.scheduler.run_due() == []
    assert backups(second) == ["mc-backup-2026-03-04_20-15-00.db"]
    assert events(second)[0]["detail"]["slot"] == "2026-03-04T20:00:00Z"
    at("2026-03-04 20:59:00")
    assert second.scheduler.run_due() == []
    at("2026-03-04 21:00:00")
    assert len(second.scheduler.run_due()) == 1


def test_a_new_schedule_never_fires_for_a_slot_before_it_was_set(smc, at):
    at("2026-03-04 01:00:00")
    enable(smc)
    at("2026-03-04 03:00:00")
    assert len(smc.scheduler.run_due()) == 1
    at("2026-03-04 10:00:00")
    schedule(smc, "0 */6 * * *")  # its latest slot, 06:00, was before the change
    assert smc.scheduler.run_due() == []
    assert smc.scheduler.status()[0].next_run == ts("2026-03-04 12:00:00") * 1000
    at("2026-03-04 12:00:00")
    assert len(smc.scheduler.run_due()) == 1


def test_re_enabling_never_drifts(smc, at):
    """Off and on again between slots: the next run is still on the schedule's slot."""
    at("2026-03-04 10:10:00")
    schedule(smc, "0 * * * *")
    enable(smc)
    at("2026-03-04 10:20:00")
    enable(smc, False)
    at("2026-03-04 10:40:00")
    enable(smc)
    assert smc.scheduler.run_due() == []
    moments = ["2026-03-04 10:59:00", "2026-03-04 11:00:00", "2026-03-04 11:40:00"]
    assert runs_between(smc, at, moments) == ["2026-03-04 11:00:00"]


@pytest.mark.slow
def test_three_processes_make_one_backup_per_hourly_slot(make_mc, make_config, at):
    config = make_config()
    at("2026-03-04 10:30:00")
    setup = make_mc(config=config, clock=at.clock)
    schedule(setup, "0 * * * *")
    enable(setup)
    for slot in ("2026-03-04 11:00:00", "2026-03-04 12:00:01"):
        procs = [subprocess.Popen([sys.executable, "-c", RUN_DUE, str(config.data_dir),
                                   str(ts(slot))], stdout=subprocess.PIPE, text=True)
                 for _ in range(3)]
        ran = [int(p.communicate(timeout=60)[0]) for p in procs]
        assert sorted(ran) == [0, 0, 1], slot
    assert backups(setup) == ["mc-backup-2026-03-04_12-00-01.db",
                              "mc-backup-2026-03-04_11-00-00.db"]


# -- over HTTP -----------------------------------------------------------------------------------

def test_the_api_shows_the_schedule_and_refuses_bad_ones(admin_client, clock):
    clock.now = ts("2026-03-04 15:30:22")
    response = admin_client.put("/api/settings", json={"settings": {
        "general.auto_backup_schedule": "15 */2 * * *"}})
    assert response.status_code == 200
    task = admin_client.get("/api/scheduler").json["tasks"][0]
    assert task["schedule"] == "15 */2 * * *"
    assert task["description"] == "at 15 minutes past the hour, every 2 hours (UTC)"
    assert task["nextRun"] == ts("2026-03-04 16:15:00") * 1000
    for bad, reason in (("*/2 * * * *", "must not run more often than every 5 minutes"),
                        ("daily", "must be a cron expression of 5 fields (minute hour "
                                  "day-of-month month day-of-week)")):
        response = admin_client.put("/api/settings", json={"settings": {
            "general.auto_backup_schedule": bad}})
        assert response.status_code == 400
        assert response.json["details"] == [f"general.auto_backup_schedule: {reason}"]
    assert admin_client.get("/api/scheduler").json["tasks"][0]["schedule"] == "15 */2 * * *"


def test_preview_describes_and_lists_the_next_three_runs(admin_client, clock):
    clock.now = ts("2026-03-04 15:30:22")
    response = admin_client.get("/api/scheduler/preview", query_string={
        "schedule": " 0  */6 * * *"})
    assert response.status_code == 200
    assert response.json == {"schedule": "0 */6 * * *", "description": "every 6 hours (UTC)",
                             "next": [int(ts(t) * 1000) for t in (
                                 "2026-03-04 18:00:00", "2026-03-05 00:00:00",
                                 "2026-03-05 06:00:00")]}


@pytest.mark.parametrize("query, detail", [
    ({}, "schedule: is required"),
    ({"schedule": "* * * * *"}, "schedule: must not run more often than every 5 minutes"),
    ({"schedule": "0 3 * *"}, "schedule: must be a cron expression of 5 fields (minute hour "
                              "day-of-month month day-of-week)"),
    ({"schedule": "0 3 * * *" + " " * 200}, "schedule: must be at most 100 printable characters"),
])
def test_preview_refuses_bad_schedules(admin_client, query, detail):
    response = admin_client.get("/api/scheduler/preview", query_string=query)
    assert response.status_code == 400
    assert response.json == {"error": "Validation failed", "details": [detail]}


def test_preview_is_admin_only(mc, client):
    assert client.get("/api/scheduler/preview?schedule=0+3+*+*+*").status_code == 401
    viewer = logged_in_client(mc, "vic", "viewer")
    assert viewer.get("/api/scheduler/preview?schedule=0+3+*+*+*").status_code == 403


def test_health_allows_a_weekly_schedule_its_week(smc, at):
    """A weekly backup is not 'late' after a day: the health limits stretch to the schedule."""
    from mission_control import backup_status
    at("2026-03-01 10:00:00")
    schedule(smc, "30 2 * * 1")
    enable(smc)
    at("2026-03-02 02:30:00")  # Monday
    assert len(smc.scheduler.run_due()) == 1
    at("2026-03-05 12:00:00")  # three and a half days later
    assert backup_status(smc)["verdict"] == "pass"
    at("2026-03-09 02:29:00")  # just before the next Monday's run
    assert backup_status(smc)["verdict"] == "pass"
    at("2026-03-09 04:29:00")  # that run is two hours late: as a daily one a day and 2 h
    assert backup_status(smc)["reasons"] == ["last good backup is 169 hours old"]
    at("2026-03-09 04:31:00")
    status = backup_status(smc)
    assert status["verdict"] == "fail"
    assert status["reasons"][0] == "auto-backup is on but no backup succeeded in the last 170 hours"
    schedule(smc, "30 2 * * *")  # daily: the same age is long overdue
    assert backup_status(smc)["reasons"][0] == \
        "auto-backup is on but no backup succeeded in the last 26 hours"
