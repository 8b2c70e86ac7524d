"""When scheduled tasks run: 5-field cron expressions in UTC, as pure functions of the time.

Parsing and iteration are croniter's; the words are cron-descriptor's. Times are unix seconds and
every computation is in UTC, so there is no daylight-saving gap or repeat.
"""
import re
from datetime import datetime, timezone
from functools import lru_cache

from cron_descriptor import ExpressionDescriptor, Options
from croniter import CroniterBadDateError, CroniterError, croniter

DEFAULT_SCHEDULE = "0 3 * * *"  # every day at 03:00 UTC, the seed's slot
MIN_INTERVAL_MINUTES = 5
#: A schedule must run at least once in any this many days (a backup a year at the least).
MAX_GAP_DAYS = 366
FIELDS_HELP = "must be a cron expression of 5 fields (minute hour day-of-month month day-of-week)"
#: One field's characters; five of them is the cron kind's OpenAPI pattern (`setting_kinds.CRON`).
FIELD_PATTERN = r"[0-9A-Za-z*/,#-]+"
_SPACES = re.compile(r"[ \t\n\r\f\v]+")
_FIELD = re.compile(FIELD_PATTERN)
_MONTHS = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
_DAYS = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
#: The words each field may hold: names, and croniter's `L` (last) where it means a day. Anything
#: else croniter would take is not plain cron: `R` (random: a new time at each parse), `H`, `W`.
_WORDS = (set(), set(), {"l"}, _MONTHS, _DAYS | {"l"})
#: Cron's nicknames, which croniter would take but plain cron fields spell out: the suggestion.
NICKNAMES = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
             "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
             "@hourly": "0 * * * *"}
_TIME = re.compile(r"\b\d\d:\d\d\b")
_DAILY = re.compile(r"At (\d\d:\d\d)")


def _utc(seconds):
    return datetime.fromtimestamp(seconds, timezone.utc)


def check_schedule(text):
    """`SettingDef` check for a schedule: the canonical expression (single spaces).

    :param text: a 5-field cron expression, evaluated in UTC (``"0 3 * * *"``).
    :return: the expression with its fields joined by single spaces.
    :raises ValueError: not 5 plain fields (digits, ``* , - /``, month and day names, ``L`` and
        ``#``), not valid cron, never fires, fires more often than every `MIN_INTERVAL_MINUTES`
        minutes, or less often than once in `MAX_GAP_DAYS` days (the reason is the message).
    """
    # ASCII whitespace only: str.split() would also take U+2028 or U+0085 as a separator.
    fields = _SPACES.split(text.strip(" \t\n\r\f\v")) if isinstance(text, str) else []
    if len(fields) != 5:
        nickname = NICKNAMES.get(fields[0].lower()) if len(fields) == 1 else None
        raise ValueError(f"{FIELDS_HELP}: for {fields[0]} write {nickname!r}" if nickname
                         else FIELDS_HELP)
    return _checked(" ".join(fields))


@lru_cache(maxsize=64)
def _checked(expression):
    # Cached: every `Settings.get` of a schedule checks it again, and the yearly walk costs ms.
    fields = expression.split(" ")
    for index, field in enumerate(fields):
        words = {w.lower() for w in re.findall(r"[A-Za-z]+", field)}
        if not _FIELD.fullmatch(field) or words - _WORDS[index] or "#" in field and index != 4:
            raise ValueError(f"{FIELDS_HELP}: {field!r} is not a plain cron field")
    try:
        minutes, hours = croniter(expression).expanded[:2]
        croniter(expression, _utc(0)).get_next(float)
        gap = _longest_gap_days(expression)
    except CroniterBadDateError:
        raise ValueError("never runs: no date matches it") from None
    except CroniterError as exc:
        raise ValueError(f"{FIELDS_HELP}: {exc}") from None
    if _shortest_gap(minutes, hours) < MIN_INTERVAL_MINUTES:
        raise ValueError(f"must not run more often than every {MIN_INTERVAL_MINUTES} minutes")
    if gap > MAX_GAP_DAYS:
        raise ValueError(f"must run at least once a year (it can go {int(gap)} days without "
                         "running)")
    return expression


def _longest_gap_days(expression):
    """The longest time between two runs of `expression`, in days, up to just past the limit.

    The calendar repeats every 28 years from 1901 to 2099, so 29 years from 2001 hold every gap.
    Each probe, 30 seconds off a whole minute and so never a run time, lies in exactly one gap,
    and prev/next give that gap exactly; a probe every 60 days lands in every gap longer than that.
    """
    start = datetime(2001, 1, 1, 0, 0, 30, tzinfo=timezone.utc).timestamp()
    runs, longest, probe = croniter(expression, _utc(start)), 0.0, start
    while probe < start + 29 * 366 * 86400 and longest <= MAX_GAP_DAYS:
        runs.set_current(_utc(probe))
        after = runs.get_next(float)
        runs.set_current(_utc(probe))
        longest = max(longest, (after - runs.get_prev(float)) / 86400)
        probe += 60 * 86400
    return longest


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
