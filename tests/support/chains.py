"""Incremental copies put into a target exactly as the sender will (issue 24): one chain, one function.

Until the sender makes delta copies itself, `send_chain` does what it will do for each copy:
writes the objects with `delta.write_full` / `delta.write_delta` into a scratch folder, puts them
into the target's storage, records the copy (`mc.offsite.record_copy` with its chain fields and
the bytes uploaded), puts the signed manifest beside it and its catalog entry (`putting`), and
remembers the versions the objects landed as. Kept in one function so it can be swapped for the
real sender.
"""
import json
import os
from dataclasses import dataclass

from mission_control.offsite.codec import Encoded
from mission_control.offsite.delta import page_hashes, write_delta, write_full
from mission_control.offsite.putting import backup_shape, put_beside, put_entry, version_ids
from mission_control.offsite.signing import MANIFEST_SUFFIX


@dataclass(frozen=True)
class Sent:
    """One copy of a chain as sent: its remote `name`, the `backup` it is of, its `pack` (None
    for a full copy or a delta with no changed page) and every object it put (`objects`)."""

    name: str
    backup: object
    pack: str | None
    objects: tuple


def send_chain(mc, target, backups, *, scratch):
    """Send `backups` (`BackupInfo`s, oldest first) to `target` (a `StorageTarget`) as one chain:
    a full copy of the first, then each a delta over the one before.

    :param scratch: an empty folder for the objects before they are put (left empty).
    :return: a `Sent` per backup, in order.
    """
    storage, recipients = target.storage, tuple(target.codec.recipients)
    encrypted = bool(recipients)
    sent, hashes = [], None
    for length, backup in enumerate(backups):
        lock = target.policy.lock(mc.clock())
        if hashes is None:
            full = write_full(backup.path, backup.name, scratch, recipients=recipients)
            hashes = page_hashes(backup.path)
            remote, pack, puts = full.name, None, [full.name]
            encoded = Encoded(hashes.size, hashes.sha256, full.size, full.sha256, True, encrypted)
            delta, uploaded = None, full.size
        else:
            made = write_delta(backup.path, backup.name, sent[-1].backup.name, hashes, scratch,
                               recipients=recipients)
            hashes = made.hashes
            remote = made.manifest.name
            pack = made.pack.name if made.pack else None
            puts = ([pack] if pack else []) + [remote]  # the pack first: the manifest names it
            encoded = Encoded(hashes.size, hashes.sha256, made.manifest.size, made.manifest.sha256,
                              True, encrypted)
            delta = {"parent": sent[-1].name, "chain_length": length,
                     "objects": {pack: {"size": made.pack.size, "sha256": made.pack.sha256}}
                     if pack else {}}
            uploaded = made.size
        landed = {}
        for key in puts:
            landed[key] = storage.put(key, scratch / key, lock=lock)
            os.unlink(scratch / key)
        manifest = mc.offsite.record_copy(target.name, backup, remote, encoded,
                                          location=target.location,
                                          etag=getattr(landed[remote], "etag", None),
                                          delta=delta, uploaded=uploaded)
        landed[remote + MANIFEST_SUFFIX] = put_beside(storage, remote + MANIFEST_SUFFIX,
                                                      manifest, lock)
        record = json.loads(manifest)["record"]
        landed.update(put_entry(mc, target, record, backup_shape(backup.path), lock))
        mc.offsite.set_versions(target.name, remote, version_ids(landed))
        sent.append(Sent(remote, backup, pack, tuple(landed)))
    return sent
