"""The backup bar's watcher: it survives a file vanishing under it, and it runs only when a bar
is drawn (never under --json, --quiet or without a terminal)."""
import io
import threading
import time

import pytest

from mission_control.backup.service import TEMP_PREFIX
from mission_control.cli import Context, cli_actor
from mission_control.cli.backup import _growth, _written_size, backed_up
from mission_control.cli.output import Output


class Vanished:
    """A listed `.mc-backup-*` that is renamed away before it is looked at (the backup ended)."""

    def is_file(self):
        return True

    def stat(self):
        raise FileNotFoundError(2, "No such file or directory")


class Racing:
    """The real folder, whose first listing also names a file that is already gone."""

    def __init__(self, real):
        self.real = real
        self.listings = 0

    def glob(self, pattern):
        self.listings += 1
        if self.listings == 1:
            yield Vanished()
        yield from self.real.glob(pattern)


def test_a_file_gone_between_listing_and_stat_is_skipped(tmp_path):
    (tmp_path / f"{TEMP_PREFIX}a").write_bytes(b"x" * 300)
    (tmp_path / f"{TEMP_PREFIX}dir").mkdir()
    assert _written_size(Racing(tmp_path)) == 300
    assert _written_size(tmp_path / "missing") == 0


def test_the_watcher_survives_the_race_and_keeps_counting(tmp_path):
    grown, failures = [], []
    previous, threading.excepthook = threading.excepthook, failures.append
    racing = Racing(tmp_path)
    try:
        with _growth(racing, grown.append):
            deadline = time.monotonic() + 10
            while racing.listings < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            (tmp_path / f"{TEMP_PREFIX}b").write_bytes(b"y" * 500)
            while not grown and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        threading.excepthook = previous
    assert failures == [] and sum(grown) == 500


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("out, as_json, watched", [
    (io.StringIO(), False, False), (Terminal(), True, False), (Terminal(), False, True)])
def test_the_watcher_runs_only_under_a_bar(mc, out, as_json, watched):
    seen = []

    def make(service):
        seen.extend(t.name for t in threading.enumerate())
        return service.backups.create("test")

    ctx = Context(None, mc.config, {}, Output(out, io.StringIO(), as_json=as_json), None,
                  cli_actor())
    made, _, _ = backed_up(ctx, make)
    assert made.name.startswith("mc-backup-")
    assert ("backup-growth" in seen) is watched
