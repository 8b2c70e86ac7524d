"""The catalogue of audit actions: every action the service and its built-in plugins emit, the
words the admin page shows for it, and whether it records a failure.

Call sites spell actions as string literals; `tests/test_audit_actions.py` reads the source and
fails when one is missing here, when an entry here is no longer emitted, or when the page's
label table (`static/format.js`) differs from `LABELS`. Third-party plugins may emit their own
actions: the page shows those with underscores as spaces, and the event log treats a name ending
in `_failed`, `_refused` or `_error` as a failure, the rule the flags below follow too.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Action:
    """One audit action.

    :param name: the event's `action`, as stored in `audit_log` and filtered on by `GET /api/audit`.
    :param label: what the page's activity list says, after the actor ("alice logged in").
    :param failure: the event records something that failed or was refused (logged as WARNING).
    """

    name: str
    label: str
    failure: bool = False


ACTIONS = (
    Action("login", "logged in"),
    Action("login_failed", "failed to log in", failure=True),
    Action("logout", "logged out"),
    Action("backup_create", "created a backup"),
    Action("backup_failed", "backup failed", failure=True),
    Action("backup_refused", "backup refused", failure=True),
    Action("backup_delete", "deleted a backup"),
    Action("backup_prune", "pruned an old backup"),
    Action("backup_prune_failed", "backup prune failed", failure=True),
    Action("backup_verify", "verified a backup"),
    Action("backup_download", "downloaded a backup"),
    Action("backup_upload", "uploaded a backup"),
    Action("backup_upload_refused", "backup upload refused", failure=True),
    Action("backup_restore", "restored a backup"),
    Action("backup_restore_failed", "restore failed", failure=True),
    Action("backup_restore_partial", "restored part of a backup"),
    Action("backup_restore_undo", "undid a partial restore"),
    Action("offsite_copy", "copied a backup off-site"),
    Action("offsite_failed", "off-site copy failed", failure=True),
    Action("offsite_fetch", "offsite fetch"),
    Action("offsite_fetch_refused", "offsite fetch refused", failure=True),
    Action("offsite_verify", "offsite verify"),
    Action("auto_backup", "ran the scheduled backup"),
    Action("settings_update", "changed settings"),
    Action("settings_reset", "reset a setting"),
    Action("alert_sent", "sent an alert"),
    Action("alert_failed", "alert not delivered", failure=True),
    Action("health_changed", "backup health changed"),
    Action("pitr_restarted", "pitr restarted"),
    Action("plugin_error", "plugin error", failure=True),
)

#: Action name -> the page's words for it.
LABELS = {action.name: action.label for action in ACTIONS}
FAILURES = frozenset(action.name for action in ACTIONS if action.failure)
