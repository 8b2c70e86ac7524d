"""Putting a copy's objects (the copy, its manifest, its catalog entry) and checking what landed.

Each put is checked against what was written: size and SHA-256, and the Object Lock asked for,
since a store may take the lock headers and keep no lock. The version each object landed as is
what locks are later extended on (`keeping`).
"""
import hashlib
import time
from contextlib import closing
from dataclasses import replace

from .. import db as dbmod
from ..backup.scratch import SCRATCH_PREFIX
from . import catalog
from .codec import CHUNK, encode
from .signing import MANIFEST_SUFFIX

DAY = 86400
#: How far a landed lock's retain-until may fall short of the one asked (stores keep whole seconds).
LOCK_SLACK = 2
PACK_PREFIX = f"{SCRATCH_PREFIX}send-"


def iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def read_sha256(storage, key, version_id=None):
    digest = hashlib.sha256()
    with closing(storage.open(key, version_id)) as body:
        for chunk in iter(lambda: body.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_lock(landed, lock, key):
    """Raise ValueError unless `landed` (a `StoredObject`) carries `lock`.

    A store may take the lock headers and keep no lock (or a shorter one); a copy it holds
    unlocked must not be reported as immutable. A longer lock than asked is kept as it is.
    """
    if lock is None:
        return
    if landed is not None and landed.lock_mode == lock.mode \
            and (landed.retain_until or 0) >= lock.until - LOCK_SLACK:
        return
    held = "no lock"
    if landed is not None and landed.lock_mode:
        held = f"{landed.lock_mode} until " + \
            (iso(landed.retain_until) if landed.retain_until else "no date")
    raise ValueError(f"the store did not keep the Object Lock asked for {key} ({lock.mode} "
                     f"until {iso(lock.until)}); it holds {held}")


def put_copy(storage, key, path, encoded, lock, verify_download=False):
    """Put the packed copy and check what landed against `encoded` (and `lock`).

    A storage that never overwrites (a folder) and already holds `key` is accepted only when
    that object is this very copy.
    :return: the `StoredObject` of the version that holds the copy.
    :raises ValueError: what landed differs from what was written, or another object holds
        the name, or the store did not keep the lock.
    """
    try:
        landed = storage.put(key, path, lock=lock)
    except FileExistsError:
        return _already_there(storage, key, encoded)
    return check_landed(storage, key, landed, encoded, lock, verify_download)


def pack_into(storage, key, source, codec, lock, verify_download=False):
    """Pack the backup file `source` (as `codec` says) straight into the temporary file of a
    storage that offers one (`FolderStorage.writing`): no scratch copy, no second copy into
    the folder. Every byte is read back a step behind the packing and compared with what was
    written (`tailing.Follower`) before the copy takes its name (`TempObject.place`); the
    copy's SHA-256 is that of the bytes read back. Then it is checked as `put_copy` does.

    :return: `(Encoded, StoredObject)`.
    :raises ValueError: as `put_copy`. :raises MissingExtra, OSError: as `encode`.
    """
    with storage.writing(key, lock=lock, read_back=True) as temp:
        # Not hashed as written: the read-back compares every byte, and hashes them once.
        encoded = encode(source, temp.file, codec, hashed=False)
        try:
            landed = temp.place(encoded.size)
        except FileExistsError:
            encoded = replace(encoded, sha256=temp.sha256)
            return encoded, _already_there(storage, key, encoded)
    encoded = replace(encoded, sha256=landed.sha256)
    return encoded, check_landed(storage, key, landed, encoded, lock, verify_download)


def _already_there(storage, key, encoded):
    """A storage that never overwrites already holds `key`: accepted only when it is this
    very copy (a copy made again after a crash before its record); its `StoredObject`."""
    if read_sha256(storage, key) != encoded.sha256:
        raise ValueError(f"a different file named {key} is already at the target") from None
    return storage.head(key)


def check_landed(storage, key, landed, encoded, lock, verify_download=False):
    """Check the `StoredObject` that `landed` against `encoded` and `lock` (`put_copy`);
    return it."""
    if landed is None or landed.size != encoded.size:
        raise ValueError(f"the uploaded copy has {getattr(landed, 'size', 0)} bytes, expected "
                         f"{encoded.size}")
    if landed.sha256 is not None and landed.sha256 != encoded.sha256:
        raise ValueError("the store's SHA-256 of the uploaded copy differs from what was written")
    if landed.sha256 is None or verify_download:
        if read_sha256(storage, key, landed.version_id) != encoded.sha256:
            raise ValueError("the copy read back differs from what was written (SHA-256)")
    check_lock(landed, lock, key)
    return landed


def put_beside(storage, key, data, lock):
    """Put a small object (manifest, catalog entry); a folder's older one of that name is
    replaced (the copy it described was just written again).

    :return: the `StoredObject` that landed. :raises ValueError: the store kept no lock.
    """
    try:
        landed = storage.put_bytes(key, data, lock=lock)
    except FileExistsError:
        storage.delete(key)
        landed = storage.put_bytes(key, data, lock=lock)
    check_lock(landed, lock, key)
    return landed


def backup_shape(path):
    """`(schema_version, page_size)` of the backup file, opened read-only."""
    conn = dbmod.open_file(path, immutable=True)
    try:
        return (conn.execute("PRAGMA user_version").fetchone()[0],
                conn.execute("PRAGMA page_size").fetchone()[0])
    finally:
        conn.close()


def side_keys(name):
    """The objects that belong with copy `name`: its manifest and its catalog entry."""
    return (name + MANIFEST_SUFFIX, catalog.entry_key(name, True), catalog.entry_key(name, False))


def put_entry(mc, target, record, shape, lock):
    """Sign, encrypt and put the catalog entry of copy `record`; `{key: StoredObject}`.

    :param shape: `(schema_version, page_size)` of the backup (`backup_shape`).
    """
    key, entry = catalog.build(mc.offsite.signer.private_key(), record, *shape,
                               target.codec.recipients)
    return {key: put_beside(target.storage, key, entry, lock)}


def version_ids(landed):
    return {key: getattr(found, "version_id", None) for key, found in landed.items()}
