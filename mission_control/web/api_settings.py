"""`/api/settings`: list, change (all or nothing) and reset settings (admin only)."""
from .http import json_response, read_body, require, require_actor
from .openapi_schemas import INT_OR_NULL, STR_OR_NULL, array, obj, operation, ref, response
from .operations import Operation


def settings_list(mc, request):
    require(mc, request, "admin")
    return json_response(mc.settings.listing())


def settings_update(mc, request):
    actor = require_actor(mc, request)
    body = read_body(request)
    updated = mc.settings.update(body["settings"], actor)
    return json_response({"updated": updated, "count": len(updated)})


def settings_reset(mc, request):
    actor = require_actor(mc, request)
    key = read_body(request)["key"]
    default = mc.settings.reset(key, actor)
    return json_response({"reset": key, "default_value": default})


#: `SettingsChange` and `SettingKey` name the running service's settings: `openapi.py` builds them.
SCHEMAS = {
    "Setting": obj(key={"type": "string"}, value={"type": "string"},
                   description={"type": "string"}, category={"type": "string"},
                   updated_by=STR_OR_NULL, updated_at=INT_OR_NULL,
                   is_default={"type": "boolean"}),
    "SecretSetting": obj(key={"type": "string"}, description={"type": "string"},
                         category={"type": "string"},
                         is_set={"type": "boolean", "description": "a value (not empty) is stored"},
                         updated_by=STR_OR_NULL, updated_at=INT_OR_NULL),
}

OPERATIONS = [
    Operation("GET", "/api/settings", settings_list, "listSettings", operation(
        "Every setting (secrets left out), also grouped by category; each secret only as set or "
        "not set (write-only: PUT a value to replace it, \"\" to clear it)",
        response("The settings", obj(
            settings=array(ref("Setting")),
            grouped={"type": "object", "additionalProperties": array(ref("Setting"))},
            secrets=array(ref("SecretSetting")))),
        tag="settings")),
    Operation("PUT", "/api/settings", settings_update, "updateSettings", operation(
        "Change settings, all or nothing", response("Written", obj(
            updated=array({"type": "string"}), count={"type": "integer"})),
        400, 413, tag="settings"), body=obj(settings=ref("SettingsChange"))),
    Operation("DELETE", "/api/settings", settings_reset, "resetSetting", operation(
        "Reset one setting to its default", response("Reset", obj(
            reset={"type": "string"}, default_value={"type": "string"})),
        400, 404, 413, tag="settings"), body=obj(key=ref("SettingKey"))),
]
