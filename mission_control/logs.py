"""Logging set-up for the `mission-control` command: the level, and text or JSON lines on stderr."""
import logging
import sys

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = "%(levelname)s %(name)s %(message)s"


def formatter(log_format):
    """The `logging.Formatter` for `log_format`: "text", or "json" for one object per line.

    A JSON object has `time` (ISO 8601, UTC), `level`, `logger`, `message`, every field a record
    was given through ``extra=`` (the event log's `action`, `actor`, `size_bytes`, ...; the access
    log's `method`, `path`, `status`, ...) and, for an exception, `exc_info` as one string.
    """
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter
        return JsonFormatter(JSON_FIELDS, timestamp="time",
                             rename_fields={"levelname": "level", "name": "logger"})
    return logging.Formatter(TEXT_FORMAT)


def configure(config, stream=None):
    """Log at `config.log_level` to `stream` (default: standard error) in `config.log_format`.

    Like `logging.basicConfig`, it does nothing when the root logger already has handlers (an
    embedding application, or pytest, decides where records go).
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(config.log_format))
    logging.basicConfig(level=getattr(logging, config.log_level, logging.INFO), handlers=[handler])
