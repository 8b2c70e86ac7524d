"""`/api/offsite/<target>/backups` and `/fetch`: the copies a target holds, and fetching one back (admin)."""
from ..offsite.codec import REMOTE_PATTERN
from ..offsite.targets import fetch
from ..offsite.targets import find_target
from ..offsite.targets import list_copies
from .http import json_response, read_body, require, require_actor
from .openapi_schemas import STR_OR_NULL, array, obj, operation, ref, response
from .operations import Operation


def offsite_backups(mc, request, target):
    require(mc, request, "admin")
    copies = list_copies(find_target(mc, target))
    return json_response({"backups": [c.to_json() for c in copies]})


def offsite_fetch(mc, request, target):
    actor = require_actor(mc, request)
    body = read_body(request)
    return json_response(fetch(mc, target, body["name"], actor, body.get("identity") or None))


_TARGET = {"name": "target", "in": "path", "required": True, "schema": {"type": "string"},
           "description": "The target's name: dir, s3, or a plugin's own"}
SCHEMAS = {
    "RemoteCopy": obj(name={"type": "string",
                            "examples": ["mc-backup-2026-03-04_03-00-00.db.zst.age"]},
                      size={"type": "integer", "minimum": 0,
                            "description": "bytes stored (compressed, encrypted)"},
                      created_at={"type": "integer", "description": "unix seconds"},
                      encrypted={"type": "boolean"}, compressed={"type": "boolean"},
                      kind={"enum": ["full", "delta"],
                            "description": "full: the whole backup (age -d | zstd -d gives it); "
                                           "delta: an incremental copy, rebuilt from its chain "
                                           "when fetched (its name is its manifest's)"}),
}
OPERATIONS = [
    Operation("GET", "/api/offsite/<target>/backups", offsite_backups, "listOffsiteCopies",
              operation("The copies an off-site target holds, newest first",
                        response("Copies", obj(backups=array(ref("RemoteCopy")))), 404, 502,
                        params=[_TARGET], tag="offsite")),
    Operation("POST", "/api/offsite/<target>/fetch", offsite_fetch, "fetchOffsiteCopy", operation(
        "Fetch a copy back: download, decrypt, decompress, verify like an upload, and keep it "
        "as offsite-<backup name> in the backups folder (restore it with /api/backup/restore)",
        response("Fetched and verified", obj(
            backup=obj(name={"type": "string"}, size={"type": "integer"},
                       created_at={"type": "integer"}, sha256={"type": "string"}),
            sha256_match={"const": True,
                          "description": "both SHA-256s equal the signed record of the copy "
                                         "sent; a copy not in that record, or differing from "
                                         "it, is refused (400)"})),
        400, 404, 413, 501, 502, 507, params=[_TARGET], tag="offsite"),
        body=obj(name={"type": "string", "pattern": REMOTE_PATTERN.pattern},
                 optional={"identity": {
                     **STR_OR_NULL, "description": "age secret key (AGE-SECRET-KEY-1…); "
                                                   "default: the secret setting "
                                                   "offsite.age_identity"}})),
]
