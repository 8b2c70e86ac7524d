"""`mission-control backup verify|restore|download`: the API's file operations from the shell.

Restore works with the service stopped or running: it takes the same cross-process lock as any
backup and copies into the live database in one SQLite transaction, which a running service's
connections see at once.
"""
import json
import os
import shutil
import sys

from .errors import ValidationFailed
from .fsutil import remove_files, sha256_file
from .private_files import open_private
from .point_in_time import parse_timestamp, restore_at
from .restore import restore_backup
from .verify import verify_backup

ACTIONS = ("verify", "restore", "download")


def add_parsers(actions, common):
    """Add the three sub-commands to the `backup` sub-parser group."""
    verify = actions.add_parser("verify", parents=[common], help="check a backup's integrity")
    verify.add_argument("name")
    verify.add_argument("--json", action="store_true", help="print the API's JSON shape")
    restore = actions.add_parser("restore", parents=[common],
                                 help="restore the live database from a backup")
    restore.add_argument("name", nargs="?", help="the backup to restore (or --at)")
    restore.add_argument("--at", metavar="TIMESTAMP",
                         help="restore to this moment instead (ISO 8601, e.g. "
                              "2026-11-27T15:52:56Z; needs point-in-time recovery)")
    restore.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    restore.add_argument("--restore-settings", action="store_true",
                         help="also take the protection settings (auto-backup, retention, "
                              "off-site, plugins) and scheduler state from the backup; by default "
                              "their live values are kept")
    download = actions.add_parser("download", parents=[common],
                                  help="copy a backup out of the backups folder")
    download.add_argument("name")
    download.add_argument("--output", "-o", help="file or folder to write (default: ./NAME)")
    download.add_argument("--force", action="store_true", help="replace an existing file")


def run(mc, args, out, stdin, actor):
    """Run one of `ACTIONS`; returns the exit status (1 when a backup fails verification)."""
    if args.action == "verify":
        result = verify_backup(mc, args.name, actor)
        if args.json:
            print(json.dumps(result, indent=2), file=out)
        else:
            state = "OK" if result["ok"] else "FAILED"
            print(f"{args.name}: {state} (schema {result['schema_version']}, "
                  f"{result['page_count']} pages, sha256 {result['sha256']})", file=out)
            for problem in result["problems"]:
                print(f"  {problem}", file=out)
        return 0 if result["ok"] else 1
    if args.action == "restore":
        return _restore(mc, args, out, stdin, actor)
    return _download(mc, args, out, actor)


def _restore(mc, args, out, stdin, actor):
    if (args.name is None) == (args.at is None):
        raise ValidationFailed(["give a backup name or --at TIMESTAMP, not both"])
    if args.at is not None:
        source = f"its state at {args.at}"
        parse_timestamp(args.at)
    else:
        mc.backups.path_of(args.name)
        source = args.name
    if not args.yes:
        print(f"Replace the live database with {source}? A safety backup is taken first. "
              "[y/N] ", end="", file=out, flush=True)
        if stdin.readline().strip().lower() not in ("y", "yes"):
            print("not restored", file=out)
            return 1
    try:
        keep = not args.restore_settings
        result = (restore_at(mc, args.at, actor, keep_settings=keep) if args.at is not None
                  else restore_backup(mc, args.name, actor, keep_settings=keep))
    except ValidationFailed as exc:
        for problem in exc.details or ():
            print(f"  {problem}", file=sys.stderr)
        raise
    print(f"restored {result['restored']['name']} (schema {result['restored']['schema_version']}"
          f" -> {result['restored']['migrated_to']}); safety backup: "
          f"{result['safety_backup']['name']}", file=out)
    print(_settings_line(result["kept_settings"], args.restore_settings), file=out)
    print(f"admins now: {', '.join(result['session']['admins']) or 'none'}", file=out)
    print(result["session"]["message"], file=out)
    return 0


def _settings_line(kept, restored):
    """What became of the protection settings, in one line."""
    if restored:
        return "protection settings and scheduler state: restored from the backup"
    if not kept:
        return "protection settings: kept the live ones (the backup had the same values)"
    return f"protection settings: kept the live values of {', '.join(kept)}"


def _download(mc, args, out, actor):
    source = mc.backups.readable_path(args.name)
    target = args.output or args.name
    if os.path.isdir(target):
        target = os.path.join(target, args.name)
    if os.path.lexists(target) and not args.force:
        print(f"mission-control: {target} exists (use --force to replace it)", file=sys.stderr)
        return 2
    tmp = f"{target}.part"
    try:
        with open(source, "rb") as src, open_private(tmp, exclusive=False) as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
        digest = sha256_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        remove_files(tmp)
        raise
    mc.audit.emit("backup_download", actor, target_type="backup", target_id=args.name,
                  detail={"name": args.name, "size": os.path.getsize(target), "to": "cli"})
    print(f"wrote {target} (sha256 {digest})", file=out)
    return 0
