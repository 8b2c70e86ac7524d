"""`/api/openapi.json`: the OpenAPI 3.1 document of this API (public: it describes, it holds no data)."""
import json

from werkzeug.wrappers import Response

from .openapi import build_document
from .openapi_schemas import operation, response
from .operations import Operation


def openapi_document(mc, request):
    document = build_document(request.api_modules, mc.settings.definitions.values(),
                              list(mc.scheduler.tasks))
    text = json.dumps(document, separators=(",", ":"))
    return Response(text, content_type="application/json")


OPERATIONS = [
    Operation("GET", "/api/openapi.json", openapi_document, "getOpenapiDocument", operation(
        "This document (public: it describes the API and holds no data)",
        response("The OpenAPI 3.1 document", {"type": "object"}), public=True, tag="meta")),
]
