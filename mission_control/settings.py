"""Typed setting definitions and the `settings` table: validation, defaults, all-or-nothing updates."""
import logging
import re
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase

from .errors import NotFound, ValidationFailed
from .scheduling.cron import DEFAULT_SCHEDULE
from .setting_kinds import CRON, NOT_PRINTABLE

log = logging.getLogger(__name__)

#: ASCII digits only: `int()` alone would also take "1_000" and other scripts' digits.
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,18}")


@dataclass(frozen=True)
class SettingDef:
    """One setting: values are stored and returned as strings, as upstream Mission Control does.

    `type` is "text", "bool" or "int"; `minimum`/`maximum` bound an int; a `secret` value is never
    returned by the API. A text setting may name its `kind` (`mission_control.setting_kinds`:
    URL, HOST, PATH, EMAIL, EMAILS, CRON, a duration), whose check and OpenAPI pattern every
    setting of that kind shares; an empty value then passes only when the default is empty.
    It may also (or instead) list its allowed `choices`, or name a `clean`
    function that takes the given string and returns the canonical one, or raises ValueError
    with the reason (the API answers 400 naming the setting); its `pattern` then tells API
    clients (in the OpenAPI document) what `clean` accepts. `protection` says whether the setting
    configures protection (backups, retention, off-site copies, audit sinks, alerts), whose live
    value a restore keeps; None leaves it to `configures_protection`.
    """

    key: str
    type: str
    default: str
    description: str
    category: str
    minimum: int | None = None
    maximum: int | None = None
    secret: bool = False
    max_length: int = 1000
    choices: tuple | None = None
    clean: object = None
    pattern: str | None = None
    protection: bool | None = None
    kind: object = None

    def normalize(self, value):
        """The canonical stored string for `value`, or raise ValueError with the reason."""
        if self.type == "bool":
            if isinstance(value, bool):
                return "true" if value else "false"
            if isinstance(value, str) and value.strip().lower() in ("true", "false"):
                return value.strip().lower()
            raise ValueError('must be "true" or "false"')
        if self.type == "int":
            if isinstance(value, float) and value.is_integer():
                value = int(value)  # JSON has one number type: 252.0 is the whole number 252
            if isinstance(value, bool) or not isinstance(value, (int, str)) or \
                    isinstance(value, str) and not _WHOLE_NUMBER.fullmatch(value.strip()):
                raise ValueError("must be a whole number")
            number = int(value.strip()) if isinstance(value, str) else value
            if self.minimum is not None and number < self.minimum or \
                    self.maximum is not None and number > self.maximum:
                raise ValueError(f"must be between {self.minimum} and {self.maximum}")
            return str(number)
        if not isinstance(value, str):
            raise ValueError("must be a string")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"must be one of {', '.join(self.choices)}")
        if self.kind is not None and len(value) <= self.max_length:
            value = self.kind.clean(value, secret=self.secret, optional=self.default == "")
        if self.clean is not None and len(value) <= self.max_length:
            value = self.clean(value)
        if len(value) > self.max_length or NOT_PRINTABLE.search(value):
            raise ValueError(f"must be at most {self.max_length} printable characters")
        return value

    def typed(self, stored):
        if self.type == "bool":
            return stored == "true"
        if self.type == "int":
            return int(stored)
        return stored


HOST_SETTINGS = (
    SettingDef("general.site_name", "text", "Mission Control", "Name shown in the dashboard",
               "general", max_length=100),
    SettingDef("general.auto_backup", "bool", "false",
               "Make backups on general.auto_backup_schedule (default every day at 03:00 UTC)",
               "general"),
    SettingDef("general.auto_backup_schedule", "text", DEFAULT_SCHEDULE,
               "When automatic backups run: a 5-field cron expression in UTC, at most every 5 "
               "minutes", "general", max_length=100, kind=CRON),
    SettingDef("offsite.verify_schedule", "text", "0 4 * * 0",
               "When the off-site restore drill (task offsite_verify) runs while a target is "
               "configured: a 5-field cron expression in UTC (default Sundays at 04:00)",
               "offsite", max_length=100, kind=CRON),
    SettingDef("general.backup_retention_count", "int", "10",
               "Keep the newest N mc-backup-* files (keep-last); the retention.* rules may keep "
               "more; the rest are pruned after each backup",
               "general", minimum=1, maximum=1000),
    SettingDef("general.safety_copies_keep", "int", "5",
               "How many pre-restore-* safety copies, uploaded-* files and fetched offsite-* "
               "copies to keep, each; older ones are pruned after each restore, upload or fetch",
               "general", minimum=1, maximum=100),
    SettingDef("backup.io_limit_mb_s", "int", "0",
               "At most this many megabytes (10^6 bytes) a second read and written by a backup's "
               "copy, to leave the disk to the live database; 0: no limit", "backup",
               minimum=0, maximum=100_000),
    SettingDef("offsite.max_lag_minutes", "int", "60",
               "Backup health fails when the newest backup has no verified copy at a configured "
               "off-site target after this many minutes", "offsite", minimum=1, maximum=7 * 24 * 60),
)

