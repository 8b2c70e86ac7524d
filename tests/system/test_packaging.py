"""A real wheel: the built-in plugins install inside the package (mission_control.builtins), never
as a top-level `plugins`; every DEFAULT_PLUGINS entry loads from it (and from editable ones)."""
import subprocess
import sys
import zipfile
from pathlib import Path

from mission_control.plugin_manager import BUILTIN_PACKAGE
from mission_control.plugin_manager import DEFAULT_PLUGINS
from mission_control.plugin_manager import get_plugin_manager

ROOT = Path(__file__).resolve().parents[2]
CHECK = """
import sys
sys.path.insert(0, sys.argv[1])
import mission_control
from mission_control.plugin_manager import get_plugin_manager
pm = get_plugin_manager(entry_points=False)
names = sorted(name for name, plugin in pm.list_name_plugin() if plugin is not None)
inside = all(pm.get_plugin(n).__file__.startswith(sys.argv[1]) for n in names)
print(mission_control.__file__.startswith(sys.argv[1]), inside, ",".join(names))
"""



def test_the_wheel_holds_the_builtins_inside_the_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith("plugins/")], "a top-level plugins package"
    tops = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert tops == {"mission_control"}
    for dotted in DEFAULT_PLUGINS:
        path = dotted.replace(".", "/")
        assert f"{path}.py" in names or f"{path}/__init__.py" in names, dotted


def test_every_builtin_loads_from_an_installed_wheel(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--target", str(site), str(wheel)], check=True, capture_output=True,
                   text=True, timeout=300)
    # From another folder, so the repository's own files cannot be what gets imported.
    result = subprocess.run([sys.executable, "-c", CHECK, str(site)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    from_site, plugins_from_site, names = result.stdout.split()
    assert (from_site, plugins_from_site) == ("True", "True")
    assert names.split(",") == sorted(d.rsplit(".", 1)[-1] for d in DEFAULT_PLUGINS)


def test_every_builtin_loads_in_this_install_and_keeps_its_short_name():
    pm = get_plugin_manager(entry_points=False)
    for dotted in DEFAULT_PLUGINS:
        assert dotted.startswith(f"{BUILTIN_PACKAGE}.")
        plugin = pm.get_plugin(dotted.rsplit(".", 1)[-1])
        assert plugin is not None and plugin.__name__ == dotted
    assert get_plugin_manager(disabled=["retention"], entry_points=False).is_blocked("retention")
