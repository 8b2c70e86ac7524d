"""`/api/scheduler`: the scheduled tasks' state, running one now, and previewing a schedule
(admin only)."""
from ..errors import BadRequest, ValidationFailed
from ..schedule import describe, next_runs
from .http import json_response, read_json, require, require_actor

PREVIEW_RUNS = 3
SCHEDULE_SETTING = "general.auto_backup_schedule"


def scheduler_status(mc, request):
    require(mc, request, "admin")
    return json_response({"tasks": [t.to_json() for t in mc.scheduler.status()]})


def scheduler_run(mc, request):
    actor = require_actor(mc, request)
    body = read_json(request)
    known = list(mc.scheduler.tasks)
    task_id = body.get("task_id") if isinstance(body, dict) else None
    if not isinstance(task_id, str) or task_id not in known:
        raise BadRequest(f"task_id required: {', '.join(known)}")
    extra = [f"{key}: unknown field" for key in body if key != "task_id"]
    if extra:
        raise ValidationFailed(extra)
    # rate_key: a manual run counts against the admin's backup budget (429 passes through).
    result = mc.scheduler.run_now(task_id, actor, rate_key=actor.name)
    if not result.ok:
        # `error` as well, so clients that read the one error shape see the reason too.
        return json_response({"ok": False, "message": result.message, "error": result.message},
                             500)
    return json_response({"ok": True, "message": result.message,
                          "backup": result.backup.to_json() if result.backup else None})


def scheduler_preview(mc, request):
    """`?schedule=<cron>`: its canonical form, its description and its next run times (ms)."""
    require(mc, request, "admin")
    text = request.args.get("schedule")
    if text is None:
        raise ValidationFailed(["schedule: is required"])
    try:  # the setting's own checks: length, characters, then cron
        schedule = mc.settings.definitions[SCHEDULE_SETTING].normalize(text)
    except ValueError as exc:
        raise ValidationFailed([f"schedule: {exc}"]) from None
    runs = next_runs(mc.clock(), schedule, PREVIEW_RUNS)
    return json_response({"schedule": schedule, "description": describe(schedule),
                          "next": [int(round(t * 1000)) for t in runs]})


ROUTES = [
    ("/api/scheduler", ["GET"], scheduler_status),
    ("/api/scheduler", ["POST"], scheduler_run),
    ("/api/scheduler/preview", ["GET"], scheduler_preview),
]
