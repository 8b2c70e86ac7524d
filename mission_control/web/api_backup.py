"""`/api/backup`: list, create, delete and prune backups (admin only)."""
from ..errors import ValidationFailed
from ..verify import listing
from .http import json_response, read_json, read_name, require, require_actor


def backup_list(mc, request):
    require(mc, request, "admin")
    return json_response({"backups": listing(mc, mc.backups.scan()), "dir": str(mc.backups.dir)})


def backup_create(mc, request):
    actor = require_actor(mc, request)
    made = mc.backups.create(actor, rate_key=actor.name)
    return json_response({"success": True, "backup": made.to_json()})


def backup_delete(mc, request):
    actor = require_actor(mc, request)
    mc.backups.delete(read_name(request), actor)
    return json_response({"success": True})


def backup_prune(mc, request):
    """`{"dry_run": true|false, "settings"?: {key: value}}`: preview or apply the retention rules;
    `settings` previews proposed values (dry run only) without saving them."""
    actor = require_actor(mc, request)
    body = read_json(request)
    if not isinstance(body, dict):
        raise ValidationFailed(["body: must be a JSON object with dry_run (and settings)"])
    problems = [f"{key}: unknown field" for key in body if key not in ("dry_run", "settings")]
    if not isinstance(body.get("dry_run"), bool):
        problems.append("dry_run: must be true or false")
    if "settings" in body and not (isinstance(body["settings"], dict) and body["settings"]):
        problems.append("settings: must be a non-empty object of key to value")
    if problems:
        raise ValidationFailed(problems)
    outcome = mc.pruning.run(actor, dry_run=body["dry_run"], proposed=body.get("settings"))
    return json_response({"dry_run": body["dry_run"], **outcome.to_json()})


ROUTES = [
    ("/api/backup", ["GET"], backup_list),
    ("/api/backup", ["POST"], backup_create),
    ("/api/backup", ["DELETE"], backup_delete),
    ("/api/backup/prune", ["POST"], backup_prune),
]
