"""Helpers shared by the scheduler tests: a settable fake clock and short-hands."""
from datetime import datetime, timezone

from tests.conftest import FakeClock


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
