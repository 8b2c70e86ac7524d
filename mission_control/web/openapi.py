"""The OpenAPI 3.1 document of the HTTP API (served at /api/openapi.json): core paths and the builder."""
from .. import __version__
from . import api_offsite
from . import openapi_policies as policies
from . import openapi_pitr as pitr
from . import openapi_transfer as transfer
from .openapi_ids import assign_ids
from .openapi_parts import (BACKUP_NAME, INT_OR_NULL, SECURED, STR_OR_NULL, array, body, obj,
                            operation, query_param, ref, response)

SCHEMAS = {
    "Error": obj(optional={"details": array({"type": "string"})},
                 error={"type": "string", "description": "A human sentence"}),
    "User": obj(id={**INT_OR_NULL, "description": "null for the API key's user `api`"},
                username={"type": "string"},
                display_name=STR_OR_NULL, role={"enum": ["viewer", "operator", "admin"]}),
    "Backup": obj(name={"type": "string", "examples": ["mc-backup-2026-03-04_03-00-00.db"]},
                  size={"type": "integer", "minimum": 0},
                  created_at={"type": "integer", "description": "unix seconds (file mtime)"}),
    "ListedBackup": obj(
        name={"type": "string"}, size={"type": "integer", "minimum": 0},
        created_at={"type": "integer", "description": "unix seconds (file mtime)"},
        optional={"verified_at": {**INT_OR_NULL, "description": "last verification, if the "
                                  "file is unchanged since"},
                  "verified_ok": {"type": ["boolean", "null"]}, "sha256": STR_OR_NULL}),
    "Setting": obj(key={"type": "string"}, value={"type": "string"},
                   description={"type": "string"}, category={"type": "string"},
                   updated_by=STR_OR_NULL, updated_at=INT_OR_NULL,
                   is_default={"type": "boolean"}),
    "TaskResult": obj(ok={"type": "boolean"}, message=STR_OR_NULL, timestamp=INT_OR_NULL),
    "Task": obj(id={"type": "string"}, name={"type": "string"}, enabled={"type": "boolean"},
                lastRun={**INT_OR_NULL, "description": "unix milliseconds"},
                nextRun={"type": "integer",
                         "description": "unix milliseconds of the schedule's next slot"},
                running={"type": "boolean"},
                lastResult={"anyOf": [ref("TaskResult"), {"type": "null"}]},
                schedule={"type": "string", "description": "5-field cron expression, UTC",
                          "examples": ["0 3 * * *"]},
                description={"type": "string", "examples": ["every day at 03:00 UTC"]},
                runningSince={**INT_OR_NULL, "description": "unix milliseconds (the service's "
                              "clock) when the run going on now started; null when none is"}),
    "AuditEvent": obj(id={"type": "integer"}, action={"type": "string"}, actor={"type": "string"},
                      actor_id=INT_OR_NULL, target_type=STR_OR_NULL,
                      target_id=STR_OR_NULL, detail={}, ip_address=STR_OR_NULL,
                      user_agent=STR_OR_NULL, created_at={"type": "integer"}),
    "Plugin": obj(name={"type": "string"},
                  kind={"enum": ["builtin", "entry_point", "drop_in", "registered"]},
                  version=STR_OR_NULL, hooks=array({"type": "string"})),
    "OffsiteResult": obj(target={"type": "string"}, ok={"type": "boolean"},
                         backup=STR_OR_NULL, location=STR_OR_NULL, message=STR_OR_NULL,
                         detail={}, finished_at=INT_OR_NULL,
                         stored_size={**INT_OR_NULL, "description": "bytes stored off-site "
                                      "(after compression and encryption)"},
                         ratio={"type": ["number", "null"],
                                "description": "stored size / backup size"}),
}

