"""`/api/backup/verify`, `/download` and `/upload`: checking, fetching and bringing in backup files."""
import base64
import os
import stat
import unicodedata
from urllib.parse import quote

from werkzeug.exceptions import BadRequest as WerkzeugBadRequest
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import parse_form_data
from werkzeug.wrappers import Response
from werkzeug.wsgi import wrap_file

from ..errors import BadRequest, NotFound, PayloadTooLarge, ValidationFailed
from ..files import sha256_file
from ..backup.uploads import UploadSink
from ..backup.uploads import accept_upload
from ..backup.uploads import upload_slot
from ..backup.verify import VerificationStore
from ..backup.verify import verify_backup
from .http import json_response, read_body, require_actor
from .openapi_schemas import (BACKUP_NAME, INT_OR_NULL, array, obj, operation, ref, query_param,
                              response)
from .operations import Operation

CHUNK = 256 * 1024
MULTIPART_SLACK = 64 * 1024  # room for multipart headers and boundaries around the file


def backup_verify(mc, request):
    actor = require_actor(mc, request)
    return json_response(verify_backup(mc, read_body(request)["name"], actor))


def _disposition(name):
    try:
        name.encode("ascii")
    except UnicodeEncodeError:
        simple = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
        return {"filename": simple, "filename*": f"UTF-8''{quote(name, safe='')}"}
    return {"filename": name}


