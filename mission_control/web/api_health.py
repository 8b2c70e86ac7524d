"""`/api/health` (public), `/api/backup/status` (admin) and `/metrics` (admin or API key)."""
import sqlite3

from werkzeug.wrappers import Response

from .. import __version__, metrics
from ..errors import MissionControlError
from ..health import backup_status
from .http import json_response, require


def health(mc, request):
    """For load balancers: up or not, and the version; nothing else."""
    try:
        mc.db.execute("SELECT 1").fetchone()
    except sqlite3.Error:
        return json_response({"status": "error", "version": __version__}, 503)
    return json_response({"status": "ok", "version": __version__})


def status(mc, request):
    require(mc, request, "admin")
    return json_response(backup_status(mc))


def prometheus(mc, request):
    require(mc, request, "admin")
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
