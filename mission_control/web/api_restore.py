"""`POST /api/backup/restore`: restore the live database from a backup while the service runs."""
from ..restore import restore_backup
from .http import json_response, read_name, request_meta, require, session_token


def backup_restore(mc, request):
    user = require(mc, request, "admin")
    name = read_name(request)
    by_key = user.id is None  # the API key lives in the config, not the database: it still works
    result = restore_backup(mc, name, user.username, actor_id=user.id,
                            session_token=None if by_key else session_token(request),
                            **request_meta(mc, request))
    if by_key:
        result["session"]["logged_in"] = True
        result["session"]["message"] = "The API key is unaffected by a restore."
    return json_response(result)


ROUTES = [
    ("/api/backup/restore", ["POST"], backup_restore),
]
