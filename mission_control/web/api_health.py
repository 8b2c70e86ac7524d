"""`/api/health` (public); `/api/backup/status` and `/metrics` (admin, or the metrics token)."""
import logging
import sqlite3

from werkzeug.wrappers import Response

from .. import __version__, metrics
from ..errors import MissionControlError
from ..health import backup_status
from .http import bearer_token, json_response, require

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
    """The health verdict; the metrics token gets it without where off-site copies go."""
    return json_response(backup_status(mc, for_monitor=require_monitor(mc, request)))


def prometheus(mc, request):
    require_monitor(mc, request)
    if not metrics.available():
        raise MissionControlError("Metrics need prometheus_client: "
                                  "pip install 'mission-control-backup[metrics]'", status=501)
    body, content_type = metrics.render(mc)
    return Response(body, content_type=content_type)


ROUTES = [
    ("/api/health", ["GET"], health),
    ("/api/backup/status", ["GET"], status),
    ("/metrics", ["GET"], prometheus),
]
