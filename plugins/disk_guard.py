"""Built-in disk-space guard: refuse a backup (507) when the backups folder has too little free space.

A backup needs about the database's size (its WAL included) in free space, and pruning only frees
space afterwards. The guard asks for ``diskguard.factor`` times that, and at least
``diskguard.min_free_mb``; a factor of 0 and a minimum of 0 turn it off. ``/metrics`` gets the
free space and what the guard asks for (``mission_control_disk_free_bytes``,
``mission_control_disk_guard_needed_bytes``).
"""
import shutil

from mission_control import BackupRefused, SettingDef, database_size, hookimpl, human_size

MB = 1024 * 1024


@hookimpl
def register_settings():
    return [
        SettingDef("diskguard.factor", "int", "2",
                   "Refuse a backup unless the backups folder has this many times the database's "
                   "size free (0 turns the check off)", "backup", minimum=0, maximum=1000),
        SettingDef("diskguard.min_free_mb", "int", "0",
                   "Refuse a backup unless at least this many MiB are free in the backups folder",
                   "backup", minimum=0, maximum=1_000_000_000),
    ]


def needed_bytes(db_size, factor, min_free_mb):
    """Free bytes the guard asks for."""
    return max(db_size * factor, min_free_mb * MB)


@hookimpl
def metrics(mc):
    """Free space in the backups folder and what the guard asks for (0: off), so a monitor
    warns before a backup is refused."""
    size = database_size(mc.config.db_path)
    needed = needed_bytes(size, mc.settings.get("diskguard.factor"),
                          mc.settings.get("diskguard.min_free_mb"))
    return [
        {"name": "mission_control_disk_free_bytes",
         "value": shutil.disk_usage(mc.backups.dir).free,
         "help": "Free bytes in the file system of the backups folder"},
        {"name": "mission_control_disk_guard_needed_bytes", "value": needed,
         "help": "Free bytes the disk guard asks for before a backup (diskguard.factor x the "
                 "database, at least diskguard.min_free_mb; 0: the guard is off)"},
    ]


@hookimpl(tryfirst=True)
def pre_backup(mc, db_path):
    factor = mc.settings.get("diskguard.factor")
    min_free_mb = mc.settings.get("diskguard.min_free_mb")
    if not factor and not min_free_mb:
        return
    size = database_size(db_path)
    needed = needed_bytes(size, factor, min_free_mb)
    free = shutil.disk_usage(mc.backups.dir).free
    if free < needed:
        raise BackupRefused(
            f"Not enough free disk space for a backup: {human_size(free)} free in the backups "
            f"folder, {human_size(needed)} needed ({factor} x the {human_size(size)} database, "
            f"at least {min_free_mb} MiB)", 507)
