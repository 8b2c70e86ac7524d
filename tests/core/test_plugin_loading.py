"""Plugin discovery: built-ins, the drop-in folder (MC_PLUGINS_DIR), blocking, and GET /api/plugins."""
import textwrap

import pytest
from werkzeug.test import Client

import mission_control
from mission_control.errors import ValidationFailed
from mission_control.plugin_manager import PluginLoadError
from mission_control.web import WebApp

HELLO = '''
"""A drop-in plugin: records every backup it sees in a file beside itself."""
import pathlib

from mission_control import SettingDef, hookimpl

__version__ = "1.2"


@hookimpl
def register_settings():
    return [SettingDef("hello.greeting", "text", "hi", "What to write", "hello")]


@hookimpl
def post_backup(mc, backup):
    with open(pathlib.Path(__file__).with_name("seen.txt"), "a") as out:
        out.write(f"{mc.settings.get('hello.greeting')} {backup.name}\\n")
'''


@pytest.fixture
def dropins(tmp_path):
    folder = tmp_path / "mc-plugins"
    folder.mkdir()
    (folder / "hello.py").write_text(HELLO)
    (folder / "_helper.py").write_text("raise RuntimeError('helpers are not plugins')\n")
    (folder / "notes.txt").write_text("not python")
    return folder


def listed(mc):
    client = Client(WebApp(mc))
    mc.users.add("root", "a-long-enough-password", role="admin")
    client.post("/api/auth/login", json={"username": "root", "password": "a-long-enough-password"})
    response = client.get("/api/plugins")
    assert response.status_code == 200
    return {p["name"]: p for p in response.json["plugins"]}, response.json


def test_builtins_are_listed_with_version_and_hooks(mc):
    plugins, body = listed(mc)
    assert plugins["retention"] == {"name": "retention", "kind": "builtin",
                                    "version": mission_control.__version__,
                                    "hooks": ["prune", "register_settings"]}
    assert plugins["offsite_s3"]["hooks"] == ["check_settings", "offsite_targets", "post_backup",
                                              "register_settings"]
    assert plugins["disk_guard"]["hooks"] == ["metrics", "pre_backup", "register_settings"]
    assert {"audit_log", "audit_jsonl", "audit_syslog", "offsite_dir"} <= set(plugins)
    assert body["blocked"] == []


def test_plugins_endpoint_is_admin_only(client, auth):
    assert client.get("/api/plugins").status_code == 401
    auth.login("olga")
    assert client.get("/api/plugins").json == {"error": "Requires admin role or higher"}


def test_disabled_builtins_are_gone_with_their_settings(make_mc):
    mc = make_mc(disabled_plugins=("offsite_dir", "disk_guard"))
    plugins, body = listed(mc)
    assert "offsite_dir" not in plugins and "disk_guard" not in plugins
    assert body["blocked"] == ["disk_guard", "offsite_dir"]
    with pytest.raises(ValidationFailed) as err:
        mc.settings.update({"offsite.dir.path": "/mnt"}, actor="test")
    assert err.value.details == ["offsite.dir.path: unknown setting"]


def test_dropin_folder_from_the_environment(make_mc, make_config, dropins):
    config = make_config(environ={"MC_PLUGINS_DIR": str(dropins)})
    assert config.plugins_dir == dropins
    mc = make_mc(config=config)
    plugins, _ = listed(mc)
    assert plugins["hello"] == {"name": "hello", "kind": "drop_in", "version": "1.2",
                                "hooks": ["post_backup", "register_settings"]}
    assert "_helper" not in plugins and "notes" not in plugins
    mc.settings.update({"hello.greeting": "bonjour"}, actor="test")
    made = mc.backups.create(actor="test")
    assert (dropins / "seen.txt").read_text() == f"bonjour {made.name}\n"


def test_blocked_dropin_is_not_even_imported(make_mc, dropins):
    (dropins / "broken.py").write_text("raise ImportError('should never run')\n")
    mc = make_mc(plugins_dir=dropins, disabled_plugins=("broken", "hello"))
    plugins, _ = listed(mc)
    assert "hello" not in plugins and "broken" not in plugins
    mc.backups.create(actor="test")
    assert not (dropins / "seen.txt").exists()


def test_broken_dropin_stops_the_service_with_a_clear_error(make_mc, dropins):
    (dropins / "broken.py").write_text(textwrap.dedent("""
        from mission_control import hookimpl
        @hookimpl
        def post_backupp(mc):  # a misspelt hook
            pass
    """))
    with pytest.raises(Exception) as err:
        make_mc(plugins_dir=dropins)
    assert "post_backupp" in str(err.value)
    (dropins / "broken.py").write_text("import no_such_module_here\n")
    with pytest.raises(PluginLoadError, match="broken.py failed to import: ModuleNotFoundError"):
        make_mc(plugins_dir=dropins)


def test_missing_dropin_folder_is_an_error(make_mc, tmp_path):
    with pytest.raises(PluginLoadError, match="not a folder"):
        make_mc(plugins_dir=tmp_path / "nope")


def test_cli_reports_a_broken_dropin_without_a_traceback(tmp_path, dropins, monkeypatch, capsys):
    from mission_control.cli import main
    (dropins / "broken.py").write_text("1/0\n")
    mission_control.MissionControl.open(tmp_path / "cli", environ={}, entry_points=False,
                                        create=True).close()
    monkeypatch.setenv("MC_PLUGINS_DIR", str(dropins))
    assert main(["backup", "list", "--data-dir", str(tmp_path / "cli")]) == 2
    assert capsys.readouterr().err == ("mission-control: plugin file broken.py failed to import: "
                                       "ZeroDivisionError: division by zero\n")


class Counter:
    """A plugin object passed by a script, as tests and embedding code do."""

    def __init__(self):
        self.seen = []

    @mission_control.hookimpl
    def post_backup(self, backup):
        self.seen.append(backup.name)


def test_plugin_objects_passed_by_a_script_are_listed_as_registered(make_mc):
    counter = Counter()
    mc = make_mc(plugins=[counter])
    plugins, _ = listed(mc)
    [entry] = [p for p in plugins.values() if p["kind"] == "registered"]
    assert entry["hooks"] == ["post_backup"] and entry["version"] is None
    assert counter.seen == [mc.backups.create(actor="test").name]
