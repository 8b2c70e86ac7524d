"""Built-in off-site copy to S3-compatible object storage (AWS S3, MinIO, Ceph, R2, ...).

Off until ``offsite.s3.bucket`` is set. Needs ``boto3`` (``pip install 'mission-control-backup[s3]'``),
imported only when the plugin has work to do. Credentials come from the standard AWS chain
(environment, shared files, instance roles) unless the two secret settings are set. Large files
go up in parts (multipart upload); what landed is checked against the local file (size, and the
MD5-based ETag, or a full download compared by SHA-256 when the ETag cannot tell), the copy's signed
manifest goes up beside it (``<copy name>.manifest.json``, so a copy someone else put in the bucket
is told apart), and then the bucket keeps the newest ``offsite.s3.retention_count`` backups under
the prefix.

With ``offsite.s3.compress`` or ``offsite.s3.age_recipients`` set, the backup is first packed
(zstd, age) into a private scratch file beside it (``create_scratch``), in bounded memory, and
that file is uploaded as ``<backup name>.zst.age``; it is deleted afterwards, whatever happened,
and one a killed process left behind is swept at the next start.
"""
import hashlib
import os
import re
import time
from contextlib import contextmanager
from functools import cached_property

from mission_control import (MANIFEST_SUFFIX, REMOTE_PATTERN, SCRATCH_PREFIX, URL, Codec, Encoded,
                             RemoteCopy, SettingDef, codec_settings, create_scratch,
                             describe_error, encode, hookimpl, remove_files)

TARGET = "s3"
STAGING_PREFIX = f"{SCRATCH_PREFIX}s3-"
MD5_ETAG = re.compile(r"^[0-9a-f]{32}(-\d+)?$")
MB = 1024 * 1024
CHUNK = MB
MISSING_BOTO3 = "boto3 is not installed: pip install 'mission-control-backup[s3]'"


@hookimpl
def register_settings():
    def s3(key, type_, default, description, **kw):
        return SettingDef(f"offsite.s3.{key}", type_, default, description, "offsite", **kw)
    return [
        s3("bucket", "text", "", "Bucket that receives a verified copy of every backup "
           "(empty turns the S3 copy off)", max_length=63),
        s3("prefix", "text", "mission-control/", "Key prefix for backups in the bucket",
           max_length=512),
        s3("endpoint_url", "text", "", "Endpoint of an S3-compatible service (MinIO, Ceph, R2, "
           "...); empty means AWS", max_length=1024, kind=URL),
        s3("region", "text", "", "Region name; empty uses the AWS chain's", max_length=64),
        s3("access_key_id", "text", "", "Access key id; empty uses the standard AWS credential "
           "chain", secret=True, max_length=256),
        s3("secret_access_key", "text", "", "Secret access key; empty uses the standard AWS "
           "credential chain", secret=True, max_length=256),
        s3("retention_count", "int", "10", "How many backups to keep under the prefix",
           minimum=1, maximum=1000),
        s3("multipart_threshold_mb", "int", "64", "Files this size (MiB) or larger are uploaded "
           "in parts", minimum=5, maximum=5 * 1024),
        s3("multipart_chunk_mb", "int", "16", "Part size (MiB) of a multipart upload",
           minimum=5, maximum=5 * 1024),
        s3("verify_download", "bool", "false", "Verify each upload by downloading it and "
           "comparing SHA-256 (otherwise by size and ETag)"),
        *codec_settings(TARGET),
    ]


def key_prefix(raw):
    raw = raw.strip().lstrip("/")
    return raw if not raw or raw.endswith("/") else raw + "/"


def local_digests(path, multipart, part_size):
    """SHA-256 of the file, and the ETag S3 gives an unencrypted upload of it.

    A single PUT's ETag is the MD5 of the body; a multipart upload's is the MD5 of the parts'
    MD5s followed by ``-<number of parts>``.
    """
    sha, whole, parts, in_part, part = hashlib.sha256(), hashlib.md5(), [], 0, hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            sha.update(chunk)
            whole.update(chunk)
            while chunk:
                take = chunk[:part_size - in_part]
                part.update(take)
                in_part += len(take)
                chunk = chunk[len(take):]
                if in_part == part_size:
                    parts.append(part.digest())
                    part, in_part = hashlib.md5(), 0
    if in_part or not parts:
        parts.append(part.digest())
    if not multipart:
        return sha.hexdigest(), whole.hexdigest()
    return sha.hexdigest(), f"{hashlib.md5(b''.join(parts)).hexdigest()}-{len(parts)}"


