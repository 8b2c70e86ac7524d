"""Storage primitives: a folder or an S3 bucket's prefix as put, list, open, head and delete.

In the spirit of Litestream's ``ReplicaClient``: each client only moves bytes. Encoding, checking
what landed, retention, locks and reporting are the host's (`mission_control.offsite`), written
once for every kind of storage. Keys are relative to the storage's root (a folder, or a bucket and
prefix) and may hold ``/``; a key that could leave the root (``..``, absolute, empty parts) is
refused before any I/O.

boto3 is imported only when an S3 client is made, so folders need no extra.
"""
import base64
import errno
import hashlib
import os
import secrets
import stat
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from ..errors import describe_error
from ..files import copy_into, fsync_dir, remove_files
from .tailing import Follower, TailedWriter

TEMP_PREFIX = ".mc-offsite-"
MISSING_BOTO3 = "boto3 is not installed: pip install 'mission-control-backup[s3]'"
MB = 1024 * 1024
CHUNK = MB
#: Below this, one PUT; above, parts of `PART_SIZE` (S3 needs at least 5 MiB per part).
MULTIPART_THRESHOLD = 64 * MB
PART_SIZE = 16 * MB
LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")


@dataclass(frozen=True)
class StoredObject:
    """One object (or one version of it) in a storage.

    `lock_mode`, `retain_until`, `sha256` and `etag` are known after `head` (and `put`), not
    `list`. The `etag` (S3's, without quotes; None for a folder) changes when an object is
    written over, even with the same size on a store that keeps no SHA-256 checksum.
    """

    key: str
    size: int
    modified: float
    version_id: str = None
    is_latest: bool = True
    delete_marker: bool = False
    lock_mode: str = None
    retain_until: float = None
    sha256: str = None
    etag: str = None


@dataclass(frozen=True)
class Lock:
    """Object Lock retention: `mode` (GOVERNANCE or COMPLIANCE) until `until` (unix seconds)."""

    mode: str
    until: float

    def __post_init__(self):
        if self.mode not in LOCK_MODES:
            raise ValueError(f"not an Object Lock mode: {self.mode!r}")


class ObjectHeld(Exception):
    """A delete the storage refused because the object's lock has not expired (`until`)."""

    def __init__(self, key, until=None):
        super().__init__(f"{key} is locked" + (f" until {_iso(until)}" if until else ""))
        self.key, self.until = key, until


def _iso(ts):
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _raise(exc):
    raise exc


def check_key(key):
    """`key` if it names something under the root; ValueError otherwise."""
    parts = key.split("/") if isinstance(key, str) else [""]
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) \
            or "\x00" in key or "\\" in key:
        raise ValueError(f"not a storage key: {str(key)[:80]!r}")
    return key


class TempObject:
    """The hidden temporary file of one object being written into a folder (`file`, a writer),
    until `place` links it under its key. With ``writing(read_back=True)``, `file` is a
    `tailing.TailedWriter`: every byte written is read back from the file and compared."""

    def __init__(self, storage, key, path, final, file, follower=None):
        self.storage, self.key, self.path, self._final = storage, key, path, final
        self._raw, self._follower = file, follower
        self.file = TailedWriter(file, follower) if follower is not None else file
        #: The SHA-256 of the bytes read back (once `place` has read them back).
        self.sha256 = None

    def place(self, size=None):
        """Make the file durable (fsync), then link it under its key (never replacing a file)
        and make the link durable.

        When the file is read back, the read-back (a step behind the writer, finished while the
        fsync runs) must match every byte written, and come to `size` bytes (what the writer
        says it wrote), before the file takes its name: a copy that differs never appears
        under its key.
        :return: the `StoredObject` placed; its `sha256` is the read-back's (None without one).
        :raises ValueError: the bytes read back differ. :raises FileExistsError: the key is
            taken (the temporary file is removed when the block ends).
        """
        self.file.flush()
        if self._follower is None:
            os.fsync(self._raw.fileno())
        else:
            self._follower.done()  # reads on to the end while this thread fsyncs
            os.fsync(self._raw.fileno())
            read, digest = self._follower.result()
            if read != size:
                raise ValueError(f"the copy read back has {read} bytes, expected {size}")
            self.sha256 = digest
        os.link(self.path, self._final)  # never replaces: FileExistsError if the key is taken
        fsync_dir(os.path.dirname(self._final))
        placed = self.storage.head(self.key)
        return replace(placed, sha256=self.sha256) if placed is not None else None


