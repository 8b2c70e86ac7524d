"""Logging set-up for the `mission-control` command: the level, and text or JSON lines on stderr."""
import logging
import re
import sys
from contextlib import contextmanager

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = "%(levelname)s %(name)s %(message)s"
#: What a text record's lines after its first (a traceback) start with: a line that starts with
#: anything else is always the start of a record.
CONTINUATION = "  "
#: Characters that could start a fake log line, rewrite one on a terminal or hide text: C0 and C1
#: controls (line feed, carriage return, escape, NEL...), DEL, Unicode's line and paragraph
#: separators and its bidirectional overrides.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match):
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value):
    """`str(value)` with every character that could fake a line or hide text written as an
    escape (a line feed as ``\\x0a``, U+2028 as ``\\u2028``): safe to put in one log line."""
    return _UNPRINTABLE.sub(_escape, str(value))


class TextFormatter(logging.Formatter):
    """`logging.Formatter` whose records no foreign string can split or forge.

    Messages carry text from outside (a remote server's error, a user name, a file name): it is
    written on the record's one line with its control characters escaped (`printable`). A
    traceback keeps its lines, each escaped the same way and indented by `CONTINUATION`, so only
    our own records start at the left margin.
    """

    def format(self, record):
        record.message = printable(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        text = printable(self.formatMessage(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        for block in (record.exc_text, record.stack_info and self.formatStack(record.stack_info)):
            if block:
                text += "".join(f"\n{CONTINUATION}{printable(line)}"
                                for line in block.split("\n"))
        return text


def formatter(log_format):
    """The `logging.Formatter` for `log_format`: "text" (`TextFormatter`), or "json" for one
    object per line.

    A JSON object has `time` (ISO 8601, UTC), `level`, `logger`, `message`, every field a record
    was given through ``extra=`` (the event log's `action`, `actor`, `size_bytes`, ...; the access
    log's `method`, `path`, `status`, ...) and, for an exception, `exc_info` as one string. JSON
    escapes every control character and, as ASCII, every other non-ASCII one, so a JSON line
    cannot be split either.
    """
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter
        return JsonFormatter(JSON_FIELDS, timestamp="time",
                             rename_fields={"levelname": "level", "name": "logger"})
    return TextFormatter(TEXT_FORMAT)


class Handler(logging.StreamHandler):
    """`logging.StreamHandler` that can, for a while, print its records through a live display's
    console (rich prints them above its progress bars instead of through them).

    :param tracebacks: print a record's traceback; the CLI leaves them to --debug.
    """

    def __init__(self, stream=None, tracebacks=True):
        super().__init__(stream)
        self.tracebacks = tracebacks
        self._console = None

    def format(self, record):
        if record.exc_info and not self.tracebacks:
            record = logging.makeLogRecord({**record.__dict__, "exc_info": None,
                                            "exc_text": None})
        return super().format(record)

    @contextmanager
    def through(self, console):
        """Print each record with `console.print` while the block runs."""
        self._console = console
        try:
            yield
        finally:
            self._console = None

    def emit(self, record):
        console = self._console
        if console is None:
            super().emit(record)
            return
        try:
            console.print(self.format(record), markup=False, highlight=False, emoji=False,
                          soft_wrap=True)
        except Exception:  # noqa: BLE001 - logging's own rule: a failed record never raises
            self.handleError(record)


def configure(config, stream=None, tracebacks=True):
    """Log at `config.log_level` to `stream` (default: standard error) in `config.log_format`,
    with the tracebacks of records that have one unless `tracebacks` is false.

    Like `logging.basicConfig`, it does nothing when the root logger already has handlers (an
    embedding application, or pytest, decides where records go).

    :return: the `Handler` installed, or None when there already were handlers.
    """
    root = logging.getLogger()
    if root.handlers:
        return None
    handler = Handler(stream or sys.stderr, tracebacks)
    handler.setFormatter(formatter(config.log_format))
    logging.basicConfig(level=getattr(logging, config.log_level, logging.INFO), handlers=[handler])
    return handler
