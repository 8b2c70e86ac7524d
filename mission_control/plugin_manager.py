"""Builds the plugin manager (built-ins, entry points, drop-ins, blocks) and describes its plugins.

Hooks are called through `hooks.Hooks` (``mc.hooks``), which is handed only ``pm.hook``.
"""
import hashlib
import importlib
import importlib.util
import logging
import sys
from pathlib import Path

import pluggy

from . import NAME, __version__, hookspecs
from .config import ConfigError

log = logging.getLogger(__name__)

#: Where the built-ins install: the repository's `plugins/` folder, mapped inside the package by
#: setup.cfg's `package_dir`, so no top-level `plugins` package lands in site-packages.
BUILTIN_PACKAGE = "mission_control.builtins"

#: Built-in plugins, registered under their last dotted component (`MC_DISABLE_PLUGINS=retention`).
DEFAULT_PLUGINS = (
    "mission_control.builtins.retention",
    "mission_control.builtins.audit_log",
    "mission_control.builtins.audit_jsonl",
    "mission_control.builtins.audit_syslog",
    "mission_control.builtins.event_log",
    "mission_control.builtins.disk_guard",
    "mission_control.builtins.offsite_dir",
    "mission_control.builtins.offsite_s3",
    "mission_control.builtins.healthchecks",
    "mission_control.builtins.email_alerts",
    "mission_control.builtins.pitr",
)

#: Module-name prefix of plugins imported from the drop-in folder (`MC_PLUGINS_DIR`).
DROPIN_PREFIX = "mission_control_dropin_"


class PluginLoadError(ConfigError):
    """A plugin in the drop-in folder could not be imported; the service does not start without it."""


def get_plugin_manager(disabled=(), default_plugins=DEFAULT_PLUGINS, extra=(), entry_points=True,
                       plugins_dir=None):
    """Return a ready `pluggy.PluginManager`.

    :param disabled: plugin names to block (built-in short names, entry-point names or drop-in
        file stems).
    :param default_plugins: dotted module names of the built-ins.
    :param extra: plugin objects registered last, e.g. by tests or scripts.
    :param entry_points: load third-party plugins from the ``mission_control`` entry-point group.
    :param plugins_dir: a folder whose ``*.py`` files are plugins (``MC_PLUGINS_DIR``).
    :raises pluggy.PluginValidationError: a plugin implements a hook that does not exist.
    :raises PluginLoadError: a drop-in file failed to import.
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
    if plugins_dir is not None:
        load_plugins_dir(pm, plugins_dir)
    for plugin in extra:
        pm.register(plugin)
    pm.check_pending()
    return pm


def load_plugins_dir(pm, folder):
    """Import every ``*.py`` file of `folder` (sorted by name) and register it under its file stem.

    Files whose stem is blocked are not even imported. Hidden files and ``_``-prefixed files are
    skipped, so a plugin may keep helpers beside it. Returns the names registered.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PluginLoadError(f"MC_PLUGINS_DIR is not a folder: {folder}")
    loaded = []
    for path in sorted(folder.glob("*.py")):
        name = path.stem
        if name.startswith((".", "_")) or pm.is_blocked(name):
            continue
        # A private module name per file, so two folders with a same-named file never collide.
        digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
        module_name = f"{DROPIN_PREFIX}{digest}_{name}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses and pickling look modules up here
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            raise PluginLoadError(f"plugin file {path.name} failed to import: "
                                  f"{type(exc).__name__}: {exc}") from exc
        pm.register(module, name=name)
        loaded.append(name)
    return loaded


def plugin_version(pm, plugin):
    """The version of a registered plugin: its distribution's, its ``__version__``, or None."""
    for dist_plugin, dist in pm.list_plugin_distinfo():
        if dist_plugin is plugin:
            return dist.version
    version = getattr(plugin, "__version__", None)
    return str(version) if version is not None else None


def _kind(pm, plugin):
    if any(p is plugin for p, _ in pm.list_plugin_distinfo()):
        return "entry_point"
    module = getattr(plugin, "__name__", "") or ""
    if module.startswith(DROPIN_PREFIX):
        return "drop_in"
    if module.startswith(f"{BUILTIN_PACKAGE}."):
        return "builtin"
    return "registered"


def describe_plugins(pm):
    """Name, kind, version and hooks of every registered plugin, sorted by name (for
    `GET /api/plugins` and `plugins list`)."""
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
