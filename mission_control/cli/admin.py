"""`mission-control serve | config show | settings get/set | scheduler list/run | plugins list`."""
from .. import config_file
from ..errors import NotFound
from .backup import backed_up, report
from .failures import STATUS_CODES, UsageError
from .output import FAILED, OK
from .parser import ACTIONS_HELP, add_option, command, command_options


#: The scheduler's tasks (`Scheduler.tasks`), for `scheduler run --help`; a test holds them equal.
TASKS = {"auto_backup": "a backup now, as the scheduled run makes it, then its off-site copies",
         "offsite_verify": "the off-site restore drill: fetch the newest copy of each target "
                           "back and check it"}


def add_parsers(sub):
    """Add the service-wide commands."""
    serve = command(sub, "serve", "run the HTTP service and scheduler",
                    description="run the HTTP service (waitress) and the scheduler until stopped "
                    "(Ctrl-C, SIGTERM); logs at MC_LOG_LEVEL (INFO by default)",
                    examples=("mission-control serve",
                              "mission-control serve --host 0.0.0.0 --port 8080 "
                              "--data-dir /srv/mc"))
    for option in command_options("serve"):
        add_option(serve, option)
    serve.add_argument("--init", action="store_true",
                       help="use an existing SQLite database that is not Mission Control's "
                            "(another application's) and add Mission Control's tables to it; "
                            "without it such a file is refused. A missing or empty file is "
                            "created either way")
    serve.set_defaults(handler=serve_)

    config = command(sub, "config", "the effective configuration",
                     examples=("mission-control config show",)) \
        .add_subparsers(dest="action", metavar="ACTION", required=True, help=ACTIONS_HELP)
    command(config, "show", "every option's value and where it came from (flag, env, file, "
                            "default); secrets masked",
            examples=("mission-control config show", "mission-control --config mc.toml config "
                                                      "show --json")) \
        .set_defaults(handler=config_show)

    settings = command(sub, "settings", "the settings stored in the database",
                       examples=("mission-control settings get",
                                 "mission-control settings set "
                                 "general.backup_retention_count=14")) \
        .add_subparsers(dest="action", metavar="ACTION", required=True, help=ACTIONS_HELP)
    get = command(settings, "get", "every setting, or one (secrets are not shown)",
                  examples=("mission-control settings get",
                            "mission-control settings get general.auto_backup_schedule"))
    get.add_argument("key", nargs="?", help="one setting's key (default: every setting)")
    get.set_defaults(handler=settings_get)
    put = command(settings, "set", "change settings, all or nothing (as the API)",
                  description="change settings, all or nothing: every pair is checked first "
                  "(exit 2 and nothing saved when one is refused). Schedules are 5-field cron "
                  "expressions in UTC",
                  examples=("mission-control settings set general.auto_backup=true "
                            "general.auto_backup_schedule='0 3 * * *'",
                            "mission-control settings set offsite.dir.path=/mnt/nas/mc"))
    put.add_argument("pairs", nargs="+", metavar="KEY=VALUE",
                     help="a setting and its new value (see `settings get` for the keys)")
    put.set_defaults(handler=settings_set)

    scheduler = command(sub, "scheduler", "the scheduled tasks",
                        examples=("mission-control scheduler list",
                                  "mission-control scheduler run auto_backup")) \
        .add_subparsers(dest="action", metavar="ACTION", required=True, help=ACTIONS_HELP)
    command(scheduler, "list", "the tasks and their state",
            examples=("mission-control scheduler list",)).set_defaults(handler=scheduler_list)
    run = command(scheduler, "run", "run a task now and wait for it",
                  description="run a task now and wait for it; it does not use up its next "
                  "scheduled slot. Exits 1 when the task failed, 4 when its backup was refused "
                  "(the disk too full), 5 when its backup was made but an off-site copy failed",
                  examples=("mission-control scheduler run auto_backup",
                            "mission-control scheduler run offsite_verify"))
    run.add_argument("task", metavar="TASK", help="the task to run: " + "; ".join(
        f"{task} ({what})" for task, what in TASKS.items()))
    run.set_defaults(handler=scheduler_run)

    plugins = command(sub, "plugins", "the loaded plugins",
                      examples=("mission-control plugins list",)) \
        .add_subparsers(dest="action", metavar="ACTION", required=True, help=ACTIONS_HELP)
    command(plugins, "list", "name, kind, version and hooks of each plugin",
            examples=("mission-control plugins list --json",)) \
        .set_defaults(handler=plugins_list)