class FolderStorage:
    """A local or mounted folder. Writes go through a hidden temporary name, fsynced, then renamed
    into place without replacing anything (a copy is written once); folders under the root that
    a key needs are made 0700."""

    def __init__(self, root):
        self.root = os.fspath(root)
        self.location = self.root

    def _path(self, key):
        return os.path.join(self.root, *check_key(key).split("/"))

    def put(self, key, path, *, lock=None):
        with open(path, "rb") as src:  # copied inside the kernel: no read and write per MiB
            return self._write(key, lambda dst: copy_into(src, dst))

    def put_bytes(self, key, data, *, lock=None):
        return self._write(key, lambda dst: dst.write(data))

    def _write(self, key, fill):
        with self.writing(key) as temp:
            fill(temp.file)
            return temp.place()

    @contextmanager
    def writing(self, key, *, lock=None, read_back=False):
        """A hidden temporary file for `key`, to write into directly (no scratch copy first):
        yields a `TempObject`, whose `place` makes it durable and gives it its name. A file
        not placed when the block ends (an error, a failed check) is removed: a half-written
        object never appears under `key`.

        :param read_back: read every byte back as it is written and compare it
            (`tailing.Follower`); `place` then names the file only when all matched.
        """
        final = self._path(key)
        folder = os.path.dirname(final)
        if folder != self.root and not os.path.isdir(folder):
            os.makedirs(folder, mode=0o700, exist_ok=True)
        tmp = os.path.join(folder, f"{TEMP_PREFIX}{secrets.token_hex(8)}.tmp")
        follower = None
        try:
            with open(tmp, "xb", buffering=0 if read_back else -1) as dst:
                os.fchmod(dst.fileno(), 0o600)
                follower = Follower(tmp) if read_back else None
                yield TempObject(self, key, tmp, final, dst, follower)
        finally:
            if follower is not None:
                follower.stop()
            remove_files(tmp)

    def _walk(self, prefix):
        if not os.path.isdir(self.root):  # an unmounted share is unreadable, not empty
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), self.root)
        base = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if not os.path.isdir(base):
            return
        # os.walk swallows errors by default: a folder it cannot read would list as empty, and
        # retention would then count (and keep) nothing there.
        for folder, dirs, files in os.walk(base, onerror=_raise):
            # A mounted filesystem's lost+found (root's, 0700) is never ours to read.
            dirs[:] = [d for d in dirs if not d.startswith(".")
                       and not (folder == self.root and d == "lost+found")]
            rel = os.path.relpath(folder, self.root)
            for name in files:
                if name.startswith(TEMP_PREFIX):
                    continue
                key = name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}"
                if not key.startswith(prefix):
                    continue
                st = os.lstat(os.path.join(folder, name))
                if stat.S_ISREG(st.st_mode):
                    yield StoredObject(key, st.st_size, st.st_mtime)

    def list(self, prefix=""):
        return sorted(self._walk(prefix), key=lambda o: o.key)

    def versions(self, prefix=""):
        return self.list(prefix)

    def open(self, key, version_id=None):
        return open(self._path(key), "rb")

    def head(self, key, version_id=None):
        try:
            st = os.lstat(self._path(key))
        except FileNotFoundError:
            return None
        return StoredObject(key, st.st_size, st.st_mtime) if stat.S_ISREG(st.st_mode) \
            else None

    def delete(self, key):
        path = self._path(key)
        remove_files(path)
        fsync_dir(os.path.dirname(path))

    def extend_lock(self, key, version_id, lock):
        pass

    def lock_enabled(self):
        return False

    def versioning_enabled(self):
        return False


def bucket_lock(storage):
    """Whether the bucket of `storage` has Object Lock, as the settings check it (one check for
    ``offsite.s3.lock_mode`` and for the sealed stream): `(True, None)`, `(False, None)`, or
    `(None, why)` when it cannot be told (no permission, no such bucket, unreachable)."""
    try:
        return bool(storage.lock_enabled()), None
    except Exception as exc:  # noqa: BLE001 - boto3 missing, no such bucket, unreachable, ...
        return None, describe_error(exc)


def _error_code(exc):
    return getattr(exc, "response", {}).get("Error", {}).get("Code")


