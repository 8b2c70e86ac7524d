"""Builds the plugin manager (built-ins, entry points, blocks) and calls hooks with failures isolated."""
import importlib
import logging

import pluggy

from . import NAME, hookspecs

log = logging.getLogger(__name__)

#: Built-in plugins, registered under their last dotted component (`MC_DISABLE_PLUGINS=retention`).
DEFAULT_PLUGINS = (
    "plugins.retention",
    "plugins.audit_log",
)


def get_plugin_manager(disabled=(), default_plugins=DEFAULT_PLUGINS, extra=(), entry_points=True):
    """Return a ready `pluggy.PluginManager`.

    :param disabled: plugin names to block (built-in short names or entry-point names).
    :param default_plugins: dotted module names of the built-ins.
    :param extra: plugin objects registered last, e.g. by tests or scripts.
    :param entry_points: load third-party plugins from the ``mission_control`` entry-point group.
    :raises pluggy.PluginValidationError: a plugin implements a hook that does not exist.
    """
    pm = pluggy.PluginManager(NAME)
    pm.add_hookspecs(hookspecs)
    for name in disabled:
        pm.set_blocked(name)
    for dotted in default_plugins:
        short = dotted.rsplit(".", 1)[-1]
        if not pm.is_blocked(short):
            pm.register(importlib.import_module(dotted), name=short)
    if entry_points:
        pm.load_setuptools_entrypoints(NAME)
    for plugin in extra:
        pm.register(plugin)
    pm.check_pending()
    return pm


def call_isolated(pm, hook_name, on_error, **kwargs):
    """Call every implementation of a notification hook, each in isolation.

    pluggy stops at the first exception; for `post_backup` and `audit` one broken plugin must not
    silence the others, so each implementation is called on its own, in pluggy's order
    (tryfirst first, trylast last). `on_error(plugin_name, exc)` is called for each failure.
    """
    caller = getattr(pm.hook, hook_name)
    for impl in reversed(caller.get_hookimpls()):
        if getattr(impl, "hookwrapper", False) or getattr(impl, "wrapper", False):
            continue
        args = {name: kwargs[name] for name in impl.argnames}
        try:
            impl.function(**args)
        except Exception as exc:  # noqa: BLE001 - isolating plugins is the point
            log.exception("plugin %s failed in %s", impl.plugin_name, hook_name)
            on_error(impl.plugin_name, exc)
