"""What the CLI prints: results as text or as the API's JSON, errors as one line or as the API's
error shape, and progress bars on a terminal only."""
import json
import sys
from contextlib import contextmanager

#: The exit codes, the same for every command (README, "Command line").
OK, FAILED, USAGE, NOT_FOUND, REFUSED = 0, 1, 2, 3, 4


class Output:
    """Where a command's answer goes.

    :param out: the result stream (stdout); JSON results and JSON errors go here.
    :param err: human errors (stderr). Bars go to `out`, and only when it is a terminal.
    :param as_json: print results and errors as JSON.
    :param quiet: print no result text and no progress, only errors.
    """

    def __init__(self, out=None, err=None, *, as_json=False, quiet=False):
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.as_json = as_json
        self.quiet = quiet

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
        isatty = getattr(self.out, "isatty", None)
        return bool(isatty and isatty()) and not self.as_json and not self.quiet

    @contextmanager
    def progress(self, description, total=None):
        """A bar with bytes and rate while the block runs; yields `advance(nbytes)`.

        Without a `total`, a spinner with the time taken. Nothing at all when `shows_progress`
        is false (the yielded function then does nothing).
        """
        if not self.shows_progress:
            yield lambda n: None
            return
        from rich.console import Console
        from rich.progress import (BarColumn, DownloadColumn, Progress, SpinnerColumn,
                                   TextColumn, TimeElapsedColumn, TransferSpeedColumn)
        columns = ([TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), TimeElapsedColumn()] if total is not None else
                   [SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()])
        with Progress(*columns, console=Console(file=self.out), transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)
