"""When scheduled tasks run: 5-field cron expressions in UTC, as pure functions of the time.

Parsing and iteration are croniter's; the words are cron-descriptor's. Times are unix seconds and
every computation is in UTC, so there is no daylight-saving gap or repeat.
"""
import re
from datetime import datetime, timezone

from cron_descriptor import ExpressionDescriptor, Options
from croniter import CroniterBadDateError, CroniterError, croniter

DEFAULT_SCHEDULE = "0 3 * * *"  # every day at 03:00 UTC, the seed's slot
MIN_INTERVAL_MINUTES = 5
FIELDS_HELP = "must be a cron expression of 5 fields (minute hour day-of-month month day-of-week)"
#: Five fields of cron characters, for API clients (the OpenAPI document); `check_schedule` decides.
SCHEDULE_PATTERN = r"^\s*[0-9A-Za-z*/,?#-]+(\s+[0-9A-Za-z*/,?#-]+){4}\s*$"
_TIME = re.compile(r"\b\d\d:\d\d\b")
_DAILY = re.compile(r"At (\d\d:\d\d)")


def _utc(seconds):
    return datetime.fromtimestamp(seconds, timezone.utc)


def check_schedule(text):
    """`SettingDef` check for a schedule: the canonical expression (single spaces).

    :param text: a 5-field cron expression, evaluated in UTC (``"0 3 * * *"``).
    :return: the expression with its fields joined by single spaces.
    :raises ValueError: not 5 fields, not valid cron, never fires, or fires more often than every
        `MIN_INTERVAL_MINUTES` minutes (the reason is the message).
    """
    fields = text.split() if isinstance(text, str) else []
    if len(fields) != 5:
        raise ValueError(FIELDS_HELP)
    expression = " ".join(fields)
    try:
        minutes, hours = croniter(expression).expanded[:2]
        croniter(expression, _utc(0)).get_next(float)
    except CroniterBadDateError:
        raise ValueError("never runs: no date matches it") from None
    except CroniterError as exc:
        raise ValueError(f"{FIELDS_HELP}: {exc}") from None
    if _shortest_gap(minutes, hours) < MIN_INTERVAL_MINUTES:
        raise ValueError(f"must not run more often than every {MIN_INTERVAL_MINUTES} minutes")
    return expression


def _shortest_gap(minutes, hours):
    """The fewest minutes between two runs, from the expanded minute and hour fields.

    Two runs in one hour are minutes apart; the last minute of an hour and the first of the next
    are close when both hours run (23 and 0 are counted as neighbours, to be safe).
    """
    minutes = list(range(60)) if minutes == ["*"] else sorted(minutes)
    hours = set(range(24)) if hours == ["*"] else set(hours)
    gaps = [b - a for a, b in zip(minutes, minutes[1:])]
    if any((h + 1) % 24 in hours for h in hours):
        gaps.append(60 - minutes[-1] + minutes[0])
    return min(gaps, default=60)


def slot_start(now, schedule=DEFAULT_SCHEDULE):
    """Unix seconds of the latest run time of `schedule` at or before `now`."""
    # Run times are whole minutes, so "before the next second" is "at or before now".
    return croniter(schedule, _utc(int(now) + 1)).get_prev(float)


def next_run(now, schedule=DEFAULT_SCHEDULE):
    """Unix seconds of the first run time of `schedule` strictly after `now`."""
    return croniter(schedule, _utc(now)).get_next(float)


def next_runs(now, schedule=DEFAULT_SCHEDULE, count=3):
    """The `count` run times of `schedule` after `now`, as unix seconds."""
    runs = croniter(schedule, _utc(now))
    return [runs.get_next(float) for _ in range(count)]


def longest_gap(now, schedule=DEFAULT_SCHEDULE, runs=14):
    """The longest time between two of the next `runs` run times of `schedule`, in seconds (a
    day for the default; a week for a weekly schedule): how long "no new backup" is normal."""
    times = next_runs(now, schedule, runs)
    return max(b - a for a, b in zip(times, times[1:]))


def describe(schedule):
    """Words for `schedule`: ``"every day at 03:00 UTC"``, ``"at 02:30 UTC, only on Monday"``.

    :raises ValueError: `schedule` is not a valid expression.
    """
    options = Options(locale_code="en_US", use_24hour_time_format=True)
    try:
        text = ExpressionDescriptor(schedule, options).get_description()
    except Exception as exc:  # noqa: BLE001 - the library raises its own zoo of types
        raise ValueError(FIELDS_HELP) from exc
    daily = _DAILY.fullmatch(text)
    if daily:
        return f"every day at {daily.group(1)} UTC"
    text = text[:1].lower() + text[1:]
    return _TIME.sub(lambda m: f"{m.group(0)} UTC", text) if _TIME.search(text) else \
        f"{text} (UTC)"
