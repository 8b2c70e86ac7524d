"""Grandfather-father-son retention as a pure function: which backups the keep rules keep, and why.

The rules are restic's `forget` policy (https://restic.readthedocs.io, "Removing snapshots
according to a policy"), applied to the UTC time in each backup's name:

- ``last`` N keeps the N newest backups;
- ``hourly``/``daily``/``weekly``/``monthly``/``yearly`` N keep the newest backup of each of the N
  most recent hours/days/ISO weeks/months/years *that have backups*; if a rule still has room
  when it reaches the oldest backup, that one is kept too ("oldest"), as restic does;
- ``within`` keeps every backup newer than that duration before the newest backup (not before
  the wall clock, so a service that was stopped for a month deletes nothing on its return).

A backup is kept when any rule keeps it. Nothing here reads the clock or touches a file.
"""
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .names import backup_time

_WITHIN = re.compile(r"(?:(\d{1,4})y)?(?:(\d{1,5})m)?(?:(\d{1,6})w)?(?:(\d{1,6})d)?(?:(\d{1,7})h)?")
#: What `parse_within` accepts, for API clients (the OpenAPI document); a zero duration is refused.
WITHIN_PATTERN = (r"^\s*(\d{1,4}[yY])?(\d{1,5}[mM])?(\d{1,6}[wW])?(\d{1,6}[dD])?"
                  r"(\d{1,7}[hH])?\s*$")
WITHIN_HELP = "must be a duration like 36h, 14d, 2w, 6m, 1y or 1y6m (empty: unused)"

#: Bucket rules: (field of `Rules`, label of a UTC datetime's bucket).
_BUCKETS = (
    ("hourly", lambda d: d.strftime("%Y-%m-%d %H:00")),
    ("daily", lambda d: d.strftime("%Y-%m-%d")),
    ("weekly", lambda d: "%04d-W%02d" % d.isocalendar()[:2]),
    ("monthly", lambda d: d.strftime("%Y-%m")),
    ("yearly", lambda d: d.strftime("%Y")),
)


@dataclass(frozen=True)
class Within:
    """A `keep_within` duration: calendar years and months, then weeks, days and hours."""

    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    hours: int = 0

    def cutoff(self, anchor):
        """Unix seconds `self` before `anchor` (unix seconds), or None when before year 1.

        Years and months move the calendar date and a day past the month's end rolls over
        (31 March minus 1m is 3 March), as restic's Go ``AddDate`` does.
        """
        moment = datetime.fromtimestamp(anchor, timezone.utc)
        month_index = moment.year * 12 + moment.month - 1 - self.years * 12 - self.months
        year, month = divmod(month_index, 12)
        try:
            start = moment.replace(year=year, month=month + 1, day=1)
            start += timedelta(days=moment.day - 1 - self.days - 7 * self.weeks, hours=-self.hours)
        except (ValueError, OverflowError):
            return None
        return start.timestamp()


def parse_within(text):
    """The `Within` that `text` (``"36h"``, ``"2w"``, ``"1y6m"``, ...) means; None for ``""``.

    :raises ValueError: not such a duration, or a zero one (with `WITHIN_HELP` as the reason).
    """
    text = text.strip().lower() if isinstance(text, str) else None
    if text == "":
        return None
    match = _WITHIN.fullmatch(text) if text else None
    if not match or not any(match.groups()):
        raise ValueError(WITHIN_HELP)
    within = Within(*(int(g or 0) for g in match.groups()))
    if within == Within():
        raise ValueError(WITHIN_HELP)
    return within


def check_within(text):
    """`SettingDef` check for `retention.keep_within`: the canonical text (trimmed, lower case).

    :raises ValueError: as `parse_within`.
    """
    parse_within(text)
    return text.strip().lower()


@dataclass(frozen=True)
class Rules:
    """The keep rules; 0 (or ``""`` for `within`) leaves a rule unused. `last` is keep-last."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: str = ""


@dataclass(frozen=True)
class Plan:
    """A retention decision: `keep` is ``((name, (reason, ...)), ...)``, `delete` names.

    Iterating over a plan yields the names to delete, so a plan is also a valid answer of the
    ``prune`` hook ("names to delete"), one that explains itself.
    """

    keep: tuple = ()
    delete: tuple = ()

    def __iter__(self):
        return iter(self.delete)


def decide(names, rules, protected=frozenset(), now=None):
    """Apply `rules` to the rotating backups among `names`.

    :param names: file names; only rotating backups (`names.backup_time` is not None) are
        considered, any other name is left out of the plan (never pruned).
    :param rules: a `Rules`.
    :param protected: names always kept (the backup just made); they count as the newest.
    :param now: unix seconds; backups named after it are not used as the anchor of `within`
        (a file named in the future must not make everything else look old). None: no limit.
    :return: a `Plan`, newest first in each part.
    :raises ValueError: `rules.within` is not a duration.
    """
    timed = [(t, name) for name in dict.fromkeys(names) if (t := backup_time(name)) is not None]
    timed.sort(reverse=True)  # newest first; equal times cannot happen: a name is its time
    timed.sort(key=lambda item: item[1] not in protected)  # stable: protected ones lead
    reasons = {name: ([] if name not in protected else ["just made"]) for _, name in timed}
    for _, name in timed[:rules.last]:
        reasons[name].append(f"last {rules.last}")
    for field, label in _BUCKETS:
        _keep_buckets(timed, getattr(rules, field), field, label, reasons)
    within = parse_within(rules.within)
    if within is not None and timed:
        anchors = [t for t, _ in timed if now is None or t <= now]
        cutoff = within.cutoff(max(anchors)) if anchors else None
        for t, name in timed:
            if cutoff is None or t > cutoff:
                reasons[name].append(f"within {rules.within.strip().lower()}")
    keep = tuple((name, tuple(reasons[name])) for _, name in timed if reasons[name])
    delete = tuple(name for _, name in timed if not reasons[name])
    return Plan(keep, delete)


def _keep_buckets(timed, count, field, label, reasons):
    """restic's bucket rule: the newest backup of each of `count` buckets, newest first."""
    last = None
    for index, (t, name) in enumerate(timed):
        if count <= 0:
            return
        bucket = label(datetime.fromtimestamp(t, timezone.utc))
        oldest = index == len(timed) - 1
        if bucket != last or oldest:
            reasons[name].append(f"{field} {bucket}" if bucket != last
                                 else f"oldest ({field} {bucket})")
            last = bucket
            count -= 1
