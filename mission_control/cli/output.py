"""What the CLI prints: results as text or as the API's JSON, errors as one line or as the API's
error shape, and progress bars on a terminal only (log lines printed above them, never through)."""
import json
import sys
from contextlib import contextmanager

#: The exit codes, the same for every command (README, "Command line"; `EXIT_CODES`).
OK, FAILED, USAGE, NOT_FOUND, REFUSED, OFFSITE_FAILED = 0, 1, 2, 3, 4, 5

#: The epilog of every command's --help.
EXIT_CODES = """exit codes:
  0  done
  1  failed: the backup, check, restore or task did not work (the message says why)
  2  usage or configuration: wrong arguments, a setting refused, no such database
  3  not found: no such backup, user, off-site target, copy or task
  4  refused: another backup is running, over a limit, the disk too full
  5  the backup was made, but a copy to an off-site target failed (the summary names it)"""


class Output:
    """Where a command's answer goes.

    :param out: the result stream (stdout); JSON results and JSON errors go here.
    :param err: human errors (stderr). Bars go to `out`, and only when it is a terminal.
    :param as_json: print results and errors as JSON.
    :param quiet: print no result text and no progress, only errors.
    :param log_handler: the `logs.Handler` the command logs through, if any: while a bar is
        drawn on the terminal it also writes to, its records are printed above the bar.
    """

    def __init__(self, out=None, err=None, *, as_json=False, quiet=False, log_handler=None):
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.as_json = as_json
        self.quiet = quiet
        self.log_handler = log_handler

    def result(self, data, text=()):
        """Print `data` as JSON under --json, else the `text` lines (nothing under --quiet)."""
        if self.as_json:
            print(json.dumps(data, indent=2, default=str), file=self.out, flush=True)
        elif not self.quiet:
            for line in [text] if isinstance(text, str) else text:
                print(line, file=self.out, flush=True)

    def note(self, text):
        """A line for people only (a prompt's answer, a hint): not under --json or --quiet."""
        if not self.as_json and not self.quiet:
            print(text, file=self.out, flush=True)

    def notice(self, text):
        """A line worth seeing though nothing failed (a database made on the spot): on stderr,
        so the result and the JSON stay alone on stdout; not under --quiet."""
        if not self.quiet:
            print(f"mission-control: {text}", file=self.err, flush=True)

    def error(self, message, details=()):
        """An error: `{"error", "details"}` on stdout under --json, else lines on stderr."""
        if self.as_json:
            print(json.dumps({"error": message, "details": list(details)}, indent=2),
                  file=self.out, flush=True)
            return
        print(f"mission-control: {message}", file=self.err, flush=True)
        for detail in details:
            print(f"  {detail}", file=self.err, flush=True)

    @property
    def shows_progress(self):
        """Bars only for a person watching: stdout a terminal, and neither --json nor --quiet."""
        return _isatty(self.out) and not self.as_json and not self.quiet

    @contextmanager
    def bars(self):
        """Bars drawn while the block runs; yields a `Bars` (one that draws nothing when
        `shows_progress` is false)."""
        if not self.shows_progress:
            yield NO_BARS
            return
        from .bars import drawn  # rich only when a bar is drawn
        # Log records go to stderr: on the same terminal they would cut through the bar, so
        # while it is drawn they are printed above it by its console (rich moves the bar down).
        handler = self.log_handler
        route = handler.through if handler is not None and _isatty(handler.stream) else None
        with drawn(self.out, route) as bars:
            yield bars

    @contextmanager
    def progress(self, description, total=None):
        """One bar with bytes (binary units) and rate while the block runs; yields
        `advance(nbytes)`. Without a `total`, a pulsing bar with the time taken. Nothing at all
        when `shows_progress` is false (the yielded function then does nothing)."""
        with self.bars() as bars:
            yield bars.add(description, total).advance


def _isatty(stream):
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed
        return False


class _NoBar:
    """What `Output.bars` gives when nothing is drawn: every call does nothing."""

    def add(self, description, total=None):
        return self

    def advance(self, nbytes):
        pass

    def done(self, description=None):
        pass


NO_BARS = _NoBar()
