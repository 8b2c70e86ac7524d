"""The daily slot arithmetic around midnight and 03:00 UTC."""
from datetime import datetime, timezone

import pytest

from mission_control.schedule import next_run, slot_start


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
