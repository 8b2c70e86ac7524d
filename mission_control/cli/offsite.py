"""`mission-control offsite status|list|fetch|key`: results, copies, fetching one, the signing key."""
from datetime import datetime, timezone

from ..backup.names import FETCHED_PREFIX
from ..errors import BadRequest, NotFound
from ..offsite.codec import parse_remote_name
from ..offsite.targets import fetch
from ..offsite.keeping import held_text
from ..offsite.targets import list_copies
from ..units import human_size
from .backup import LISTED
from .failures import UsageError
from .parser import ACTIONS_HELP, command


def add_parsers(sub):
    """Add the `offsite` command and its four actions."""
    actions = command(sub, "offsite", "list and fetch back off-site copies",
                      description="the off-site copies every backup gets (targets: dir, s3, or "
                      "a plugin's; configured with `settings set offsite.…`)",
                      examples=("mission-control offsite status", "mission-control offsite list "
                                                                  "dir")) \
        .add_subparsers(dest="action", metavar="ACTION", required=True, help=ACTIONS_HELP)
    status = command(actions, "status", "each target's last result, the copies held by their "
                                        "Object Lock, and kept copies missing, changed or "
                                        "without a catalog entry",
                     examples=("mission-control offsite status",))
    status.set_defaults(handler=status_)
    lst = command(actions, "list", "the copies a target holds",
                  examples=("mission-control offsite list dir", "mission-control offsite list s3 "
                                                                "--json"))
    lst.add_argument("target", help="a configured target: dir, s3, or a plugin's "
                                    "(`offsite status` names them)")
    lst.set_defaults(handler=list_)
    get = command(actions, "fetch", "fetch a copy back into the backups folder, verified",
                  description="fetch a copy back into the backups folder as "
                  f"{FETCHED_PREFIX}<backup name> (e.g. {FETCHED_PREFIX}mc-backup-….db), "
                  "unpacked (zstd, age) and checked against the signed record of the copy this "
                  "service made; an encrypted copy (.age) needs the age identity",
                  examples=("mission-control offsite fetch dir mc-backup-2026-11-27_03-00-00.db",
                            "mission-control offsite fetch s3 mc-backup-2026-11-27_03-00-00.db"
                            ".zst.age --identity-file ~/mc-age.key"))
    get.add_argument("target", help="a configured target: dir, s3, or a plugin's")
    get.add_argument("name", help="the copy's name, as `offsite list TARGET` shows it")
    get.add_argument("--identity-file", metavar="FILE",
                     help="age identity file (AGE-SECRET-KEY-1…) for an encrypted copy "
                          "(default: the secret setting offsite.age_identity)")
    get.set_defaults(handler=fetch_)
    key = command(actions, "key", "the key that verifies this service's signed records of its "
                                  "off-site copies (keep it with the age identity)",
                  examples=("mission-control offsite key",))
    key.set_defaults(handler=key_)


def _identity(path):
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise BadRequest(f"cannot read the identity file: {exc.strerror}") from None


def configured_target(mc, name):
    """The target `name`, or NotFound naming it and the targets that are configured."""
    targets = mc.offsite.targets()
    if name in targets:
        return targets[name]
    if not targets:
        raise NotFound(f"no off-site target named {name!r}: none is configured (set "
                       "offsite.dir.path or offsite.s3.bucket with `mission-control settings "
                       "set`)")
    raise NotFound(f"no off-site target named {name!r}; configured: {', '.join(sorted(targets))}")


def _copy_named(target, name):
    """NotFound naming copy `name` and the copies `target` holds, when it holds no such copy."""
    names = [copy.name for copy in list_copies(target)]
    if name in names or parse_remote_name(name) is None:
        return  # found, or not a copy's name at all: fetch says which
    if not names:
        raise NotFound(f"off-site target {target.name} holds no copy named {name!r}: it holds "
                       "no copy yet")
    more = [f"… and {len(names) - LISTED} more (mission-control offsite list {target.name})"] \
        if len(names) > LISTED else []
    raise NotFound(f"off-site target {target.name} holds no copy named {name!r}; its copies, "
                   "newest first:", details=[*names[:LISTED], *more])


