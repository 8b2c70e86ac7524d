"""`GET /api/backup/diff` (what changed since a backup) and `POST /api/backup/restore/undo`
(revert a partial restore); the partial restore itself is `POST /api/backup/restore` with
`tables` or `rows` (api_restore). Admin only. See docs/partial-restore.md."""
from ..backup.partial.diff import diff
from ..backup.partial.restore import undo_partial
from ..backup.partial.undo_files import TOKEN
from ..errors import ValidationFailed
from .http import json_response, read_body, require_actor
from .openapi_schemas import BACKUP_NAME, array, obj, operation, query_param, ref, response
from .operations import Operation


def backup_diff(mc, request):
    actor = require_actor(mc, request)
    source = request.args.get("from")
    if source is None:
        raise ValidationFailed(["from: is required (a backup's name, or @ and an ISO 8601 "
                                "time)"])
    return json_response(diff(mc, source, request.args.get("to", "live"), actor))


def backup_restore_undo(mc, request):
    actor = require_actor(mc, request)
    return json_response(undo_partial(mc, read_body(request)["token"], actor))


_MOMENT = {"type": "string",
           "pattern": r"^@[1-9]\d{3}-(0[1-9]|1[0-2])-(0[1-9]|1\d|2[0-8])T([01]\d|2[0-3])"
                      r":[0-5]\d:[0-5]\d(\.\d{1,6})?(Z|[+-](0\d|1[0-4]):[0-5]\d)$",
           "description": "@ and an ISO 8601 time with its zone, e.g. @2026-11-27T15:52:56Z"}
_KEY = {"type": ["integer", "string"], "description": "a primary key's value (a list of "
        "values for a key of several columns; a BLOB as hex text)"}
_KEYS = {"oneOf": [_KEY, array(_KEY)]}


def _changes(what):
    return obj(count={"type": "integer", "minimum": 0, "description": what},
               sample={**array(_KEYS), "maxItems": 20, "description": "the first 20 keys, "
                       "in key order"})


SCHEMAS = {
    "DiffTable": obj(
        table={"type": "string"},
        key={**array({"type": "string"}), "description": "the primary key's columns "
             "(`rowid` for a table without one)"},
        schema={**array({"type": "string"}), "description": "how the table's schema differs "
                "between the two sides (a table or column on one side only, another type, "
                "another key); empty: the same"},
        restorable={"type": "boolean", "description": "whether a partial restore may take this "
                    "table (not refused, a primary key, the same schema on both sides)"},
        refused={"type": ["string", "null"], "description": "why not, when it may not"},
        compared={"type": "boolean", "description": "false when the rows could not be "
                  "compared (the table is on one side only, or the keys differ); the three "
                  "counts are null then"},
        inserted={"oneOf": [{"type": "null"}, _changes("rows only in `to`")]},
        updated={"oneOf": [{"type": "null"}, _changes("rows in both whose values differ")]},
        deleted={"oneOf": [{"type": "null"}, _changes("rows only in `from`")]}),
    "Diff": obj(
        **{"from": {"type": "string", "description": "the backup's name, or @ and the moment "
                    "the point-in-time copy holds"},
           "to": {"type": "string", "description": "live, or the other backup's name"}},
        tables=array(ref("DiffTable")),
        totals=obj(inserted={"type": "integer"}, updated={"type": "integer"},
                   deleted={"type": "integer"}),
        duration_seconds={"type": "number"}),
    "PartialTable": obj(
        table={"type": "string"}, key=array({"type": "string"}),
        conflict_check={"type": "string", "description": "the column conflicts are found by "
                        "(updated_at, else created_at), or why there is none"},
        inserted=_changes("rows the restore puts back (deleted since the backup)"),
        updated=_changes("rows the restore sets back to the backup's values"),
        deleted=_changes("rows the restore deletes (added since the backup)"),
        conflicts=_changes("live rows it would overwrite or delete that were written after "
                           "the backup was taken (their updated_at or created_at is later)"),
        optional={"unchanged": {"type": "integer", "description": "requested rows that are "
                                "the same on both sides (rows mode)"}}),
    "PartialRestore": obj(
        dry_run={"type": "boolean", "description": "true: nothing was changed"},
        name={"type": "string"}, tables=array(ref("PartialTable")),
        totals=obj(inserted={"type": "integer"}, updated={"type": "integer"},
                   deleted={"type": "integer"}),
        conflicts={"type": "integer", "description": "how many conflicts (applied only with "
                   "force)"},
        optional={"safety_backup": ref("Backup"),
                  "undo": {"type": "string", "examples": ["2026-12-06_10-00-00-0123456789ab"],
                           "description": "the token of POST /api/backup/restore/undo"}}),
    "Undone": obj(
        undone={"type": "string", "description": "the token"},
        name={"type": ["string", "null"], "description": "the backup the undone restore was "
              "from"},
        tables={"type": "object", "additionalProperties": obj(
            inserted={"type": "integer"}, updated={"type": "integer"},
            deleted={"type": "integer"}), "description": "per table, what the undo did"}),
}

OPERATIONS = [
    Operation("GET", "/api/backup/diff", backup_diff, "diffBackup", operation(
        "What changed between a backup (or a moment, with continuous protection on) and the "
        "live database (or another backup): per table, rows inserted, updated and deleted by "
        "primary key with up to 20 keys each, and schema differences. Read-only on both sides",
        response("The differences", ref("Diff")), 400, 404, 500,
        params=[{**query_param("from", {"anyOf": [BACKUP_NAME, _MOMENT]}, "a backup's name, "
                                "or @ and an ISO 8601 time (point-in-time recovery on)"),
                 "required": True},
                query_param("to", {"anyOf": [{"const": "live"}, BACKUP_NAME],
                                   "default": "live"},
                            "live (the default) or another backup's name")])),
    Operation("POST", "/api/backup/restore/undo", backup_restore_undo, "undoPartialRestore",
              operation(
                  "Revert a partial restore by the token it answered, unless rows it would "
                  "touch changed since (409; nothing is changed then)",
                  response("Undone", ref("Undone")), 400, 404, 409, 413, 500),
              body=obj(token={"type": "string", "pattern": TOKEN.pattern,
                              "description": "the `undo` of a partial restore's answer"})),
]

#: The bodies of `POST /api/backup/restore` that restore only some tables or rows.
RESTORE_BODIES = [
    obj(name=BACKUP_NAME,
        tables={**array({"type": "string", "minLength": 1, "maxLength": 255}),
                "minItems": 1, "description": "restore these tables as the backup has them"},
        optional={"dry_run": {"type": "boolean", "default": False,
                              "description": "only say what would change, and the conflicts"},
                  "force": {"type": "boolean", "default": False,
                            "description": "apply over conflicts"}}),
    obj(name=BACKUP_NAME,
        rows={"type": "object", "minProperties": 1, "additionalProperties": {
            **array({"type": ["integer", "string"]}), "minItems": 1},
            "description": "table: primary keys; restore these rows as the backup has them "
                           "(inserted, updated back, or deleted when not in the backup)"},
        optional={"dry_run": {"type": "boolean", "default": False},
                  "force": {"type": "boolean", "default": False}}),
]
