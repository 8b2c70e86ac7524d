"""Mission Control backup service: the host package, and the one import a plugin needs."""
import pluggy

NAME = "mission_control"
__version__ = "0.1.0"

#: Marker for hook implementations; the only thing a plugin has to import.
hookimpl = pluggy.HookimplMarker(NAME)

from .actor import SCHEDULER, Actor  # noqa: E402
from .config import DatabaseNotFound, ForeignDatabase  # noqa: E402
from .errors import BackupFailed, BackupRefused, MissionControlError  # noqa: E402
from .settings import SettingDef  # noqa: E402
from .setting_kinds import (CRON, EMAIL, EMAILS, HOST, PATH, URL, Kind,  # noqa: E402
                            duration, duration_seconds)
from .retention_policy import Plan as RetentionPlan, Rules as RetentionRules  # noqa: E402
from .retention_policy import (WITHIN_PATTERN, check_within,  # noqa: E402
                               decide as decide_retention)
from .errors import describe_error  # noqa: E402
from .health import backup_status  # noqa: E402
from .backups import PATTERN  # noqa: E402
from .fsutil import fsync_dir, remove_files, sha256_file  # noqa: E402
from .offsite_codec import (REMOTE_PATTERN, Codec, Encoded, codec_settings, encode,  # noqa: E402
                            parse_remote_name)
from .offsite_targets import RemoteCopy  # noqa: E402
from .offsite_signing import MANIFEST_SUFFIX  # noqa: E402
from .fsutil import FileLock  # noqa: E402
from .private_files import open_private  # noqa: E402
from .scratch_files import SCRATCH_PREFIX, create_scratch  # noqa: E402
from .units import human_size  # noqa: E402
from .logs import printable  # noqa: E402
from .core import MissionControl  # noqa: E402

__all__ = ["NAME", "hookimpl", "Actor", "SCHEDULER", "MissionControl", "MissionControlError",
           "BackupFailed", "BackupRefused", "SettingDef", "Kind", "URL", "HOST", "PATH",
           "EMAIL", "EMAILS", "CRON", "duration", "duration_seconds", "backup_status",
           "describe_error",
           "PATTERN", "fsync_dir", "remove_files", "sha256_file", "REMOTE_PATTERN", "Codec",
           "Encoded", "codec_settings", "encode", "parse_remote_name", "RemoteCopy",
           "MANIFEST_SUFFIX",
           "RetentionPlan", "RetentionRules", "WITHIN_PATTERN", "check_within", "decide_retention",
           "FileLock", "open_private", "human_size", "DatabaseNotFound",
           "printable", "SCRATCH_PREFIX", "create_scratch", "ForeignDatabase"]
