"""`/api/audit`: the audit trail, filtered and paged (admin only)."""
from ..audit import MAX_EXCLUDED, parse_query
from .http import json_response, require
from .openapi_schemas import (INT_OR_NULL, STR_OR_NULL, array, obj, operation, query_param, ref,
                              response)
from .operations import Operation


def audit_list(mc, request):
    require(mc, request, "admin")
    query = parse_query(request.args)
    events, total = mc.audit_store.query(**query)
    return json_response({"events": events, "total": total, "limit": query["limit"],
                          "offset": query.get("offset", 0)})


SCHEMAS = {
    "AuditEvent": obj(id={"type": "integer"}, action={"type": "string"}, actor={"type": "string"},
                      actor_id=INT_OR_NULL, target_type=STR_OR_NULL,
                      target_id=STR_OR_NULL, detail={}, ip_address=STR_OR_NULL,
                      user_agent=STR_OR_NULL, created_at={"type": "integer"}),
}

_INT64 = 2**63 - 1  # SQLite integers are 64-bit
_UNIX = {"type": "integer", "minimum": 0, "maximum": _INT64}
_PARAMS = [
    query_param("action", {"type": "string"}, "Only events with this action"),
    query_param("actor", {"type": "string"}, "Only events by this actor"),
    {**query_param("exclude_action", {"type": "array", "items": {"type": "string"},
                                      "maxItems": MAX_EXCLUDED},
                   "Leave out these actions: the parameter repeated "
                   "(exclude_action=login&exclude_action=logout), each value possibly "
                   f"comma-separated (exclude_action=login,logout); at most {MAX_EXCLUDED} "
                   "actions in all"),
     "style": "form", "explode": True},
    query_param("since", _UNIX, "Unix seconds, inclusive"),
    query_param("until", _UNIX, "Unix seconds, inclusive"),
    query_param("limit", {"type": "integer", "minimum": 1, "maximum": _INT64},
                "Page size (default 100; more than 10000 is cut to 10000)"),
    query_param("offset", {"type": "integer", "minimum": 0, "maximum": _INT64}, "Events to skip"),
]

OPERATIONS = [
    Operation("GET", "/api/audit", audit_list, "listAuditEvents", operation(
        "The audit trail, newest first, filtered and paged",
        response("A page of events", obj(events=array(ref("AuditEvent")),
                                         total={"type": "integer"}, limit={"type": "integer"},
                                         offset={"type": "integer"})),
        400, params=_PARAMS, tag="audit")),
]
