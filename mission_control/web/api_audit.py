"""`/api/audit`: the audit trail, filtered and paged (admin only)."""
from ..audit import parse_query
from .http import json_response, require


def audit_list(mc, request):
    require(mc, request, "admin")
    query = parse_query(request.args)
    events, total = mc.audit_store.query(**query)
    return json_response({"events": events, "total": total, "limit": query["limit"],
                          "offset": query.get("offset", 0)})


ROUTES = [
    ("/api/audit", ["GET"], audit_list),
]
