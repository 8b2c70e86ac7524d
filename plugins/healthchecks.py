"""Built-in pings to a Healthchecks.io-style monitor when a backup starts, succeeds or fails.

Off until ``healthchecks.url`` is set. Scheduled backups ping ``URL/start`` as they start, then
``URL`` on success or ``URL/fail`` on failure or refusal (Healthchecks.io's convention, which
self-hosted Healthchecks and compatible monitors share); manual backups ping too when
``healthchecks.all_backups`` is on. The monitor raises the alarm when a success is late, so a
service that is down, or a scheduler that is stuck, is noticed as well.

Pings are POSTs with a one-line body (the reason, for a failure) sent from ``mc.outbox``: a dead
or slow monitor never delays nor fails a backup. Each ping is tried three times with short
timeouts; one that never got through is audited as ``alert_failed``, and the first one that gets
through after that as ``alert_sent`` (the channel works again: health stops warning about it).
A test ping (``mission-control alerts test``) goes to ``URL/log``, which does not change the
check's state.
"""
import urllib.request
from urllib.parse import urlsplit, urlunsplit

from mission_control import (SCHEDULER, URL, SettingDef, __version__, alert_channel_failing,
                             describe_error, hookimpl, printable)

CHANNEL = "healthchecks"
MAX_BODY = 10_000  # Healthchecks.io keeps the first 100 kB of a ping's body
ANSWER = 100  # characters of the monitor's answer kept


@hookimpl
def register_settings():
    return [
        SettingDef("healthchecks.url", "text", "",
                   "Ping URL of a Healthchecks.io-style check (https://hc-ping.com/<uuid>); "
                   "/start and /fail are appended for those pings (empty turns pings off)",
                   "alerts", max_length=2048, kind=URL),
        SettingDef("healthchecks.all_backups", "bool", "false",
                   "Ping for manual backups (API, CLI, scripts) too, not only the daily scheduled "
                   "one", "alerts"),
        SettingDef("healthchecks.timeout_seconds", "int", "5",
                   "How long each ping attempt may take (three attempts are made)", "alerts",
                   minimum=1, maximum=60),
    ]


def ping_url(url, suffix):
    """`url` with ``/suffix`` added to its path (query kept); `suffix` "" gives `url` itself.

    :raises ValueError: `url` is not an http(s) URL with a host.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("healthchecks.url must be an http:// or https:// URL")
    if not suffix:
        return urlunsplit(parts)
    return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}/{suffix}"))


def send_ping(url, body, timeout):
    """POST `body` (text) to `url`; what the monitor answered, as ``HTTP 200: OK``.

    :raises OSError: network failure or a non-2xx answer.
    """
    request = urllib.request.Request(
        url, data=body.encode("utf-8", "replace")[:MAX_BODY], method="POST",
        headers={"Content-Type": "text/plain; charset=utf-8",
                 "User-Agent": f"mission-control/{__version__}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # raises on 4xx/5xx
        said = response.read(1024).decode("utf-8", "replace").strip()[:ANSWER]
        return f"HTTP {response.status}" + (f": {printable(said)}" if said else "")


class Channel:
    """The ping channel as `alert_channels` names it: a test goes to ``URL/log``, which
    Healthchecks.io records as a log entry without changing the check's state."""

    name = CHANNEL

    def __init__(self, mc, url):
        self.mc = mc
        self.url = url

    def test(self, actor):
        return send_ping(ping_url(self.url, "log"),
                         f"test ping from Mission Control, asked by {actor}",
                         self.mc.settings.get("healthchecks.timeout_seconds"))


@hookimpl
def alert_channels(mc):
    url = mc.settings.get("healthchecks.url").strip()
    return [Channel(mc, url)] if url else []


def _queue(mc, actor, suffix, body):
    """Queue one ping when pings are on for this backup; the request never waits for it."""
    url = mc.settings.get("healthchecks.url").strip()
    if not url or not (actor == SCHEDULER or mc.settings.get("healthchecks.all_backups")):
        return
    timeout = mc.settings.get("healthchecks.timeout_seconds")
    ping = suffix or "success"

    def deliver():
        try:
            target = ping_url(url, suffix)
            answer = mc.outbox.retry(lambda: send_ping(target, body, timeout))
        except (OSError, ValueError) as exc:
            if not mc.outbox.cancelled.is_set():  # the service is closing: nothing to write to
                mc.audit.emit("alert_failed", actor, target_type="alert", target_id=CHANNEL,
                              detail={"channel": CHANNEL, "ping": ping,
                                      "host": urlsplit(url).hostname,
                                      "reason": describe_error(exc)})
            return
        if alert_channel_failing(mc, CHANNEL):  # it works again: say so, which clears the warn
            mc.audit.emit("alert_sent", actor, target_type="alert", target_id=CHANNEL,
                          detail={"channel": CHANNEL, "ping": ping, "answer": answer})

    if not mc.outbox.submit(CHANNEL, deliver):
        mc.audit.emit("alert_failed", actor, target_type="alert", target_id=CHANNEL,
                      detail={"channel": CHANNEL, "ping": ping,
                              "reason": "the alert queue is full or closing; a ping was dropped"})


@hookimpl(wrapper=True)
def pre_backup(mc, actor, kind):
    # A wrapper runs before every plain implementation, so the start is pinged even when
    # another plugin (the disk guard, say) then refuses the backup. Uploads and pre-restore
    # safety copies ask pre_backup too, but no success or failure ping would follow them.
    if kind == "backup":
        _queue(mc, actor, "start", f"backup started by {actor}")
    return (yield)


@hookimpl
def backup_finished(mc, actor, backup, error):
    if error is None:
        _queue(mc, actor, "", f"{backup.name} made ({backup.size} bytes) by {actor}")
    else:
        _queue(mc, actor, "fail", f"{type(error).__name__}: {error.reason}")
