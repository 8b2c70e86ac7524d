"""The pure retention policy against hand-computed cases, and its properties (hypothesis)."""
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mission_control.backup.names import backup_time
from mission_control.backup.retention import Rules
from mission_control.backup.retention import Within
from mission_control.backup.retention import decide
from mission_control.backup.retention import parse_within


def n(text):
    """The backup name for a UTC time: n("2026-11-20 03:00") -> mc-backup-2026-11-20_03-00-00.db"""
    moment = datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
    return moment.strftime("mc-backup-%Y-%m-%d_%H-%M-%S.db")


def ts(text):
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def plan(times, rules, protected=(), now=None, extra=()):
    """decide() on the names of `times` (plus `extra` names): {name_time: reasons}, [deleted]."""
    result = decide([n(t) for t in times] + list(extra), rules, {n(t) for t in protected},
                    now=None if now is None else ts(now))
    by_time = {n(t): t for t in times}
    return ({by_time[name]: list(reasons) for name, reasons in result.keep},
            [by_time[name] for name in result.delete])


CASES = [
    pytest.param(
        ["2026-11-20 03:00", "2026-11-19 03:00", "2026-11-18 03:00", "2026-11-17 03:00"],
        Rules(last=2),
        {"2026-11-20 03:00": ["last 2"], "2026-11-19 03:00": ["last 2"]},
        ["2026-11-18 03:00", "2026-11-17 03:00"], id="keep-last only: the newest N"),
    pytest.param(
        ["2026-11-20 15:00", "2026-11-20 03:00", "2026-11-19 03:00", "2026-11-17 10:00",
         "2026-11-16 03:00"],
        Rules(daily=3),
        {"2026-11-20 15:00": ["daily 2026-11-20"], "2026-11-19 03:00": ["daily 2026-11-19"],
         "2026-11-17 10:00": ["daily 2026-11-17"]},
        ["2026-11-20 03:00", "2026-11-16 03:00"],
        id="daily counts only days that have backups (the 18th has none)"),
    pytest.param(
        ["2026-11-20 15:00", "2026-11-20 03:00", "2026-11-19 15:00", "2026-11-19 03:00",
         "2026-11-18 15:00", "2026-11-18 03:00"],
        Rules(daily=5),
        {"2026-11-20 15:00": ["daily 2026-11-20"], "2026-11-19 15:00": ["daily 2026-11-19"],
         "2026-11-18 15:00": ["daily 2026-11-18"],
         "2026-11-18 03:00": ["oldest (daily 2026-11-18)"]},
        ["2026-11-20 03:00", "2026-11-19 03:00"],
        id="a rule with room left also keeps the oldest backup (restic)"),
    pytest.param(
        ["2026-11-20 14:59", "2026-11-20 14:00", "2026-11-20 13:30", "2026-11-20 12:10"],
        Rules(hourly=2),
        {"2026-11-20 14:59": ["hourly 2026-11-20 14:00"],
         "2026-11-20 13:30": ["hourly 2026-11-20 13:00"]},
        ["2026-11-20 14:00", "2026-11-20 12:10"], id="hourly"),
    pytest.param(
        ["2027-01-04 03:00", "2027-01-03 03:00", "2027-01-01 03:00", "2026-12-31 03:00",
         "2026-12-28 03:00", "2026-12-27 03:00", "2026-12-20 03:00"],
        Rules(weekly=3, yearly=2),
        {"2027-01-04 03:00": ["weekly 2027-W01", "yearly 2027"],
         "2027-01-03 03:00": ["weekly 2026-W53"],
         "2026-12-31 03:00": ["yearly 2026"],
         "2026-12-27 03:00": ["weekly 2026-W52"]},
        ["2027-01-01 03:00", "2026-12-28 03:00", "2026-12-20 03:00"],
        id="ISO week 53 spans the new year; yearly is the calendar year"),
    pytest.param(
        ["2026-03-31 12:00", "2026-03-01 00:00", "2026-02-28 23:00", "2026-02-01 00:00",
         "2026-01-31 23:59:59"],
        Rules(monthly=3),
        {"2026-03-31 12:00": ["monthly 2026-03"], "2026-02-28 23:00": ["monthly 2026-02"],
         "2026-01-31 23:59:59": ["monthly 2026-01"]},
        ["2026-03-01 00:00", "2026-02-01 00:00"], id="month ends: the last backup of each month"),
    pytest.param(
        ["2028-03-01 00:00", "2028-02-29 12:00", "2028-02-28 12:00"],
        Rules(daily=2),
        {"2028-03-01 00:00": ["daily 2028-03-01"], "2028-02-29 12:00": ["daily 2028-02-29"]},
        ["2028-02-28 12:00"], id="leap day is a day of its own"),
    pytest.param(
        ["2026-11-20 03:00", "2026-11-07 03:00", "2026-11-06 03:00", "2026-11-05 03:00"],
        Rules(within="14d"),
        {"2026-11-20 03:00": ["within 14d"], "2026-11-07 03:00": ["within 14d"]},
        ["2026-11-06 03:00", "2026-11-05 03:00"],
        id="within: strictly newer than 14 days before the newest (the 6th is exactly 14 d)"),
    pytest.param(
        ["2026-03-31 12:00", "2026-03-04 00:00", "2026-03-03 12:00", "2026-03-02 00:00",
         "2026-02-28 00:00"],
        Rules(within="1m"),
        {"2026-03-31 12:00": ["within 1m"], "2026-03-04 00:00": ["within 1m"]},
        ["2026-03-03 12:00", "2026-03-02 00:00", "2026-02-28 00:00"],
        id="within a month of 31 March: 31 February rolls over to 3 March (as restic's Go does)"),
    pytest.param(
        ["2028-02-29 12:00", "2027-03-01 13:00", "2027-03-01 12:00", "2027-02-28 12:00"],
        Rules(within="1y"),
        {"2028-02-29 12:00": ["within 1y"], "2027-03-01 13:00": ["within 1y"]},
        ["2027-03-01 12:00", "2027-02-28 12:00"],
        id="within a year of a leap day: 29 February 2027 is 1 March"),
    pytest.param(
        ["2026-11-20 03:00", "2026-11-19 03:00", "2026-11-12 03:00", "2026-10-01 03:00"],
        Rules(last=1, daily=2, within="1w"),
        {"2026-11-20 03:00": ["last 1", "daily 2026-11-20", "within 1w"],
         "2026-11-19 03:00": ["daily 2026-11-19", "within 1w"]},
        ["2026-11-12 03:00", "2026-10-01 03:00"], id="rules combine: any rule keeps"),
]


