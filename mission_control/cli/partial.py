"""`mission-control backup diff`, `backup restore NAME --table/--rows` and `backup undo`: what
changed since a backup, putting back only some tables or rows, and undoing that."""
from ..backup.partial.diff import diff
from ..backup.partial.restore import restore_partial, undo_partial
from ..backup.partial.source import MOMENT
from .failures import UsageError

KINDS = ("inserted", "updated", "deleted")
#: What a restore does, in its own words, by kind.
VERBS = {"inserted": "insert", "updated": "update", "deleted": "delete"}


def add_diff_parser(actions, command, handler):
    diff_ = command(actions, "diff", "what changed since a backup (or a moment), per table",
                    description="compare a backup with the live database (or with another "
                    "backup, --to): per table, the rows inserted, updated and deleted since, by "
                    "primary key (up to 20 keys each), and schema differences. Read-only. "
                    "NAME may be @ and an ISO 8601 time with point-in-time recovery on",
                    examples=("mission-control backup diff mc-backup-2026-11-27_03-00-00.db",
                              "mission-control backup diff mc-backup-2026-11-27_03-00-00.db "
                              "--to mc-backup-2026-11-28_03-00-00.db --json",
                              "mission-control backup diff @2026-11-27T15:52:56Z"))
    diff_.add_argument("name", help="the backup, as `backup list` shows it, or @TIME")
    diff_.add_argument("--to", default="live", metavar="NAME",
                       help="compare with this backup instead of the live database (live)")
    diff_.set_defaults(handler=handler)


def add_undo_parser(actions, command):
    undo = command(actions, "undo", "revert a partial restore by its undo token",
                   description="revert a partial restore (backup restore NAME --table/--rows) "
                   "by the undo token it printed; refused, with nothing changed, when rows it "
                   "would touch changed since",
                   examples=("mission-control backup undo 2026-12-06_10-00-00-0123456789ab",))
    undo.add_argument("token", help="the undo token the partial restore printed")
    undo.set_defaults(handler=undo_cmd)


def add_restore_options(restore):
    """The partial-restore options of `backup restore`."""
    restore.add_argument("--table", action="append", metavar="TABLE",
                         help="restore only this table as the backup has it (repeat for more)")
    restore.add_argument("--rows", action="append", metavar="TABLE:KEY,KEY",
                         help="restore only these rows of a table, by primary key (repeat for "
                              "more tables), e.g. tasks:12,13")
    restore.add_argument("--dry-run", action="store_true",
                         help="with --table or --rows: only show what would change and the "
                              "conflicts")
    restore.add_argument("--force", action="store_true",
                         help="with --table or --rows: restore over conflicts (live rows "
                              "written after the backup was taken)")


def _key(text):
    text = text.strip()
    if not text:
        raise UsageError("--rows: an empty key (write TABLE:1,2,3)")
    try:
        return int(text)
    except ValueError:
        return text


def parse_rows(values):
    """`{table: [keys]}` from `--rows TABLE:KEY,KEY` options (numbers as whole numbers).

    :raises UsageError: no table or no keys.
    """
    rows = {}
    for value in values:
        table, sep, keys = value.partition(":")
        if not sep or not table.strip() or not keys.strip():
            raise UsageError(f"--rows {value}: write TABLE:KEY,KEY (e.g. tasks:12,13)")
        rows.setdefault(table.strip(), []).extend(_key(k) for k in keys.split(","))
    return rows


def is_partial(args):
    return bool(args.table or args.rows)


def check_partial_args(args):
    """:raises UsageError: options that do not go together."""
    if args.table and args.rows:
        raise UsageError("give --table or --rows, not both")
    if args.at is not None:
        raise UsageError("--table and --rows restore from a backup by name, not --at")
    if args.name is None:
        raise UsageError("say which backup to restore from (see: mission-control backup list)")
    if args.restore_settings:
        raise UsageError("--restore-settings is for a whole restore; --table/--rows never touch "
                         "settings")


def partial_restore(ctx, mc, confirm):
    """Run the partial restore `ctx.args` asks for; `confirm(source)` asks the user (not for a
    dry run). :return: the exit code."""
    args = ctx.args
    tables = list(dict.fromkeys(args.table)) if args.table else None
    rows = parse_rows(args.rows) if args.rows else None
    if not args.dry_run:
        preview = restore_partial(mc, args.name, ctx.actor, tables=tables, rows=rows,
                                  dry_run=True)
        if not confirm(f"{_what(preview)} from {args.name}"):
            ctx.out.note("not restored")
            return 1
    result = restore_partial(mc, args.name, ctx.actor, tables=tables, rows=rows,
                             dry_run=args.dry_run, force=args.force)
    lines = [_table_line(t, result["dry_run"]) for t in result["tables"]]
    if result["dry_run"]:
        lines.append("dry run: nothing was changed" + (
            f"; {result['conflicts']} conflicts: add --force to restore over them"
            if result["conflicts"] else ""))
    else:
        lines.append(f"restored {_what(result)} from {args.name}; safety backup: "
                     f"{result['safety_backup']['name']}")
        lines.append(f"undo with: mission-control backup undo {result['undo']}")
    ctx.out.result(result, lines)
    return 0


def _what(result):
    t = result["totals"]
    return f"rows ({t['inserted']} inserted, {t['updated']} updated, {t['deleted']} deleted)"


def _sample(part):
    keys = ", ".join(str(k) for k in part["sample"])
    return f" ({keys}{', …' if part['count'] > len(part['sample']) else ''})" if keys else ""


def _table_line(t, dry_run):
    verb = "would " if dry_run else ""
    done = ", ".join(f"{verb}{VERBS[k]} {t[k]['count']}{_sample(t[k])}" for k in KINDS)
    conflicts = t["conflicts"]
    return f"{t['table']}: {done}; conflicts {conflicts['count']}{_sample(conflicts)}"


def diff_cmd(ctx, known_backup):
    """`backup diff`; `known_backup(mc, name)` names the backups there are when `name` is not
    one of them."""
    name = ctx.args.name
    with ctx.open() as mc:
        if not name.startswith(MOMENT):
            with known_backup(mc, name):
                mc.backups.path_of(name)
        with ctx.out.progress("comparing"):
            result = diff(mc, name, ctx.args.to, ctx.actor)
    lines = []
    for t in result["tables"]:
        for problem in t["schema"]:
            lines.append(f"{t['table']}: schema: {problem}")
        if not t["compared"]:
            lines.append(f"{t['table']}: rows not compared")
        elif any(t[k]["count"] for k in KINDS):
            lines.append(f"{t['table']}: " + ", ".join(
                f"{t[k]['count']} {k}{_sample(t[k])}" for k in KINDS))
    totals = result["totals"]
    lines.append(f"{result['to']} against {result['from']}: " + ", ".join(
        f"{totals[k]} {k}" for k in KINDS) + f" ({result['duration_seconds']} s)")
    ctx.out.result(result, lines)


def undo_cmd(ctx):
    with ctx.open() as mc:
        result = undo_partial(mc, ctx.args.token, ctx.actor)
    lines = [f"{table}: inserted {c['inserted']}, updated {c['updated']}, deleted {c['deleted']}"
             for table, c in result["tables"].items()]
    lines.append(f"undid the partial restore {result['undone']} (from {result['name']})")
    ctx.out.result(result, lines)
