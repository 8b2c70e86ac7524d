"""The `mission-control` command: serve, manage users, make/list/delete backups, fetch off-site copies."""
import argparse
import getpass
import json
import sys
from datetime import datetime, timezone

from . import cli_backup_files, cli_offsite, logs
from .actor import Actor
from .config import Config, ConfigError, DatabaseNotFound
from .core import MissionControl
from .errors import MissionControlError
from .units import human_size
from .users import ROLES, UserError


def _parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="folder holding the database (MISSION_CONTROL_DATA_DIR)")
    common.add_argument("--db-path", help="the SQLite database (MISSION_CONTROL_DB_PATH)")

    parser = argparse.ArgumentParser(prog="mission-control",
                                     description="Mission Control backup service")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", parents=[common], help="run the HTTP service and scheduler")
    serve.add_argument("--host", help="listen address (MC_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (MC_PORT, default 8000)")
    serve.add_argument("--threads", type=int, help="worker threads (MC_THREADS, default 8)")

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="action", required=True)
    add = user.add_parser("add", parents=[common], help="create a user")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, default="viewer")
    add.add_argument("--display-name")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input instead of a prompt")
    user.add_parser("list", parents=[common], help="list users")
    setpw = user.add_parser("set-password", parents=[common], help="change a password")
    setpw.add_argument("name")
    setpw.add_argument("--password-stdin", action="store_true")
    remove = user.add_parser("remove", parents=[common], help="delete a user")
    remove.add_argument("name")

    backup = sub.add_parser("backup", help="make, list and delete backups")
    actions = backup.add_subparsers(dest="action", required=True)
    actions.add_parser("create", parents=[common], help="make a backup now")
    lst = actions.add_parser("list", parents=[common], help="list backups, newest first")
    lst.add_argument("--json", action="store_true", help="print the API's JSON shape")
    delete = actions.add_parser("delete", parents=[common], help="delete a backup by name")
    delete.add_argument("name")
    prune = actions.add_parser("prune", parents=[common],
                               help="apply the retention rules now (the same as after a backup)")
    prune.add_argument("--dry-run", action="store_true",
                       help="only show what would be kept (and why) and deleted")
    prune.add_argument("--json", action="store_true", help="print the API's JSON shape")
    cli_backup_files.add_parsers(actions, common)
    cli_offsite.add_parser(sub, common)
    return parser


def _read_password(args, stdin):
    if args.password_stdin:
        return stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise UserError("passwords do not match")
    return first


def _actor():
    """The CLI's `Actor`: `cli:<login name>`."""
    try:
        return Actor(f"cli:{getpass.getuser()}")
    except (KeyError, OSError):
        return Actor("cli")


def run(args, out, stdin):
    config = Config.from_env(data_dir=args.data_dir, db_path=args.db_path,
                             **({"host": args.host, "port": args.port, "threads": args.threads}
                                if args.command == "serve" else {}))
    logs.configure(config)
    if args.command == "serve":
        from .server import serve
        return serve(config, announce=lambda text: print(text, file=out, flush=True))
    # Only `user add` bootstraps a new database (and `serve`); any other command on a mistyped path
    # is refused rather than run against an empty database made on the spot.
    creates = args.command == "user" and args.action == "add"
    with MissionControl(config, create=creates) as mc:
        if args.command == "user":
            return _user(mc, args, out, stdin)
        if args.command == "offsite":
            return cli_offsite.run(mc, args, out, _actor(), human_size)
        if args.action in cli_backup_files.ACTIONS:
            return cli_backup_files.run(mc, args, out, stdin, _actor())
        return _backup(mc, args, out)


def _user(mc, args, out, stdin):
    if args.action == "list":
        for user in mc.users.list():
            print(f"{user.username}\t{user.role}\t{user.display_name}", file=out)
        return 0
    if args.action == "remove":
        mc.users.remove(args.name)
        print(f"removed user {args.name}", file=out)
        return 0
    password = _read_password(args, stdin)
    if args.action == "add":
        mc.users.add(args.name, password, role=args.role, display_name=args.display_name)
        print(f"added {args.role} {args.name}", file=out)
    else:
        mc.users.set_password(args.name, password)
        print(f"password changed for {args.name}; their sessions were ended", file=out)
    return 0


def _backup(mc, args, out):
    if args.action == "create":
        made = mc.backups.create(_actor())
        print(f"created {made.name} ({human_size(made.size)})", file=out)
    elif args.action == "list":
        backups = mc.backups.list()
        if args.json:
            print(json.dumps({"backups": [b.to_json() for b in backups],
                              "dir": str(mc.backups.dir)}, indent=2), file=out)
        for b in [] if args.json else backups:
            when = datetime.fromtimestamp(b.created_at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
            print(f"{b.name}\t{human_size(b.size)}\t{when} UTC", file=out)
    elif args.action == "prune":
        _prune(mc, args, out)
    else:
        mc.backups.delete(args.name, _actor())
        print(f"deleted {args.name}", file=out)
    return 0


def _prune(mc, args, out):
    outcome = mc.pruning.run(_actor(), dry_run=args.dry_run)
    if args.json:
        print(json.dumps({"dry_run": args.dry_run, **outcome.to_json()}, indent=2), file=out)
        return
    verb = "would delete" if args.dry_run else "deleted"
    unexplained = {"plugin": "kept by a plugin's policy",
                   "none": "no retention policy: nothing is pruned"}.get(outcome.policy, "")
    for name, reasons in outcome.keep:
        print(f"keep\t{name}\t{', '.join(reasons) or unexplained}", file=out)
    for name in outcome.delete:
        print(f"{verb}\t{name}", file=out)
    print(f"{len(outcome.keep)} kept, {len(outcome.delete)} {verb}", file=out)


def main(argv=None, out=None, stdin=None):
    """Entry point of the console script; returns the exit status."""
    args = _parser().parse_args(argv)
    out = out or sys.stdout
    try:
        return run(args, out, stdin or sys.stdin)
    except (ConfigError, UserError, DatabaseNotFound) as exc:
        print(f"mission-control: {exc}", file=sys.stderr)
        return 2
    except MissionControlError as exc:
        print(f"mission-control: {exc.message}", file=sys.stderr)
        return 1
