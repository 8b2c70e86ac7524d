"""`/api/plugins` and `/api/offsite`: the loaded plugins and the last off-site result per target (admin)."""
from ..plugins import describe_plugins
from .http import json_response, require


def plugins_list(mc, request):
    require(mc, request, "admin")
    return json_response({"plugins": describe_plugins(mc.pm),
                          "blocked": sorted(mc.config.disabled_plugins)})


def offsite_list(mc, request):
    require(mc, request, "admin")
    return json_response({"targets": mc.offsite.list(),
                          "verify_key": mc.offsite.signer.verify_key(create=False)})


ROUTES = [
    ("/api/plugins", ["GET"], plugins_list),
    ("/api/offsite", ["GET"], offsite_list),
]
