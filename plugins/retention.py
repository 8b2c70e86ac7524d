"""Built-in retention policy: keep the newest `general.backup_retention_count` backups.

It runs last (``trylast``), so any plugin that returns a list from ``prune`` replaces it, and one
that returns ``None`` defers to it.
"""
from mission_control import hookimpl


@hookimpl(trylast=True)
def prune(mc, backups):
    keep = mc.settings.get("general.backup_retention_count")
    return [backup.name for backup in backups[keep:]]
