"""`POST /api/backup/restore`: restore the live database from a backup, or to a moment in time
(`{"timestamp": ...}`, with point-in-time recovery on), while the service runs."""
from ..backup.point_in_time import restore_at
from ..backup.partial.restore import restore_partial
from ..backup.restore import restore_backup
from .api_partial import RESTORE_BODIES
from .http import json_response, read_body, require_actor, session_token
from .openapi_schemas import BACKUP_NAME, INT_OR_NULL, array, obj, operation, ref, response
from .operations import Operation


def backup_restore(mc, request):
    actor = require_actor(mc, request)
    body = read_body(request)
    if "tables" in body or "rows" in body:
        return json_response(restore_partial(
            mc, body["name"], actor, tables=body.get("tables"), rows=body.get("rows"),
            dry_run=body.get("dry_run", False), force=body.get("force", False)))
    by_key = actor.id is None  # the API key lives in the config, not the database: it still works
    token = None if by_key else session_token(request)
    keep_settings = body.get("keep_settings", True)
    if "timestamp" in body:
        result = restore_at(mc, body["timestamp"], actor, session_token=token,
                            keep_settings=keep_settings)
    else:
        result = restore_backup(mc, body["name"], actor, session_token=token,
                                keep_settings=keep_settings)
    if by_key:
        result["session"]["logged_in"] = True
        result["session"]["message"] = "The API key is unaffected by a restore."
    return json_response(result)


_STRINGS = array({"type": "string"})
_KEEP_SETTINGS = {"keep_settings": {
    "type": "boolean", "default": True,
    "description": "keep the live protection settings (general.auto_backup*, *retention*, "
                   "off-site, every plugin setting), scheduler state and off-site records; "
                   "false restores them from the backup too"}}

SCHEMAS = {
    "Restore": obj(
        success={"const": True},
        restored=obj(name={"type": "string"}, sha256={"type": "string"},
                     schema_version=INT_OR_NULL, migrated_to={"type": "integer"},
                     optional={"timestamp": {"type": "string", "description":
                                             "the moment asked for (point in time)"},
                               "restored_to": {"type": "string", "description":
                                               "the moment the restored data is from, at or "
                                               "before `timestamp` (a sealed stream keeps "
                                               "Litestream's compaction steps)"},
                               "skipped": {"type": "array", "description":
                                           "files of a sealed stream the restore went around "
                                           "(not decryptable, not signed by a trusted key, "
                                           "altered) or left out (a reason beginning `first "
                                           "stored`: uploaded too long after the moment to be "
                                           "trusted for it; `restored_to` is then earlier "
                                           "than what the stream holds)",
                                           "items": obj(key={"type": "string"},
                                                        reason={"type": "string"})}}),
        safety_backup=ref("Backup"),
        session=obj(logged_in={"type": "boolean"}, admins=_STRINGS, message={"type": "string"}),
        kept_settings={**_STRINGS, "description": "the protection settings whose live value "
                       "differed from the backup's and was kept (empty with keep_settings false)"}),
    "RestoreTimestamp": {
        "type": "string", "examples": ["2026-11-27T15:52:56Z"],
        "description": "ISO 8601 with Z or an offset; must lie in the window of "
                       "GET /api/backup/pitr"},
}

OPERATIONS = [
    Operation("POST", "/api/backup/restore", backup_restore, "restoreBackup", operation(
        "Restore the live database from a backup (`name`), or to a moment (`timestamp`, with "
        "continuous protection on), after a safety backup, while the service runs (a 500 says "
        "whether the data was replaced); or only some `tables` or `rows` of a backup "
        "(`dry_run` first: what would change, and the conflicts), answering an `undo` token",
        response("Restored (PartialRestore: only some tables or rows)",
                 {"oneOf": [ref("Restore"), ref("PartialRestore")]}),
        400, 404, 409, 413, 500, 507),
        # The body's `timestamp`, `tables`, `rows` or `name` picks its shape: what is restored.
        body={"oneOf": [obj(name=BACKUP_NAME, optional=_KEEP_SETTINGS),
                        obj(timestamp=ref("RestoreTimestamp"), optional=_KEEP_SETTINGS),
                        *RESTORE_BODIES]}),
]
