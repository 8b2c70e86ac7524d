"""Built-in audit sink: hands every audit event to Python `logging`, and optionally straight to syslog.

With ``audit.syslog.enabled`` on, each event is logged as one JSON message at INFO on the
``mission_control.audit_trail`` logger (route it anywhere with standard logging configuration).
When ``audit.syslog.address`` is set as well (``/dev/log``, ``host:port`` for UDP), the message
is also sent to that syslog daemon with the ``audit.syslog.facility`` facility.
"""
import json
import logging
import logging.handlers

from mission_control import SettingDef, hookimpl

LOGGER = "mission_control.audit_trail"


@hookimpl
def register_settings():
    return [
        SettingDef("audit.syslog.enabled", "bool", "false",
                   "Log every audit event as JSON on the mission_control.audit_trail logger",
                   "audit"),
        SettingDef("audit.syslog.address", "text", "",
                   "Also send audit events to this syslog daemon: a socket path such as /dev/log, "
                   "or host:port (UDP); empty sends them to Python logging only", "audit",
                   max_length=255),
        SettingDef("audit.syslog.facility", "text", "auth",
                   "Syslog facility for audit events (auth, authpriv, daemon, local0..local7, user)",
                   "audit", max_length=20),
    ]


class _StrictSysLogHandler(logging.handlers.SysLogHandler):
    """Raises a failed send instead of printing it, so the host can audit the sink's failure."""

    def handleError(self, record):
        raise  # noqa: PLE0704 - called from the handler's own except block


def parse_address(raw):
    """``/dev/log`` -> the path; ``host:port`` -> ``(host, port)``. :raises ValueError:"""
    if raw.startswith("/"):
        return raw
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("audit.syslog.address must be a socket path or host:port")
    return host.strip("[]"), int(port)


def send_to_syslog(address, facility, message):
    """Send one message to syslog; a handler per event keeps no socket open between events."""
    code = logging.handlers.SysLogHandler.facility_names.get(facility)
    if code is None:
        raise ValueError(f"audit.syslog.facility: unknown facility {facility!r}")
    handler = _StrictSysLogHandler(address=parse_address(address), facility=code)
    handler.ident = "mission-control: "
    try:
        record = logging.LogRecord(LOGGER, logging.INFO, __file__, 0, message, None, None)
        handler.emit(record)
    finally:
        handler.close()


@hookimpl
def audit(mc, event):
    if not mc.settings.get("audit.syslog.enabled"):
        return
    message = json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)
    logging.getLogger(LOGGER).info(message)
    address = mc.settings.get("audit.syslog.address")
    if address:
        send_to_syslog(address, mc.settings.get("audit.syslog.facility"), message)
