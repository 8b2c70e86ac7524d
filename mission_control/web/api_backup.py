"""`/api/backup`: list, create and delete backups (admin only)."""
from ..verify import annotations
from .http import json_response, read_name, request_meta, require


def backup_list(mc, request):
    require(mc, request, "admin")
    backups = mc.backups.list()
    extra = annotations(mc, backups)  # verified_at, verified_ok, sha256: extra fields only
    return json_response({"backups": [{**b.to_json(), **extra[b.name]} for b in backups],
                          "dir": str(mc.backups.dir)})


def backup_create(mc, request):
    user = require(mc, request, "admin")
    made = mc.backups.create(user.username, actor_id=user.id, rate_key=user.username,
                             **request_meta(mc, request))
    return json_response({"success": True, "backup": made.to_json()})


def backup_delete(mc, request):
    user = require(mc, request, "admin")
    mc.backups.delete(read_name(request), user.username, actor_id=user.id, **request_meta(mc, request))
    return json_response({"success": True})


ROUTES = [
    ("/api/backup", ["GET"], backup_list),
    ("/api/backup", ["POST"], backup_create),
    ("/api/backup", ["DELETE"], backup_delete),
]
