"""Helpers that build OpenAPI 3.1 schemas, responses and operations, and the component schemas
shared by several API areas (each area keeps its own beside its operations)."""

JSON = "application/json"
SECURED = [{"cookieAuth": []}, {"apiKeyAuth": []}, {"bearerAuth": []}]
INT_OR_NULL = {"type": ["integer", "null"]}
STR_OR_NULL = {"type": ["string", "null"]}


def obj(optional=None, extra=False, **props):
    """A JSON object schema: `props` are its properties, all required; `optional` ones are not."""
    schema = {"type": "object", "properties": {**props, **(optional or {})},
              "required": list(props)}
    if not extra:
        schema["additionalProperties"] = False
    return schema


def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def array(items):
    return {"type": "array", "items": items}


def body(schema, required=True):
    return {"required": required, "content": {JSON: {"schema": schema}}}


def response(description, schema=None, headers=None):
    out = {"description": description}
    if schema is not None:
        out["content"] = {JSON: {"schema": schema}}
    if headers:
        out["headers"] = {name: {"description": text, "schema": {"type": "string"}}
                          for name, text in headers.items()}
    return out


def error(description, headers=None):
    return response(description, ref("Error"), headers)


#: A listed file's `created_at` (`mission_control.backup.names.created_at`).
CREATED_AT = {"type": "integer", "description": "unix seconds: the UTC time in a name the "
              "service made (mc-backup-, pre-restore-, uploaded-, offsite-), else the file's "
              "mtime (a copy keeps its name's time)"}
RETRY = {"Retry-After": "Seconds to wait before trying again"}
#: Answers any endpoint can give, by status, so each operation lists only the ones that apply.
COMMON = {
    400: error("Bad request: the body is missing, not JSON, or fails validation (`details`)"),
    401: error("Authentication required: no or unknown session cookie or API key"),
    403: error("The role is too low (admin required), or a cross-site request "
               "(CSRF origin mismatch)"),
    404: error("Not found"),
    409: error("A backup is already in progress", RETRY),
    413: error("Request body too large (refused before it is read)"),
    429: error("Too many requests: rate limit exceeded", RETRY),
    500: error("The operation failed; the reason is in the audit trail and the log"),
    501: error("Not available: an optional extra is not installed"),
    502: error("The off-site target's storage could not be read (share, bucket)"),
    507: error("A pre_backup plugin refused the backup (for instance: not enough free disk)"),
}


def operation(summary, ok, *errors, request=None, params=None, public=False, tag="backup"):
    """One operation: `ok` is the 200 response, `errors` the statuses it may answer besides."""
    if not public:
        errors = (401, 403, *errors)
    op = {"summary": summary, "tags": [tag], "responses": {"200": ok}}
    op["responses"].update({str(code): COMMON[code] for code in sorted(set(errors))})
    if request is not None:
        op["requestBody"] = request
    if params:
        op["parameters"] = params
    if public:
        op["security"] = []
    return op


def query_param(name, schema, description):
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


BACKUP_NAME = {
    "type": "string", "maxLength": 255, "pattern": r"^(?!.*\.\.)[^/\\\x00-\x1f\x7f]*\.db$",
    "description": "A backup file name: ends in .db; no /, \\, .., NUL or control character"}


#: Component schemas more than one API area answers with; the rest live beside their operations.
SCHEMAS = {
    "Error": obj(optional={"details": array({"type": "string"})},
                 error={"type": "string", "description": "A human sentence"}),
    "Backup": obj(name={"type": "string", "examples": ["mc-backup-2026-03-04_03-00-00.db"]},
                  size={"type": "integer", "minimum": 0},
                  created_at=CREATED_AT),
}
