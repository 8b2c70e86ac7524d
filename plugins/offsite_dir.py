"""Built-in off-site copy to a folder (a mounted NAS or network share), verified by SHA-256.

After each backup, when ``offsite.dir.path`` names an existing folder, the backup is streamed
there (compressed with zstd and encrypted with age when ``offsite.dir.compress`` and
``offsite.dir.age_recipients`` say so) under a hidden temporary name, fsynced, read back and
compared by SHA-256 with what was written, then renamed to its final name (the backup's, plus
``.zst``/``.age``) and the folder fsynced; the copy's signed manifest is written beside it
(``<copy name>.manifest.json``), so a copy someone else put in the folder is told apart. Then the
folder keeps the newest
``offsite.dir.retention_count`` backups. Pruning runs only after a verified copy and never touches
the copy just made, so the last good copy is never deleted. A failure is recorded and audited as
``offsite_failed``; the local backup is never affected.
"""
import os
import secrets
import time

from mission_control import (MANIFEST_SUFFIX, PATH, REMOTE_PATTERN, Codec, RemoteCopy, SettingDef,
                             codec_settings, describe_error, encode, fsync_dir, hookimpl,
                             remove_files, sha256_file)

TARGET = "dir"
TEMP_PREFIX = ".mc-offsite-"
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
        *codec_settings(TARGET),
    ]


def copy_verified(source, folder, name, codec):
    """Stream `source` packed by `codec` to `folder/name` through a temporary file.

    :return: the ``Encoded`` sizes and SHA-256s.
    :raises OSError: on any I/O failure; no temporary file is left behind.
    :raises ValueError: the copy read back differs from what was written, or another file of
        that name is already there.
    """
    tmp = os.path.join(folder, f"{TEMP_PREFIX}{secrets.token_hex(8)}.tmp")
    final = os.path.join(folder, name)
    try:
        with open(tmp, "xb") as dst:
            os.fchmod(dst.fileno(), 0o600)
            encoded = encode(source, dst, codec)
            dst.flush()
            os.fsync(dst.fileno())
        if sha256_file(tmp) != encoded.sha256:
            raise ValueError("the copy's SHA-256 differs from what was written")
        if os.path.lexists(final):
            if sha256_file(final) != encoded.sha256:
                raise ValueError(f"a different file named {name} is already in the folder")
        else:
            os.rename(tmp, final)
        fsync_dir(folder)
        return encoded
    finally:
        remove_files(tmp)


def write_manifest(folder, name, manifest):
    """Put `manifest` (bytes) beside copy `name` in `folder`, whole or not at all."""
    tmp = os.path.join(folder, f"{TEMP_PREFIX}{secrets.token_hex(8)}.tmp")
    try:
        with open(tmp, "xb") as out:
            out.write(manifest)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, os.path.join(folder, name + MANIFEST_SUFFIX))
        fsync_dir(folder)
    finally:
        remove_files(tmp)


def prune(folder, keep, just_made, now):
    """Keep the newest `keep` copies in `folder` (by name, which is by time).

    `just_made` is always kept. A deleted copy's manifest goes with it; hidden temporary files
    older than a day (left by a crash) go too.
    :return: names deleted.
    """
    names, deleted = [], []
    with os.scandir(folder) as entries:
        for entry in entries:
            if REMOTE_PATTERN.match(entry.name) and entry.is_file(follow_symlinks=False):
                names.append(entry.name)
            elif entry.name.startswith(TEMP_PREFIX) and entry.is_file(follow_symlinks=False):
                if now - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMP_SECONDS:
                    os.unlink(entry.path)
    for name in sorted(names, reverse=True)[keep:]:
        if name == just_made:
            continue
        try:
            os.unlink(os.path.join(folder, name))
        except FileNotFoundError:
            continue  # another process pruned it first
        remove_files(os.path.join(folder, name + MANIFEST_SUFFIX))
        deleted.append(name)
    if deleted:
        fsync_dir(folder)
    return deleted


def configured_folder(mc):
    """The folder to copy to, or "" while the copy is off: the one test both hooks use."""
    return mc.settings.get("offsite.dir.path")


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
    codec = Codec.from_settings(mc.settings, TARGET)
    remote_name = codec.remote_name(backup.name)
    started = time.perf_counter()
    try:
        encoded = copy_verified(backup.path, folder, remote_name, codec)
        write_manifest(folder, remote_name,
                       mc.offsite.record_copy(TARGET, backup, remote_name, encoded))
    except Exception as exc:  # noqa: BLE001 - I/O, a missing extra: all mean "not copied"
        mc.offsite.failed(TARGET, backup, actor, exc, location=folder)
        return
    try:
        pruned = prune(folder, mc.settings.get("offsite.dir.retention_count"), remote_name,
                       mc.clock())
    except OSError as exc:
        mc.offsite.failed(TARGET, backup, actor, "copied and verified, but pruning the folder "
                          f"failed: {describe_error(exc)}", location=folder)
        return
    mc.offsite.succeeded(TARGET, backup, actor, location=os.path.join(folder, remote_name),
                         detail={"pruned": pruned,
                                 "duration_seconds": round(time.perf_counter() - started, 3)},
                         remote_name=remote_name, encoded=encoded)


class FolderTarget:
    """The folder as an off-site target the host can list and fetch copies back from."""

    name = TARGET

    def __init__(self, folder):
        self.folder = folder

    def list_copies(self):
        copies = []
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if REMOTE_PATTERN.match(entry.name) and entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    copies.append(RemoteCopy(entry.name, st.st_size, int(st.st_mtime)))
        return copies

    def open_copy(self, name):
        if not REMOTE_PATTERN.match(name):  # the host checks too; a path never gets through
            raise FileNotFoundError(name)
        return open(os.path.join(self.folder, name), "rb")

    def read_manifest(self, name, limit):
        if not REMOTE_PATTERN.match(name):
            raise FileNotFoundError(name)
        try:
            with open(os.path.join(self.folder, name + MANIFEST_SUFFIX), "rb") as f:
                return f.read(limit)
        except FileNotFoundError:
            return None


@hookimpl
def offsite_targets(mc):
    folder = configured_folder(mc)
    return [FolderTarget(folder)] if folder else []
