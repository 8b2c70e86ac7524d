"""Alert channels (pings, mail): which are configured, whether each works, and a test through each.

A channel is configured when its plugin names it (hook `alert_channels`). Whether it works comes
from the audit trail, so every process tells the same: its newest delivery, ``alert_sent`` or
``alert_failed`` (target ``alert``/<channel>), says whether it works now, and its ``alert_failed``
events are counted for ``mission_control_alert_failures_total``.
"""
import json
import logging

from .errors import describe_error
from .logs import printable

log = logging.getLogger(__name__)

SENT = "alert_sent"
FAILED = "alert_failed"
#: The longest answer kept from a receiver (a test's result, the audit event).
MAX_ANSWER = 300


def configured(mc):
    """`{name: channel}` of every alert channel a plugin names right now (first one wins)."""
    found = {}
    for answer in mc.hooks.alert_channels():
        for item in answer or ():
            name = getattr(item, "name", None)
            if not isinstance(name, str) or not name:
                log.warning("an alert_channels answer has no name; ignored: %r", item)
                continue
            found.setdefault(name, item)
    return found


def deliveries(db):
    """`{channel: {"ok", "at", "reason", "failures"}}` for every channel that ever delivered or
    failed: its newest delivery's outcome, when it was and (failed) why, and its failures."""
    found = {}
    for row in db.query(
            "SELECT target_id, action, created_at, detail FROM audit_log WHERE id IN ("
            " SELECT MAX(id) FROM audit_log WHERE action IN (?, ?) AND target_type = 'alert'"
            " GROUP BY target_id)", (SENT, FAILED)):
        try:
            detail = json.loads(row["detail"]) if row["detail"] else {}
        except ValueError:
            detail = {}
        reason = detail.get("reason") if isinstance(detail, dict) else None
        found[row["target_id"]] = {"ok": row["action"] == SENT, "at": row["created_at"],
                                   "reason": None if row["action"] == SENT else reason,
                                   "failures": 0}
    for row in db.query("SELECT target_id, COUNT(*) AS n FROM audit_log WHERE action = ?"
                        " AND target_type = 'alert' GROUP BY target_id", (FAILED,)):
        found.setdefault(row["target_id"], {"ok": False, "at": None, "reason": None})
        found[row["target_id"]]["failures"] = row["n"]
    return found


def status(mc, for_monitor=False):
    """Each configured channel, by name: `{"channel", "ok", "last_at", "failures", "problem"}`.

    `ok` is None before its first delivery; `problem` is set while its newest delivery failed.
    :param for_monitor: leave the receiver's error text out of `problem` (it may name a host).
    """
    names = sorted(configured(mc))
    seen = deliveries(mc.db)
    channels = []
    for name in names:
        last = seen.get(name) or {"ok": None, "at": None, "reason": None, "failures": 0}
        problem = None
        if last["ok"] is False:
            problem = f"alert channel {name} is failing: its last delivery did not get through"
            if last["reason"] and not for_monitor:
                problem += f" ({last['reason']})"
        channels.append({"channel": name, "ok": last["ok"], "last_at": last["at"],
                         "failures": last["failures"], "problem": problem})
    return channels


def test_all(mc, actor):
    """Send a test through every configured channel, now; audit and return each one's answer.

    :return: `[{"channel", "ok", "answer"}]` by channel name (empty when none is configured).
        Each result is audited as ``alert_sent`` or ``alert_failed`` (detail ``kind: test``), so
        a test that gets through clears a failing channel's warning, and one that fails sets it.
    """
    results = []
    for name, channel in sorted(configured(mc).items()):
        try:
            answer, ok = channel.test(actor), True
        except Exception as exc:  # noqa: BLE001 - a receiver's failure is the answer
            answer, ok = describe_error(exc), False
        answer = printable(answer if answer is not None else "")[:MAX_ANSWER]
        if ok:
            mc.audit.emit("alert_sent", actor, target_type="alert", target_id=name,
                          detail={"channel": name, "kind": "test", "answer": answer})
        else:
            mc.audit.emit("alert_failed", actor, target_type="alert", target_id=name,
                          detail={"channel": name, "kind": "test", "reason": answer})
        results.append({"channel": name, "ok": ok, "answer": answer})
    return results


def failing(mc, channel):
    """Whether `channel`'s newest delivery failed (a plugin audits its next success then)."""
    last = deliveries(mc.db).get(channel)
    return bool(last) and last["ok"] is False
