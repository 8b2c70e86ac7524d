"""The OpenAPI 3.1 document of the HTTP API (served at /api/openapi.json), built from the
operations each API module declares (`OPERATIONS`) and their component schemas (`SCHEMAS`)."""
from .. import __version__
from .openapi_schemas import SCHEMAS, SECURED

#: What the request bodies' checks use for the components the document builds from the running
#: service: the settings service checks each key and value itself (for the CLI and config files
#: too, naming each bad key), so a body's check asks only for their shape.
_CHECKED_BY_THE_SERVICE = {
    "SettingsChange": {"type": "object", "minProperties": 1},
    "SettingKey": {"type": "string", "pattern": r"\S", "description": "a setting's key"},
}


def operations(modules):
    """Endpoint -> `Operation`, from each module's `OPERATIONS`."""
    return {f"{module.__name__.rsplit('.', 1)[-1]}.{op.view.__name__}": op
            for module in modules for op in module.OPERATIONS}


def component_schemas(modules):
    """The component schemas the modules declare, and the shared ones (a new dict)."""
    schemas = dict(SCHEMAS)
    for module in modules:
        schemas.update(getattr(module, "SCHEMAS", {}))
    return schemas


def request_components(modules, task_ids):
    """The components request bodies are checked with (`operations.compile_checks`)."""
    return {**component_schemas(modules), **_CHECKED_BY_THE_SERVICE,
            "TaskId": {"enum": list(task_ids)} if task_ids else {"type": "string"}}


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


def build_document(modules, settings=(), task_ids=()):
    """The whole OpenAPI 3.1 document as a dict (a new one each call, safe to change).

    :param modules: the API modules served (`app.API_MODULES`); pages (no `doc`) are left out.
    :param settings: the `SettingDef`s this service knows (built-ins and plugins' own), so the
        document names exactly the keys and values `PUT /api/settings` accepts.
    :param task_ids: the scheduler's task ids (`POST /api/scheduler`).
    """
    paths = {}
    for op in operations(modules).values():
        if op.doc is not None:
            paths.setdefault(op.openapi_path, {})[op.method.lower()] = op.document()
    schemas = component_schemas(modules)
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