def _version_of(answer):
    """The version id an answer (PutObject, HeadObject, a listed version) names; None on an
    unversioned bucket ("null")."""
    version = (answer or {}).get("VersionId")
    return version if version and version != "null" else None


def _sha256_b64(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return base64.b64encode(digest.digest()).decode()


def _hex(b64):
    return base64.b64decode(b64).hex() if b64 and "-" not in b64 else None


class S3Storage:
    """A bucket's prefix through a boto3 `client` (see `make_s3_client`).

    Files of `multipart_threshold` bytes or more go up in parts of `part_size` bytes.
    """

    def __init__(self, client, bucket, prefix="", *, multipart_threshold=MULTIPART_THRESHOLD,
                 part_size=PART_SIZE):
        prefix = prefix.strip().lstrip("/")
        self.client, self.bucket = client, bucket
        self.multipart_threshold, self.part_size = multipart_threshold, part_size
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.location = f"s3://{bucket}/{self.prefix}"

    def _key(self, key):
        return self.prefix + check_key(key)

    def _lock_args(self, lock):
        if lock is None:
            return {}
        return {"ObjectLockMode": lock.mode,
                "ObjectLockRetainUntilDate": datetime.fromtimestamp(lock.until, timezone.utc)}

    def put(self, key, path, *, lock=None):
        """Upload the file `path`; S3 checks it against its SHA-256 (`ChecksumAlgorithm`).

        :return: the version that landed (headed by its version id when the store gives one).
        """
        from boto3.s3.transfer import TransferConfig
        size = os.stat(path).st_size
        args = {"ChecksumAlgorithm": "SHA256", **self._lock_args(lock)}
        if size < self.multipart_threshold:
            with open(path, "rb") as body:
                done = self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=body,
                                              ChecksumSHA256=_sha256_b64(path), **args)
            return self.head(key, _version_of(done))
        config = TransferConfig(multipart_threshold=self.multipart_threshold,
                                multipart_chunksize=self.part_size, max_concurrency=4)
        # upload_file answers nothing: the latest version is ours unless someone wrote over it
        # in between, which the host's read-back of that very version then tells.
        self.client.upload_file(os.fspath(path), self.bucket, self._key(key), Config=config,
                                ExtraArgs=args)
        return self.head(key)

    def put_bytes(self, key, data, *, lock=None):
        done = self.client.put_object(
            Bucket=self.bucket, Key=self._key(key), Body=data, ChecksumAlgorithm="SHA256",
            ChecksumSHA256=base64.b64encode(hashlib.sha256(data).digest()).decode(),
            **self._lock_args(lock))
        return self.head(key, _version_of(done))

    def _relative(self, full):
        return full[len(self.prefix):] if full.startswith(self.prefix) else None

    def list(self, prefix=""):
        found = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix)
        for page in pages:
            for item in page.get("Contents", ()):
                key = self._relative(item["Key"])
                if key:
                    found.append(StoredObject(key, item["Size"],
                                              item["LastModified"].timestamp()))
        return sorted(found, key=lambda o: o.key)

    def versions(self, prefix=""):
        """Every version and delete marker under `prefix`, newest first within a key (an
        unversioned bucket's "null" version id is None, as `head` and `put` give it)."""
        found = []
        pages = self.client.get_paginator("list_object_versions").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix)
        for page in pages:
            for item in page.get("Versions", ()):
                key = self._relative(item["Key"])
                if key:
                    found.append(StoredObject(key, item["Size"],
                                              item["LastModified"].timestamp(),
                                              version_id=_version_of(item),
                                              is_latest=item.get("IsLatest", True)))
            for item in page.get("DeleteMarkers", ()):
                key = self._relative(item["Key"])
                if key:
                    found.append(StoredObject(key, 0, item["LastModified"].timestamp(),
                                              version_id=_version_of(item),
                                              is_latest=item.get("IsLatest", True),
                                              delete_marker=True))
        return sorted(found, key=lambda o: (o.key, not o.is_latest, -o.modified))

    def open(self, key, version_id=None):
        extra = {"VersionId": version_id} if version_id else {}
        return self.client.get_object(Bucket=self.bucket, Key=self._key(key), **extra)["Body"]

    def head(self, key, version_id=None):
        extra = {"VersionId": version_id} if version_id else {}
        try:
            found = self.client.head_object(Bucket=self.bucket, Key=self._key(key),
                                            ChecksumMode="ENABLED", **extra)
        except Exception as exc:  # noqa: BLE001 - botocore's ClientError, without importing it
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound", "NoSuchVersion"):
                return None
            raise
        until = found.get("ObjectLockRetainUntilDate")
        # A multipart upload's checksum is one of its parts' checksums, not the object's SHA-256
        # (AWS marks it "-<parts>"; moto and others do not: the ETag's "-<parts>" tells).
        composite = found.get("ChecksumType") == "COMPOSITE" or "-" in found.get("ETag", "")
        return StoredObject(key, found["ContentLength"], found["LastModified"].timestamp(),
                            version_id=_version_of(found),
                            lock_mode=found.get("ObjectLockMode"),
                            retain_until=until.timestamp() if until else None,
                            sha256=None if composite else _hex(found.get("ChecksumSHA256")),
                            etag=found.get("ETag", "").strip('"') or None)

    def delete(self, key):
        """Delete the current version (on a versioned bucket: a delete marker; locked versions
        stay). A version whose lock refuses raises `ObjectHeld`."""
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:  # noqa: BLE001
            if _error_code(exc) in ("AccessDenied", "InvalidRequest", "ObjectLocked"):
                held = self.head(key)
                # Only a lock still running holds it; past its date the refusal is a
                # permission problem, which must reach the verdict as a failure.
                if held is not None and held.retain_until and held.retain_until > time.time():
                    raise ObjectHeld(key, held.retain_until) from None
            raise

    def extend_lock(self, key, version_id, lock):
        """Move the lock of `key` (this `version_id`) to `lock.until`; never shortens it."""
        extra = {"VersionId": version_id} if version_id else {}
        self.client.put_object_retention(
            Bucket=self.bucket, Key=self._key(key), **extra,
            Retention={"Mode": lock.mode,
                       "RetainUntilDate": datetime.fromtimestamp(lock.until, timezone.utc)})

    def lock_enabled(self):
        """Whether the bucket has Object Lock on (`GetObjectLockConfiguration`)."""
        try:
            found = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except Exception as exc:  # noqa: BLE001
            if _error_code(exc) in ("ObjectLockConfigurationNotFoundError",
                                    "ObjectLockConfigurationNotFound", "NoSuchObjectLockConfiguration"):
                return False
            raise
        return found.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"

    def versioning_enabled(self):
        return self.client.get_bucket_versioning(Bucket=self.bucket).get("Status") == "Enabled"


