"""Meta-tests: every hook is in the hook table of docs/writing-plugins.md, and every built-in plugin is described in docs/plugins.md."""
import inspect
import re
from pathlib import Path

from mission_control import hookspecs
from mission_control.plugin_manager import DEFAULT_PLUGINS

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "plugins.md").read_text()
WRITING = (ROOT / "docs" / "writing-plugins.md").read_text()


def hook_names():
    return [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
            if hasattr(fn, "mission_control_spec")]


def test_every_hook_has_a_row_in_the_hook_table():
    names = hook_names()
    assert {"pre_backup", "post_backup", "prune", "audit", "register_settings"} <= set(names)
    rows = set(re.findall(r"^\| `(\w+)`", WRITING, re.M))
    assert set(names) <= rows, f"undocumented hooks: {set(names) - rows}"


def test_every_builtin_plugin_is_described():
    for dotted in DEFAULT_PLUGINS:
        assert f"| `{dotted.rsplit('.', 1)[-1]}` |" in DOC
