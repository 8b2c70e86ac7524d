"""`/api/settings`: list, change (all or nothing) and reset settings (admin only)."""
from ..errors import ValidationFailed
from .http import json_response, read_object, require, require_actor


def settings_list(mc, request):
    require(mc, request, "admin")
    return json_response(mc.settings.listing())


def settings_update(mc, request):
    actor = require_actor(mc, request)
    body = read_object(request, ("settings",))
    updated = mc.settings.update(body["settings"], actor)
    return json_response({"updated": updated, "count": len(updated)})


def settings_reset(mc, request):
    actor = require_actor(mc, request)
    key = read_object(request, ("key",))["key"]
    if not isinstance(key, str) or not key.strip():
        raise ValidationFailed(["key: must be a non-empty string"])
    default = mc.settings.reset(key, actor)
    return json_response({"reset": key, "default_value": default})


ROUTES = [
    ("/api/settings", ["GET"], settings_list),
    ("/api/settings", ["PUT"], settings_update),
    ("/api/settings", ["DELETE"], settings_reset),
]
