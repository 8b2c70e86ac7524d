"""`/api/scheduler`: the scheduled tasks' state, running one now, and previewing a schedule
(admin only)."""
from ..errors import ValidationFailed
from ..scheduling.cron import describe
from ..scheduling.cron import next_runs
from .http import json_response, read_body, require, require_actor
from .openapi_schemas import INT_OR_NULL, STR_OR_NULL, array, obj, operation, ref, response
from .operations import Operation

PREVIEW_RUNS = 3
SCHEDULE_SETTING = "general.auto_backup_schedule"


def scheduler_status(mc, request):
    require(mc, request, "admin")
    return json_response({"tasks": [t.to_json() for t in mc.scheduler.status()]})


def scheduler_run(mc, request):
    actor = require_actor(mc, request)
    task_id = read_body(request)["task_id"]
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


SCHEMAS = {
    "TaskResult": obj(ok={"type": "boolean"}, message=STR_OR_NULL, timestamp=INT_OR_NULL),
    "Task": obj(id={"type": "string"}, name={"type": "string"}, enabled={"type": "boolean"},
                lastRun={**INT_OR_NULL, "description": "unix milliseconds"},
                nextRun={"type": "integer",
                         "description": "unix milliseconds of the schedule's next slot"},
                running={"type": "boolean"},
                lastResult={"anyOf": [ref("TaskResult"), {"type": "null"}]},
                schedule={"type": "string", "description": "5-field cron expression, UTC",
                          "examples": ["0 3 * * *"]},
                description={"type": "string", "examples": ["every day at 03:00 UTC"]},
                runningSince={**INT_OR_NULL, "description": "unix milliseconds (the service's "
                              "clock) when the run going on now started; null when none is"}),
    "SchedulePreview": obj(
        schedule={"type": "string", "description": "the expression, fields single-spaced",
                  "examples": ["0 3 * * *"]},
        description={"type": "string", "examples": ["every day at 03:00 UTC"]},
        next=array({"type": "integer", "description": "unix milliseconds"})),
}


def _run_doc():
    op = operation(
        "Run a task now and answer when it is done",
        response("The task ran", obj(ok={"const": True}, message={"type": "string"},
                                     backup={"anyOf": [ref("Backup"), {"type": "null"}]})),
        400, 409, 413, 429, 507, tag="scheduler")
    op["responses"]["500"] = response("The task failed", obj(
        ok={"const": False}, message={"type": "string"}, error={"type": "string"}))
    return op


OPERATIONS = [
    Operation("GET", "/api/scheduler", scheduler_status, "listTasks", operation(
        "The scheduled tasks and their state",
        response("Tasks", obj(tasks=array(ref("Task")))), tag="scheduler")),
    # `TaskId` names the running service's tasks (`openapi.py`); the contract fixes the answer
    # for a missing or unknown one.
    Operation("POST", "/api/scheduler", scheduler_run, "runTask", _run_doc(),
              body=obj(task_id=ref("TaskId")), plain_fields=("task_id",),
              plain_error=lambda mc: f"task_id required: {', '.join(mc.scheduler.tasks)}"),
    Operation("GET", "/api/scheduler/preview", scheduler_preview, "previewSchedule", operation(
        "Check a cron schedule: its description and next three run times (UTC)",
        response("The schedule is valid", ref("SchedulePreview")), 400, tag="scheduler",
        params=[{"name": "schedule", "in": "query", "required": True,
                 "schema": {"type": "string"},
                 "description": "5-field cron expression, UTC, at most every 5 minutes"}])),
]
