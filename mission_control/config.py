"""Service configuration: one table of options (variable, flag, file key, default, parser), read
once from the environment and command-line overrides."""
import errno
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from .offsite.signing import parse_verify_keys

LOG_FORMATS = ("text", "json")


class ConfigError(ValueError):
    """A setting in the environment or on the command line has an unusable value."""


class DatabaseNotFound(FileNotFoundError):
    """There is no database at the configured path, and this caller may not create one.

    Only `serve`, `user add` and `create_app` make a new database: anything else on a mistyped
    path would otherwise back up, list or restore an empty database made on the spot.
    """

    def __init__(self, path):
        message = (f"no Mission Control database at {path} "
                   "(start the service once, or pass --data-dir)")
        super().__init__(errno.ENOENT, message, str(path))
        self.message = message

    def __str__(self):
        return self.message


class ForeignDatabase(ConfigError):
    """The database path holds something that is not a Mission Control database (a folder, a
    text file, another application's SQLite database): refused before anything was changed.

    :param path: the configured database path.
    :param found: what is there, as a phrase ("a folder", "an SQLite database with 2 tables ...").
    :param adoptable: it is an SQLite database that `serve --init` could add Mission Control's
        tables to; the message says so.
    """

    def __init__(self, path, found, *, adoptable=False):
        hint = ("check --db-path / --data-dir, or run `mission-control serve --init` to add "
                "Mission Control's tables to it" if adoptable
                else "check --db-path / --data-dir")
        super().__init__(f"{path} is not a Mission Control database: it is {found}; nothing was "
                         f"changed ({hint})")
        self.path = str(path)
        self.found = found
        self.adoptable = adoptable


def _whole(minimum=0):
    """A parser of whole numbers of at least `minimum`; blank text means the default."""
    def parse(name, raw):
        if raw.strip() == "":
            return None
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
        if value < minimum:
            raise ConfigError(f"{name} must be at least {minimum}, got {value}")
        return value
    return parse


def _switch(auto=False):
    """A parser of 1/0 (yes/no, on/off, true/false); None (the default) for blank, or "auto"
    where `auto` allows it."""
    def parse(name, raw):
        raw = raw.strip().lower()
        if raw == "" or auto and raw == "auto":
            return None
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be 1, 0{' or auto' if auto else ''}, got {raw!r}")
    return parse


def _csv(raw):
    return tuple(part.strip() for part in (raw or "").split(",") if part.strip())


def _text(name, raw):
    return raw


def _path(name, raw):
    return Path(raw).absolute()


@dataclass(frozen=True)
class Option:
    """One setting of the service: where it is read from, its default and how its text is parsed.

    :param attr: the `Config` attribute it fills.
    :param env: the environment variable.
    :param flag: the command-line flag, or None; global unless `command` names the one
        sub-command that takes it.
    :param key: the configuration file's key (the long option's name), or None: environment only.
    :param default: the value when the variable is unset or empty.
    :param parse: `parse(env, text)` -> the value, None for the default; raises ConfigError
        naming `env`. Called only with non-empty text.
    :param secret: masked by `config show`, and a file holding it should be private.
    :param path: the file's value is relative to the file's folder.
    :param help: a few words for `--help`.
    :param shown: the default as the README and `--help` spell it, when `str(default)` will not do.
    """

    attr: str
    env: str
    default: object = None
    parse: Callable[[str, str], object] = _text
    key: str | None = None
    flag: str | None = None
    command: str | None = None
    secret: bool = False
    path: bool = False
    help: str = ""
    shown: str | None = None

    def read(self, environ):
        """This option's value in `environ` (a mapping of variable names to text)."""
        raw = environ.get(self.env)
        value = self.parse(self.env, raw) if raw else None
        return self.default if value is None else value

    @property
    def default_text(self):
        """The default in words: "unset", "0"/"1" for a switch, else the value."""
        if self.shown is not None:
            return self.shown
        if self.default is None or self.default in ("", (), frozenset()):
            return "unset"
        if isinstance(self.default, bool):
            return str(int(self.default))
        return str(self.default)


