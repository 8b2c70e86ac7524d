"""`POST /api/backup/restore`: restore the live database from a backup, or to a moment in time
(`{"timestamp": ...}`, with point-in-time recovery on), while the service runs."""
from ..errors import ValidationFailed
from ..point_in_time import restore_at
from ..restore import restore_backup
from .http import check_object, json_response, read_json, require_actor, session_token

_KEEP = ("keep_settings",)


def backup_restore(mc, request):
    actor = require_actor(mc, request)
    body = read_json(request)
    by_key = actor.id is None  # the API key lives in the config, not the database: it still works
    token = None if by_key else session_token(request)
    # The body is read once; its `timestamp` key picks which of the two shapes it must have.
    if isinstance(body, dict) and "timestamp" in body:
        body = check_object(body, ("timestamp",), optional=_KEEP)
        result = restore_at(mc, body["timestamp"], actor, session_token=token,
                            keep_settings=_keep_settings(body))
    else:
        body = check_object(body, ("name",), "a name", optional=_KEEP)
        result = restore_backup(mc, body["name"], actor, session_token=token,
                                keep_settings=_keep_settings(body))
    if by_key:
        result["session"]["logged_in"] = True
        result["session"]["message"] = "The API key is unaffected by a restore."
    return json_response(result)


def _keep_settings(body):
    """The optional `keep_settings` flag (default true). :raises ValidationFailed: not a bool."""
    keep = body.get("keep_settings", True)
    if not isinstance(keep, bool):
        raise ValidationFailed(["keep_settings: must be true or false"])
    return keep


ROUTES = [
    ("/api/backup/restore", ["POST"], backup_restore),
]