def _scheduler_post():
    op = operation(
        "Run a task now and answer when it is done",
        response("The task ran", obj(ok={"const": True}, message={"type": "string"},
                                     backup={"anyOf": [ref("Backup"), {"type": "null"}]})),
        400, 409, 413, 429, 507, tag="scheduler",
        request=body(obj(task_id=ref("TaskId"))))
    op["responses"]["500"] = response("The task failed", obj(
        ok={"const": False}, message={"type": "string"}, error={"type": "string"}))
    return op


_INT64 = 2**63 - 1  # SQLite integers are 64-bit
_UNIX = {"type": "integer", "minimum": 0, "maximum": _INT64}
_AUDIT_PARAMS = [
    query_param("action", {"type": "string"}, "Only events with this action"),
    query_param("actor", {"type": "string"}, "Only events by this actor"),
    query_param("since", _UNIX, "Unix seconds, inclusive"),
    query_param("until", _UNIX, "Unix seconds, inclusive"),
    query_param("limit", {"type": "integer", "minimum": 1, "maximum": _INT64},
                "Page size (default 100; more than 10000 is cut to 10000)"),
    query_param("offset", {"type": "integer", "minimum": 0, "maximum": _INT64}, "Events to skip"),
]


PATHS = {
    "/api/openapi.json": {"get": operation(
        "This document (public: it describes the API and holds no data)",
        response("The OpenAPI 3.1 document", {"type": "object"}), public=True, tag="meta")},
    "/api/auth/login": {"post": operation(
        "Log in; sets the `mc-session` cookie (HttpOnly, SameSite=Strict, 7 days)",
        response("Logged in", obj(user=ref("User")),
                 {"Set-Cookie": "mc-session=<token> (or __Host-mc-session over HTTPS)"}),
        400, 401, 403, 413, 429, public=True, tag="auth",
        request=body(obj(username={"type": "string", "pattern": r"\S"},
                         password={"type": "string", "minLength": 1})))},
    "/api/auth/logout": {"post": operation(
        "Log out: ends the session if there is one and clears the cookie",
        response("Always ok", obj(ok={"const": True})), 403, public=True, tag="auth")},
    "/api/auth/me": {"get": operation(
        "Who am I (any role)", response("The current user", obj(user=ref("User"))), tag="auth")},
    "/api/backup": {
        "get": operation("List backups, newest first", response("Every backup in the folder", obj(
            backups=array(ref("ListedBackup")),
            dir={"type": "string", "description": "absolute path of the backups folder"})),
            500),
        "post": operation(
            "Make a hot, consistent backup now (then prune to the retention count)",
            response("The backup was made", obj(success={"const": True}, backup=ref("Backup"))),
            409, 429, 500, 507),
        "delete": operation(
            "Delete one backup file", response("Deleted", obj(success={"const": True})),
            400, 404, 413, request=body(obj(name=BACKUP_NAME))),
    },
    "/api/settings": {
        "get": operation("Every setting (secrets left out), also grouped by category",
                         response("The settings", obj(
                             settings=array(ref("Setting")),
                             grouped={"type": "object",
                                      "additionalProperties": array(ref("Setting"))})),
                         tag="settings"),
        "put": operation(
            "Change settings, all or nothing", response("Written", obj(
                updated=array({"type": "string"}), count={"type": "integer"})),
            400, 413, tag="settings", request=body(obj(settings=ref("SettingsChange")))),
        "delete": operation(
            "Reset one setting to its default", response("Reset", obj(
                reset={"type": "string"}, default_value={"type": "string"})),
            400, 404, 413, tag="settings",
            request=body(obj(key=ref("SettingKey")))),
    },
    "/api/scheduler": {
        "get": operation("The scheduled tasks and their state",
                         response("Tasks", obj(tasks=array(ref("Task")))), tag="scheduler"),
        "post": _scheduler_post(),
    },
    "/api/audit": {"get": operation("The audit trail, newest first, filtered and paged",
                                    response("A page of events", obj(
                                        events=array(ref("AuditEvent")),
                                        total={"type": "integer"}, limit={"type": "integer"},
                                        offset={"type": "integer"})),
                                    400, params=_AUDIT_PARAMS, tag="audit")},
    "/api/plugins": {"get": operation("The loaded plugins", response("Plugins", obj(
        plugins=array(ref("Plugin")), blocked=array({"type": "string"}))), tag="plugins")},
    "/api/offsite": {"get": operation("The last off-site copy result per target", response(
        "Targets", obj(targets=array(ref("OffsiteResult")), verify_key={
            **STR_OR_NULL, "description": "the Ed25519 key (ed25519:…) that verifies this "
            "service's signed records of its off-site copies; keep it with the age identity "
            "(null until the first copy or start)"})), tag="plugins")},
}


