"""The OpenAPI parts of retention and schedules: pruning (and its preview), the schedule preview."""
from .openapi_parts import array, body, obj, operation, ref, response

SCHEMAS = {
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
    "SchedulePreview": obj(
        schedule={"type": "string", "description": "the expression, fields single-spaced",
                  "examples": ["0 3 * * *"]},
        description={"type": "string", "examples": ["every day at 03:00 UTC"]},
        next=array({"type": "integer", "description": "unix milliseconds"})),
}

PATHS = {
    "/api/backup/prune": {"post": operation(
        "Apply the retention rules now, or preview them (dry_run), optionally with proposed "
        "settings that are not saved",
        response("What is (or would be) kept, with the reasons, and deleted",
                 ref("PruneOutcome")),
        400, 409, 413, 500,
        request=body({"oneOf": [
            obj(dry_run={"const": True, "description": "only say what would be deleted"},
                optional={"settings": {**ref("SettingsChange"), "description":
                                       "proposed values to preview with, not saved"}}),
            obj(dry_run={"const": False, "description": "delete now, by the saved settings"}),
        ]}))},
    "/api/scheduler/preview": {"get": operation(
        "Check a cron schedule: its description and next three run times (UTC)",
        response("The schedule is valid", ref("SchedulePreview")), 400, tag="scheduler",
        params=[{"name": "schedule", "in": "query", "required": True,
                 "schema": {"type": "string"},
                 "description": "5-field cron expression, UTC, at most every 5 minutes"}])},
}
