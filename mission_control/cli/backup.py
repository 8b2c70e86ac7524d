"""`mission-control backup ...`: make, list, delete, check, move and restore backups; status.

Restore works with the service stopped or running: it takes the same cross-process lock as any
backup and copies into the live database in one SQLite transaction, which a running service's
connections see at once.
"""
import hashlib
import os
import stat
import threading
from contextlib import contextmanager
from datetime import datetime, timezone

from ..backup.service import TEMP_PREFIX
from ..files import database_size
from ..files import remove_files
from ..health import backup_status
from ..backup.point_in_time import parse_timestamp
from ..backup.point_in_time import restore_at
from ..files import open_private
from ..backup.restore import restore_backup
from ..units import human_size
from ..backup.uploads import UploadSink
from ..backup.uploads import accept_upload
from ..backup.uploads import upload_slot
from ..backup.verify import listing
from ..backup.verify import verify_backup
from ..errors import NotFound
from .answer import answer_line
from .failures import UsageError
from .output import OFFSITE_FAILED, OK
from .parser import ACTIONS_HELP, command
from .partial import (add_diff_parser, add_restore_options, add_undo_parser, check_partial_args,
                      diff_cmd, is_partial, partial_restore)
from .reported import said_by_summary
from .summary import BackupWatch, summary

CHUNK = 1024 * 1024


def add_parsers(sub):
    """Add the `backup` command and its actions."""
    actions = command(
        sub, "backup", "make, list, check, move and restore backups",
        description="Make, list, check, move and restore the backups in the backups folder "
        "(<folder of the database>/backups).",
        examples=("mission-control backup create", "mission-control backup list",
                  "mission-control backup restore mc-backup-2026-11-27_03-00-00.db")) \
        .add_subparsers(dest="action", metavar="ACTION", required=True, help=ACTIONS_HELP)
    command(actions, "create", "make a backup now",
            description="make a backup now: a hot, consistent copy of the live database, checked "
            "and renamed into the backups folder; then the retention rules prune older ones and "
            "every configured off-site target gets a copy. Ends with one summary line, e.g. "
            "`created mc-backup-….db (301 MiB, 0.26 s); pruned 3; off-site dir: copied 6.1 KiB "
            "(zstd+age)`; a failed off-site copy exits 5 (the backup itself is kept).",
            examples=("mission-control backup create",
                      "mission-control backup create --json   # {backup, pruned, offsite}",
                      "mission-control backup create -v       # with the INFO log lines")) \
        .set_defaults(handler=create)
    command(actions, "list", "list backups, newest first",
            description="list every backup file (name, size, time, verification), newest first",
            examples=("mission-control backup list", "mission-control backup list --json")) \
        .set_defaults(handler=list_)
    command(actions, "status", "the backup verdict for monitoring (like the API)",
            description="the backup verdict (ok, warning, failing) and its reasons, the last "
            "success and the next run: the same answer as GET /api/backup/status",
            examples=("mission-control backup status", "mission-control backup status --json")) \
        .set_defaults(handler=status)
    delete = command(actions, "delete", "delete a backup by name",
                     examples=("mission-control backup delete "
                               "mc-backup-2026-11-27_03-00-00.db",))
    delete.add_argument("name", help="the backup's file name, as `backup list` shows it")
    delete.set_defaults(handler=delete_)
    prune = command(actions, "prune", "apply the retention rules now (the same as after a backup)",
                    examples=("mission-control backup prune --dry-run",
                              "mission-control backup prune"))
    prune.add_argument("--dry-run", action="store_true",
                       help="only show what would be kept (and why) and deleted")
    prune.set_defaults(handler=prune_)
    verify = command(actions, "verify", "check a backup's integrity and schema",
                     description="check a backup's integrity (PRAGMA integrity_check) and schema; "
                     "exits 1 when it fails",
                     examples=("mission-control backup verify mc-backup-2026-11-27_03-00-00.db",))
    verify.add_argument("name", help="the backup's file name, as `backup list` shows it")
    verify.set_defaults(handler=verify_)
    upload = command(actions, "upload", "add a backup file from elsewhere (checked like an upload "
                     "to the API; stored as uploaded-*.db)",
                     examples=("mission-control backup upload ~/old/mission-control.db",))
    upload.add_argument("file", help="the SQLite file to add (a Mission Control database)")
    upload.set_defaults(handler=upload_)
    download = command(actions, "download", "copy a backup out of the backups folder",
                       examples=("mission-control backup download mc-backup-2026-11-27_03-00-00.db"
                                 " -o /mnt/usb/",))
    download.add_argument("name", help="the backup's file name, as `backup list` shows it")
    download.add_argument("--output", "-o", help="file or existing folder to write "
                                                 "(default: ./NAME)")
    download.add_argument("--force", action="store_true", help="replace an existing file")
    download.set_defaults(handler=download_)
    restore = command(actions, "restore", "restore the live database from a backup",
                      description="replace the live database with a backup, or with its state "
                      "at a moment (--at, point-in-time recovery); or restore only some tables "
                      "(--table) or rows (--rows) of a backup, --dry-run first, undone with "
                      "`backup undo TOKEN`. A safety backup is taken first; asks for "
                      "confirmation on the terminal unless --yes",
                      examples=("mission-control backup restore mc-backup-2026-11-27_03-00-00.db",
                                "mission-control backup restore --at 2026-11-27T15:52:56Z --yes",
                                "mission-control backup restore mc-backup-2026-11-27_03-00-00.db"
                                " --rows tasks:12,13 --dry-run"))
    restore.add_argument("name", nargs="?", help="the backup to restore, as `backup list` shows "
                                                 "it (or --at)")
    restore.add_argument("--at", metavar="TIMESTAMP",
                         help="restore to this moment instead (ISO 8601, e.g. "
                              "2026-11-27T15:52:56Z; needs point-in-time recovery)")
    restore.add_argument("--yes", action="store_true",
                         help="do not ask for confirmation (needed without a terminal)")
    restore.add_argument("--restore-settings", action="store_true",
                         help="also take the protection settings (auto-backup, retention, "
                              "off-site, plugins) and scheduler state from the backup; by default "
                              "their live values are kept")
    add_restore_options(restore)
    restore.set_defaults(handler=restore_)
    add_diff_parser(actions, command, lambda ctx: diff_cmd(ctx, known_backup))
    add_undo_parser(actions, command)


