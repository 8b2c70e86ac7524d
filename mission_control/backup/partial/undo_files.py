"""Undo files: the inverse change set of a partial restore, kept beside the backups (0600).

``partial-undo-<UTC time>-<random>.changeset``: not a ``.db`` file, so never listed as a backup,
never pruned by the retention rules nor swept as a leftover; the newest
`general.safety_copies_keep` are kept, like the safety copies. The token is the name's middle.
The file is JSON lines: the first says what was restored, by whom, with which counts; then
one line per table (its columns and key), then one line per row: `[table, before, after]`, each
image a list of values (null: no row; a BLOB as `{"hex": ...}`).
"""
import json
import logging
import os
import re
import secrets
import time

from ...errors import NotFound, ValidationFailed
from ...files import fsync_dir, open_private, remove_files
from ..service import TEMP_PREFIX

log = logging.getLogger(__name__)

PREFIX, SUFFIX = "partial-undo-", ".changeset"
TOKEN = re.compile(r"^\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}-[0-9a-f]{12}$")
KEEP_SETTING = "general.safety_copies_keep"


def new_token(now):
    """A fresh token for an undo made at unix second `now`: the UTC time and 48 random bits."""
    return time.strftime("%Y-%m-%d_%H-%M-%S", time.gmtime(now)) + "-" + secrets.token_hex(6)


def path_of(folder, token):
    """The undo file of `token` in `folder`.

    :raises ValidationFailed: not a token this service makes (400).
    """
    if not isinstance(token, str) or not TOKEN.match(token):
        raise ValidationFailed(["token: must be the undo token a partial restore answered, "
                                "such as 2026-12-06_10-00-00-0123456789ab"])
    return folder / f"{PREFIX}{token}{SUFFIX}"


def _encode(row):
    if row is None:
        return None
    return [{"hex": v.hex()} if isinstance(v, bytes) else v for v in row]


def _decode(row):
    if row is None:
        return None
    return tuple(bytes.fromhex(v["hex"]) if isinstance(v, dict) else v for v in row)


def write(folder, token, meta, changes):
    """Write the undo file of `token` privately and durably (temporary name, then renamed).

    :param changes: `{table: {"columns", "key", "rows": [(before, after), ...]}}`.
    """
    tmp = folder / f"{TEMP_PREFIX}undo-{os.getpid()}-{secrets.token_hex(6)}.tmp"
    try:
        with open_private(tmp) as out:
            out.write(json.dumps(meta).encode() + b"\n")
            for table, change in changes.items():
                out.write(json.dumps({"table": table, "columns": change["columns"],
                                      "key": change["key"]}).encode() + b"\n")
            for table, change in changes.items():
                for old, new in change["rows"]:
                    out.write(json.dumps([table, _encode(old), _encode(new)]).encode() + b"\n")
            out.flush()
            os.fsync(out.fileno())
        os.rename(tmp, path_of(folder, token))
        fsync_dir(folder)
    finally:
        remove_files(tmp)


def read(folder, token):
    """`(meta, changes)` of the undo file of `token` (`changes` as `write` takes them).

    :raises ValidationFailed: a bad token (400). :raises NotFound: no such undo (404).
    """
    path = path_of(folder, token)
    try:
        with open(path, "rb") as f:
            meta = json.loads(f.readline())
            changes = {}
            for line in f:
                item = json.loads(line)
                if isinstance(item, dict):
                    changes[item["table"]] = {"columns": item["columns"], "key": item["key"],
                                              "rows": []}
                else:
                    changes[item[0]]["rows"].append((_decode(item[1]), _decode(item[2])))
            return meta, changes
    except FileNotFoundError:
        raise NotFound("No undo with that token: it was used already, pruned (only the newest "
                       f"{KEEP_SETTING} are kept) or never made") from None


def remove(folder, token):
    remove_files(path_of(folder, token))
    fsync_dir(folder)


def keep_newest(folder, keep):
    """Delete the undo files beyond the newest `keep`; returns their names. Logged, never
    raised: the restore that made the newest one is done."""
    try:
        names = sorted((e.name for e in os.scandir(folder)
                        if e.name.startswith(PREFIX) and e.name.endswith(SUFFIX)
                        and e.is_file(follow_symlinks=False)), reverse=True)
        for name in names[keep:]:
            os.unlink(folder / name)
        return names[keep:]
    except OSError:
        log.exception("could not prune the old undo files")
        return []
