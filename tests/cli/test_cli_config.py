"""`--config FILE` / `MC_CONFIG`: TOML with long option names; flags > environment > file >
defaults; unknown keys named; `config show` with sources and secrets masked."""
import json

import pytest

from mission_control.config import ConfigError
from mission_control.config_file import KEYS, load, read

from tests.support.cli_run import run_cli

#: In the slow lane (real CLI runs: ~3.5 s on the 2-core machine).
pytestmark = pytest.mark.slow


def write(path, text):
    path.write_text(text)
    return path


def shown(ran):
    assert ran.code == 0, ran.err
    return ran.json["config"]


def test_the_file_sets_options_and_paths_are_relative_to_it(tmp_path):
    (tmp_path / "etc").mkdir()
    conf = write(tmp_path / "etc" / "mc.toml",
                 'data-dir = "../state"\nport = 9001\ndisable-plugins = ["retention"]\n'
                 'api-key = "a-long-secret-api-key"\naccess-log = true\n')
    config = shown(run_cli("config", "show", "--json", "--config", conf, cwd=tmp_path))
    assert config["data-dir"] == {"value": str(tmp_path / "state"), "source": "file"}
    assert config["port"] == {"value": 9001, "source": "file"}
    assert config["disable-plugins"] == {"value": ["retention"], "source": "file"}
    assert config["access-log"] == {"value": True, "source": "file"}
    assert config["api-key"] == {"value": "********", "source": "file"}  # masked
    assert config["host"] == {"value": "127.0.0.1", "source": "default"}
    text = run_cli("config", "show", "--config", conf).out
    assert "a-long-secret-api-key" not in text and "port" in text and "(file)" in text


def test_flags_beat_the_environment_which_beats_the_file(tmp_path):
    conf = write(tmp_path / "mc.toml", f'data-dir = "{tmp_path / "from-file"}"\n'
                                       'threads = 3\nhost = "127.0.0.2"\n')
    env = {"MC_CONFIG": str(conf), "MISSION_CONTROL_DATA_DIR": str(tmp_path / "from-env"),
           "MC_THREADS": "5"}
    config = shown(run_cli("config", "show", "--json", env=env))
    assert config["data-dir"] == {"value": str(tmp_path / "from-env"), "source": "env"}
    assert config["threads"] == {"value": 5, "source": "env"}
    assert config["host"] == {"value": "127.0.0.2", "source": "file"}
    config = shown(run_cli("--data-dir", tmp_path / "from-flag", "config", "show", "--json",
                           env=env))
    assert config["data-dir"] == {"value": str(tmp_path / "from-flag"), "source": "flag"}
    assert config["db-path"]["value"] == str(tmp_path / "from-flag" / "mission-control.db")


def test_the_file_is_used_by_every_command(tmp_path):
    conf = write(tmp_path / "mc.toml", f'data-dir = "{tmp_path / "state"}"\n')
    assert run_cli("user", "add", "ann", "--password-stdin", "--config", conf,
                   stdin="correct-horse-battery\n").code == 0  # makes the database there
    assert run_cli("backup", "create", "--config", conf).code == 0
    assert len(run_cli("backup", "list", "--json", env={"MC_CONFIG": str(conf)})
               .json["backups"]) == 1


@pytest.mark.parametrize("text, named", [
    ('data-dir = "x"\ndata_dir = "y"\n', "data_dir"),
    ('prot = 80\n', "prot"),
    ('port = "eighty"\n', "MC_PORT"),
    ('port = 1.5\n', "port"),
    ('port = \n', "not valid TOML"),
])
def test_bad_files_are_exit_2_naming_the_problem(tmp_path, text, named):
    conf = write(tmp_path / "mc.toml", text)
    for extra in ((), ("--json",)):
        ran = run_cli("backup", "list", "--config", conf, *extra, cwd=tmp_path)
        assert ran.code == 2
        message = ran.json["error"] if extra else ran.err
        assert named in message, message


def test_a_missing_file_is_exit_2():
    ran = run_cli("config", "show", "--config", "/nonexistent/mc.toml")
    assert ran.code == 2 and "cannot read the configuration file" in ran.err


def test_every_key_is_a_config_attribute_or_known_alias(tmp_path):
    config, sources = load(None, environ={})
    assert set(sources) == set(KEYS) and set(sources.values()) == {"default"}
    with pytest.raises(ConfigError, match="unknown key 'nope'"):
        read(write(tmp_path / "x.toml", "nope = 1\n"))


def test_a_file_others_can_read_that_holds_a_secret_is_named_with_its_mode(tmp_path):
    conf = write(tmp_path / "mc.toml", f'data-dir = "{tmp_path / "state"}"\n'
                                       'api-key = "a-long-secret-api-key"\n')
    warning = (f"the configuration file {conf} holds secrets (api-key) and other users can "
               "read it (mode 0o644)")
    for mode in (0o644, 0o640):
        conf.chmod(mode)
        ran = run_cli("config", "show", "--json", "--config", conf)
        assert ran.code == 0 and warning.replace("0o644", oct(mode)) in ran.err, ran.err
        assert "a-long-secret-api-key" not in ran.err
    # As JSON log lines when the log is JSON, even with --quiet, and from the environment's file.
    conf.chmod(0o604)
    ran = run_cli("--quiet", "config", "show", "--json",
                  env={"MC_CONFIG": str(conf), "MC_LOG_FORMAT": "json"})
    [record] = [json.loads(line) for line in ran.err.splitlines()]
    assert record["level"] == "WARNING" and f"{conf} holds secrets" in record["message"]
    assert "(mode 0o604)" in record["message"]


@pytest.mark.parametrize("text, mode", [
    ('api-key = "a-long-secret-api-key"\n', 0o600),  # private: nothing to say
    ('api-key = "a-long-secret-api-key"\n', 0o400),
    ('port = 9001\nauth-user = "ann"\n', 0o644),  # readable, but nothing secret in it
])
def test_a_private_file_or_one_without_secrets_is_used_quietly(tmp_path, text, mode):
    conf = write(tmp_path / "mc.toml", text)
    conf.chmod(mode)
    ran = run_cli("config", "show", "--json", "--config", conf)
    assert ran.code == 0 and ran.err == ""