@pytest.mark.parametrize("times, rules, kept, deleted", CASES)
def test_rules_against_hand_computed_cases(times, rules, kept, deleted):
    assert plan(times, rules) == (kept, deleted)


def test_the_backup_just_made_is_kept_and_counts_as_the_newest():
    """Files named in the future (a clock set back) do not push the new backup out."""
    times = ["2030-01-02 03:00", "2030-01-01 03:00", "2026-11-20 11:00"]
    kept, deleted = plan(times, Rules(last=2), protected=["2026-11-20 11:00"])
    assert kept == {"2026-11-20 11:00": ["just made", "last 2"], "2030-01-02 03:00": ["last 2"]}
    assert deleted == ["2030-01-01 03:00"]


def test_the_backup_just_made_is_kept_even_when_no_rule_would():
    kept, deleted = plan(["2026-11-20 03:00", "2026-11-19 03:00"], Rules(daily=1),
                         protected=["2026-11-19 03:00"])
    assert kept == {"2026-11-19 03:00": ["just made", "daily 2026-11-19"]}
    assert deleted == ["2026-11-20 03:00"]


def test_names_that_are_not_rotating_backups_are_never_in_the_plan():
    others = ["keep-forever.db", "mc-backup-latest.db", "mc-backup-2026-02-30_03-00-00.db",
              "pre-restore-2026-11-20_03-00-00.db", "mc-backup-2026-11-20_24-00-00.db"]
    result = decide([n("2026-11-20 03:00"), n("2026-11-19 03:00"), *others], Rules(last=1))
    assert result.keep == ((n("2026-11-20 03:00"), ("last 1",)),)
    assert result.delete == (n("2026-11-19 03:00"),)
    assert list(result) == [n("2026-11-19 03:00")]  # a plan iterates as "names to delete"


def test_within_is_relative_to_the_newest_backup_not_the_clock():
    """The service was stopped for months: nothing is older than 2 w *before the newest*."""
    times = ["2026-01-10 03:00", "2026-01-01 03:00", "2025-12-20 03:00"]
    kept, deleted = plan(times, Rules(within="2w"), now="2026-11-20 00:00")
    assert set(kept) == {"2026-01-10 03:00", "2026-01-01 03:00"}
    assert deleted == ["2025-12-20 03:00"]


