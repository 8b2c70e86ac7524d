"""Rotating backups' file names: the pattern, the format, and the UTC time a name carries."""
import re
from datetime import datetime, timezone

#: Names pruning may touch. Any other `*.db` in the folder is listed but kept forever.
PATTERN = re.compile(r"^mc-backup-(\d{4})-(\d{2})-(\d{2})_(\d{2})-(\d{2})-(\d{2})\.db$")
NAME_FORMAT = "mc-backup-%Y-%m-%d_%H-%M-%S.db"


def backup_time(name):
    """Unix seconds of the UTC time in a rotating backup's name, or None.

    :param name: a file name, e.g. ``mc-backup-2026-11-20_03-00-00.db``.
    :return: an int, or None when `name` does not match `PATTERN` or names no real time (say
        30 February): such a file is not a rotating backup, so it is never pruned.
    """
    match = PATTERN.match(name) if isinstance(name, str) else None
    if match is None:
        return None
    try:  # the constructor refuses 30 February, hour 24, second 60 (faster than strptime)
        return int(datetime(*map(int, match.groups()), tzinfo=timezone.utc).timestamp())
    except ValueError:
        return None
