"""OpenAPI paths and schemas of continuous protection (point-in-time recovery)."""
from .openapi_parts import INT_OR_NULL, STR_OR_NULL, obj, operation, ref, response

_MS_OR_NULL = {**INT_OR_NULL, "description": "unix milliseconds, or null"}

_STATE = dict(
    enabled={"type": "boolean", "description": "the pitr.enabled setting"},
    installed={"type": "boolean", "description": "the Litestream binary is there"},
    running={"type": "boolean", "description": "a `litestream replicate` runs for this "
                                               "database (in any serve process)"},
    pid=INT_OR_NULL, replica=STR_OR_NULL,
    earliest={**_MS_OR_NULL, "description": "oldest moment a restore can reach (unix ms)"},
    latest={**_MS_OR_NULL, "description": "newest moment a restore can reach (unix ms)"},
    lag_seconds={"type": ["number", "null"],
                 "description": "how far the replica is behind the live database (at the time of "
                                "the answer, from the last background check)"},
    checked_at={**_MS_OR_NULL, "description": "when the replica was last checked in the "
                                              "background (unix ms); no request starts a check"},
    last_error=STR_OR_NULL)

SCHEMAS = {
    "Pitr": obj(**_STATE),
    "PitrHealth": obj(**{k: v for k, v in _STATE.items()
                         if k not in ("pid", "replica", "last_error")},
                      problem={**STR_OR_NULL, "description": "why it fails the health verdict, "
                                                             "or null"}),
    "RestoreTimestamp": {
        "type": "string", "examples": ["2026-11-27T15:52:56Z"],
        "description": "ISO 8601 with Z or an offset; must lie in the window of "
                       "GET /api/backup/pitr"},
}

PATHS = {
    "/api/backup/pitr": {"get": operation(
        "Continuous protection (Litestream): whether it runs, the restorable window, the lag",
        response("The state", ref("Pitr")), 500)},
}