def test_within_ignores_a_backup_named_in_the_future_as_its_anchor():
    times = ["2099-01-01 00:00", "2026-11-20 03:00", "2026-11-19 03:00", "2026-11-01 03:00"]
    kept, deleted = plan(times, Rules(within="2d"), now="2026-11-20 04:00")
    assert set(kept) == {"2099-01-01 00:00", "2026-11-20 03:00", "2026-11-19 03:00"}
    assert deleted == ["2026-11-01 03:00"]


def test_no_rule_keeps_nothing_but_what_is_protected():
    kept, deleted = plan(["2026-11-20 03:00", "2026-11-19 03:00"], Rules())
    assert kept == {} and deleted == ["2026-11-20 03:00", "2026-11-19 03:00"]


@pytest.mark.parametrize("text, expected", [
    ("36h", Within(hours=36)), ("14d", Within(days=14)), ("2w", Within(weeks=2)),
    ("6m", Within(months=6)), ("1y", Within(years=1)), (" 1Y6M ", Within(years=1, months=6)),
    ("1y2m3w4d5h", Within(1, 2, 3, 4, 5)), ("", None), ("   ", None),
])
def test_within_durations(text, expected):
    assert parse_within(text) == expected


@pytest.mark.parametrize("text", ["0d", "14", "d", "2 w", "1h1y", "1.5d", "-1d", "14 days",
                                  "99999y", "1y1y"])
def test_bad_within_durations_are_refused(text):
    with pytest.raises(ValueError, match="must be a duration like 36h, 14d"):
        parse_within(text)


def test_a_huge_within_keeps_everything():
    kept, deleted = plan(["2026-11-20 03:00", "1970-01-01 00:00"], Rules(within="9999y"))
    assert len(kept) == 2 and deleted == []


# -- properties ----------------------------------------------------------------------------------

START = int(ts("2024-01-01 00:00"))
# Distinct whole seconds over about three years, often several in one hour or day.
times_strategy = st.lists(st.integers(0, 3 * 366 * 86400 // 60).map(lambda m: START + 60 * m),
                          min_size=0, max_size=40, unique=True)
counts = st.integers(0, 12)
withins = st.sampled_from(["", "36h", "3d", "2w", "1m", "6m", "1y"])
rules_strategy = st.builds(Rules, last=counts, hourly=counts, daily=counts, weekly=counts,
                           monthly=counts, yearly=counts, within=withins)
FIELDS = ("hourly", "daily", "weekly", "monthly", "yearly", "within")


def names_of(times):
    return [datetime.fromtimestamp(t, timezone.utc).strftime("mc-backup-%Y-%m-%d_%H-%M-%S.db")
            for t in times]


def kept(result):
    return {name for name, _ in result.keep}


@settings(max_examples=300, deadline=None)
@given(times_strategy, st.integers(0, 45), st.data())
def test_with_only_keep_last_the_kept_set_is_the_newest_n(times, last, data):
    names = names_of(times)
    protected = set(data.draw(st.sets(st.sampled_from(names), max_size=1))) if names else set()
    result = decide(names, Rules(last=last), protected)
    others = sorted(set(names) - protected, key=backup_time, reverse=True)
    expected = protected | set(others[:max(0, last - len(protected))])
    assert kept(result) == expected
    assert set(result.delete) == set(names) - expected


@settings(max_examples=300, deadline=None)
@given(times_strategy, rules_strategy, st.sampled_from(FIELDS), st.data())
def test_adding_a_rule_never_deletes_what_the_rules_without_it_kept(times, rules, field, data):
    names = names_of(times)
    without = Rules(**{**rules.__dict__, field: "" if field == "within" else 0})
    added = data.draw(withins.filter(bool) if field == "within" else st.integers(1, 12))
    with_it = Rules(**{**rules.__dict__, field: added})
    before, after = decide(names, without), decide(names, with_it)
    assert kept(before) <= kept(after)
    assert kept(after) | set(after.delete) == set(names)


@settings(max_examples=200, deadline=None)
@given(times_strategy, rules_strategy, st.sampled_from(("last",) + FIELDS[:-1]),
       st.integers(1, 5))
def test_a_larger_count_never_deletes_more(times, rules, field, more):
    names = names_of(times)
    larger = Rules(**{**rules.__dict__, field: getattr(rules, field) + more})
    assert kept(decide(names, rules)) <= kept(decide(names, larger))

