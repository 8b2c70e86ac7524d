"""`GET /api/backup/pitr`: continuous protection's state and restorable window (admin)."""
from ..backup.point_in_time import status
from .http import json_response, require
from .openapi_schemas import INT_OR_NULL, STR_OR_NULL, obj, operation, ref, response
from .operations import Operation


def pitr_status(mc, request):
    require(mc, request, "admin")
    return json_response(status(mc))


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

_SEALING = dict(
    sealed={"type": "boolean", "description": "the replica is not a local folder, so every file "
                                              "is age-encrypted before it is uploaded"},
    staging_bytes={**INT_OR_NULL, "description": "bytes in the local staging folder Litestream "
                                                 "writes before sealing (null: not sealed)"},
    seal_error={**STR_OR_NULL, "description": "why the sealed stream cannot run (nothing "
                                              "streams then), or null"},
    sealing={"type": ["object", "null"], "description": "a sealed stream's uploads: `lock` "
             "(mode or null), `no_delete`, `held` (deletions a lock refuses, retried from "
             "`held_until`, unix ms), `kept_remote` (deleted here, kept in the bucket: "
             "no_delete), `unsealed` (left in the staging folder at the last stop), "
             "`plaintext_objects` (an unsealed setup's, left in place), `resealed` (found at "
             "start not as sealed, by size, and sealed again), `mismatched` (such objects the "
             "storage would not replace: reported), `ledger_error` (why the record of the "
             "sealed sizes could not be written, or null: sealing goes on); null: not sealed"},
    seal_warning={**STR_OR_NULL, "description": "what to look at (plaintext objects, a lock "
                  "the bucket cannot hold, a ledger that cannot be written, an age identity that cannot restore the stream), "
                  "or null"})

SCHEMAS = {
    "Pitr": obj(**_STATE, **_SEALING),
    "PitrHealth": obj(**{k: v for k, v in _STATE.items()
                         if k not in ("pid", "replica", "last_error")},
                      problem={**STR_OR_NULL, "description": "why it fails the health verdict, "
                                                             "or null"},
                      warning={**STR_OR_NULL, "description": "why it warns (a sealed stream's "
                                                             "seal_warning), or null"}),
}

OPERATIONS = [
    Operation("GET", "/api/backup/pitr", pitr_status, "getPitrStatus", operation(
        "Continuous protection (Litestream): whether it runs, the restorable window, the lag",
        response("The state", ref("Pitr")), 500)),
]