def backup_download(mc, request):
    actor = require_actor(mc, request)
    name = request.args.get("name")
    if name is None:
        raise ValidationFailed(["name: is required"])
    path = mc.backups.readable_path(name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        raise NotFound("Backup not found") from None
    file = os.fdopen(fd, "rb")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotFound("Backup not found")
        known = VerificationStore(mc.db).current(name, st)
        digest = known["sha256"] if known else sha256_file(path)
    except BaseException:
        file.close()
        raise
    if request.method != "HEAD":  # a HEAD (size, checksum) sends no data: not a download
        mc.audit.emit("backup_download", actor, target_type="backup", target_id=name,
                      detail={"name": name, "size": st.st_size,
                              "range": request.headers.get("Range")})
    response = Response(wrap_file(request.environ, file, CHUNK), direct_passthrough=True,
                        mimetype="application/octet-stream")
    response.content_length = st.st_size
    response.headers.set("Content-Disposition", "attachment", **_disposition(name))
    b64 = base64.b64encode(bytes.fromhex(digest)).decode("ascii")
    response.headers["X-Checksum-SHA256"] = digest
    response.headers["Digest"] = f"sha-256={b64}"
    response.headers["Repr-Digest"] = f"sha-256=:{b64}:"
    response.set_etag(digest)
    response.last_modified = int(st.st_mtime)
    return response.make_conditional(request.environ, accept_ranges=True,
                                     complete_length=st.st_size)


def _receive_multipart(request, sink, limit):
    """Stream the single file part of a `multipart/form-data` body into `sink`."""
    def factory(*args, **kwargs):
        if sink.used:
            raise BadRequest("Send one file per upload")
        sink.used = True
        return sink

    try:
        _, _, files = parse_form_data(request.environ, stream_factory=factory, silent=False,
                                      max_form_memory_size=MULTIPART_SLACK,
                                      max_content_length=limit + MULTIPART_SLACK)
    except ValueError:  # e.g. "Missing boundary": a malformed multipart header, not our fault
        raise BadRequest("Upload is not valid multipart/form-data") from None
    if len(files) != 1:
        raise BadRequest("Upload needs exactly one file part" if files else
                         "Upload has no file: send it as a multipart file part or as the body")
    return next(iter(files.values())).filename


def _receive_raw(request, sink, limit):
    request.max_content_length = limit
    stream = request.stream
    for chunk in iter(lambda: stream.read(CHUNK), b""):
        sink.write(chunk)
    return request.args.get("filename")


def backup_upload(mc, request):
    actor = require_actor(mc, request)
    limit = mc.config.max_upload_mb * 1024 * 1024
    too_large = PayloadTooLarge(f"Upload too large: the limit is {mc.config.max_upload_mb} MB"
                                " (MC_MAX_UPLOAD_MB)")
    if (request.content_length or 0) > limit + MULTIPART_SLACK:
        raise too_large
    mc.backups.ensure_dir()
    # 429 over the admin's backup budget, 507 from the disk guard
    with upload_slot(mc, actor, rate_key=actor.name):
        made = _receive(mc, request, actor, limit, too_large)
    return json_response({"success": True, "backup": made})


def _receive(mc, request, actor, limit, too_large):
    """Stream the body into a private temporary file, then check and keep it (`accept_upload`)."""
    sink = UploadSink(mc.backups.dir, limit)
    try:
        if request.mimetype == "multipart/form-data":
            original = _receive_multipart(request, sink, limit)
        else:
            original = _receive_raw(request, sink, limit)
    except RequestEntityTooLarge:
        sink.discard()
        raise too_large from None
    except WerkzeugBadRequest:
        sink.discard()
        raise BadRequest("Upload incomplete: the body ended before the file did") from None
    except BaseException:
        sink.discard()
        raise
    return accept_upload(mc, sink, actor, original_name=original)


_STRINGS = array({"type": "string"})
SCHEMAS = {
    "Verification": obj(
        name={"type": "string"}, ok={"type": "boolean"}, integrity=_STRINGS, problems=_STRINGS,
        page_count=INT_OR_NULL, page_size=INT_OR_NULL, schema_version=INT_OR_NULL,
        sha256={"type": "string"}, size={"type": "integer"}, verified_at={"type": "integer"}),
    "UploadedBackup": obj(name={"type": "string"}, size={"type": "integer"},
                          created_at={"type": "integer"}, sha256={"type": "string"}),
}

_FILE_HEADERS = {
    "Content-Disposition": "attachment; filename=...",
    "X-Checksum-SHA256": "hex SHA-256 of the whole file",
    "ETag": "the SHA-256", "Accept-Ranges": "bytes",
}
_BINARY = {"type": "string", "contentMediaType": "application/octet-stream"}


def _file_response(description):
    out = response(description, headers=_FILE_HEADERS)
    out["content"] = {"application/octet-stream": {"schema": _BINARY}}
    return out


def _download_doc():
    op = operation("Download a backup file (streamed; Range and conditional requests work)",
                   _file_response("The whole file"), 400, 404,
                   params=[{"name": "name", "in": "query", "required": True,
                            "schema": BACKUP_NAME, "description": "the backup's file name"}])
    op["responses"]["206"] = _file_response("The requested byte range (Content-Range)")
    op["responses"]["304"] = response("Not modified (If-None-Match / If-Modified-Since)")
    op["responses"]["416"] = response("The range cannot be satisfied")
    return op


def _upload_doc():
    """Its body is the file's bytes, not JSON: documented here, checked as an upload."""
    op = operation(
        "Upload a backup file (raw body or a multipart file part); stored as uploaded-*.db, "
        "counted against the hourly backup budget; the newest general.safety_copies_keep kept",
        response("Accepted and stored", obj(success={"const": True}, backup=ref("UploadedBackup"))),
        400, 409, 413, 429, 500, 507,
        params=[query_param("filename", {"type": "string"}, "the original file name (audit)")])
    op["requestBody"] = {"required": True, "content": {
        "application/octet-stream": {"schema": _BINARY},
        "multipart/form-data": {"schema": {"type": "object",
                                           "properties": {"file": _BINARY}}}}}
    return op


OPERATIONS = [
    Operation("POST", "/api/backup/verify", backup_verify, "verifyBackup", operation(
        "Check a backup file: SQLite header (UTF-8), Mission Control's schema allowlist, then "
        "integrity_check within MC_VERIFY_TIMEOUT (a failed check is still a 200 with ok false; "
        "a hard link to the live database is a 400)",
        response("The verification", ref("Verification")), 400, 404, 413),
        body=obj(name=BACKUP_NAME)),
    Operation("GET", "/api/backup/download", backup_download, "downloadBackup", _download_doc()),
    Operation("POST", "/api/backup/upload", backup_upload, "uploadBackup", _upload_doc()),
]
