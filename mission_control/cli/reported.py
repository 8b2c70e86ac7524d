"""Log records a command's summary line says again: logged at INFO while the summary is drawn,
so a failed off-site copy is said once at the default level (the summary), and still logged
with -v, MC_LOG_LEVEL=INFO, and by `serve` (which has no summary) as ERROR and WARNING."""
import logging
from contextlib import contextmanager

#: The audit actions whose records the summary repeats: the off-site store's ERROR and the event
#: log's WARNING of a failed copy both carry `action` (their `extra=`).
REPORTED = frozenset({"offsite_failed"})


class Reported(logging.Filter):
    """Lowers a record of a `REPORTED` action to INFO, and lets it through only when INFO is
    logged.

    :param level: the level the command logs at (a number).
    """

    def __init__(self, level):
        super().__init__()
        self.level = level

    def filter(self, record):
        if getattr(record, "action", None) not in REPORTED or record.levelno <= logging.INFO:
            return True
        record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        return logging.INFO >= self.level


@contextmanager
def said_by_summary(handler, summarised=True, level=None):
    """While the block runs, `handler`'s records of `REPORTED` actions are INFO.

    :param handler: the command's `logs.Handler`, or None (an embedding application's
        handlers are left alone).
    :param summarised: whether the summary line is printed (not under --quiet): when it is not,
        the records are all that say the copy failed and keep their level.
    :param level: the level the command logs at (default: the root logger's).
    """
    if handler is None or not summarised:
        yield
        return
    quieter = Reported(logging.getLogger().getEffectiveLevel() if level is None else level)
    handler.addFilter(quieter)
    try:
        yield
    finally:
        handler.removeFilter(quieter)
