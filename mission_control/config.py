"""Service configuration, read once from the environment and command-line overrides."""
import errno
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from .offsite_signing import parse_verify_keys

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


def _int(environ, key, default, minimum=0):
    raw = environ.get(key)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{key} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{key} must be at least {minimum}, got {value}")
    return value


def _flag(environ, key, auto=False):
    """True, False, or None when unset (or "auto", where `auto` allows it)."""
    raw = (environ.get(key) or "").strip().lower()
    if raw == "" or auto and raw == "auto":
        return None
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{key} must be 1, 0{' or auto' if auto else ''}, got {raw!r}")


def _csv(raw):
    return tuple(part.strip() for part in (raw or "").split(",") if part.strip())


@dataclass(frozen=True)
class Config:
    """Everything the service reads from its surroundings. Build it with `Config.from_env`."""

    data_dir: Path
    db_path: Path
    host: str = "127.0.0.1"
    port: int = 8000
    threads: int = 8
    auth_user: str | None = None
    auth_pass: str | None = None
    api_key: str | None = None
    cookie_secure: bool | None = None  # None: Secure only when the request came over HTTPS
    backup_rate_limit: int = 10  # per admin per rolling hour; 0 turns it off
    trusted_proxies: frozenset = field(default_factory=frozenset)
    log_level: str = "INFO"
    disabled_plugins: tuple = ()
    plugins_dir: Path | None = None  # drop-in folder of *.py plugins (MC_PLUGINS_DIR)
    backup_lock_timeout: float = 30.0  # seconds a backup waits for the running one
    login_attempts_per_minute: int = 5
    max_body_bytes: int = 1024 * 1024
    max_upload_mb: int = 1024  # cap on an uploaded backup file (MC_MAX_UPLOAD_MB)
    connection_limit: int = 500  # open connections the server holds (MC_CONNECTION_LIMIT)
    idle_timeout: int = 15  # seconds a connection may send nothing before it is closed
    metrics_token: str | None = None  # bearer token for /metrics and /api/backup/status only
    log_format: str = "text"  # or "json" (MC_LOG_FORMAT)
    access_log: bool = False  # one log line per request (MC_ACCESS_LOG)
    verify_timeout: int = 300  # seconds `integrity_check` may run on one file (MC_VERIFY_TIMEOUT)
    litestream_bin: str | None = None  # another Litestream binary (MC_LITESTREAM_BIN)
    #: More keys off-site manifests may be signed with, e.g. an old host's (MC_OFFSITE_VERIFY_KEYS).
    offsite_verify_keys: str = ""

    @property
    def backups_dir(self) -> Path:
        """Always `backups/` beside the database, so it cannot drift elsewhere by accident."""
        return self.db_path.parent / "backups"

    @classmethod
    def from_env(cls, environ=None, **overrides):
        """Read the `MISSION_CONTROL_*` / `MC_*` variables; keyword overrides win (None is ignored)."""
        env = os.environ if environ is None else environ
        overrides = {k: v for k, v in overrides.items() if v is not None}
        data_dir_override = overrides.pop("data_dir", None)
        data_dir = Path(data_dir_override or env.get("MISSION_CONTROL_DATA_DIR") or "./.data")
        # An explicit --data-dir means "the database in that folder", whatever the environment says.
        env_db = None if data_dir_override else env.get("MISSION_CONTROL_DB_PATH")
        db_path = overrides.pop("db_path", None) or env_db or data_dir / "mission-control.db"
        config = cls(
            data_dir=data_dir.absolute(),
            db_path=Path(db_path).absolute(),
            host=env.get("MC_HOST") or "127.0.0.1",
            port=_int(env, "MC_PORT", 8000),
            threads=_int(env, "MC_THREADS", 8, minimum=1),
            auth_user=env.get("AUTH_USER") or None,
            auth_pass=env.get("AUTH_PASS") or None,
            api_key=env.get("API_KEY") or None,
            cookie_secure=_flag(env, "MC_COOKIE_SECURE", auto=True),
            backup_rate_limit=_int(env, "MC_BACKUP_RATE_LIMIT", 10),
            trusted_proxies=frozenset(_csv(env.get("MC_TRUSTED_PROXIES"))),
            log_level=(env.get("MC_LOG_LEVEL") or "INFO").upper(),
            disabled_plugins=_csv(env.get("MC_DISABLE_PLUGINS")),
            plugins_dir=(Path(env["MC_PLUGINS_DIR"]).absolute() if env.get("MC_PLUGINS_DIR")
                         else None),
            max_upload_mb=_int(env, "MC_MAX_UPLOAD_MB", 1024, minimum=1),
            connection_limit=_int(env, "MC_CONNECTION_LIMIT", 500, minimum=1),
            idle_timeout=_int(env, "MC_IDLE_TIMEOUT", 15, minimum=1),
            metrics_token=env.get("MC_METRICS_TOKEN") or None,
            log_format=(env.get("MC_LOG_FORMAT") or "text").strip().lower(),
            access_log=bool(_flag(env, "MC_ACCESS_LOG")),
            verify_timeout=_int(env, "MC_VERIFY_TIMEOUT", 300, minimum=1),
            litestream_bin=env.get("MC_LITESTREAM_BIN") or None,
            offsite_verify_keys=(env.get("MC_OFFSITE_VERIFY_KEYS") or "").strip(),
        )
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
