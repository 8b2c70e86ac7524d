"""`mission-control offsite list|fetch`: the copies an off-site target holds, and fetching one back."""
import json
from datetime import datetime, timezone

from .errors import BadRequest
from .offsite_targets import fetch, find_target, list_copies


def add_parser(sub, common):
    """Add the `offsite` command and its two actions to the top-level sub-parser group."""
    offsite = sub.add_parser("offsite", help="list and fetch back off-site copies")
    actions = offsite.add_subparsers(dest="action", required=True)
    lst = actions.add_parser("list", parents=[common], help="the copies a target holds")
    lst.add_argument("target", help="dir, s3, or a plugin's target")
    lst.add_argument("--json", action="store_true", help="print the API's JSON shape")
    get = actions.add_parser("fetch", parents=[common],
                             help="fetch a copy back into the backups folder, verified")
    get.add_argument("target")
    get.add_argument("name", help="the copy's name, as listed")
    get.add_argument("--identity-file", help="age identity file (default: the secret setting "
                                             "offsite.age_identity)")


def _identity(path):
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise BadRequest(f"cannot read the identity file: {exc.strerror}") from None


def run(mc, args, out, actor, human):
    """Run `offsite list` or `offsite fetch`; `human(size)` formats sizes. Returns 0."""
    if args.action == "list":
        copies = list_copies(find_target(mc, args.target))
        if args.json:
            print(json.dumps({"backups": [c.to_json() for c in copies]}, indent=2), file=out)
            return 0
        for copy in copies:
            when = datetime.fromtimestamp(copy.created_at, timezone.utc)
            print(f"{copy.name}\t{human(copy.size)}\t{when:%Y-%m-%d %H:%M:%S} UTC", file=out)
        return 0
    result = fetch(mc, args.target, args.name, actor, _identity(args.identity_file))
    backup = result["backup"]
    match = {True: "matches the copy's record", False: "differs",
             None: "no record here to compare"}[result["sha256_match"]]
    print(f"fetched {backup['name']} ({human(backup['size'])}), verified; "
          f"sha256 {backup['sha256']} {match}", file=out)
    return 0
