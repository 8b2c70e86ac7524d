"""Built-in off-site copy to a folder (a mounted NAS or network share), verified by SHA-256.

After each backup, when ``offsite.dir.path`` names an existing folder, the host
(`mission_control.send_offsite`) packs the backup (zstd, age, as ``offsite.dir.compress`` and
``offsite.dir.age_recipients`` say) straight into a hidden temporary file in the folder, reads
it back while it is fsynced, compares SHA-256s, and only then links it to its final name (never
replacing a file); a plain copy is copied in the kernel, fsynced, linked, then read back. The
copy's signed manifest (``<copy name>.manifest.json``) and catalog entry
(``catalog/<copy name>.json.age``) go beside it. The folder keeps the newest
``offsite.dir.retention_count`` copies this service made (and the older copies of their chains
when ``offsite.dir.incremental`` is on); files someone else put there are never counted nor
deleted. A failure is recorded and audited as ``offsite_failed``; the local backup is
never affected.
"""
import os

from mission_control import (OFFSITE_TEMP_PREFIX, PATH, Codec, FolderStorage, OffsitePolicy,
                             SettingDef, StorageTarget, codec_settings, hookimpl, remove_files,
                             send_offsite)

TARGET = "dir"
STALE_TEMP_SECONDS = 24 * 3600


@hookimpl
def register_settings():
    return [
        SettingDef("offsite.dir.path", "text", "",
                   "Absolute path of an existing folder (a mounted NAS or share) that receives a "
                   "verified copy of every backup (empty turns it off)", "offsite", max_length=4096,
                   kind=PATH),
        SettingDef("offsite.dir.retention_count", "int", "10",
                   "How many backups to keep in the off-site folder", "offsite",
                   minimum=1, maximum=1000),
        SettingDef("offsite.dir.incremental", "bool", "false",
                   "Incremental copies: after a full copy, each copy stores only the database "
                   "pages that changed since the previous one (needs zstandard)", "offsite"),
        SettingDef("offsite.dir.full_every", "int", "7",
                   "With incremental copies: at most this many incremental copies follow a full "
                   "copy before the next full copy", "offsite", minimum=1, maximum=1000),
        *codec_settings(TARGET),
    ]


def configured_folder(mc):
    """The folder to copy to, or "" while the copy is off: the one test both hooks use."""
    return mc.settings.get("offsite.dir.path")


def make_target(mc, folder):
    return StorageTarget(TARGET, lambda: FolderStorage(folder),
                         Codec.from_settings(mc.settings, TARGET),
                         OffsitePolicy(keep=mc.settings.get("offsite.dir.retention_count"),
                                       incremental=mc.settings.get("offsite.dir.incremental"),
                                       full_every=mc.settings.get("offsite.dir.full_every")),
                         location=folder)


def sweep_stale(folder, now):
    """Remove hidden temporary files a crash left in the folder more than a day ago."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(OFFSITE_TEMP_PREFIX) and entry.is_file(follow_symlinks=False) \
                    and now - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMP_SECONDS:
                remove_files(entry.path)


@hookimpl
def post_backup(mc, backup, actor):
    folder = configured_folder(mc)
    if not folder:
        return
    if not os.path.isabs(folder) or not os.path.isdir(folder):
        # Never create it: an unmounted share would silently fill the local disk instead.
        mc.offsite.failed(TARGET, backup, actor, "offsite.dir.path is not an existing absolute "
                          "folder (is the share mounted?)", location=folder)
        return
    send_offsite(mc, make_target(mc, folder), backup, actor)
    try:
        sweep_stale(folder, mc.clock())
    except OSError:
        pass  # best effort: the next backup tries again


@hookimpl
def offsite_targets(mc):
    folder = configured_folder(mc)
    return [make_target(mc, folder)] if folder else []
