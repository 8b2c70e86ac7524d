"""Slot arithmetic: the default 03:00 UTC around midnight, cron expressions, UTC, the words."""
import time
from datetime import datetime, timezone

import pytest

from mission_control.scheduling.cron import check_schedule
from mission_control.scheduling.cron import describe
from mission_control.scheduling.cron import next_run
from mission_control.scheduling.cron import next_runs
from mission_control.scheduling.cron import slot_start


def ts(text):
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize("now, expected", [
    ("2026-03-04 02:59:59", "2026-03-04 03:00:00"),
    ("2026-03-04 03:00:00", "2026-03-05 03:00:00"),
    ("2026-03-04 03:00:01", "2026-03-05 03:00:00"),
    ("2026-03-04 23:59:59", "2026-03-05 03:00:00"),
    ("2026-03-05 00:00:00", "2026-03-05 03:00:00"),
    ("2026-12-31 12:00:00", "2027-01-01 03:00:00"),
])
def test_next_run(now, expected):
    assert next_run(ts(now)) == ts(expected)


def test_slot_start_is_the_last_slot_at_or_before_now():
    assert slot_start(ts("2026-03-04 03:00:00")) == ts("2026-03-04 03:00:00")
    assert slot_start(ts("2026-03-04 02:59:59")) == ts("2026-03-03 03:00:00")


# -- cron expressions ----------------------------------------------------------------------------

@pytest.mark.parametrize("schedule, now, slot, following", [
    ("0 * * * *", "2026-03-04 10:30:00", "2026-03-04 10:00:00", "2026-03-04 11:00:00"),
    ("0 * * * *", "2026-03-04 11:00:00", "2026-03-04 11:00:00", "2026-03-04 12:00:00"),
    ("0 */6 * * *", "2026-03-04 05:59:59", "2026-03-04 00:00:00", "2026-03-04 06:00:00"),
    ("0 */6 * * *", "2026-03-04 23:00:00", "2026-03-04 18:00:00", "2026-03-05 00:00:00"),
    ("30 2 * * 1", "2026-03-04 10:00:00", "2026-03-02 02:30:00", "2026-03-09 02:30:00"),  # Mon
    ("*/5 * * * *", "2026-03-04 10:04:59.9", "2026-03-04 10:00:00", "2026-03-04 10:05:00"),
    ("0 0 29 2 *", "2026-03-04 10:00:00", "2024-02-29 00:00:00", "2028-02-29 00:00:00"),
])
def test_slots_of_cron_schedules(schedule, now, slot, following):
    assert slot_start(ts(now), schedule) == ts(slot)
    assert next_run(ts(now), schedule) == ts(following)


@pytest.mark.parametrize("now", ["2026-03-29 00:30:00", "2026-10-25 00:30:00"])
def test_utc_has_no_daylight_saving_gap_or_repeat(now, monkeypatch):
    """The nights Europe changes its clocks: 01:00-03:00 UTC runs every hour, whatever TZ says."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        runs = next_runs(ts(now), "0 * * * *", 4)
        day = now[:10]
        assert runs == [ts(f"{day} {h:02d}:00:00") for h in (1, 2, 3, 4)]
        assert slot_start(ts(f"{day} 02:30:00"), "0 2 * * *") == ts(f"{day} 02:00:00")
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize("text, canonical, words", [
    ("0 3 * * *", "0 3 * * *", "every day at 03:00 UTC"),
    ("  15   4 * *  * ", "15 4 * * *", "every day at 04:15 UTC"),
    ("0 */6 * * *", "0 */6 * * *", "every 6 hours (UTC)"),
    ("30 2 * * 1", "30 2 * * 1", "at 02:30 UTC, only on Monday"),
    ("*/5 * * * *", "*/5 * * * *", "every 5 minutes (UTC)"),
    ("0 0,12 * * *", "0 0,12 * * *", "at 00:00 UTC and 12:00 UTC"),
    ("59 23,0 * * *", "59 23,0 * * *", "at 23:59 UTC and 00:59 UTC"),
])
def test_valid_schedules_and_their_words(text, canonical, words):
    assert check_schedule(text) == canonical
    assert describe(canonical) == words


@pytest.mark.parametrize("text, reason", [
    ("", "must be a cron expression of 5 fields"),
    ("@daily", "must be a cron expression of 5 fields"),
    ("0 3 * *", "must be a cron expression of 5 fields"),
    ("0 3 * * * *", "must be a cron expression of 5 fields"),
    ("61 3 * * *", "must be a cron expression of 5 fields"),
    ("x y z a b", "must be a cron expression of 5 fields"),
    ("H 3 * * *", "must be a cron expression of 5 fields"),
    ("0 3 30 2 *", "never runs"),
    ("* * * * *", "must not run more often than every 5 minutes"),
    ("*/4 * * * *", "must not run more often than every 5 minutes"),
    ("0,3 5 * * *", "must not run more often than every 5 minutes"),
    ("58,1 4,5 * * *", "must not run more often than every 5 minutes"),  # 04:58 then 05:01
    ("58,1 23,0 * * *", "must not run more often than every 5 minutes"),  # over midnight
])
def test_bad_schedules_are_refused(text, reason):
    with pytest.raises(ValueError, match=reason):
        check_schedule(text)
