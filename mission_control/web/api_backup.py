"""`/api/backup`: list, create and delete backups (admin only)."""
from ..verify import annotations
from .http import json_response, read_name, require, require_actor


def backup_list(mc, request):
    require(mc, request, "admin")
    backups = mc.backups.list()
    extra = annotations(mc, backups)  # verified_at, verified_ok, sha256: extra fields only
    return json_response({"backups": [{"name": b.name, "size": b.size, "created_at": b.created_at,
                                       **extra[b.name]} for b in backups],
                          "dir": str(mc.backups.dir)})


def backup_create(mc, request):
    actor = require_actor(mc, request)
    made = mc.backups.create(actor, rate_key=actor.name)
    return json_response({"success": True, "backup": made.to_json()})


def backup_delete(mc, request):
    actor = require_actor(mc, request)
    mc.backups.delete(read_name(request), actor)
    return json_response({"success": True})


ROUTES = [
    ("/api/backup", ["GET"], backup_list),
    ("/api/backup", ["POST"], backup_create),
    ("/api/backup", ["DELETE"], backup_delete),
]
