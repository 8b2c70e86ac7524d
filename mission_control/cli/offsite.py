"""`mission-control offsite status|list|fetch|key`: results, copies, fetching one, the signing key."""
from datetime import datetime, timezone

from ..errors import BadRequest
from ..offsite.targets import fetch
from ..offsite.targets import find_target
from ..offsite.keeping import held_text
from ..offsite.targets import list_copies
from ..units import human_size


def add_parsers(sub):
    """Add the `offsite` command and its four actions."""
    actions = sub.add_parser("offsite", help="list and fetch back off-site copies") \
        .add_subparsers(dest="action", metavar="ACTION", required=True)
    status = actions.add_parser("status", help="each target's last result, the copies held "
                                               "by their Object Lock, and kept copies missing, "
                                               "changed or without a catalog entry")
    status.set_defaults(handler=status_)
    lst = actions.add_parser("list", help="the copies a target holds")
    lst.add_argument("target", help="dir, s3, or a plugin's target")
    lst.set_defaults(handler=list_)
    get = actions.add_parser("fetch", help="fetch a copy back into the backups folder, verified")
    get.add_argument("target")
    get.add_argument("name", help="the copy's name, as listed")
    get.add_argument("--identity-file", help="age identity file (default: the secret setting "
                                             "offsite.age_identity)")
    get.set_defaults(handler=fetch_)
    key = actions.add_parser("key", help="the key that verifies this service's signed records of "
                                         "its off-site copies (keep it with the age identity)")
    key.set_defaults(handler=key_)


def _identity(path):
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise BadRequest(f"cannot read the identity file: {exc.strerror}") from None


def status_(ctx):
    with ctx.open() as mc:
        targets = mc.offsite.list()
    lines = []
    for t in targets:
        when = datetime.fromtimestamp(t["finished_at"], timezone.utc)
        lines.append(f"{t['target']}\t{'ok' if t['ok'] else 'FAILED'}\t{t['backup'] or '-'}\t"
                     f"{when:%Y-%m-%d %H:%M:%S} UTC\t{t['message']}")
        # Held by their lock is what a locked bucket is for: said, never counted as a failure.
        lines += [f"  {line}" for line in held_text(t["held"])]
        # Kept copies someone deleted or replaced: they fail the verdict.
        lines += [f"  {name} missing (deleted by someone else, not pruned here)"
                  for name in t["missing"]]
        lines += [f"  {name} changed (no longer what was uploaded)" for name in t["changed"]]
        lines += [f"  {name} has no usable catalog entry" for name in t["uncataloged"]]
    ctx.out.result({"targets": targets}, lines or ["no off-site copy has been tried yet"])


def list_(ctx):
    with ctx.open() as mc:
        copies = list_copies(find_target(mc, ctx.args.target))
    lines = []
    for copy in copies:
        when = datetime.fromtimestamp(copy.created_at, timezone.utc)
        lines.append(f"{copy.name}\t{human_size(copy.size)}\t{when:%Y-%m-%d %H:%M:%S} UTC")
    ctx.out.result({"backups": [c.to_json() for c in copies]}, lines)


def fetch_(ctx):
    identity = _identity(ctx.args.identity_file)
    with ctx.open() as mc, ctx.out.progress(f"fetching {ctx.args.name}"):
        result = fetch(mc, ctx.args.target, ctx.args.name, ctx.actor, identity)
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
