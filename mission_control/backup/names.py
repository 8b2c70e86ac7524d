"""File names in the backups folder: rotating backups' pattern, format and time, the kinds, and
`BackupInfo`, a file listed there.

Every name the service makes is a prefix and a UTC time (`STAMP_FORMAT`); the prefix says what
the file is, and pruning one kind never touches another's.
"""
import re
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property, lru_cache
from pathlib import Path

STAMP_FORMAT = "%Y-%m-%d_%H-%M-%S.db"  # UTC; zero-padded, so names sort as the times do


def stamped(prefix):
    """The names `prefix` + `STAMP_FORMAT` makes, as an anchored pattern (groups: the time)."""
    return re.compile(rf"^{re.escape(prefix)}(\d{{4}})-(\d{{2}})-(\d{{2}})"
                      rf"_(\d{{2}})-(\d{{2}})-(\d{{2}})\.db$")


#: Names pruning may touch. Any other `*.db` in the folder is listed but kept forever.
PATTERN = stamped("mc-backup-")
NAME_FORMAT = "mc-backup-" + STAMP_FORMAT


@dataclass(frozen=True)
class BackupInfo:
    """A backup file in the backups folder, as listed and as handed to `post_backup` and `prune`."""

    name: str
    size: int
    created_at: int  # the time in the name (`name_time`), else the file's mtime
    folder: Path  # the backups folder
    mtime_ns: int | None = field(default=None, compare=False, repr=False)

    @cached_property
    def path(self) -> Path:
        """`folder / name`, made when first asked for: listing 10,000 files needs no Path each."""
        return self.folder / self.name

    def to_json(self):
        return {"name": self.name, "size": self.size, "created_at": self.created_at}


@dataclass(frozen=True)
class FileKind:
    """A kind of file kept in the backups folder up to `general.safety_copies_keep` copies.

    :param name: what it is called in audit details and in the `pre_backup` hook's `kind`.
    :param prefix: the start of every name; distinct prefixes keep the kinds apart.
    """

    name: str
    prefix: str

    @property
    def name_format(self):
        """The strftime format of a new file's name (UTC)."""
        return self.prefix + STAMP_FORMAT

    @cached_property
    def pattern(self):
        """The kind's names, as `stamped(prefix)`: built once, not per file name checked."""
        return stamped(self.prefix)

    def matches(self, filename):
        return bool(self.pattern.match(filename))


SAFETY_COPY = FileKind("safety_copy", "pre-restore-")
UPLOAD = FileKind("upload", "uploaded-")
#: What a copy fetched back from off-site is named: this prefix and the backup's own name.
FETCHED_PREFIX = "offsite-"
OFFSITE_FETCH = FileKind("offsite_fetch", "offsite-mc-backup-")  # copies fetched back from off-site


_EPOCH_DAY = date(1970, 1, 1).toordinal()
#: Every name the service makes, whatever its kind: the prefix, then the UTC time (groups).
_MADE = re.compile(r"^(?:mc-backup-|pre-restore-|uploaded-|offsite-mc-backup-)"
                   r"(\d{4})-(\d{2})-(\d{2})_(\d{2})-(\d{2})-(\d{2})\.db$")


def _utc_seconds(match):
    """Unix seconds of a stamp's groups; None for no real time (30 February, hour 24, second
    60). Without datetime's constructor and timestamp(): half the time, for long listings."""
    year, month, day, hour, minute, second = map(int, match.groups())
    if hour > 23 or minute > 59 or second > 59:
        return None
    try:
        days = date(year, month, day).toordinal() - _EPOCH_DAY
    except ValueError:
        return None
    return days * 86400 + hour * 3600 + minute * 60 + second


@lru_cache(maxsize=1 << 14)  # a folder's names, listed again and again: a few MiB at most
def name_time(name):
    """Unix seconds of the UTC time in a name the service makes (`mc-backup-`, `pre-restore-`,
    `uploaded-`, `offsite-mc-backup-` and a time), or None for any other name.

    A listing's `created_at`: the time in the name outlives a copy (`cp`, a restore of the
    folder, a move to another host), which gives the file a new mtime; retention goes by the
    name too, so the list and what is kept agree. Other files have only their mtime.
    """
    match = _MADE.match(name)
    return None if match is None else _utc_seconds(match)


def created_at(name, st):
    """A listed file's `created_at`: `name_time(name)`, else the mtime of its stat `st`."""
    made = name_time(name)
    return int(st.st_mtime) if made is None else made


def backup_time(name):
    """Unix seconds of the UTC time in a rotating backup's name, or None.

    :param name: a file name, e.g. ``mc-backup-2026-11-20_03-00-00.db``.
    :return: an int, or None when `name` does not match `PATTERN` or names no real time (say
        30 February): such a file is not a rotating backup, so it is never pruned.
    """
    match = PATTERN.match(name) if isinstance(name, str) else None
    return None if match is None else _utc_seconds(match)
