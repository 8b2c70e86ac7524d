"""`mission-control offsite status|list|fetch|key`: results, copies, fetching one, the signing key."""
from datetime import datetime, timezone

from ..errors import BadRequest
from ..offsite.targets import fetch
from ..offsite.targets import find_target
from ..offsite.keeping import held_text
from ..offsite.targets import list_copies
from ..units import human_size
from .parser import ACTIONS_HELP, command


def add_parsers(sub):
    """Add the `offsite` command and its four actions."""
    actions = command(sub, "offsite", "list and fetch back off-site copies",
                      description="the off-site copies every backup gets (targets: dir, s3, or "
                      "a plugin's; configured with `settings set offsite.…`)",
                      examples=("mission-control offsite status", "mission-control offsite list "
                                                                  "dir")) \
        .add_subparsers(dest="action", metavar="ACTION", required=True, help=ACTIONS_HELP)
    status = command(actions, "status", "each target's last result, and the copies held by their "
                                        "Object Lock",
                     examples=("mission-control offsite status",))
    status.set_defaults(handler=status_)
    lst = command(actions, "list", "the copies a target holds",
                  examples=("mission-control offsite list dir", "mission-control offsite list s3 "
                                                                "--json"))
    lst.add_argument("target", help="a configured target: dir, s3, or a plugin's "
                                    "(`offsite status` names them)")
    lst.set_defaults(handler=list_)
    get = command(actions, "fetch", "fetch a copy back into the backups folder, verified",
                  description="fetch a copy back into the backups folder as fetched-….db, "
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
