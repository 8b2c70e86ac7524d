"""`POST /api/backup/restore`: restore the live database from a backup while the service runs."""
from ..restore import restore_backup
from .http import json_response, read_name, require_actor, session_token


def backup_restore(mc, request):
    actor = require_actor(mc, request)
    name = read_name(request)
    by_key = actor.id is None  # the API key lives in the config, not the database: it still works
    result = restore_backup(mc, name, actor,
                            session_token=None if by_key else session_token(request))
    if by_key:
        result["session"]["logged_in"] = True
        result["session"]["message"] = "The API key is unaffected by a restore."
    return json_response(result)


ROUTES = [
    ("/api/backup/restore", ["POST"], backup_restore),
]
