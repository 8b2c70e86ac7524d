"""The public surface: every name plugins and scripts may use, kept stable across minor versions.

Anything imported from here (or, the same objects, from ``mission_control``) follows semantic
versioning: a name is removed or changes meaning only in a new major version. Every other module
of the package is internal and may change in any release. See docs/plugins.md.
"""
from . import NAME, __version__, hookimpl
from .actor import SCHEDULER, Actor
from .alert_channels import failing as alert_channel_failing
from .backup.service import PATTERN
from .config import ConfigError, DatabaseNotFound, ForeignDatabase
from .core import MissionControl
from .errors import BackupFailed, BackupRefused, MissionControlError, describe_error
from .files import FileLock
from .files import fsync_dir
from .files import remove_files
from .files import sha256_file
from .files import database_size
from .health import backup_status
from .hookspecs import PluginContext
from .logs import printable
from .backup.names import BackupInfo
from .offsite.codec import REMOTE_PATTERN
from .offsite.codec import Codec
from .offsite.codec import Encoded
from .offsite.codec import codec_settings
from .offsite.codec import encode
from .offsite.codec import parse_remote_name
from .offsite.codec import parse_recipients
from .offsite.codec import parse_identities
from .offsite.codec import CopyDamaged
from .offsite.codec import MissingExtra
from .offsite.sealed_stream import LtxFile
from .offsite.sealed_stream import NothingToRestore
from .offsite.sealed_stream import parse_key as parse_ltx_key
from .offsite.sealed_stream import parse_name as parse_ltx_name
from .offsite.sealed_stream import read_timestamp as read_ltx_timestamp
from .offsite.sealed_stream import restore_sealed
from .offsite.sealed_stream import Trust as StreamTrust
from .offsite.sealing import Sealing
from .offsite.sealed_stream import sealed_files
from .offsite.sealed_stream import window as stream_window
from .offsite.signing import MANIFEST_SUFFIX
from .offsite.storage import TEMP_PREFIX as OFFSITE_TEMP_PREFIX
from .offsite.storage import (FolderStorage, Lock, ObjectHeld, S3Storage, StoredObject,
                              bucket_lock, make_s3_client, open_storage)
from .offsite.targets import RemoteCopy
from .offsite.sender import Policy as OffsitePolicy
from .offsite.sender import StorageTarget
from .offsite.keeping import held_text
from .offsite.sender import send as send_offsite
from .files import open_private
from .backup.retention import WITHIN_PATTERN
from .backup.retention import check_within
from .backup.retention import Plan as RetentionPlan
from .backup.retention import Rules as RetentionRules
from .backup.retention import decide as decide_retention
from .backup.scratch import SCRATCH_PREFIX
from .backup.scratch import create_scratch
from .setting_kinds import CRON, EMAIL, EMAILS, HOST, PATH, URL, Kind, duration, duration_seconds
from .settings import SettingDef
from .units import human_size

__all__ = [
    # the plugin marker and the package's identity
    "NAME", "__version__", "hookimpl",
    # the service, who acts, and what hooks are handed
    "Actor", "SCHEDULER", "MissionControl", "PluginContext", "BackupInfo",
    # errors a plugin raises or a script catches
    "MissionControlError", "BackupFailed", "BackupRefused", "ConfigError", "DatabaseNotFound",
    "ForeignDatabase",
    # settings a plugin declares, and the kinds their values are checked as
    "SettingDef", "Kind", "URL", "HOST", "PATH", "EMAIL", "EMAILS", "CRON", "duration",
    "duration_seconds",
    # retention
    "RetentionPlan", "RetentionRules", "WITHIN_PATTERN", "check_within", "decide_retention",
    # off-site copies
    "REMOTE_PATTERN", "Codec", "Encoded", "codec_settings", "encode", "parse_remote_name",
    "RemoteCopy", "MANIFEST_SUFFIX", "parse_recipients", "parse_identities", "CopyDamaged",
    "MissingExtra",
    # the sealed point-in-time stream
    "LtxFile", "NothingToRestore", "parse_ltx_key", "parse_ltx_name", "read_ltx_timestamp",
    "restore_sealed", "StreamTrust", "Sealing",
    "sealed_files", "stream_window",
    # storage primitives off-site targets are made of
    "FolderStorage", "S3Storage", "StoredObject", "Lock", "ObjectHeld", "make_s3_client",
    "open_storage", "bucket_lock",
    # the host that sends a backup to a storage (pack, put, check, sign, catalog, keep, report)
    "StorageTarget", "OffsitePolicy", "send_offsite", "held_text", "OFFSITE_TEMP_PREFIX",
    # helpers the built-in plugins use: names, files, health, text
    "backup_status", "describe_error", "PATTERN", "fsync_dir", "remove_files", "sha256_file", "database_size",
    "FileLock", "open_private", "SCRATCH_PREFIX", "create_scratch", "human_size", "printable",
    # alert channels: whether one's newest delivery failed (its next success is audited then)
    "alert_channel_failing",
]
