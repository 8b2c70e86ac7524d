"""OpenAPI paths of verify, download, upload, restore, health, status and metrics."""
from .openapi_parts import (BACKUP_NAME, INT_OR_NULL, STR_OR_NULL, array, body, obj, operation,
                            ref, response)

_NAME_BODY = body(obj(name=BACKUP_NAME))
_KEEP_SETTINGS = {"keep_settings": {
    "type": "boolean", "default": True,
    "description": "keep the live protection settings (general.auto_backup*, *retention*, "
                   "off-site, every plugin setting), scheduler state and off-site records; "
                   "false restores them from the backup too"}}
_STRINGS = array({"type": "string"})
_KIND = obj(count={"type": "integer"}, total_size={"type": "integer"})

SCHEMAS = {
    "Verification": obj(
        name={"type": "string"}, ok={"type": "boolean"}, integrity=_STRINGS, problems=_STRINGS,
        page_count=INT_OR_NULL, page_size=INT_OR_NULL, schema_version=INT_OR_NULL,
        sha256={"type": "string"}, size={"type": "integer"}, verified_at={"type": "integer"}),
    "UploadedBackup": obj(name={"type": "string"}, size={"type": "integer"},
                          created_at={"type": "integer"}, sha256={"type": "string"}),
    "Restore": obj(
        success={"const": True},
        restored=obj(name={"type": "string"}, sha256={"type": "string"},
                     schema_version=INT_OR_NULL, migrated_to={"type": "integer"},
                     optional={"timestamp": {"type": "string", "description":
                                             "the moment restored to (point in time)"}}),
        safety_backup=ref("Backup"),
        session=obj(logged_in={"type": "boolean"}, admins=_STRINGS, message={"type": "string"}),
        kept_settings={**_STRINGS, "description": "the protection settings whose live value "
                       "differed from the backup's and was kept (empty with keep_settings false)"}),
    "OffsiteTarget": obj(
        target={"type": "string"},
        configured={"type": "boolean", "description": "a plugin names it in offsite_targets"},
        ok={"type": ["boolean", "null"], "description": "the last copy's result (null: none)"},
        backup=STR_OR_NULL, finished_at=INT_OR_NULL,
        message={**STR_OR_NULL, "description": "the last result in words; null for the metrics "
                 "token (a remote error names the endpoint, bucket, prefix or folder)"},
        last_success_at=INT_OR_NULL, failures={"type": "integer"},
        problem={**STR_OR_NULL, "description": "why this target fails the verdict, or null "
                 "(for the metrics token, without the remote side's error text)"},
        stored_size={**INT_OR_NULL, "description": "bytes the last copy takes off-site"},
        ratio={"type": ["number", "null"], "description": "stored size / backup size"},
        drill={"anyOf": [{"type": "null"}, obj(
            ok={"type": "boolean"}, remote_name=STR_OR_NULL,
            message={**STR_OR_NULL, "description": "null for the metrics token"},
            finished_at={"type": "integer"})],
            "description": "the last restore drill (offsite_verify), or null when never drilled"}),
    "BackupStatus": obj(
        verdict={"enum": ["pass", "warn", "fail"]}, reasons=_STRINGS,
        last_success={"anyOf": [{"type": "null"}, obj(
            name=STR_OR_NULL, at={"type": "integer"}, age_seconds={"type": "integer"},
            size=INT_OR_NULL, duration_seconds={"type": ["number", "null"]},
            copy={"enum": ["file", "file+wal", "pages", None],
                  "description": "how it was copied: the database file by the kernel (and the "
                                 "WAL frames it lacked), or page by page, the slower fallback; "
                                 "null for backups made before this was recorded"},
            disk_error={**STR_OR_NULL, "description": "the I/O error the live database's disk "
                                                      "gave while this backup was made (it was "
                                                      "then copied page by page), or null"},
            actor={"type": "string"})]},
        last_failure={"anyOf": [{"type": "null"}, obj(
            at={"type": "integer"}, action={"type": "string"}, reason=STR_OR_NULL,
            actor={"type": "string"})]},
        next_run={"type": "integer", "description": "unix seconds of the next auto-backup slot"},
        auto_backup={"type": "boolean"},
        offsite=array(ref("OffsiteTarget")),
        pitr=ref("PitrHealth"),
        backups=obj(count={"type": "integer"}, total_size={"type": "integer"},
                    by_kind={"type": "object", "additionalProperties": _KIND}),
        runs=obj(success={"type": "integer"}, failure={"type": "integer"}),
        checked_at={"type": "integer"}),
}

