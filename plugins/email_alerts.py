"""Built-in mail alerts: a failed or refused backup, a failed off-site copy, health turning to fail.

Off until ``email.smtp_host`` and ``email.to`` are set. One mail per event, with the reason, and
at most one per kind (``backup``, ``offsite``, ``status``) per hour: a backup that fails every
few minutes does not flood the inbox. The health verdict (``GET /api/backup/status``) is
checked after each backup and every few minutes while the service runs; a change is audited as
``health_changed`` and a change *to* ``fail`` is mailed. Every mail sent is audited as
``alert_sent`` (the rate limit reads those, so it holds across restarts and processes); one that
could not be sent after three attempts as ``alert_failed``. Mail goes out from ``mc.outbox``,
never from the request that made the backup. A test mail (``mission-control alerts test``) is
sent at once, whatever the hourly limit.
"""
import smtplib
import ssl
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid

from mission_control import (EMAIL, EMAILS, HOST, SCHEDULER, Actor, BackupRefused,
                             MissionControlError, SettingDef, backup_status, describe_error,
                             hookimpl, printable)

CHANNEL = "email"
RATE_SECONDS = 3600
TIMEOUT = 20
ANSWER = 300  # characters of the server's answer kept


@hookimpl
def register_settings():
    def mail(key, type_, default, description, **kw):
        return SettingDef(f"email.{key}", type_, default, description, "alerts", **kw)
    return [
        mail("smtp_host", "text", "", "SMTP server that sends alert mail (empty turns mail off)",
             max_length=255, kind=HOST),
        mail("smtp_port", "int", "587", "SMTP port (587 for submission with STARTTLS, 25 for "
             "a local relay)", minimum=1, maximum=65535),
        mail("starttls", "bool", "true", "Upgrade the SMTP connection with STARTTLS (certificate "
             "checked) before logging in or sending"),
        mail("username", "text", "", "SMTP login name (empty: send without logging in)",
             max_length=255),
        mail("password", "text", "", "SMTP password", secret=True, max_length=255),
        mail("from", "text", "", "Sender address (empty: the first recipient)", max_length=255,
             kind=EMAIL),
        mail("to", "text", "", "Recipients, comma-separated (empty turns mail off)",
             max_length=2000, kind=EMAILS),
    ]


def mail_config(mc):
    """The settings a mail needs, read once per event; None while mail is off."""
    host = mc.settings.get("email.smtp_host").strip()
    to = [addr for _, addr in getaddresses([mc.settings.get("email.to")]) if "@" in addr]
    if not host or not to:
        return None
    return {"host": host, "port": mc.settings.get("email.smtp_port"),
            "starttls": mc.settings.get("email.starttls"),
            "username": mc.settings.get("email.username"),
            "password": mc.settings.get("email.password"),
            "from": mc.settings.get("email.from").strip() or to[0], "to": to,
            "site": mc.settings.get("general.site_name")}


def build_message(config, subject, lines, now):
    """An `EmailMessage` from `config`'s sender to its recipients; `now` is unix seconds."""
    message = EmailMessage()
    message["Subject"] = f"[{config['site']}] {subject}"
    message["From"] = config["from"]
    message["To"] = ", ".join(config["to"])
    message["Date"] = formatdate(now, usegmt=True)
    message["Message-ID"] = make_msgid(domain="mission-control")
    when = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    message.set_content("\n".join([*lines, f"When: {when}", "",
                                   "Details: GET /api/backup/status and GET /api/audit."]) + "\n")
    return message


class _SMTP(smtplib.SMTP):
    """`smtplib.SMTP` that keeps the server's answer to the message (`smtplib` drops it)."""

    answer = None

    def data(self, msg):
        self.answer = super().data(msg)
        return self.answer


def send_message(config, message):
    """Send `message` through `config`'s SMTP server; the server's answer to it, in words
    (``250 Message accepted``, and any recipient it refused).

    :raises OSError: (smtplib's errors are).
    """
    with _SMTP(config["host"], config["port"], timeout=TIMEOUT) as smtp:
        if config["starttls"]:
            smtp.starttls(context=ssl.create_default_context())
        if config["username"]:
            smtp.login(config["username"], config["password"])
        refused = smtp.send_message(message)
    code, text = smtp.answer or (None, b"")
    answer = f"{code} {text.decode('utf-8', 'replace')}".strip()
    if refused:
        answer += f"; refused: {', '.join(sorted(refused))}"
    return printable(answer)[:ANSWER]


