"""Built-in off-site copy to S3-compatible object storage (AWS S3, MinIO, Ceph, R2, SeaweedFS, ...).

Off until ``offsite.s3.bucket`` is set. Needs ``boto3`` (``pip install 'mission-control-backup[s3]'``),
imported only when the plugin has work to do. Credentials come from the standard AWS chain
(environment, shared files, instance roles) unless the two secret settings are set.

The host (`mission_control.send_offsite`) does the work: packs the backup (zstd, age) into a
private scratch file, uploads it with its SHA-256 checksum (in parts from
``offsite.s3.multipart_threshold_mb``), checks the SHA-256 the store computed (or downloads it in
full with ``offsite.s3.verify_download``), puts the signed manifest and catalog entry beside it,
and keeps the newest ``offsite.s3.retention_count`` copies this service made.

With ``offsite.s3.lock_mode`` (GOVERNANCE or COMPLIANCE) every upload carries S3 Object Lock
retention for ``offsite.s3.lock_days``; turning it on checks that the bucket has Object Lock.
Retention never deletes a locked copy (it is reported as held until its date) and extends the
lock of the copies it keeps. With ``offsite.s3.no_delete`` the service never deletes anything:
the bucket's lifecycle rules expire old copies (docs/offsite.md).
"""
from mission_control import (URL, Codec, OffsitePolicy, S3Storage, SettingDef, StorageTarget,
                             bucket_lock, codec_settings, describe_error, hookimpl,
                             make_s3_client, send_offsite)

TARGET = "s3"
MB = 1024 * 1024
LOCK_MODES = ("", "GOVERNANCE", "COMPLIANCE")
#: Changing any of these while a lock mode is on asks the bucket again whether it locks.
LOCK_CHECKED = tuple(f"offsite.s3.{key}" for key in (
    "bucket", "endpoint_url", "region", "access_key_id", "secret_access_key", "lock_mode",
    "lock_days"))
NO_BOTO3 = "boto3, which is not installed: pip install 'mission-control-backup[s3]'"
NO_DELETE_NOTE = ("never deletes (offsite.s3.no_delete): old copies expire only by the "
                  "bucket's lifecycle rules, which must be set (docs/offsite.md)")


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
           "comparing SHA-256 (otherwise by the SHA-256 checksum the store computed)"),
        s3("lock_mode", "text", "", "S3 Object Lock on every upload: empty (off), GOVERNANCE "
           "or COMPLIANCE; the bucket must have Object Lock enabled", choices=LOCK_MODES),
        s3("lock_days", "int", "30", "Days each upload stays locked; copies retention keeps "
           "have their lock extended to this many days from now", minimum=1, maximum=36500),
        s3("no_delete", "bool", "false", "Never delete anything in the bucket (old copies "
           "expire only by the bucket's lifecycle rules): the credentials need no "
           "s3:DeleteObject"),
        s3("incremental", "bool", "false", "Incremental copies: after a full copy, each copy "
           "stores only the database pages that changed since the previous one (needs "
           "zstandard)"),
        s3("full_every", "int", "7", "With incremental copies: at most this many incremental "
           "copies follow a full copy before the next full copy", minimum=1, maximum=1000),
        *codec_settings(TARGET),
    ]


def configured_bucket(settings):
    """The bucket to upload to, or "" while the copy is off: the one test both hooks use."""
    return settings.get("offsite.s3.bucket").strip()


def endpoint(mc, settings, changed=()):
    """The endpoint to use (None: AWS).

    :raises ValueError: an endpoint stored before its check existed and refused by it now:
        falling back to the default would send the copies to AWS instead.
    """
    url = settings.get("offsite.s3.endpoint_url") or None
    if url is None and "offsite.s3.endpoint_url" not in changed \
            and mc.settings.get_raw("offsite.s3.endpoint_url"):
        raise ValueError("offsite.s3.endpoint_url holds a value that is no longer valid (an "
                         "http(s) URL with a host and no user:password part): set it again")
    return url


def make_storage(mc, settings, changed=()):
    """The bucket's prefix as an `S3Storage`, from `settings` (the stored ones, or a change's).

    :raises ImportError: boto3 is missing. :raises ValueError: see `endpoint`.
    """
    get = settings.get
    client = make_s3_client(endpoint(mc, settings, changed), get("offsite.s3.region"),
                            get("offsite.s3.access_key_id"), get("offsite.s3.secret_access_key"))
    return S3Storage(client, configured_bucket(settings), get("offsite.s3.prefix"),
                     multipart_threshold=get("offsite.s3.multipart_threshold_mb") * MB,
                     part_size=get("offsite.s3.multipart_chunk_mb") * MB)


def make_target(mc):
    get = mc.settings.get
    policy = OffsitePolicy(keep=get("offsite.s3.retention_count"),
                           lock_mode=get("offsite.s3.lock_mode"),
                           lock_days=get("offsite.s3.lock_days"),
                           no_delete=get("offsite.s3.no_delete"),
                           verify_download=get("offsite.s3.verify_download"),
                           incremental=get("offsite.s3.incremental"),
                           full_every=get("offsite.s3.full_every"))
    prefix = get("offsite.s3.prefix").strip().lstrip("/")
    prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    return StorageTarget(TARGET, lambda: make_storage(mc, mc.settings),
                         Codec.from_settings(mc.settings, TARGET), policy,
                         location=f"s3://{configured_bucket(mc.settings)}/{prefix}",
                         notes=(NO_DELETE_NOTE,) if policy.no_delete else ())


@hookimpl
def post_backup(mc, backup, actor):
    if configured_bucket(mc.settings):
        send_offsite(mc, make_target(mc), backup, actor)


@hookimpl
def offsite_targets(mc):
    return [make_target(mc)] if configured_bucket(mc.settings) else []


def boto3_missing():
    """Whether boto3 cannot be imported (the [s3] extra is not installed)."""
    try:
        __import__("boto3")
    except ImportError:
        return True
    return False


@hookimpl
def check_settings(mc, settings, changed):
    """A bucket is refused while boto3 is missing (naming the extra); a lock mode unless the
    bucket, as the settings will be, has Object Lock."""
    if "offsite.s3.bucket" in changed and configured_bucket(settings) and boto3_missing():
        return [f"offsite.s3.bucket: copies to S3 need {NO_BOTO3}"]
    if not set(changed) & set(LOCK_CHECKED) or not settings.get("offsite.s3.lock_mode") \
            or not configured_bucket(settings):
        return None
    bucket = configured_bucket(settings)
    try:
        enabled, why = bucket_lock(make_storage(mc, settings, changed))
    except Exception as exc:  # noqa: BLE001 - boto3 missing, a client that cannot be made
        enabled, why = None, describe_error(exc)
    if enabled is None:
        return [f"offsite.s3.lock_mode: cannot tell whether bucket {bucket} has Object Lock "
                f"(GetObjectLockConfiguration): {why}"]
    if not enabled:
        return [f"offsite.s3.lock_mode: bucket {bucket} does not have Object Lock enabled "
                "(GetObjectLockConfiguration), so its copies cannot be locked; create a bucket "
                "with Object Lock (docs/offsite.md) or leave the lock mode empty"]
    return None
