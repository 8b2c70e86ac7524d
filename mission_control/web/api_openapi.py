"""`/api/openapi.json`: the OpenAPI 3.1 document of this API (public: it describes, it holds no data)."""
import json

from werkzeug.wrappers import Response

from .openapi import build_document


def openapi_document(mc, request):
    document = build_document(mc.settings.definitions.values(), list(mc.scheduler.tasks))
    text = json.dumps(document, separators=(",", ":"))
    return Response(text, content_type="application/json")


ROUTES = [
    ("/api/openapi.json", ["GET"], openapi_document),
]
