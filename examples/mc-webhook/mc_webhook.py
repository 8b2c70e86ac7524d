"""mc-webhook: a third-party Mission Control plugin that POSTs a JSON notice when a backup fails.

It is a complete example of a plugin: it declares its settings, implements one hook, and is
found by the service through the ``mission_control`` entry-point group in its ``setup.cfg``.
"""
import json
import urllib.request
from urllib.parse import urlsplit

from mission_control import SettingDef, hookimpl

__version__ = "0.1.0"

DEFAULT_EVENTS = "backup_failed,backup_refused,offsite_failed"


@hookimpl
def register_settings():
    return [
        SettingDef("webhook.url", "text", "", "http(s) URL that receives a JSON notice when a "
                   "backup fails (empty turns the webhook off)", "webhook", max_length=2048),
        SettingDef("webhook.events", "text", DEFAULT_EVENTS,
                   "Comma-separated audit actions that trigger a notice", "webhook"),
        SettingDef("webhook.timeout_seconds", "int", "5", "How long to wait for the receiver",
                   "webhook", minimum=1, maximum=60),
    ]


def notice(mc, event):
    """The JSON body sent for `event`."""
    return {"service": "mission-control", "site": mc.settings.get("general.site_name"),
            "event": event["action"], "actor": event["actor"],
            "created_at": event["created_at"], "detail": event["detail"]}


def post_json(url, body, timeout):
    """POST `body` as JSON; raise on a network error or a status other than 2xx."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError("webhook.url must be an http or https URL")
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": f"mc-webhook/{__version__}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # raises on 4xx/5xx
        response.read()


@hookimpl
def audit(mc, event):
    """Audit events are the one place every failure shows up, whoever started the backup.

    Raising here is safe: the host logs it and records a ``plugin_error`` in the other sinks.
    """
    url = mc.settings.get("webhook.url")
    wanted = {a.strip() for a in mc.settings.get("webhook.events").split(",") if a.strip()}
    if url and event["action"] in wanted:
        post_json(url, notice(mc, event), mc.settings.get("webhook.timeout_seconds"))