_FILE_HEADERS = {
    "Content-Disposition": "attachment; filename=...",
    "X-Checksum-SHA256": "hex SHA-256 of the whole file",
    "ETag": "the SHA-256", "Accept-Ranges": "bytes",
}
_BINARY = {"type": "string", "contentMediaType": "application/octet-stream"}


def _download():
    op = operation("Download a backup file (streamed; Range and conditional requests work)",
                   _file_response("The whole file"), 400, 404,
                   params=[{"name": "name", "in": "query", "required": True,
                            "schema": BACKUP_NAME, "description": "the backup's file name"}])
    op["responses"]["206"] = _file_response("The requested byte range (Content-Range)")
    op["responses"]["304"] = response("Not modified (If-None-Match / If-Modified-Since)")
    op["responses"]["416"] = response("The range cannot be satisfied")
    return op


def _file_response(description):
    out = response(description, headers=_FILE_HEADERS)
    out["content"] = {"application/octet-stream": {"schema": _BINARY}}
    return out


def _upload():
    op = operation(
        "Upload a backup file (raw body or a multipart file part); stored as uploaded-*.db, "
        "counted against the hourly backup budget; the newest general.safety_copies_keep kept",
        response("Accepted and stored", obj(success={"const": True}, backup=ref("UploadedBackup"))),
        400, 409, 413, 429, 500, 507,
        params=[{"name": "filename", "in": "query", "required": False,
                 "schema": {"type": "string"}, "description": "the original file name (audit)"}])
    op["requestBody"] = {"required": True, "content": {
        "application/octet-stream": {"schema": _BINARY},
        "multipart/form-data": {"schema": {"type": "object",
                                           "properties": {"file": _BINARY}}}}}
    return op


def _health():
    op = operation("Up or not, for load balancers (public; reveals only the version and whether "
                   "the database file can be read)",
                   response("Up", obj(status={"const": "ok"}, version={"type": "string"},
                                      db={"const": "ok"})),
                   public=True, tag="health")
    op["responses"]["503"] = response("The database cannot be read (missing, damaged, replaced "
                                      "by something else)", obj(
        status={"const": "error"}, version={"type": "string"}, db={"const": "error"}))
    return op


def _metrics():
    op = operation("Prometheus metrics in the text format (admin, or the MC_METRICS_TOKEN "
                   "bearer token)", response("Metrics"), 501, tag="health")
    op["responses"]["200"]["content"] = {"text/plain": {"schema": {"type": "string"}}}
    return op


PATHS = {
    "/api/backup/verify": {"post": operation(
        "Check a backup file: SQLite header (UTF-8), Mission Control's schema allowlist, then "
        "integrity_check within MC_VERIFY_TIMEOUT (a failed check is still a 200 with ok false; "
        "a hard link to the live database is a 400)",
        response("The verification", ref("Verification")), 400, 404, 413, request=_NAME_BODY)},
    "/api/backup/download": {"get": _download()},
    "/api/backup/upload": {"post": _upload()},
    "/api/backup/restore": {"post": operation(
        "Restore the live database from a backup (`name`), or to a moment (`timestamp`, with "
        "continuous protection on), after a safety backup, while the service runs (a 500 says "
        "whether the data was replaced)",
        response("Restored", ref("Restore")), 400, 404, 409, 413, 500, 507,
        request=body({"oneOf": [obj(name=BACKUP_NAME, optional=_KEEP_SETTINGS),
                                obj(timestamp=ref("RestoreTimestamp"), optional=_KEEP_SETTINGS)]}))},
    "/api/health": {"get": _health()},
    "/api/backup/status": {"get": operation(
        "Backup health for monitoring: last success and failure, off-site targets, verdict and "
        "reasons (admin, or the MC_METRICS_TOKEN bearer token, which gets the same verdict but "
        "not the off-site targets' result texts, since they name where copies go)",
        response("The status", ref("BackupStatus")), 500, tag="health")},
    "/metrics": {"get": _metrics()},
}