def make_client(mc):
    """A boto3 S3 client from the settings; raises ImportError when boto3 is missing."""
    import boto3  # imported here so the service runs without the [s3] extra
    from botocore.config import Config

    get = mc.settings.get
    endpoint = get("offsite.s3.endpoint_url") or None
    if endpoint is None and mc.settings.get_raw("offsite.s3.endpoint_url"):
        # An endpoint stored before its check existed and refused by it now: falling back to the
        # default would send the copies to AWS instead.
        raise ValueError("offsite.s3.endpoint_url holds a value that is no longer valid (an "
                         "http(s) URL with a host and no user:password part): set it again")
    session = boto3.session.Session(
        aws_access_key_id=get("offsite.s3.access_key_id") or None,
        aws_secret_access_key=get("offsite.s3.secret_access_key") or None,
        region_name=get("offsite.s3.region") or None)
    options = dict(connect_timeout=10, read_timeout=120,
                   retries={"max_attempts": 3, "mode": "standard"},
                   # Most S3-compatible services want path-style addressing.
                   s3={"addressing_style": "path" if endpoint else "auto"})
    if endpoint and "request_checksum_calculation" in Config.OPTION_DEFAULTS:
        # botocore >= 1.36 adds CRC checksums to every upload, which several S3-compatible
        # services reject; what landed is verified below anyway.
        options.update(request_checksum_calculation="when_required",
                       response_checksum_validation="when_required")
    config = Config(**options)
    return session.client("s3", endpoint_url=endpoint, config=config)


def upload_verified(client, mc, path, bucket, key):
    """Upload the file `path` to `bucket/key` and check what landed; return its SHA-256.

    :raises ValueError: what landed differs from the local file.
    :raises botocore/boto3 errors: the upload or the check failed.
    """
    from boto3.s3.transfer import TransferConfig
    from s3transfer.utils import ChunksizeAdjuster

    threshold = mc.settings.get("offsite.s3.multipart_threshold_mb") * MB
    size = os.stat(path).st_size
    part_size = ChunksizeAdjuster().adjust_chunksize(
        mc.settings.get("offsite.s3.multipart_chunk_mb") * MB, size)
    sha256, etag = local_digests(path, size >= threshold, part_size)
    transfer = TransferConfig(multipart_threshold=threshold, multipart_chunksize=part_size,
                              max_concurrency=4)
    client.upload_file(str(path), bucket, key, Config=transfer,
                       ExtraArgs={"Metadata": {"sha256": sha256}})
    head = client.head_object(Bucket=bucket, Key=key)
    if head["ContentLength"] != size:
        raise ValueError(f"uploaded object has {head['ContentLength']} bytes, expected {size}")
    landed = head.get("ETag", "").strip('"')
    if MD5_ETAG.match(landed) and not mc.settings.get("offsite.s3.verify_download"):
        if landed != etag:
            raise ValueError("uploaded object's ETag does not match the local file")
        return sha256
    # Encrypted objects (SSE-KMS, SSE-C) and some services have ETags that are not MD5s.
    digest = hashlib.sha256()
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    for chunk in iter(lambda: body.read(CHUNK), b""):
        digest.update(chunk)
    if digest.hexdigest() != sha256:
        raise ValueError("downloaded object's SHA-256 does not match the local file")
    return sha256


def prune_bucket(client, bucket, prefix, keep, just_made):
    """Keep the newest `keep` copies under `prefix`; return the keys deleted.

    A deleted copy's manifest goes with it (not counted among the keys returned).
    """
    names = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
            name = item["Key"][len(prefix):]
            if REMOTE_PATTERN.match(name):
                names.append(name)
    deleted = []
    for name in sorted(names, reverse=True)[keep:]:
        if name != just_made:
            client.delete_object(Bucket=bucket, Key=prefix + name)
            client.delete_object(Bucket=bucket, Key=prefix + name + MANIFEST_SUFFIX)
            deleted.append(prefix + name)
    return deleted


