"""`/api/health` (public); `/api/backup/status` and `/metrics` (admin, or the metrics token)."""
import logging
import sqlite3

from werkzeug.wrappers import Response

from .. import __version__, metrics
from ..errors import MissionControlError
from ..health import backup_status
from .http import bearer_token, json_response, require
from .openapi_schemas import INT_OR_NULL, STR_OR_NULL, array, obj, operation, ref, response
from .api_plugins import COPY_NAMES, HELD, LAST_COPY
from .operations import Operation

log = logging.getLogger(__name__)


def health(mc, request):
    """For load balancers: up or not, the version, and whether the database can be read."""
    try:
        mc.db.check_readable()
    except sqlite3.Error as exc:
        log.warning("health check: the database cannot be read: %s", exc)
        return json_response({"status": "error", "version": __version__, "db": "error"}, 503)
    return json_response({"status": "ok", "version": __version__, "db": "ok"})


def require_monitor(mc, request):
    """An admin, or the ``MC_METRICS_TOKEN`` bearer token, which opens only the two views below.

    :return: True for the metrics token, False for an admin.
    :raises AuthenticationRequired, Forbidden: neither (401, or 403 for a lower role).
    """
    if mc.auth.reads_metrics(bearer_token(request)):
        return True
    require(mc, request, "admin")
    return False


def status(mc, request):
    """The health verdict; the metrics token gets it without where off-site copies go.

    `server_time_ms` is the service's clock as it answers, to the millisecond: the page counts
    its quick picks from it (`checked_at`, whole seconds taken before the work, is up to a
    second and the time the answer took behind)."""
    found = backup_status(mc, for_monitor=require_monitor(mc, request))
    return json_response({**found, "server_time_ms": int(mc.clock() * 1000)})


def prometheus(mc, request):
    require_monitor(mc, request)
    if not metrics.available():
        raise MissionControlError("Metrics need prometheus_client: "
                                  "pip install 'mission-control-backup[metrics]'", status=501)
    body, content_type = metrics.render(mc)
    return Response(body, content_type=content_type)


_STRINGS = array({"type": "string"})
_KIND = obj(count={"type": "integer"}, total_size={"type": "integer"})

SCHEMAS = {
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
        held=HELD, **COPY_NAMES, **LAST_COPY,
        warning={**STR_OR_NULL, "description": "why this target makes the verdict warn (kept "
                 "copies without a catalog entry), or null"},
        notes={**_STRINGS, "description": "what to know about the target that is not a "
               "problem (e.g. that it never deletes: offsite.s3.no_delete)"},
        drill={"anyOf": [{"type": "null"}, obj(
            ok={"type": "boolean"}, remote_name=STR_OR_NULL,
            message={**STR_OR_NULL, "description": "null for the metrics token"},
            finished_at={"type": "integer"})],
            "description": "the last restore drill (offsite_verify), or null when never drilled"}),
    "AlertChannel": obj(
        channel={"type": "string", "examples": ["healthchecks", "email"]},
        ok={"type": ["boolean", "null"], "description": "whether the newest delivery (an alert "
            "or a test) got through; null before the first"},
        last_at={**INT_OR_NULL, "description": "unix seconds of the newest delivery"},
        failures={"type": "integer", "description": "deliveries that never got through (audited "
                  "as alert_failed)"},
        problem={**STR_OR_NULL, "description": "why this channel makes the verdict warn, or "
                 "null (for the metrics token, without the receiver's error text)"}),
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
        alerts={**array(ref("AlertChannel")), "description": "each configured alert channel "
                "(pings, mail) and whether its newest delivery got through"},
        schedule_period_seconds={"type": "integer", "description": "the longest time between "
                                 "two runs of general.auto_backup_schedule: how long no new "
                                 "backup is normal"},
        backups=obj(count={"type": "integer"}, total_size={"type": "integer"},
                    by_kind={"type": "object", "additionalProperties": _KIND}),
        runs=obj(success={"type": "integer"}, failure={"type": "integer"}),
        checked_at={"type": "integer"},
        server_time_ms={"type": "integer", "description": "the service's clock as it answered "
                        "(unix ms): the page measures the browser's clock against it"}),
}


def _health_doc():
    op = operation("Up or not, for load balancers (public; reveals only the version and whether "
                   "the database file can be read)",
                   response("Up", obj(status={"const": "ok"}, version={"type": "string"},
                                      db={"const": "ok"})),
                   public=True, tag="health")
    op["responses"]["503"] = response("The database cannot be read (missing, damaged, replaced "
                                      "by something else)", obj(
        status={"const": "error"}, version={"type": "string"}, db={"const": "error"}))
    return op


def _metrics_doc():
    op = operation("Prometheus metrics in the text format (admin, or the MC_METRICS_TOKEN "
                   "bearer token)", response("Metrics"), 501, tag="health")
    op["responses"]["200"]["content"] = {"text/plain": {"schema": {"type": "string"}}}
    return op


OPERATIONS = [
    Operation("GET", "/api/health", health, "getHealth", _health_doc()),
    Operation("GET", "/api/backup/status", status, "getBackupStatus", operation(
        "Backup health for monitoring: last success and failure, off-site targets, verdict and "
        "reasons (admin, or the MC_METRICS_TOKEN bearer token, which gets the same verdict but "
        "not the off-site targets' result texts, since they name where copies go)",
        response("The status", ref("BackupStatus")), 500, tag="health")),
    Operation("GET", "/metrics", prometheus, "getMetrics", _metrics_doc()),
]
