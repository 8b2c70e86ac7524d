"""`/api/backup`: list, create, delete and prune backups (admin only)."""
import json

from ..backup.verify import listing_json
from .http import json_response, json_text_response, read_body, require, require_actor
from .openapi_schemas import (BACKUP_NAME, CREATED_AT, INT_OR_NULL, STR_OR_NULL, array, obj,
                              operation, ref, response)
from .operations import Operation


def backup_list(mc, request):
    require(mc, request, "admin")
    # Written as text: for 10,000 files, no dict per file to build and encode.
    return json_text_response(f'{{"backups":{listing_json(mc, mc.backups.scan())},'
                              f'"dir":{json.dumps(str(mc.backups.dir))}}}')


def backup_create(mc, request):
    actor = require_actor(mc, request)
    made = mc.backups.create(actor, rate_key=actor.name)
    return json_response({"success": True, "backup": made.to_json()})


def backup_delete(mc, request):
    actor = require_actor(mc, request)
    mc.backups.delete(read_body(request)["name"], actor)
    return json_response({"success": True})


def backup_prune(mc, request):
    """`{"dry_run": true|false, "settings"?: {key: value}}`: preview or apply the retention rules;
    `settings` previews proposed values (dry run only) without saving them."""
    actor = require_actor(mc, request)
    body = read_body(request)
    outcome = mc.pruning.run(actor, dry_run=body["dry_run"], proposed=body.get("settings"))
    return json_response({"dry_run": body["dry_run"], **outcome.to_json()})


SCHEMAS = {
    "ListedBackup": obj(
        name={"type": "string"}, size={"type": "integer", "minimum": 0},
        created_at=CREATED_AT,
        optional={"verified_at": {**INT_OR_NULL, "description": "last verification, if the "
                                  "file is unchanged since"},
                  "verified_ok": {"type": ["boolean", "null"]}, "sha256": STR_OR_NULL,
                  "checked_at_creation": {
                      **INT_OR_NULL, "description": "unix seconds: when SQLite's quick_check "
                      "passed as the service wrote this file (a backup or pre-restore safety "
                      "copy), if the file is unchanged since and not verified since; null "
                      "otherwise (a file copied in, changed, uploaded or verified)"}}),
    "PruneOutcome": obj(
        dry_run={"type": "boolean", "description": "true: nothing was deleted"},
        policy={"enum": ["rules", "plugin", "none"],
                "description": "rules: the answer explains each kept backup (the built-in "
                               "retention plugin); plugin: a plugin answered with names only; "
                               "none: no policy answered, nothing is deleted"},
        keep=array(obj(name={"type": "string"}, reasons=array(
            {"type": "string", "examples": ["last 10", "daily 2026-11-20", "weekly 2026-W47",
                                            "within 14d", "just made"]}))),
        delete=array(obj(name={"type": "string"}))),
}

OPERATIONS = [
    Operation("GET", "/api/backup", backup_list, "listBackups", operation(
        "List backups, newest first", response("Every backup in the folder", obj(
            backups=array(ref("ListedBackup")),
            dir={"type": "string", "description": "absolute path of the backups folder"})),
        500)),
    Operation("POST", "/api/backup", backup_create, "createBackup", operation(
        "Make a hot, consistent backup now (then prune to the retention count)",
        response("The backup was made", obj(success={"const": True}, backup=ref("Backup"))),
        409, 429, 500, 507)),
    Operation("DELETE", "/api/backup", backup_delete, "deleteBackup", operation(
        "Delete one backup file", response("Deleted", obj(success={"const": True})),
        400, 404, 413), body=obj(name=BACKUP_NAME)),
    Operation("POST", "/api/backup/prune", backup_prune, "pruneBackups", operation(
        "Apply the retention rules now, or preview them (dry_run), optionally with proposed "
        "settings that are not saved",
        response("What is (or would be) kept, with the reasons, and deleted",
                 ref("PruneOutcome")),
        400, 409, 413, 500), body={"oneOf": [
            obj(dry_run={"const": True, "description": "only say what would be deleted"},
                optional={"settings": {**ref("SettingsChange"), "description":
                                       "proposed values to preview with, not saved"}}),
            obj(dry_run={"const": False, "description": "delete now, by the saved settings"}),
        ]}),
]
