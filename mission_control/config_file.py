"""The TOML configuration file (`--config FILE` / `MC_CONFIG`): long option names, layered under the
environment, and where each effective value came from."""
import os
import stat
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as a package
    import tomli as tomllib

from .config import OPTIONS, Config, ConfigError

#: The options the file may set, by key (the long option's name).
BY_KEY = {option.key: option for option in OPTIONS if option.key}
#: A key of the file -> the environment variable it stands in for.
KEYS = {key: option.env for key, option in BY_KEY.items()}
SECRETS = frozenset(key for key, option in BY_KEY.items() if option.secret)
#: Paths in the file are relative to the file's own folder, not to wherever the command runs.
PATH_KEYS = frozenset(key for key, option in BY_KEY.items() if option.path)
ENV_VAR = "MC_CONFIG"


def _as_env(key, value, folder):
    """One file value as the environment would spell it; raises ConfigError naming the key."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if key in PATH_KEYS and value:
            return os.path.normpath(folder / Path(value).expanduser())
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    raise ConfigError(f"{key}: must be a string, a whole number, true/false or a list of "
                      f"strings, got {type(value).__name__}")


def exposure(path, mode, keys):
    """The warning for a file at `path` with permission bits `mode` holding `keys`, or None: a
    file other users can read must not hold a secret (the API key opens everything)."""
    held = sorted(SECRETS & set(keys))
    if not held or not mode & (stat.S_IRGRP | stat.S_IROTH):
        return None
    return (f"the configuration file {path} holds secrets ({', '.join(held)}) and other users "
            f"can read it (mode {oct(mode)}); make it private: chmod 600 {path}")


def read(path, warn=None):
    """Read the file at `path` into `{ENV_VAR_NAME: text}`.

    :param warn: called with a sentence when the file holds secrets and other users can read it.
    :raises ConfigError: unreadable, not TOML, an unknown key (named), or a value of a wrong type.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
            mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in {path} (known: "
                          f"{', '.join(sorted(KEYS))})")
    folder = path.absolute().parent
    values = {KEYS[key]: _as_env(key, value, folder) for key, value in data.items()}
    warning = exposure(path.absolute(), mode, data)
    if warning and warn is not None:
        warn(warning)
    return values


def load(config_path=None, environ=None, warn=None, **flags):
    """The effective `Config` and each key's source: flags > environment > file > defaults.

    :param config_path: the `--config` file; else `MC_CONFIG` from `environ`; else no file.
    :param warn: as for `read`.
    :param flags: `Config.from_env` overrides from the command line (None means not given).
    :return: `(config, sources)`, sources mapping each key of `KEYS` to "flag", "env",
        "file" or "default".
    :raises ConfigError: as `read`, or a value `Config.from_env` refuses.
    """
    env = dict(os.environ if environ is None else environ)
    config_path = config_path or env.get(ENV_VAR) or None
    from_file = read(config_path, warn) if config_path else {}
    config = Config.from_env({**from_file, **env}, **flags)
    keys = {option.attr: key for key, option in BY_KEY.items()}
    given = {keys[attr] for attr, value in flags.items() if value is not None}
    if "data-dir" in given and "db-path" not in given:
        given.add("db-path")  # --data-dir alone means the database in that folder
    sources = {}
    for key, var in KEYS.items():
        if key in given:
            sources[key] = "flag"
        elif env.get(var):
            sources[key] = "env"
        elif from_file.get(var):
            sources[key] = "file"
        else:
            sources[key] = "default"
    return config, sources


def describe(config, sources):
    """`{key: {"value", "source"}}` for `config show`: secrets masked, paths and sets as text."""
    out = {}
    for key, option in BY_KEY.items():
        value = getattr(config, option.attr)
        if key in SECRETS and value is not None:
            value = "********"
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, (frozenset, set, tuple)):
            value = sorted(value)
        out[key] = {"value": value, "source": sources[key]}
    return out