def serve_(ctx):
    from ..server import serve  # waitress only when serving
    return serve(ctx.config, announce=lambda text: ctx.out.result({"message": text}, text),
                 init=ctx.args.init)


def config_show(ctx):
    described = config_file.describe(ctx.config, ctx.sources)
    width = max(map(len, described))
    ctx.out.result({"config": described, "file": ctx.args.config or None},
                   [f"{key:<{width}}  {_text(item['value'])}  ({item['source']})"
                    for key, item in described.items()])


def _text(value):
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(value) or "-"
    return str(value)


def settings_get(ctx):
    with ctx.open() as mc:
        answer = mc.settings.listing()
        known = set(mc.settings.definitions)
    key = ctx.args.key
    if key is None:
        ctx.out.result(answer, [f"{s['key']}={s['value']}" for s in answer["settings"]])
        return
    [found] = [s for s in answer["settings"] if s["key"] == key] or [None]
    if found is None:
        raise NotFound(f"{key!r} is a secret setting: it is never shown" if key in known
                       else f"no setting {key!r} (see: mission-control settings get)")
    ctx.out.result(found, found["value"])


def settings_set(ctx):
    changes = {}
    for pair in ctx.args.pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{pair!r} is not KEY=VALUE")
        changes[key] = value
    with ctx.open() as mc:
        updated = mc.settings.update(changes, ctx.actor)
    ctx.out.result({"updated": updated, "count": len(updated)},
                   [f"set {key}" for key in updated])


def scheduler_list(ctx):
    with ctx.open() as mc:
        tasks = [t.to_json() for t in mc.scheduler.status()]
    ctx.out.result({"tasks": tasks}, [
        f"{t['id']}\t{'on' if t['enabled'] else 'off'}\t{t['schedule']}\t"
        f"last: {_last(t['lastResult'])}" for t in tasks])


def _last(result):
    if result is None:
        return "never"
    return f"{'ok' if result['ok'] else 'FAILED'} ({result['message']})"


def scheduler_run(ctx):
    """Exit 1 when the task ran and failed (its message says why), 4 when its backup was refused
    (the disk too full); 5 when its backup was made but an off-site copy failed (the summary line
    names it)."""
    task, ran = ctx.args.task, []

    def run(mc):
        if task not in mc.scheduler.tasks:
            raise NotFound(f"no task {task!r}: one of {', '.join(mc.scheduler.tasks)}")
        ran.append(mc.scheduler.run_now(task, ctx.actor))
        return ran[0].backup

    backup_task = task == "auto_backup"
    made, watch, results = backed_up(ctx, run, "backup" if backup_task else f"running {task}",
                                     sized=backup_task)
    result = ran[0]
    if not result.ok:  # refused (the disk guard's 507) exits 4 as `backup create` does
        ctx.out.error(result.message)
        return STATUS_CODES.get(result.status, FAILED)
    data = {"ok": True, "message": result.message,
            "backup": result.backup.to_json() if result.backup else None}
    if made is None:
        ctx.out.result(data, result.message)
        return OK
    return report(ctx, data, made, watch, results)


def plugins_list(ctx):
    from ..plugin_manager import describe_plugins
    with ctx.open() as mc:
        answer = {"plugins": describe_plugins(mc.pm),
                  "blocked": sorted(mc.config.disabled_plugins)}
    ctx.out.result(answer, [f"{p['name']}\t{p['kind']}\t{p['version'] or '-'}\t"
                            f"{', '.join(p['hooks'])}" for p in answer["plugins"]])
