"""Mission Control backup service: the host package, and the one import a plugin needs.

Only `NAME`, `__version__` and `hookimpl` live here, so ``from mission_control import hookimpl``
loads no other module of ours. Every other public name is defined by `mission_control.api` and
loaded from there on first use (PEP 562), so ``from mission_control import MissionControl`` works.
"""
import pluggy

NAME = "mission_control"
__version__ = "0.1.0"

#: Marker for hook implementations; the only thing a plugin has to import.
hookimpl = pluggy.HookimplMarker(NAME)

# The same names as `mission_control.api.__all__` (a test holds them equal). Spelled out here,
# not read from `api`, so that asking for a submodule (`from . import db`) never loads `api`.
__all__ = ["NAME", "__version__", "hookimpl",
           "Actor", "SCHEDULER", "MissionControl", "PluginContext", "BackupInfo",
           "MissionControlError", "BackupFailed", "BackupRefused", "ConfigError",
           "DatabaseNotFound", "ForeignDatabase",
           "SettingDef", "Kind", "URL", "HOST", "PATH", "EMAIL", "EMAILS", "CRON", "duration",
           "duration_seconds",
           "RetentionPlan", "RetentionRules", "WITHIN_PATTERN", "check_within", "decide_retention",
           "REMOTE_PATTERN", "Codec", "Encoded", "codec_settings", "encode", "parse_remote_name",
           "RemoteCopy", "MANIFEST_SUFFIX", "parse_recipients", "parse_identities", "CopyDamaged", "MissingExtra",
           "LtxFile", "NothingToRestore", "parse_ltx_key", "parse_ltx_name", "read_ltx_timestamp",
           "restore_sealed", "StreamTrust", "Sealing", "sealed_files", "stream_window",
           "FolderStorage", "S3Storage", "StoredObject", "Lock", "ObjectHeld", "make_s3_client",
           "open_storage", "bucket_lock",
           "StorageTarget", "OffsitePolicy", "send_offsite", "held_text", "OFFSITE_TEMP_PREFIX",
           "backup_status", "describe_error", "PATTERN", "fsync_dir", "remove_files",
           "sha256_file", "database_size", "FileLock", "open_private", "SCRATCH_PREFIX", "create_scratch",
           "human_size", "printable",
           "alert_channel_failing"]


def __getattr__(name):
    if name in __all__:
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})
