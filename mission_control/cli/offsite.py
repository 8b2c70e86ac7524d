"""`mission-control offsite list|fetch`: an off-site target's copies, and fetching one back."""
from datetime import datetime, timezone

from ..errors import BadRequest
from ..offsite_targets import fetch, find_target, list_copies
from ..units import human_size


def add_parsers(sub):
    """Add the `offsite` command and its two actions."""
    actions = sub.add_parser("offsite", help="list and fetch back off-site copies") \
        .add_subparsers(dest="action", metavar="ACTION", required=True)
    lst = actions.add_parser("list", help="the copies a target holds")
    lst.add_argument("target", help="dir, s3, or a plugin's target")
    lst.set_defaults(handler=list_)
    get = actions.add_parser("fetch", help="fetch a copy back into the backups folder, verified")
    get.add_argument("target")
    get.add_argument("name", help="the copy's name, as listed")
    get.add_argument("--identity-file", help="age identity file (default: the secret setting "
                                             "offsite.age_identity)")
    get.set_defaults(handler=fetch_)


def _identity(path):
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise BadRequest(f"cannot read the identity file: {exc.strerror}") from None


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
    match = {True: "matches the copy's record", False: "differs",
             None: "no record here to compare"}[result["sha256_match"]]
    ctx.out.result(result, f"fetched {backup['name']} ({human_size(backup['size'])}), "
                           f"verified; sha256 {backup['sha256']} {match}")