def setting_value_schema(definition):
    """What `PUT /api/settings` accepts for one setting (`SettingDef`)."""
    if definition.type == "bool":
        return {"anyOf": [{"type": "boolean"}, {"enum": ["true", "false"]}]}
    if definition.type == "int":
        bounds = {"minimum": definition.minimum, "maximum": definition.maximum}
        return {"type": "integer", **{k: v for k, v in bounds.items() if v is not None},
                "description": "a whole number (a string of digits is accepted too)"}
    if definition.choices is not None:
        return {"enum": list(definition.choices)}
    if definition.kind is not None:
        kind = definition.kind
        return {"type": "string", "maxLength": definition.max_length,
                "pattern": kind.schema_pattern(optional=definition.default == ""),
                "x-kind": kind.name, "description": kind.must +
                (' ("" turns it off)' if definition.default == "" else "")}
    if definition.pattern is not None:
        return {"type": "string", "maxLength": definition.max_length,
                "pattern": definition.pattern}
    return {"type": "string", "maxLength": definition.max_length,
            "pattern": "^[^\\x00-\\x08\\x0a-\\x1f\\x7f-\\x9f\\u2028\\u2029]*$",
            "description": "printable text (tabs allowed)"}


def build_document(settings=(), task_ids=()):
    """The whole OpenAPI 3.1 document as a dict (a new one each call, safe to change).

    :param settings: the `SettingDef`s this service knows (built-ins and plugins' own), so the
        document names exactly the keys and values `PUT /api/settings` accepts.
    :param task_ids: the scheduler's task ids (`POST /api/scheduler`).
    """
    # Copies down to each operation: `assign_ids` writes into them, never into the module tables.
    paths = {path: {method: dict(op) for method, op in ops.items()} for path, ops in
             {**PATHS, **transfer.PATHS, **api_offsite.PATHS, **policies.PATHS,
              **pitr.PATHS}.items()}
    assign_ids(paths)
    schemas = {**SCHEMAS, **transfer.SCHEMAS, **api_offsite.SCHEMAS, **policies.SCHEMAS,
               **pitr.SCHEMAS}
    settable = {d.key: setting_value_schema(d) for d in settings}
    schemas["SettingKey"] = {"enum": sorted(d.key for d in settings)} if settings else \
        {"type": "string"}
    schemas["SettingsChange"] = {
        "type": "object", "minProperties": 1, "properties": settable,
        "additionalProperties": False, "description": "key to value; all or nothing"}
    schemas["TaskId"] = {"enum": list(task_ids)} if task_ids else {"type": "string"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Mission Control backup service", "version": __version__,
                 "description": "Hot, consistent, audited backups of Mission Control's SQLite "
                                "database. Every endpoint is admin-only unless it says otherwise."},
        "security": SECURED,
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "mc-session",
                               "description": "Session from POST /api/auth/login "
                                              "(`__Host-mc-session` over HTTPS)"},
                "apiKeyAuth": {"type": "apiKey", "in": "header", "name": "x-api-key",
                               "description": "The global API_KEY; acts as the admin `api`"},
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "The global API_KEY as `Authorization: Bearer`; "
                                              "MC_METRICS_TOKEN too, for GET /metrics and "
                                              "GET /api/backup/status only"},
            },
        },
    }
