"""`MissionControl`: the app object that owns config, database, plugins and services, and hands them on."""
import logging
import secrets
import time

from .audit import Auditor, AuditStore
from .auth import Authenticator
from .backup.service import BackupService
from .config import Config, ConfigError, DatabaseNotFound, ForeignDatabase
from .db import Database, migrate
from .db_identity import EMPTY, MISSING, OURS, identify
from .hooks import Hooks
from .offsite.results import OffsiteResults
from .offsite.codec import IDENTITY_SETTING
from .offsite.extras import codec_problems
from .offsite.signing import KEY_FILE
from .offsite.signing import Signer
from .offsite.signing import parse_verify_keys
from .outbox import Outbox
from .passwords import check_strength
from .backup.pruning import Pruning
from .plugin_manager import DEFAULT_PLUGINS
from .plugin_manager import get_plugin_manager
from .files import private_umask
from .files import secure_data_folder
from .scheduling.scheduler import Scheduler
from .backup.scratch import SCRATCH_PREFIX
from .backup.scratch import sweep_scratch
from .settings import HOST_SETTINGS, Settings, plugin_setting
from .backup.uploads import UPLOAD_PREFIX
from .users import UserError, UserStore

log = logging.getLogger(__name__)


def _check_database(db_path, create, init):
    """What is at `db_path`, refused unless this caller may use it; True when it is Mission
    Control's own database (its files may be made private).

    :raises DatabaseNotFound: nothing there (or an empty file) and not `create`.
    :raises ForeignDatabase: something else is there, and it is not an SQLite database `init`
        may adopt. Nothing has been changed.
    """
    found = identify(db_path)
    if found.kind == OURS:
        return True
    if found.kind in (MISSING, EMPTY):
        if not create:
            raise DatabaseNotFound(db_path)
        log.info("creating a new Mission Control database at %s", db_path)
        return found.kind == MISSING
    if not (init and found.adoptable):
        raise ForeignDatabase(db_path, found.what, adoptable=found.adoptable)
    log.warning("adding Mission Control's tables to %s, which is %s (--init)", db_path,
                found.what)
    return False


class MissionControl:
    """Everything the service is, for the API, the CLI, the scheduler and scripts alike.

    Opening one first looks at the file without changing it: anything but a Mission Control
    database is refused (`init` aside). Then it makes a new data folder private (0700, files
    0600; an existing folder keeps its mode, with a warning), migrates the database forward and
    removes the temporary files of backups a crash interrupted. It starts no thread.

    :param config: a `Config`; by default `Config.from_env()`.
    :param clock: returns the time as unix seconds; tests pass a fake one.
    :param plugins: extra plugin objects to register (after the built-ins and entry points).
    :param create: make the database (and its folder) when it does not exist yet. Off by default,
        so a mistyped path fails instead of opening a new, empty database.
    :param init: also take an existing SQLite database that is not Mission Control's (another
        application's, the dashboard's) and add Mission Control's tables to it (`serve --init`).
    :raises DatabaseNotFound: no database at `config.db_path` and `create` is false.
    :raises ForeignDatabase: something else is there (see `init`); nothing was changed.
    """

    def __init__(self, config=None, *, clock=time.time, plugins=(), entry_points=True,
                 default_plugins=DEFAULT_PLUGINS, create=False, init=False):
        self.config = config or Config.from_env()
        self.clock = clock
        ours = _check_database(self.config.db_path, create, init)
        secure_data_folder(self.config.db_path, self.config.backups_dir, own_database=ours)
        self.db = Database(self.config.db_path)
        try:
            with private_umask():  # the first connection may create the database
                migrate(self.db.conn())
            self.pm = get_plugin_manager(self.config.disabled_plugins, default_plugins, plugins,
                                         entry_points, plugins_dir=self.config.plugins_dir)
        except BaseException:
            self.db.close()  # a bad plugin or schema must not leave the database open
            raise
        #: The one way services call plugins (`hooks.Hooks`): it sees only the manager's relay.
        self.hooks = Hooks(self.pm.hook, self)
        #: Background deliveries (alert pings, mail), so no request waits on a slow receiver.
        self.outbox = Outbox()
        self.audit_store = AuditStore(self.db)
        self.audit = Auditor(self.hooks, clock)
        signer = Signer(self.config.db_path.parent / KEY_FILE,
                        parse_verify_keys(self.config.offsite_verify_keys))
        self.offsite = OffsiteResults(self.db, clock, self.audit, self.hooks, signer=signer)
        declared = [plugin_setting(d) for d in self.hooks.register_settings()]
        self.settings = Settings(self.db, clock, self.audit, (*HOST_SETTINGS, IDENTITY_SETTING,
                                                               *declared))
        self.settings.check = self._check_settings
        self.users = UserStore(self.db, clock)
        self.auth = Authenticator(self.users, self.audit, clock, api_key=self.config.api_key,
                                  login_attempts_per_minute=self.config.login_attempts_per_minute,
                                  metrics_token=self.config.metrics_token)
        self.backups = BackupService(self)
        self.pruning = Pruning(self)  # after each backup, on demand, and previews
        self.backups.ensure_dir()
        self.backups.remove_leftovers()
        # A fetch, drill, S3 packing or upload killed mid-way; another process's live ones stay.
        swept = sweep_scratch(self.backups.dir, (SCRATCH_PREFIX, UPLOAD_PREFIX))
        if swept:
            log.warning("removed %d temporary file(s) left by an interrupted fetch, drill, "
                        "packing or upload", swept)
        self.scheduler = Scheduler(self)  # its thread is started only by `server.serve()`
        #: Objects plugins keep for the life of this service, by plugin name (e.g. a supervisor).
        self.services = {}

    @classmethod
    def open(cls, data_dir=None, *, db_path=None, environ=None, **kwargs):
        """Open the service on `data_dir` (default: `MISSION_CONTROL_DATA_DIR` or `./.data`).

        :param kwargs: passed to the constructor; `create=True` makes a missing database.
        :raises DatabaseNotFound: there is no database there (and `create` is not set).
        """
        return cls(Config.from_env(environ, data_dir=data_dir, db_path=db_path), **kwargs)

    def ensure_admin(self, announce=print):
        """On start, when no user exists, create the first admin.

        From `AUTH_USER`/`AUTH_PASS` when set; otherwise `admin` with a random password that is
        shown once through `announce`. Returns the created `User`, or None.
        """
        if self.users.count():
            return None
        username, password = self.config.auth_user, self.config.auth_pass
        if bool(username) != bool(password):
            raise ConfigError("set both AUTH_USER and AUTH_PASS, or neither")
        generated = not password
        if generated:
            username, password = "admin", secrets.token_urlsafe(18)
        elif check_strength(password):
            raise ConfigError(f"AUTH_PASS: {check_strength(password)}")
        try:
            user = self.users.add(username, password, role="admin")
        except UserError:
            return None  # another process created the first user at the same moment
        if generated:
            announce(f"Created admin user 'admin' with password: {password}\n"
                     "It is shown only this once; change it with "
                     "`mission-control user set-password admin`.")
        else:
            log.info("created admin user %r from AUTH_USER", username)
        return user

    def _check_settings(self, settings, changed):
        """`Settings.check`: a codec setting whose module is missing (the extra to install is
        named), then every plugin's `check_settings`; the problems of both, refused whole."""
        return [*codec_problems(settings, changed), *self.hooks.check_settings(settings, changed)]

    def close(self):
        """Stop the scheduler, give queued alerts a few seconds to go out, close the database."""
        self.scheduler.stop()
        self.outbox.close()
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
