"""Built-in: one log line per audit event, so the service's own log says what happened and who.

Every audit event (backup, prune, delete, restore, upload, off-site copy, settings change, log-in,
...) becomes one line on the ``mission_control.events`` logger, INFO, or WARNING for a failure or
a refusal: what, to what, the size and duration when the event has them, who, and from where.
With ``MC_LOG_FORMAT=json`` the same facts are also fields of the line's JSON object. Being the
one place these lines come from, it is turned off with ``MC_DISABLE_PLUGINS=event_log``.
"""
import logging

from mission_control import hookimpl, human_size, printable

LOGGER = "mission_control.events"
_WARNING_SUFFIXES = ("_failed", "_refused", "_error")


def fields(event):
    """The facts of an audit `event` for a log line, as a flat dict without empty values.

    :return: `action`, `actor`, `client_ip`, `target`, `backup`, `size_bytes`,
        `duration_seconds`, `reason`, `changes` (settings: key to `{old, new}`, secrets masked).
    """
    detail = event.get("detail") if isinstance(event.get("detail"), dict) else {}
    facts = {"action": event["action"], "actor": event["actor"],
             "client_ip": event.get("ip_address"), "target": event.get("target_id"),
             "backup": detail.get("name"), "size_bytes": detail.get("size"),
             "duration_seconds": detail.get("duration_seconds"), "reason": detail.get("reason"),
             "changes": detail.get("changes")}
    if event.get("action") == "settings_reset" and "key" in detail:
        facts["changes"] = {detail["key"]: {"old": detail.get("old"), "new": detail.get("new")}}
    if facts["backup"] == facts["target"]:
        facts["backup"] = None
    return {key: value for key, value in facts.items() if value is not None}


def describe(facts):
    """One readable line from `fields(...)`, e.g.
    ``backup_create mc-backup-2026-03-04_03-00-00.db (1.2 MiB, 0.35 s) by alice from 10.0.0.7``.
    """
    words = [facts["action"], *(str(facts[k]) for k in ("target", "backup") if k in facts)]
    measures = []
    if isinstance(facts.get("size_bytes"), int):
        measures.append(human_size(facts["size_bytes"]))
    if isinstance(facts.get("duration_seconds"), (int, float)):
        measures.append(f"{facts['duration_seconds']:.2f} s")
    line = " ".join(words) + (f" ({', '.join(measures)})" if measures else "")
    line += f" by {facts['actor']}"
    if "client_ip" in facts:
        line += f" from {facts['client_ip']}"
    if isinstance(facts.get("changes"), dict):
        line += ": " + ", ".join(f"{key} {change.get('old')} -> {change.get('new')}"
                                 for key, change in facts["changes"].items()
                                 if isinstance(change, dict))
    elif "reason" in facts:
        line += f": {facts['reason']}"
    # User names and reasons come from outside: escaped here too, for handlers of an embedding
    # application that format records their own way.
    return printable(line)


@hookimpl(trylast=True)
def audit(event):
    facts = fields(event)
    failed = event["action"].endswith(_WARNING_SUFFIXES)
    logging.getLogger(LOGGER).log(logging.WARNING if failed else logging.INFO, "%s",
                                  describe(facts), extra=facts)