def make_s3_client(endpoint_url=None, region=None, access_key_id=None, secret_access_key=None):
    """A boto3 S3 client; empty credentials use the standard AWS chain.

    :raises ImportError: boto3 is not installed (message: `MISSING_BOTO3`).
    """
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise ImportError(MISSING_BOTO3) from None
    session = boto3.session.Session(aws_access_key_id=access_key_id or None,
                                    aws_secret_access_key=secret_access_key or None,
                                    region_name=region or None)
    options = dict(connect_timeout=10, read_timeout=120,
                   retries={"max_attempts": 3, "mode": "standard"},
                   # Most S3-compatible services want path-style addressing.
                   s3={"addressing_style": "path" if endpoint_url else "auto"})
    if endpoint_url and "request_checksum_calculation" in Config.OPTION_DEFAULTS:
        # botocore >= 1.36 adds CRC checksums to every upload, which several S3-compatible
        # services reject; uploads here say their own SHA-256 instead.
        options.update(request_checksum_calculation="when_required",
                       response_checksum_validation="when_required")
    return session.client("s3", endpoint_url=endpoint_url or None, config=Config(**options))


def open_storage(url, *, endpoint_url=None, region=None, access_key_id=None,
                 secret_access_key=None):
    """The storage `url` names: ``s3://bucket/prefix``, or an absolute folder (or ``file://``).

    :raises ValueError: any other kind of address.
    :raises ImportError: an s3:// address without boto3.
    """
    url = str(url)
    if url.startswith("s3://"):
        bucket, _, prefix = url[5:].partition("/")
        if not bucket:
            raise ValueError("an s3:// address needs a bucket: s3://bucket/prefix")
        client = make_s3_client(endpoint_url, region, access_key_id, secret_access_key)
        return S3Storage(client, bucket, prefix)
    if url.startswith("file://"):
        url = url[7:]
    if not os.path.isabs(url):
        raise ValueError("not a storage address: give s3://bucket/prefix or an absolute folder")
    return FolderStorage(url)