#: Host settings named like these configure protection (see `configures_protection`).
PROTECTION_PATTERNS = ("general.auto_backup*", "*retention*", "*keep*", "offsite.*", "backup.*")


def configures_protection(definition):
    """True when a restore should keep the live value of `definition` rather than the backup's.

    An explicit `protection` wins; otherwise the key decides (`PROTECTION_PATTERNS`). Settings
    declared by plugins arrive here through `plugin_setting`, so they count unless they opt out.
    """
    if definition.protection is not None:
        return definition.protection
    return any(fnmatchcase(definition.key, pattern) for pattern in PROTECTION_PATTERNS)


def plugin_setting(definition):
    """`definition` as declared by a plugin: protection unless the plugin said otherwise."""
    return definition if definition.protection is not None else replace(definition, protection=True)


class Settings:
    """The settings registry and its table. `get` returns typed values; the API sees strings."""

    def __init__(self, db, clock, auditor, definitions=HOST_SETTINGS):
        self._db = db
        self._clock = clock
        self._audit = auditor
        self.definitions = {}
        for definition in definitions:
            if definition.key in self.definitions:
                raise ValueError(f"setting {definition.key!r} is declared twice")
            self.definitions[definition.key] = definition
        self._listeners = []
        #: `check(view, changed_keys) -> problems`: the plugins' check of a change against the
        #: world outside (`Hooks.check_settings`), set by the service; None checks nothing more.
        self.check = None

    def on_change(self, callback):
        """Call `callback(changed_keys)` after every committed update or reset."""
        self._listeners.append(callback)

    def _stored(self):
        return {r["key"]: r for r in self._db.query(
            "SELECT key, value, updated_by, updated_at FROM settings")}

    def get_raw(self, key):
        row = self._db.query_one("SELECT value FROM settings WHERE key = ?", (key,))
        return row["value"] if row else self.definitions[key].default

    def get(self, key):
        """The typed value of `key`; a stored value that is no longer valid reads as the default.

        :raises KeyError: `key` is not a declared setting.
        """
        definition = self.definitions[key]
        raw = self.get_raw(key)
        try:
            return definition.typed(definition.normalize(raw))
        except ValueError:
            log.warning("setting %s holds an invalid value; using its default", key)
            return definition.typed(definition.default)

    def invalid_keys(self):
        """The stored keys whose value no longer validates (each read as its default), sorted."""
        bad = []
        for key, row in self._stored().items():
            definition = self.definitions.get(key)
            if definition is None:
                continue
            try:
                definition.typed(definition.normalize(row["value"]))
            except ValueError:
                bad.append(key)
        return sorted(bad)

    def protection_keys(self):
        """The declared keys whose live value a restore keeps, sorted (`configures_protection`)."""
        return sorted(k for k, d in self.definitions.items() if configures_protection(d))

    def changed_at(self, key):
        """Unix seconds of the last write of `key`, or None while it has never been set."""
        row = self._db.query_one("SELECT updated_at FROM settings WHERE key = ?", (key,))
        return row["updated_at"] if row else None

    def list(self):
        """Every known setting with its current value, for the API (secrets left out)."""
        stored = self._stored()
        out = []
        for d in sorted(self.definitions.values(), key=lambda d: (d.category, d.key)):
            if d.secret:
                continue
            row = stored.get(d.key)
            out.append({"key": d.key, "value": row["value"] if row else d.default,
                        "description": d.description, "category": d.category,
                        "updated_by": row["updated_by"] if row else None,
                        "updated_at": row["updated_at"] if row else None,
                        "is_default": row is None})
        return out

    def secrets(self):
        """Each secret setting without its value: whether one is set (not empty), and by whom."""
        stored = self._stored()
        out = []
        for d in sorted(self.definitions.values(), key=lambda d: (d.category, d.key)):
            if not d.secret:
                continue
            row = stored.get(d.key)
            out.append({"key": d.key, "description": d.description, "category": d.category,
                        "is_set": bool(row["value"] if row else d.default),
                        "updated_by": row["updated_by"] if row else None,
                        "updated_at": row["updated_at"] if row else None})
        return out

    def listing(self):
        """`GET /api/settings`'s answer (and `settings get --json`'s): `settings`, the same
        grouped by category, and `secrets` (set or not, never their values)."""
        items = self.list()
        grouped = {}
        for item in items:
            grouped.setdefault(item["category"], []).append(item)
        return {"settings": items, "grouped": grouped, "secrets": self.secrets()}

    def update(self, changes, actor):
        """Validate every key, then write them all in one transaction, or none, as `actor`.

        :return: the keys written (in the order given).
        :raises ValidationFailed: one `details` entry per bad key or value, or per problem the
            `check` found with the change as a whole; nothing is written.
        """
        normalized = self.validate(changes)
        if self.check is not None:
            view = SettingsView(self, {key: self.definitions[key].typed(value)
                                       for key, value in normalized.items()})
            problems = self.check(view, list(normalized))
            if problems:
                raise ValidationFailed(problems)
        now = int(self._clock())
        audit = {}
        with self._db.transaction() as conn:
            for key, value in normalized.items():
                row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
                old = row[0] if row else self.definitions[key].default
                conn.execute(
                    "INSERT INTO settings (key, value, updated_by, updated_at) VALUES (?,?,?,?)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value,"
                    " updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                    (key, value, str(actor), now))
                shown = "[secret]" if self.definitions[key].secret else None
                audit[key] = {"old": shown or old, "new": shown or value}
        self._audit.emit("settings_update", actor, target_type="settings",
                         detail={"changes": audit})
        self.notify(list(normalized))
        return list(normalized)

    def validate(self, changes):
        """The canonical stored string of each value in `changes` (key to value), checked.

        :raises ValidationFailed: one `details` entry per unknown key or bad value.
        """
        if not isinstance(changes, dict) or not changes:
            raise ValidationFailed(["settings: must be a non-empty object of key to value"])
        problems, normalized = [], {}
        for key, value in changes.items():
            definition = self.definitions.get(key)
            if definition is None:
                problems.append(f"{key}: unknown setting")
                continue
            try:
                normalized[key] = definition.normalize(value)
            except ValueError as exc:
                problems.append(f"{key}: {exc}")
        if problems:
            raise ValidationFailed(problems)
        return normalized

    def overlay(self, changes):
        """A read-only view whose `get` answers the proposed `changes` over the stored values.

        For previews ("what would these settings do?"); nothing is written.

        :raises ValidationFailed: as `validate`.
        """
        normalized = self.validate(changes)
        return SettingsView(self, {key: self.definitions[key].typed(value)
                                   for key, value in normalized.items()})

    def reset(self, key, actor):
        """Go back to the default. :raises NotFound: unknown key, or already at its default."""
        definition = self.definitions.get(key)
        if definition is None:
            raise NotFound("Setting not found")
        with self._db.transaction() as conn:
            row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise NotFound("Setting is already at its default")
            conn.execute("DELETE FROM settings WHERE key = ?", (key,))
        shown = "[secret]" if definition.secret else None
        self._audit.emit("settings_reset", actor, target_type="settings", target_id=key,
                         detail={"key": key, "old": shown or row[0],
                                 "new": shown or definition.default})
        self.notify([key])
        return definition.default

    def notify(self, keys=None):
        """Tell the `on_change` listeners that `keys` (default: all) changed, e.g. after a restore.

        The change is committed: a failing listener is logged, never reported as a failed update.
        """
        keys = list(self.definitions) if keys is None else keys
        for callback in self._listeners:
            try:
                callback(keys)
            except Exception:  # noqa: BLE001
                log.exception("settings listener %r failed", callback)


class SettingsView:
    """`get(key)` like `Settings.get`, with some values replaced (see `Settings.overlay`)."""

    def __init__(self, settings, typed_values):
        self._settings = settings
        self._values = typed_values

    def get(self, key):
        """The proposed typed value of `key`, else the stored one. :raises KeyError: unknown key."""
        return self._values[key] if key in self._values else self._settings.get(key)