def configured_bucket(mc):
    """The bucket to upload to, or "" while the copy is off: the one test both hooks use."""
    return mc.settings.get("offsite.s3.bucket").strip()


@contextmanager
def packed(backup, codec):
    """The file to upload and its ``Encoded``: the backup itself, or a packed temporary copy."""
    if codec.plain:
        yield backup.path, None
        return
    staging, out = create_scratch(backup.folder, STAGING_PREFIX)
    try:
        with out:  # open (so locked against a start's sweep) until the upload is done
            encoded = encode(backup.path, out, codec)
            out.flush()
            yield staging, encoded
    finally:
        remove_files(staging)


@hookimpl
def post_backup(mc, backup, actor):
    bucket = configured_bucket(mc)
    if not bucket:
        return
    codec = Codec.from_settings(mc.settings, TARGET)
    remote_name = codec.remote_name(backup.name)
    prefix = key_prefix(mc.settings.get("offsite.s3.prefix"))
    location = f"s3://{bucket}/{prefix}{remote_name}"
    try:
        client = make_client(mc)
    except ImportError:
        mc.offsite.failed(TARGET, backup, actor, MISSING_BOTO3, location=location)
        return
    except ValueError as exc:
        mc.offsite.failed(TARGET, backup, actor, exc, location=location)
        return
    started = time.perf_counter()
    try:
        with packed(backup, codec) as (path, encoded):
            sha256 = upload_verified(client, mc, path, bucket, prefix + remote_name)
        if encoded is None:
            encoded = Encoded(backup.size, sha256, backup.size, sha256, False, False)
        manifest = mc.offsite.record_copy(TARGET, backup, remote_name, encoded)
        client.put_object(Bucket=bucket, Key=prefix + remote_name + MANIFEST_SUFFIX,
                          Body=manifest, ContentType="application/json")
    except Exception as exc:  # noqa: BLE001 - botocore raises many kinds; all mean "not copied"
        mc.offsite.failed(TARGET, backup, actor, exc, location=location)
        return
    try:
        pruned = prune_bucket(client, bucket, prefix,
                              mc.settings.get("offsite.s3.retention_count"), remote_name)
    except Exception as exc:  # noqa: BLE001
        mc.offsite.failed(TARGET, backup, actor, "uploaded and verified, but pruning the bucket "
                          f"failed: {describe_error(exc)}", location=location)
        return
    mc.offsite.succeeded(TARGET, backup, actor, location=location,
                         detail={"pruned": pruned,
                                 "duration_seconds": round(time.perf_counter() - started, 3)},
                         remote_name=remote_name, encoded=encoded)


class BucketTarget:
    """The bucket's prefix as an off-site target the host can list and fetch copies back from."""

    name = TARGET

    def __init__(self, mc, bucket, prefix):
        self.mc, self.bucket, self.prefix = mc, bucket, prefix

    @cached_property
    def client(self):
        """A client made when first needed (so naming the target needs no boto3), then reused."""
        try:
            return make_client(self.mc)
        except ImportError:
            raise RuntimeError(MISSING_BOTO3) from None

    def list_copies(self):
        copies = []
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                      Prefix=self.prefix)
        for page in pages:
            for item in page.get("Contents", ()):
                name = item["Key"][len(self.prefix):]
                if REMOTE_PATTERN.match(name):
                    copies.append(RemoteCopy(name, item["Size"],
                                             int(item["LastModified"].timestamp())))
        return copies

    def open_copy(self, name):
        return self.client.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"]

    def read_manifest(self, name, limit):
        from botocore.exceptions import ClientError
        try:
            body = self.client.get_object(Bucket=self.bucket,
                                          Key=self.prefix + name + MANIFEST_SUFFIX)["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        with body:
            return body.read(limit)


@hookimpl
def offsite_targets(mc):
    bucket = configured_bucket(mc)
    return [BucketTarget(mc, bucket, key_prefix(mc.settings.get("offsite.s3.prefix")))] \
        if bucket else []
