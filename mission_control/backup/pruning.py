"""Pruning: asks the `prune` hook which rotating backups to delete, explains it, and deletes them.

One path for every caller: after each backup (`BackupService.create`), on demand
(`POST /api/backup/prune`, `mission-control backup prune`) and as a preview (`dry_run`, optionally
with proposed settings that are not saved). The other files the service keeps (safety copies,
uploads, fetched off-site copies: `names.FileKind`) are limited to the newest
`general.safety_copies_keep` of each kind by `keep_newest`, through the same deletion path.
"""
import logging
from dataclasses import dataclass

from ..errors import MissionControlError, ValidationFailed, describe_error
from ..files import fsync_dir
from ..hooks import UNKNOWN_PLUGIN
from .names import OFFSITE_FETCH, SAFETY_COPY, UPLOAD, backup_time
from .retention import Plan

log = logging.getLogger(__name__)

KEEP_SETTING = "general.safety_copies_keep"
JUST_MADE = "just made"
NEVER_PRUNED = "not an mc-backup-<UTC time>.db name: never pruned"
#: What a preview says of the kinds `keep_newest` limits instead of the retention rules.
LIMITED = {kind: f"a {words}: not counted by the retention rules; only the newest "
                 f"{KEEP_SETTING} of them are kept (rename it to keep it forever)"
           for kind, words in ((SAFETY_COPY, "pre-restore safety copy"), (UPLOAD, "upload"),
                               (OFFSITE_FETCH, "copy fetched back from off-site"))}


def left_alone(name):
    """Why the retention rules leave out `name`: a kind kept to the newest few, or never pruned."""
    return next((why for kind, why in LIMITED.items() if kind.matches(name)), NEVER_PRUNED)


@dataclass(frozen=True)
class Outcome:
    """What a prune decided (or, for a dry run, would decide).

    `policy` is "rules" when the answer explained each kept backup (the built-in does), "plugin"
    when a plugin answered with names only, "none" when no implementation answered (nothing is
    deleted). `keep` is ``((name, (reason, ...)), ...)``, `delete` the names, both newest first.
    """

    policy: str
    keep: tuple
    delete: tuple

    def to_json(self):
        return {"policy": self.policy,
                "keep": [{"name": name, "reasons": list(reasons)} for name, reasons in self.keep],
                "delete": [{"name": name} for name in self.delete]}


def rotating(backups, keep_names=frozenset()):
    """The rotating backups among `backups` (`BackupInfo`s): newest first by the UTC time in the
    name, those in `keep_names` (the backup just made) first of all."""
    timed = [(t, b.name, b) for b in backups if (t := backup_time(b.name)) is not None]
    timed.sort(key=lambda item: item[:2], reverse=True)
    return sorted((b for _, _, b in timed), key=lambda b: b.name not in keep_names)


