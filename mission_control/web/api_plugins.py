"""`/api/plugins` and `/api/offsite`: the loaded plugins and the last off-site result per target (admin)."""
from .. import __version__
from ..plugins import BUILTIN_PACKAGE, DROPIN_PREFIX, plugin_version
from .http import json_response, require


def _kind(pm, plugin):
    if any(p is plugin for p, _ in pm.list_plugin_distinfo()):
        return "entry_point"
    module = getattr(plugin, "__name__", "") or ""
    if module.startswith(DROPIN_PREFIX):
        return "drop_in"
    if module.startswith(f"{BUILTIN_PACKAGE}."):
        return "builtin"
    return "registered"


def describe_plugins(pm, disabled=()):
    """Name, kind, version and hooks of every registered plugin, sorted by name."""
    out = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:  # a blocked name
            continue
        kind = _kind(pm, plugin)
        version = __version__ if kind == "builtin" else plugin_version(pm, plugin)
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or ())
        out.append({"name": name, "kind": kind, "version": version, "hooks": hooks})
    out.sort(key=lambda p: p["name"])
    return out


def plugins_list(mc, request):
    require(mc, request, "admin")
    return json_response({"plugins": describe_plugins(mc.pm),
                          "blocked": sorted(mc.config.disabled_plugins)})


def offsite_list(mc, request):
    require(mc, request, "admin")
    return json_response({"targets": mc.offsite.list()})


ROUTES = [
    ("/api/plugins", ["GET"], plugins_list),
    ("/api/offsite", ["GET"], offsite_list),
]
