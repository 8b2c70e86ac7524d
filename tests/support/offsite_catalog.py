"""Copies in a storage exactly as the host writes them: the packed copy, its signed manifest and its
signed (encrypted) catalog entry, made with the service's own codec, Signer and catalog."""
import time

from mission_control.backup.verify import inspect
from mission_control.offsite import catalog
from mission_control.offsite.codec import Codec, encode
from mission_control.offsite.signing import MANIFEST_SUFFIX, Signer


def publish(storage, backup_path, signer, *, target="s3", recipients=(), compress="zstd",
            lock=None, created_at=None, scratch):
    """Put the backup file `backup_path` into `storage` as the host does; its signed record.

    :param signer: a `Signer` (its key file is made on first use).
    :param lock: a `storage.Lock` every object is uploaded with.
    :param scratch: a folder for the packed file.
    """
    codec = Codec(compress, 3, tuple(recipients))
    remote = codec.remote_name(backup_path.name)
    packed = scratch / f"{remote}.packing"
    with open(packed, "wb") as sink:
        encoded = encode(backup_path, sink, codec)
    storage.put(remote, packed, lock=lock)
    packed.unlink()
    record = {"target": target, "remote_name": remote, "backup": backup_path.name,
              "size": encoded.size, "sha256": encoded.sha256, "plain_size": encoded.plain_size,
              "plain_sha256": encoded.plain_sha256, "compressed": encoded.compressed,
              "encrypted": encoded.encrypted,
              "created_at": int(time.time() if created_at is None else created_at)}
    storage.put_bytes(remote + MANIFEST_SUFFIX, signer.sign(record), lock=lock)
    found = inspect(backup_path)
    key, data = catalog.build(signer.private_key(), record, found.schema_version,
                              found.page_size, recipients)
    storage.put_bytes(key, data, lock=lock)
    return record


def new_signer(folder):
    """A service signing key of its own in `folder`, and its verification key text."""
    signer = Signer(folder / "offsite-signing.key", announce=lambda text: None)
    return signer, signer.verify_key()
