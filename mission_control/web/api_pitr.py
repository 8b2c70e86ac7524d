"""`GET /api/backup/pitr`: continuous protection's state and restorable window (admin)."""
from ..point_in_time import status
from .http import json_response, require


def pitr_status(mc, request):
    require(mc, request, "admin")
    return json_response(status(mc))


ROUTES = [
    ("/api/backup/pitr", ["GET"], pitr_status),
]
