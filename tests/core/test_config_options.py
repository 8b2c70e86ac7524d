"""Meta-tests of the one option table (`config.OPTIONS`): the configuration page's table
(docs/configuration.md) and its list of file keys name exactly the table's options, flags and defaults, and every option is read
from the environment, the file and (where it has one) its flag."""
import re
from pathlib import Path

import pytest

from mission_control.config import OPTIONS, Config, ConfigError
from mission_control.config_file import KEYS, SECRETS, load

from tests.support.cli_run import run_cli

PAGE = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()


def _ticked(cell):
    return re.findall(r"`([^`]+)`", cell)


def page_options():
    """`{env: (flag or None, default)}` from the configuration page's table; a row may name
    several variables, then its flags and defaults are listed in the same order (or one default
    stands for all)."""
    section = PAGE.split("## Environment variables and flags\n", 1)[1].strip().split("\n\n", 1)[0]
    rows = {}
    for line in section.splitlines()[2:]:
        env_cell, flag_cell, default_cell, _meaning = line.strip().strip("|").split("|", 3)
        names = _ticked(env_cell)
        if not names:  # "(fixed)": the backups folder, not an option
            continue
        flags = _ticked(flag_cell) or [None] * len(names)
        defaults = [d.strip().strip("`") for d in default_cell.split(",")]
        if len(defaults) == 1:
            defaults *= len(names)
        assert len(flags) == len(defaults) == len(names), line
        for name, flag, default in zip(names, flags, defaults):
            assert name not in rows, f"{name} is in the page's table twice"
            rows[name] = (flag, default)
    return rows


def test_the_page_table_lists_every_option_with_its_flag_and_default():
    assert page_options() == {o.env: (o.flag, o.default_text) for o in OPTIONS}


def test_the_page_lists_every_file_key():
    sentence = PAGE.split("whose keys are the\nlong option names: ", 1)[1].split(". Values", 1)[0]
    assert _ticked(sentence) == list(KEYS)
    secrets = PAGE.split("A file holding\n", 1)[1].split(" should be private", 1)[0]
    assert set(_ticked(secrets)) == SECRETS


def test_the_table_has_one_entry_per_name_and_fills_every_environment_attribute():
    for field in ("attr", "env", "key", "flag"):
        named = [getattr(o, field) for o in OPTIONS if getattr(o, field)]
        assert len(named) == len(set(named)), field
    internal = {"backup_lock_timeout", "login_attempts_per_minute", "max_body_bytes"}
    assert {o.attr for o in OPTIONS} == set(Config.__dataclass_fields__) - internal


def test_the_defaults_come_from_the_table(tmp_path):
    config = Config.from_env({}, data_dir=tmp_path)
    for option in OPTIONS:
        if option.attr not in ("data_dir", "db_path"):
            assert getattr(config, option.attr) == option.default, option.env
    assert Config.from_env({}).data_dir == Path("./.data").absolute()


@pytest.mark.parametrize("option", [o for o in OPTIONS if isinstance(o.default, int)
                                    and not isinstance(o.default, bool)], ids=lambda o: o.env)
def test_every_whole_number_is_checked_with_its_name(option, tmp_path):
    assert getattr(Config.from_env({option.env: "  "}, data_dir=tmp_path),
                   option.attr) == option.default
    with pytest.raises(ConfigError, match=f"^{option.env} must be a whole number, got 'many'$"):
        Config.from_env({option.env: "many"}, data_dir=tmp_path)
    with pytest.raises(ConfigError, match=f"^{option.env} must be at least "):
        Config.from_env({option.env: "-1"}, data_dir=tmp_path)


def test_switches_keep_their_words(tmp_path):
    def read(env):
        return Config.from_env(env, data_dir=tmp_path)

    assert read({"MC_COOKIE_SECURE": " AUTO "}).cookie_secure is None
    assert read({"MC_COOKIE_SECURE": "yes"}).cookie_secure is True
    assert read({"MC_ACCESS_LOG": "on"}).access_log is True
    with pytest.raises(ConfigError, match=r"^MC_ACCESS_LOG must be 1, 0, got 'auto'$"):
        read({"MC_ACCESS_LOG": "auto"})
    with pytest.raises(ConfigError, match=r"^MC_COOKIE_SECURE must be 1, 0 or auto, got 'x'$"):
        read({"MC_COOKIE_SECURE": "X"})
    assert read({"MC_TRUSTED_PROXIES": " 10.0.0.5, ,10.0.0.6"}).trusted_proxies == \
        frozenset({"10.0.0.5", "10.0.0.6"})
    assert read({"MC_LOG_LEVEL": "debug"}).log_level == "DEBUG"


def test_every_flag_of_the_table_reaches_config_show(tmp_path):
    """The global flags and serve's come from the table: each is accepted where it belongs."""
    flagged = [o for o in OPTIONS if o.flag]
    assert {o.flag for o in flagged} == {"--data-dir", "--db-path", "--host", "--port",
                                         "--threads"}
    for option in flagged:
        if option.command:  # serve's own flags are refused elsewhere, named by argparse
            ran = run_cli("config", "show", option.flag, "1", "--json", cwd=tmp_path)
            assert ran.code == 2 and option.flag in ran.json["error"]
    config, sources = load(None, environ={}, data_dir=str(tmp_path), host="::1", port=0)
    assert (config.host, config.port, config.data_dir) == ("::1", 0, tmp_path)
    assert {k for k, v in sources.items() if v == "flag"} == {"data-dir", "db-path", "host",
                                                               "port"}