class Channel:
    """The mail channel as `alert_channels` names it: a test sends one mail to every recipient
    now (not rate limited), audited by the host."""

    name = CHANNEL

    def __init__(self, mc, config):
        self.mc = mc
        self.config = config

    def test(self, actor):
        message = build_message(self.config, "Test alert", [
            f"A test of Mission Control's alert mail, asked by {actor}.",
            "Nothing is wrong: mail from this service reaches you.", ""], self.mc.clock())
        return send_message(self.config, message)


@hookimpl
def alert_channels(mc):
    config = mail_config(mc)
    return [Channel(mc, config)] if config else []


def _sent_lately(mc, kind, now):
    rows, _ = mc.audit_store.query(action="alert_sent", since=int(now) - RATE_SECONDS + 1,
                                   limit=1000)
    return any(isinstance(r["detail"], dict) and r["detail"].get("channel") == CHANNEL
               and r["detail"].get("kind") == kind for r in rows)


def _mail(mc, config, actor, kind, subject, lines):
    """Send one alert unless one of its kind went out in the last hour (on the outbox thread)."""
    now = mc.clock()
    if _sent_lately(mc, kind, now):
        return
    message = build_message(config, subject, lines, now)
    try:
        mc.outbox.retry(lambda: send_message(config, message))
    except (OSError, ValueError) as exc:
        if not mc.outbox.cancelled.is_set():  # the service is closing: nothing to write to
            mc.audit.emit("alert_failed", actor, target_type="alert", target_id=CHANNEL,
                          detail={"channel": CHANNEL, "kind": kind, "subject": subject,
                                  "reason": describe_error(exc)})
        return
    mc.audit.emit("alert_sent", actor, target_type="alert", target_id=CHANNEL,
                  detail={"channel": CHANNEL, "kind": kind, "subject": subject,
                          "to": config["to"]})


def _check_status(mc, config, actor):
    """Audit a change of the health verdict, and mail a change to fail (on the outbox thread)."""
    try:
        status = backup_status(mc)
    except MissionControlError as exc:  # e.g. the backups folder is unreadable: that is a fail
        status = {"verdict": "fail", "reasons": [f"health check failed: {exc.message}"]}
    verdict = status["verdict"]
    rows, _ = mc.audit_store.query(action="health_changed", limit=1)
    previous = rows[0]["detail"].get("to") if rows and isinstance(rows[0]["detail"], dict) \
        else None
    if verdict == previous:
        return
    mc.audit.emit("health_changed", actor, target_type="health", target_id=verdict,
                  detail={"from": previous, "to": verdict, "reasons": status["reasons"]})
    if verdict == "fail":
        _mail(mc, config, actor, "status", "Backup health is FAIL",
              ["Backup health changed to fail.", "", "Reasons:",
               *(f"- {reason}" for reason in status["reasons"]), ""])


def _queue(mc, actor, job):
    if not mc.outbox.submit(CHANNEL, job):
        mc.audit.emit("alert_failed", actor, target_type="alert", target_id=CHANNEL,
                      detail={"channel": CHANNEL,
                              "reason": "the alert queue is full or closing; a mail was dropped"})


@hookimpl
def backup_finished(mc, actor, error):
    config = mail_config(mc)
    if config is None:
        return
    if error is not None:
        what = "refused" if isinstance(error, BackupRefused) else "failed"
        lines = [f"A backup was {what}.", "", f"Reason: {error.reason}", f"Asked by: {actor}"]
        _queue(mc, actor, lambda: _mail(mc, config, actor, "backup", f"Backup {what}", lines))
    _queue(mc, actor, lambda: _check_status(mc, config, actor))


@hookimpl
def periodic_check(mc):
    # The verdict also turns to fail with time alone (a backup overdue, an off-site copy late).
    config = mail_config(mc)
    if config is not None:
        _queue(mc, SCHEDULER, lambda: _check_status(mc, config, SCHEDULER))


@hookimpl
def audit(mc, event):
    if event["action"] != "offsite_failed":
        return
    config = mail_config(mc)
    if config is None:
        return
    detail = event["detail"] if isinstance(event["detail"], dict) else {}
    target = detail.get("target") or event["target_id"]
    actor = Actor(event["actor"], event["actor_id"], event["ip_address"], event["user_agent"])
    lines = [f"The off-site copy to {target} failed; the local backup is made.", "",
             f"Reason: {detail.get('reason')}", f"Backup: {detail.get('name')}",
             f"Asked by: {actor}"]
    _queue(mc, actor, lambda: _mail(mc, config, actor, "offsite",
                                    f"Off-site copy to {target} failed", lines))
