"""`mission-control serve | config show | settings get/set | scheduler list/run | plugins list`."""
from .. import config_file
from ..errors import NotFound
from .failures import UsageError
from .parser import add_option, command_options


def add_parsers(sub):
    """Add the service-wide commands."""
    serve = sub.add_parser("serve", help="run the HTTP service and scheduler")
    for option in command_options("serve"):
        add_option(serve, option)
    serve.add_argument("--init", action="store_true",
                       help="use an existing SQLite database that is not Mission Control's "
                            "(another application's) and add Mission Control's tables to it; "
                            "without it such a file is refused. A missing or empty file is "
                            "created either way")
    serve.set_defaults(handler=serve_)

    config = sub.add_parser("config", help="the effective configuration") \
        .add_subparsers(dest="action", metavar="ACTION", required=True)
    config.add_parser("show", help="every option's value and where it came from "
                                   "(flag, env, file, default); secrets masked") \
        .set_defaults(handler=config_show)

    settings = sub.add_parser("settings", help="the settings stored in the database") \
        .add_subparsers(dest="action", metavar="ACTION", required=True)
    get = settings.add_parser("get", help="every setting, or one (secrets are not shown)")
    get.add_argument("key", nargs="?")
    get.set_defaults(handler=settings_get)
    put = settings.add_parser("set", help="change settings, all or nothing (as the API)")
    put.add_argument("pairs", nargs="+", metavar="KEY=VALUE")
    put.set_defaults(handler=settings_set)

    scheduler = sub.add_parser("scheduler", help="the scheduled tasks") \
        .add_subparsers(dest="action", metavar="ACTION", required=True)
    scheduler.add_parser("list", help="the tasks and their state").set_defaults(
        handler=scheduler_list)
    run = scheduler.add_parser("run", help="run a task now and wait for it")
    run.add_argument("task")
    run.set_defaults(handler=scheduler_run)

    plugins = sub.add_parser("plugins", help="the loaded plugins") \
        .add_subparsers(dest="action", metavar="ACTION", required=True)
    plugins.add_parser("list", help="name, kind, version and hooks of each plugin") \
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
    """Exit 1 when the task ran and failed (its message says why)."""
    with ctx.open() as mc:
        if ctx.args.task not in mc.scheduler.tasks:
            raise NotFound(f"no task {ctx.args.task!r}: one of "
                           f"{', '.join(mc.scheduler.tasks)}")
        with ctx.out.progress(f"running {ctx.args.task}"):
            result = mc.scheduler.run_now(ctx.args.task, ctx.actor)
    if not result.ok:
        ctx.out.error(result.message)
        return 1
    ctx.out.result({"ok": True, "message": result.message,
                    "backup": result.backup.to_json() if result.backup else None},
                   result.message)


def plugins_list(ctx):
    from ..plugin_manager import describe_plugins
    with ctx.open() as mc:
        answer = {"plugins": describe_plugins(mc.pm),
                  "blocked": sorted(mc.config.disabled_plugins)}
    ctx.out.result(answer, [f"{p['name']}\t{p['kind']}\t{p['version'] or '-'}\t"
                            f"{', '.join(p['hooks'])}" for p in answer["plugins"]])
