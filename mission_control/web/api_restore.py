"""`POST /api/backup/restore`: restore the live database from a backup, or to a moment in time
(`{"timestamp": ...}`, with point-in-time recovery on), while the service runs."""
from ..point_in_time import restore_at
from ..restore import restore_backup
from .http import json_response, read_json, read_name, read_object, require_actor, session_token


def backup_restore(mc, request):
    actor = require_actor(mc, request)
    body = read_json(request)
    by_key = actor.id is None  # the API key lives in the config, not the database: it still works
    token = None if by_key else session_token(request)
    if isinstance(body, dict) and "timestamp" in body:
        timestamp = read_object(request, ("timestamp",), "a name or a timestamp")["timestamp"]
        result = restore_at(mc, timestamp, actor, session_token=token)
    else:
        result = restore_backup(mc, read_name(request), actor, session_token=token)
    if by_key:
        result["session"]["logged_in"] = True
        result["session"]["message"] = "The API key is unaffected by a restore."
    return json_response(result)


ROUTES = [
    ("/api/backup/restore", ["POST"], backup_restore),
]