#: How many names an unknown backup's error lists.
LISTED = 10


@contextmanager
def known_backup(mc, name):
    """Turn "Backup not found" into a message naming `name` and the backups there are."""
    try:
        yield
    except NotFound:
        names = [entry[1] for entry in mc.backups.scan()]
        if not names:
            raise NotFound(f"no backup named {name!r}: the backups folder is empty (make one "
                           "with: mission-control backup create)") from None
        more = [f"… and {len(names) - LISTED} more (mission-control backup list)"] \
            if len(names) > LISTED else []
        raise NotFound(f"no backup named {name!r}; the backups there are, newest first:",
                       details=[*names[:LISTED], *more]) from None


def _when(ts):
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _written_size(folder):
    """The size of the backup being written in `folder` (`.mc-backup-*`), 0 when there is none.

    A file renamed or removed between the listing and its `stat` (the backup just finished) is
    skipped, never an error.
    """
    size = 0
    for path in folder.glob(f"{TEMP_PREFIX}*"):
        try:
            info = path.stat()
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            size = max(size, info.st_size)
    return size


@contextmanager
def _growth(folder, advance, drawn=True):
    """Report the growth of the backup being written in `folder` to `advance`.

    :param drawn: whether a bar shows it: when not (--json, --quiet, not a terminal) no thread
        watches the folder at all.
    """
    if not drawn:
        yield
        return
    done = threading.Event()

    def watch():
        seen = 0
        while not done.wait(0.2):
            try:
                size = _written_size(folder)
            except OSError:  # the folder itself is unreadable for a moment: look again
                continue
            if size > seen:
                advance(size - seen)
                seen = size
    watcher = threading.Thread(target=watch, name="backup-growth", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def backed_up(ctx, make, label="backup", sized=True):
    """Run `make(mc)`, which makes one backup (returns its `BackupInfo`, or None), with its bars
    drawn: `label`'s (sized: by the database and its WAL), then each off-site target's. A
    failed copy's log records are INFO meanwhile: the summary line says it (`reported`).

    :return: `(made, watch, results)`: results are `BackupWatch.outcome`'s.
    """
    with ctx.out.bars() as bars, said_by_summary(ctx.out.log_handler, not ctx.out.quiet):
        watch = BackupWatch(bars, database_size(ctx.config.db_path) if sized else None, label)
        with ctx.open(plugins=(watch,)) as mc, \
                _growth(mc.backups.dir, watch.backup_bar.advance, ctx.out.shows_progress):
            made = make(mc)
            results = watch.outcome(mc.offsite.configured())
    return made, watch, results


def report(ctx, data, made, watch, results, text=()):
    """Print the backup's result with its summary line; OFFSITE_FAILED when a copy failed."""
    data = {**data, "pruned": watch.pruned, "offsite": [r.to_json() for r in results]}
    ctx.out.result(data, [*text, summary(made, watch, results)])
    return OFFSITE_FAILED if any(not r.ok for r in results) else OK


def create(ctx):
    made, watch, results = backed_up(ctx, lambda mc: mc.backups.create(ctx.actor))
    return report(ctx, {"success": True, "backup": made.to_json()}, made, watch, results)


def list_(ctx):
    with ctx.open() as mc:
        answer = {"backups": listing(mc, mc.backups.scan()), "dir": str(mc.backups.dir)}
    checked = {None: "not verified", True: "verified", False: "FAILED verification"}
    lines = []
    for b in answer["backups"]:
        lines.append(f"{b['name']}\t{human_size(b['size'])}\t{_when(b['created_at'])}\t"
                     f"{checked[b.get('verified_ok')]}")
    found = answer["backups"]
    total = human_size(sum(b["size"] for b in found))
    lines.append(f"{_count(len(found), 'backup')}, {total}, in {answer['dir']}" if found else
                 f"no backups in {answer['dir']} yet (make one: mission-control backup create)")
    ctx.out.result(answer, lines)


def _count(n, noun):
    return f"{n} {noun}" + ("" if n == 1 else "s")


def status(ctx):
    with ctx.open() as mc:
        answer = backup_status(mc)
    last = answer["last_success"]
    lines = [f"verdict: {answer['verdict']}"]
    lines += [f"  {reason}" for reason in answer["reasons"]]
    lines.append(f"last success: {last['name']} at {_when(last['at'])}" if last
                 else "last success: none")
    lines.append(f"next run: {_when(answer['next_run'])}" if answer["auto_backup"]
                 else "auto-backup: off")
    lines.append(f"backups: {answer['backups']['count']} "
                 f"({human_size(answer['backups']['total_size'])})")
    ctx.out.result(answer, lines)


def delete_(ctx):
    with ctx.open() as mc, known_backup(mc, ctx.args.name):
        mc.backups.delete(ctx.args.name, ctx.actor)
    ctx.out.result({"success": True}, f"deleted {ctx.args.name}")


def prune_(ctx):
    dry_run = ctx.args.dry_run
    with ctx.open() as mc:
        outcome = mc.pruning.run(ctx.actor, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    unexplained = {"plugin": "kept by a plugin's policy",
                   "none": "no retention policy: nothing is pruned"}.get(outcome.policy, "")
    lines = [f"keep\t{name}\t{', '.join(reasons) or unexplained}"
             for name, reasons in outcome.keep]
    lines += [f"{verb}\t{name}" for name in outcome.delete]
    lines.append(f"{len(outcome.keep)} kept, {len(outcome.delete)} {verb}")
    ctx.out.result({"dry_run": dry_run, **outcome.to_json()}, lines)


def verify_(ctx):
    """Exit 1 when the file fails the check (the answer is printed either way)."""
    with ctx.open() as mc, known_backup(mc, ctx.args.name), \
            ctx.out.progress(f"verifying {ctx.args.name}"):
        result = verify_backup(mc, ctx.args.name, ctx.actor)
    state = "OK" if result["ok"] else "FAILED"
    ctx.out.result(result, [f"{ctx.args.name}: {state} (schema {result['schema_version']}, "
                            f"{result['page_count']} pages, sha256 {result['sha256']})",
                            *[f"  {problem}" for problem in result["problems"]]])
    return 0 if result["ok"] else 1


def upload_(ctx):
    path = ctx.args.file
    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path}")
    with ctx.open() as mc:
        limit = mc.config.max_upload_mb * 1024 * 1024
        mc.backups.ensure_dir()
        # The disk guard is asked (507); like CLI backups, no hourly budget applies.
        with upload_slot(mc, ctx.actor, rate_key=None):
            made = _upload(ctx, mc, path, limit)
    ctx.out.result({"success": True, "backup": made},
                   f"stored {made['name']} ({human_size(made['size'])}), verified; "
                   f"sha256 {made['sha256']}")


def _upload(ctx, mc, path, limit):
    """Stream the file into a private temporary file, then check and keep it (`accept_upload`)."""
    sink = UploadSink(mc.backups.dir, limit)
    try:
        with open(path, "rb") as src, \
                ctx.out.progress("upload", total=os.path.getsize(path)) as advance:
            for chunk in iter(lambda: src.read(CHUNK), b""):
                sink.write(chunk)
                advance(len(chunk))
    except BaseException:
        sink.discard()
        raise
    return accept_upload(mc, sink, ctx.actor, original_name=os.path.basename(path))


def download_(ctx):
    args = ctx.args
    with ctx.open() as mc:
        with known_backup(mc, args.name):
            source = mc.backups.readable_path(args.name)
        target = args.output or args.name
        if target.endswith(os.sep) or os.path.isdir(target):  # `-o dir/`: a folder, existing
            target = os.path.join(target, args.name)
        if os.path.lexists(target) and not args.force:
            raise UsageError(f"{target} exists (use --force to replace it)")
        folder = os.path.dirname(os.path.abspath(target))
        if not os.path.isdir(folder):
            raise UsageError(f"no such folder: {folder} (create it, or choose another --output)")
        digest, size = _copy_out(ctx, source, target)
        mc.audit.emit("backup_download", ctx.actor, target_type="backup", target_id=args.name,
                      detail={"name": args.name, "size": size, "to": "cli"})
    ctx.out.result({"success": True, "name": args.name, "path": os.path.abspath(target),
                    "size": size, "sha256": digest}, f"wrote {target} (sha256 {digest})")


def _copy_out(ctx, source, target):
    """Copy through `<target>.part`, hashing on the way; returns `(sha256, size)`."""
    tmp = f"{target}.part"
    digest, size = hashlib.sha256(), 0
    try:
        with open(source, "rb") as src, open_private(tmp, exclusive=False) as dst, \
                ctx.out.progress("download", total=os.path.getsize(source)) as advance:
            for chunk in iter(lambda: src.read(CHUNK), b""):
                dst.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                advance(len(chunk))
        os.replace(tmp, target)
    except BaseException:
        remove_files(tmp)
        raise
    return digest.hexdigest(), size


def restore_(ctx):
    args = ctx.args
    if is_partial(args):
        return _restore_partial(ctx)
    if args.dry_run or args.force:
        raise UsageError("--dry-run and --force go with --table or --rows")
    if args.name is None and args.at is None:
        raise UsageError("say what to restore: a backup name (see: mission-control backup list) "
                         "or --at TIMESTAMP for a moment (point-in-time recovery)")
    if args.name is not None and args.at is not None:
        raise UsageError("give a backup name or --at TIMESTAMP, not both")
    if not args.yes and ctx.out.as_json:
        raise UsageError("--json cannot ask for confirmation: add --yes")
    with ctx.open() as mc:
        if args.at is not None:
            parse_timestamp(args.at)
            source = f"its state at {args.at}"
        else:
            with known_backup(mc, args.name):
                mc.backups.path_of(args.name)
            source = args.name
        if not args.yes and not _confirmed(ctx, source):
            ctx.out.note("not restored")
            return 1
        keep = not args.restore_settings
        users_before = _users(mc)
        with ctx.out.progress("restoring"):
            result = (restore_at(mc, args.at, ctx.actor, keep_settings=keep)
                      if args.at is not None
                      else restore_backup(mc, args.name, ctx.actor, keep_settings=keep))
        users_changed = _users(mc) != users_before
    restored = result["restored"]
    lines = [_settings_line(result["kept_settings"], args.restore_settings)]
    if users_changed:  # who may log in is the backup's now: say how to get back in
        lines += [f"users changed: admins now {', '.join(result['session']['admins']) or 'none'}",
                  result["session"]["message"]]
    lines.append(f"restored {restored['name']} (schema {restored['schema_version']} -> "
                 f"{restored['migrated_to']}); safety backup: {result['safety_backup']['name']}")
    ctx.out.result({**result, "users_changed": users_changed}, lines)


def _restore_partial(ctx):
    check_partial_args(ctx.args)
    if not ctx.args.yes and not ctx.args.dry_run and ctx.out.as_json:
        raise UsageError("--json cannot ask for confirmation: add --yes")
    with ctx.open() as mc:
        with known_backup(mc, ctx.args.name):
            mc.backups.path_of(ctx.args.name)
        confirm = (lambda source: True) if ctx.args.yes else \
            (lambda source: _confirmed(ctx, source, partial=True))
        return partial_restore(ctx, mc, confirm)


def _users(mc):
    """Who may log in, and how: compared before and after a restore."""
    return mc.db.query("SELECT username, role, password_hash FROM users ORDER BY username")


def _settings_line(kept, restored):
    """What became of the protection settings, in one line."""
    if restored:
        return "protection settings and scheduler state: restored from the backup"
    if not kept:
        return "protection settings: kept the live ones (the backup had the same values)"
    return f"protection settings: kept the live values of {', '.join(kept)}"


def _confirmed(ctx, source, partial=False):
    """Ask on stdout, read one line of stdin (a script may pipe "y").

    :raises UsageError: stdin has no line to read: closed, at its end, or not a terminal and
        silent (ssh without -t, a CI job; `answer.GRACE`): add --yes.
    """
    question = (f"Restore {source}? A safety backup is taken first." if partial else
                f"Replace the live database with {source}? A safety backup is taken first.")
    print(f"{question} [y/N] ", end="", file=ctx.out.out, flush=True)
    answer = answer_line(ctx.stdin)
    if not answer:
        print(file=ctx.out.out, flush=True)
        raise UsageError("no answer to the confirmation (no terminal, nothing piped in): add "
                         "--yes to restore without asking")
    return answer.strip().lower() in ("y", "yes")
