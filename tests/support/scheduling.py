"""Fake clocks for the tests (`FakeClock`, a settable one) and scheduler short-hands."""
from datetime import datetime, timezone

START = 1_795_000_000.0  # 2026-11-18 11:06:40 UTC


class FakeClock:
    """A clock the test moves by hand; `clock()` returns unix seconds."""

    def __init__(self, now=START):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def ts(text):
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def enable(mc, on=True):
    mc.settings.update({"general.auto_backup": on}, "alice")


def backups(mc):
    return [b.name for b in mc.backups.list()]


def events(mc, action="auto_backup"):
    return mc.audit_store.query(action=action)[0]


def settable_clock(start="2026-03-04 01:00:00"):
    """A fake clock and a function that sets it: `at("2026-03-04 02:59:00")`; `at.clock` is it."""
    clock = FakeClock(ts(start))

    def at(text):
        clock.now = ts(text)
    at.clock = clock
    return at


#: A script for `python -c`: open the data folder given as argv[1] with the clock stopped at
#: argv[2] (unix seconds), run the due tasks once, print how many ran.
RUN_DUE = """
import sys
from mission_control import MissionControl
with MissionControl.open(sys.argv[1], clock=lambda: float(sys.argv[2]), entry_points=False) as mc:
    print(len(mc.scheduler.run_due()))
"""