class Pruning:
    """Decides and deletes for one `MissionControl` (its `backups`, `hooks`, `settings`, `audit`)."""

    def __init__(self, mc):
        self.mc = mc

    def decide(self, actor, keep_names=frozenset(), settings=None, listed=None):
        """Ask the `prune` hook about the backups on disk now; deletes nothing.

        :param actor: whom a failing policy is audited for (`plugin_error`).
        :param keep_names: names that are kept whatever the hook says (the backup just made).
        :param settings: what the hook reads its settings from (default `mc.settings`).
        :param listed: `mc.backups.list()`, when the caller has it already.
        :return: an `Outcome` covering every listed backup.
        :raises Exception: whatever the hook raised, or a malformed answer's error; both are
            logged and audited as `plugin_error` first.
        """
        listed = self.mc.backups.list() if listed is None else listed
        keep_names = frozenset(keep_names)
        candidates = rotating(listed, keep_names)
        answer = self.mc.hooks.prune(candidates, keep_names, settings or self.mc.settings, actor)
        try:
            return self._outcome(answer, listed, candidates, keep_names)
        except Exception as exc:  # not names, nor a plan: the policy failed all the same
            self.mc.hooks.failed("prune", UNKNOWN_PLUGIN, exc, actor)
            raise

    @staticmethod
    def _outcome(answer, listed, candidates, keep_names):
        rotating_names = {b.name for b in candidates}
        allowed = rotating_names - keep_names
        delete = set(n for n in answer or () if n in allowed)
        explained = dict(answer.keep) if isinstance(answer, Plan) else {}
        keep = []
        for b in candidates:
            if b.name not in delete:
                reasons = list(explained.get(b.name, ()))
                if b.name in keep_names and JUST_MADE not in reasons:
                    reasons.insert(0, JUST_MADE)
                keep.append((b.name, tuple(reasons)))
        keep += [(b.name, (left_alone(b.name),)) for b in listed if b.name not in rotating_names]
        policy = "none" if answer is None else "rules" if isinstance(answer, Plan) else "plugin"
        order = {b.name: i for i, b in enumerate(candidates)}
        return Outcome(policy, tuple(keep), tuple(sorted(delete, key=order.__getitem__)))

    def after_backup(self, made, actor):
        """Prune after `made` was made (the caller holds the backup lock); never raises for a
        failing policy or a file that will not go: both are audited and the backup stands."""
        try:
            outcome = self.decide(actor, {made.name})
        except Exception as exc:  # noqa: BLE001 - a broken policy must not fail the backup
            log.warning("nothing pruned after %s: %s", made.name, describe_error(exc))
            return
        self.remove(outcome.delete, actor)

    def run(self, actor, *, dry_run=False, proposed=None):
        """Prune now by the current rules, or only say what would go (`dry_run`).

        :param proposed: settings (key to value, as for `PUT /api/settings`) to preview with
            instead of the stored ones; only with `dry_run`.
        :return: the `Outcome`.
        :raises ValidationFailed: bad `proposed` values, or `proposed` without `dry_run` (400).
        :raises Conflict: a backup or restore holds the lock (409, `Retry-After`).
        :raises MissionControlError: the policy plugin failed (500; audited `plugin_error`).
        """
        if proposed is not None and not dry_run:
            raise ValidationFailed(["settings: only with dry_run (save settings to apply them)"])
        settings = self.mc.settings.overlay(proposed) if proposed is not None else None
        if dry_run:
            return self._decide_or_fail(actor, settings)
        backups = self.mc.backups
        backups.ensure_dir()
        with backups.exclusive("A backup is already in progress"):
            outcome = self._decide_or_fail(actor, settings)
            self.remove(outcome.delete, actor)
        return outcome

    def remove(self, names, actor, kind="backup"):
        """Delete `names` from the backups folder, each audited `backup_prune` (or
        `backup_prune_failed`: the file stays listed), the detail saying which `kind` of file
        (a `FileKind.name`, or "backup"). Returns the names deleted."""
        folder = self.mc.backups.dir
        removed = []
        for name in names:
            try:
                size = self.mc.backups.remove_file(folder / name)
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.error("could not prune %s: %s", name, describe_error(exc))
                self.mc.audit.emit("backup_prune_failed", actor, target_type="backup",
                                   target_id=name,
                                   detail={"name": name, "kind": kind,
                                           "reason": describe_error(exc)})
                continue
            removed.append(name)
            self.mc.audit.emit("backup_prune", actor, target_type="backup", target_id=name,
                               detail={"name": name, "size": size, "kind": kind})
        if removed:
            fsync_dir(folder)
        return removed

    def _decide_or_fail(self, actor, settings):
        listed = self.mc.backups.list()  # an unreadable folder is its own 500, not the policy's
        try:
            return self.decide(actor, settings=settings, listed=listed)
        except Exception as exc:  # noqa: BLE001 - audited; the caller gets no text of it
            raise MissionControlError("The retention policy failed; the reason is in the audit "
                                      "trail") from exc


def keep_newest(mc, kind, made, actor):
    """After `made` (a file of `kind`, a `names.FileKind`) was added, delete that kind's files
    beyond the newest N, N being `general.safety_copies_keep`, newest by the UTC time in the name.

    Neither `made` nor a file newer than it (another upload finishing at the same moment) is ever
    deleted, nor any file of another kind. A failure is logged and audited, never raised: the copy
    that was just made stays made.

    :return: the names deleted.
    """
    try:
        keep = mc.settings.get(KEEP_SETTING)
        names = sorted((b.name for b in mc.backups.list() if kind.matches(b.name)), reverse=True)
    except Exception:  # noqa: BLE001 - an unreadable folder must not undo a finished restore
        log.exception("could not list the backups folder to prune %s files", kind.name)
        return []
    return mc.pruning.remove([n for n in names[keep:] if n < made], actor, kind.name)
