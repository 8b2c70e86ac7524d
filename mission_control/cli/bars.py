"""Progress bars on the terminal (rich): bytes in binary units (KiB, MiB, as the rest of the
product), one labelled bar per phase of a command (the backup, each off-site target)."""
from contextlib import contextmanager, nullcontext

from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, Progress, ProgressColumn, TextColumn,
                           TimeElapsedColumn)
from rich.text import Text

from ..units import human_size


class SizeColumn(DownloadColumn):
    """Done / total in binary units; nothing for a bar added without a total (a pulsing one)."""

    def __init__(self):
        super().__init__(binary_units=True)

    def render(self, task):
        return Text("") if task.fields.get("sizeless") else super().render(task)


class BinarySpeedColumn(ProgressColumn):
    """The transfer rate in KiB/s, MiB/s (rich's own speed column counts in kB/s)."""

    def render(self, task):
        speed = task.finished_speed or task.speed
        if speed is None or task.fields.get("sizeless"):
            return Text("")
        return Text(f"{human_size(int(speed))}/s", style="progress.data.speed")


def columns():
    """Label, bar, done/total in binary units, rate, time taken."""
    return (TextColumn("{task.description}"), BarColumn(), SizeColumn(),
            BinarySpeedColumn(), TimeElapsedColumn())


@contextmanager
def drawn(stream, route=None):
    """A live `Bars` on the terminal `stream`, cleared when the block ends.

    :param route: `logs.Handler.through`, or None: while the bars are drawn, log records are
        printed above them through their console instead of cutting through them.
    """
    console = Console(file=stream)
    with Progress(*columns(), console=console, transient=True) as progress, \
            (route(console) if route is not None else nullcontext()):
        yield Bars(progress)


class Bars:
    """The bars of one block; `add` one per phase.

    :param progress: a live `rich.progress.Progress`.
    """

    def __init__(self, progress):
        self._progress = progress

    def add(self, description, total=None):
        """A new `Bar` labelled `description`; `total` in bytes, None for a pulsing bar."""
        return Bar(self._progress, self._progress.add_task(description, total=total,
                                                           sizeless=total is None))


class Bar:
    """One bar: `advance(nbytes)`, and `done()` to fill it when its work is over."""

    def __init__(self, progress, task):
        self._progress = progress
        self._task = task

    def advance(self, nbytes):
        self._progress.advance(self._task, nbytes)

    def done(self, description=None):
        """Fill the bar (the total was a guess: the WAL, a packed copy) and maybe relabel it."""
        task = self._progress.tasks[self._task]
        end = max(task.total or 0, task.completed) or 1
        self._progress.update(self._task, total=end, completed=end,
                              **({"description": description} if description else {}))