def _last_copy_text(t):
    """``a full copy, 6.1 MiB uploaded`` or ``only the pages that changed, 41 KiB uploaded (3
    since the full copy)``."""
    uploaded = f"{human_size(t['uploaded_bytes'] or 0)} uploaded"
    if t["kind"] == "delta":
        return (f"only the pages that changed, {uploaded} ({t['chain_length']} since the full "
                "copy)")
    return f"a full copy, {uploaded}"


def status_(ctx):
    with ctx.open() as mc:
        targets = mc.offsite.list()
    lines = []
    for t in targets:
        when = datetime.fromtimestamp(t["finished_at"], timezone.utc)
        lines.append(f"{t['target']}\t{'ok' if t['ok'] else 'FAILED'}\t{t['backup'] or '-'}\t"
                     f"{when:%Y-%m-%d %H:%M:%S} UTC\t{t['message']}")
        if t["kind"] is not None:
            lines.append(f"  last copy: {_last_copy_text(t)}")
        # Held by their lock is what a locked bucket is for: said, never counted as a failure.
        lines += [f"  {line}" for line in held_text(t["held"])]
        # Kept copies someone deleted or replaced: they fail the verdict.
        lines += [f"  {name} missing (deleted by someone else, not pruned here)"
                  for name in t["missing"]]
        lines += [f"  {name} changed (no longer what was uploaded)" for name in t["changed"]]
        lines += [f"  {b['name']} cannot be restored: {b['ancestor']}, which its chain needs, "
                  "is missing or changed" for b in t["broken"]]
        lines += [f"  {name} has no usable catalog entry" for name in t["uncataloged"]]
    failed = [t["target"] for t in targets if not t["ok"]]
    lost = [t["target"] for t in targets if t["missing"] or t["changed"] or t["broken"]]
    if not targets:
        lines.append("no off-site copy has been tried yet")
    else:
        lines.append(f"{len(targets)} target(s): " + (
            f"last copy FAILED at {', '.join(failed)}" if failed else "every last copy ok")
            + (f"; copies missing, changed or unrestorable at {', '.join(lost)}" if lost
               else ""))
    ctx.out.result({"targets": targets}, lines)


def list_(ctx):
    with ctx.open() as mc:
        copies = list_copies(configured_target(mc, ctx.args.target))
    lines = []
    for copy in copies:
        when = datetime.fromtimestamp(copy.created_at, timezone.utc)
        kind = "\tincremental" if copy.kind == "delta" else ""
        lines.append(f"{copy.name}\t{human_size(copy.size)}\t{when:%Y-%m-%d %H:%M:%S} UTC{kind}")
    lines.append(f"{len(copies)} cop{'y' if len(copies) == 1 else 'ies'}, "
                 f"{human_size(sum(c.size for c in copies))}, at {ctx.args.target}")
    ctx.out.result({"backups": [c.to_json() for c in copies]}, lines)


def fetch_(ctx):
    args = ctx.args
    identity = _identity(args.identity_file)
    with ctx.open() as mc:
        _copy_named(configured_target(mc, args.target), args.name)
        parsed = parse_remote_name(args.name)
        if parsed and parsed[2] and not identity and not mc.settings.get("offsite.age_identity"):
            raise UsageError(f"{args.name} is encrypted (.age): give the age identity that "
                             "decrypts it with --identity-file FILE (AGE-SECRET-KEY-1…), or set "
                             "the secret setting offsite.age_identity")
        with ctx.out.progress(f"fetching {args.name}"):
            result = fetch(mc, args.target, args.name, ctx.actor, identity)
    backup = result["backup"]
    ctx.out.result(result, f"fetched {backup['name']} ({human_size(backup['size'])}), "
                           f"verified; sha256 {backup['sha256']} matches the copy's signed record")


def key_(ctx):
    with ctx.open() as mc:
        signer = mc.offsite.signer
        created = signer.verify_key(create=False) is None
        signer.private_key(announce=lambda text: None)  # shown just below instead
        key = signer.verify_key()
    ctx.out.result({"verify_key": key, "created": created},
                   [key, "Keep it with the age identity: with it, a new host can tell the copies "
                         "this service made (MC_OFFSITE_VERIFY_KEYS)."])