#: Every option, in the order `config show` lists them. Defaults live here and nowhere else.
OPTIONS = (
    Option("data_dir", "MISSION_CONTROL_DATA_DIR", "./.data", key="data-dir", flag="--data-dir",
           path=True, help="folder holding the database"),
    # None: the database in the data folder (worked out in `Config.from_env`).
    Option("db_path", "MISSION_CONTROL_DB_PATH", key="db-path", flag="--db-path", path=True,
           help="the SQLite database", shown="<data dir>/mission-control.db"),
    Option("host", "MC_HOST", "127.0.0.1", key="host", flag="--host", command="serve",
           help="listen address"),
    Option("port", "MC_PORT", 8000, _whole(), key="port", flag="--port", command="serve",
           help="listen port"),
    Option("threads", "MC_THREADS", 8, _whole(1), key="threads", flag="--threads",
           command="serve", help="worker threads"),
    Option("log_level", "MC_LOG_LEVEL", "INFO", lambda name, raw: raw.upper(), key="log-level"),
    Option("log_format", "MC_LOG_FORMAT", "text", lambda name, raw: raw.strip().lower(),
           key="log-format"),
    Option("access_log", "MC_ACCESS_LOG", False, _switch(), key="access-log"),
    Option("trusted_proxies", "MC_TRUSTED_PROXIES", frozenset(),
           lambda name, raw: frozenset(_csv(raw)), key="trusted-proxies"),
    Option("plugins_dir", "MC_PLUGINS_DIR", None, _path, key="plugins-dir", path=True),
    Option("disabled_plugins", "MC_DISABLE_PLUGINS", (), lambda name, raw: _csv(raw),
           key="disable-plugins"),
    Option("backup_rate_limit", "MC_BACKUP_RATE_LIMIT", 10, _whole(), key="backup-rate-limit"),
    # None: Secure only when the request came over HTTPS.
    Option("cookie_secure", "MC_COOKIE_SECURE", None, _switch(auto=True), key="cookie-secure",
           shown="auto"),
    Option("max_upload_mb", "MC_MAX_UPLOAD_MB", 1024, _whole(1), key="max-upload-mb"),
    Option("connection_limit", "MC_CONNECTION_LIMIT", 500, _whole(1), key="connection-limit"),
    Option("idle_timeout", "MC_IDLE_TIMEOUT", 15, _whole(1), key="idle-timeout"),
    Option("verify_timeout", "MC_VERIFY_TIMEOUT", 300, _whole(1), key="verify-timeout"),
    Option("litestream_bin", "MC_LITESTREAM_BIN", None, key="litestream-bin", path=True),
    Option("auth_user", "AUTH_USER", None, key="auth-user"),
    Option("auth_pass", "AUTH_PASS", None, key="auth-pass", secret=True),
    Option("api_key", "API_KEY", None, key="api-key", secret=True),
    Option("metrics_token", "MC_METRICS_TOKEN", None, key="metrics-token", secret=True),
    # Public keys, so not secret; not in the file, as it never was.
    Option("offsite_verify_keys", "MC_OFFSITE_VERIFY_KEYS", "", lambda name, raw: raw.strip()),
)


@dataclass(frozen=True)
class Config:
    """Everything the service reads from its surroundings. Build it with `Config.from_env`; the
    attributes filled from the environment are described, with their defaults, in `OPTIONS`."""

    data_dir: Path
    db_path: Path
    host: str
    port: int
    threads: int
    log_level: str
    log_format: str  # "text" or "json"
    access_log: bool  # one log line per request
    trusted_proxies: frozenset
    plugins_dir: Path | None  # drop-in folder of *.py plugins
    disabled_plugins: tuple
    backup_rate_limit: int  # per admin per rolling hour; 0 turns it off
    cookie_secure: bool | None  # None: Secure only when the request came over HTTPS
    max_upload_mb: int  # cap on an uploaded backup file
    connection_limit: int  # open connections the server holds
    idle_timeout: int  # seconds a connection may send nothing before it is closed
    verify_timeout: int  # seconds `integrity_check` may run on one file
    litestream_bin: str | None  # another Litestream binary
    auth_user: str | None
    auth_pass: str | None
    api_key: str | None
    metrics_token: str | None  # bearer token for /metrics and /api/backup/status only
    #: More keys off-site manifests may be signed with, e.g. an old host's.
    offsite_verify_keys: str
    # Not read from the environment: only callers (tests, embedding scripts) change these.
    backup_lock_timeout: float = 30.0  # seconds a backup waits for the running one
    login_attempts_per_minute: int = 5
    max_body_bytes: int = 1024 * 1024

    @property
    def backups_dir(self) -> Path:
        """Always `backups/` beside the database, so it cannot drift elsewhere by accident."""
        return self.db_path.parent / "backups"

    @classmethod
    def from_env(cls, environ=None, **overrides):
        """Read the `MISSION_CONTROL_*` / `MC_*` variables of `OPTIONS`; keyword overrides win
        (None is ignored)."""
        env = os.environ if environ is None else environ
        overrides = {k: v for k, v in overrides.items() if v is not None}
        values = {option.attr: option.read(env) for option in OPTIONS}
        data_dir_override = overrides.pop("data_dir", None)
        data_dir = Path(data_dir_override or values["data_dir"])
        # An explicit --data-dir means "the database in that folder", whatever the environment says.
        env_db = None if data_dir_override else values["db_path"]
        db_path = overrides.pop("db_path", None) or env_db or data_dir / "mission-control.db"
        values.update(data_dir=data_dir.absolute(), db_path=Path(db_path).absolute())
        config = cls(**values)
        if overrides:
            config = replace(config, **overrides)
        if config.port > 65535:
            raise ConfigError(f"MC_PORT must be at most 65535, got {config.port}")
        if config.offsite_verify_keys:
            try:
                parse_verify_keys(config.offsite_verify_keys)
            except ValueError as exc:
                raise ConfigError(f"MC_OFFSITE_VERIFY_KEYS: {exc}") from None
        if config.log_format not in LOG_FORMATS:
            raise ConfigError(f"MC_LOG_FORMAT must be text or json, got {config.log_format!r}")
        token = config.metrics_token
        if token is not None and (len(token) < 16 or token != token.strip()):
            raise ConfigError("MC_METRICS_TOKEN must be at least 16 characters, without spaces "
                              "around it")
        if token is not None and token == config.api_key:
            raise ConfigError("MC_METRICS_TOKEN must differ from API_KEY (it opens only /metrics "
                              "and /api/backup/status)")
        return config
