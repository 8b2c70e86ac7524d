"""`POST /api/alerts/test` (admin): a test ping and a test mail through each configured channel."""
from .. import alert_channels
from .http import json_response, require_actor
from .openapi_schemas import array, obj, operation, response
from .operations import Operation


def test(mc, request):
    """Send a test through every configured alert channel now; each one's answer."""
    actor = require_actor(mc, request)
    results = alert_channels.test_all(mc, actor)
    return json_response({"ok": bool(results) and all(r["ok"] for r in results),
                          "channels": results})


SCHEMAS = {
    "AlertTest": obj(
        ok={"type": "boolean", "description": "every channel answered (false when none is "
            "configured: nothing was tested)"},
        channels=array(obj(
            channel={"type": "string", "examples": ["healthchecks", "email"]},
            ok={"type": "boolean"},
            answer={"type": "string", "description": "what the receiver answered (\"HTTP 200: "
                    "OK\", \"250 Message accepted\"), or why it could not be reached; never a "
                    "secret or a host path"}))),
}

OPERATIONS = [
    Operation("POST", "/api/alerts/test", test, "testAlerts", operation(
        "Send a test ping and a test mail through each configured alert channel and say what "
        "each answered (one attempt each; audited as alert_sent or alert_failed, so a channel "
        "that answers clears its warning)",
        response("Each channel's answer (200 even when one failed: see ok)", {
            "$ref": "#/components/schemas/AlertTest"}),
        tag="health")),
]
