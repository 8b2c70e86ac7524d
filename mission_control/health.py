"""Backup health: last success and failure, next run, off-site copies, files on disk, and a verdict.

Successes and failures come from the audit trail (`backup_create`, `backup_failed`,
`backup_refused`, `offsite_copy`, `offsite_failed`), which every backup writes whoever started it:
API, scheduler, CLI or script, in any process sharing the database. Each off-site target's last
result comes from `mc.offsite`, and which targets are configured from the plugins that copy there.
"""
from . import alert_channels
from .backup import point_in_time
from .backup.service import PATTERN
from .backup.names import OFFSITE_FETCH
from .backup.names import SAFETY_COPY
from .backup.names import UPLOAD
from .scheduling.cron import longest_gap
from .scheduling.cron import next_run
from .backup.verify import VerificationStore

WARN_AFTER = 24 * 3600
#: With auto-backup on, a day's run plus slack for a slow one.
AUTO_FAIL_AFTER = 26 * 3600
FAIL_AFTER = 7 * 24 * 3600
SUCCESS = "backup_create"
FAILURES = ("backup_failed", "backup_refused")
_RANK = {"pass": 0, "warn": 1, "fail": 2}


def _newest(mc, action):
    rows, total = mc.audit_store.query(action=action, limit=1)
    return (rows[0] if rows else None), total


def action_counts(db, like):
    """`{action: count}` of audit events whose action matches the SQL LIKE pattern `like`."""
    return {r["action"]: r["n"] for r in db.query(
        "SELECT action, COUNT(*) AS n FROM audit_log WHERE action LIKE ? GROUP BY action", (like,))}


def file_kind(name):
    if PATTERN.match(name):
        return "rotating"
    for prefix, kind in ((SAFETY_COPY.prefix, "pre_restore"), (UPLOAD.prefix, "uploaded"),
                         (OFFSITE_FETCH.prefix, "offsite")):
        if name.startswith(prefix):
            return kind
    return "other"


def age_problem(age, auto, enabled_for, period=24 * 3600):
    """`(verdict, reason)` for how old the last good backup is, or None when it is fresh.

    :param age: seconds since the last good backup, or None when there was none.
    :param auto: whether auto-backup is on.
    :param enabled_for: seconds since auto-backup was last switched (None: never).
    :param period: the longest normal time between two scheduled runs (a day by default); a
        weekly schedule stretches every limit to its week (plus the same slack).
    """
    stretch = max(0, period - 24 * 3600)
    auto_fail_after = AUTO_FAIL_AFTER + stretch
    overdue = age is None or age >= auto_fail_after
    if auto and overdue and (enabled_for is None or enabled_for >= auto_fail_after):
        return "fail", ("auto-backup is on but no backup succeeded in the last "
                        f"{auto_fail_after // 3600} hours")
    if age is None:
        return ("warn", "waiting for the first run") if auto else \
            ("fail", "no backup has ever been made")
    if age >= FAIL_AFTER + stretch:
        return "fail", f"last good backup is {age // 86400} days old"
    if age >= WARN_AFTER + stretch:
        return "warn", f"last good backup is {age // 3600} hours old"
    return None


def newest_verification_problem(mc, newest):
    """`("warn", reason)` when the newest rotating backup `newest` (a `BackupInfo`) failed its
    last verification and is still the file that was verified; else None (passed, or never
    verified: a backup is checked with `quick_check` as it is made)."""
    row = VerificationStore(mc.db).of_file(newest.name, newest.size, newest.mtime_ns)
    if row is None or row["ok"]:
        return None
    return "warn", f"the newest backup {newest.name} failed verification"


def offsite_status(mc, newest, now, for_monitor=False):
    """Every configured off-site target, and every one that ever reported, each with its problem.

    A configured target's `problem` is set when its last copy failed, when `newest` (the newest
    pattern-named local backup, or None) has had no verified copy there for
    ``offsite.max_lag_minutes``, when one of the copies it keeps was replaced (`changed`) or
    deleted (`missing`) by someone else, when a kept incremental copy lacks an ancestor of its
    chain (`broken`: it cannot be restored), or when its last restore drill (``offsite_verify``)
    failed. Its `warning` names kept copies without a catalog entry (`uncataloged`).
    Targets no longer configured are listed without a problem.

    :param for_monitor: leave out the text of the last copy's and drill's result (`message`
        null, `problem` without it): the remote side's errors name the endpoint, the bucket and
        its prefix, or the folder, which the metrics token is not to see.
    :return: a list of JSON-ready dicts, by target name.
    """
    configured = set(mc.offsite.configured())
    results = {row["target"]: row for row in mc.offsite.list()}
    copies = mc.audit_store.by_target("offsite_copy")
    failures = mc.audit_store.by_target("offsite_failed")
    max_lag = mc.settings.get("offsite.max_lag_minutes") * 60
    drills = {row["target"]: row for row in mc.offsite.drills()}
    notes = {name: list(getattr(target, "notes", ()) or ())
             for name, target in mc.offsite.targets().items()}
    targets = []
    for name in sorted(configured | set(results)):
        result = results.get(name) or {}
        drill = drills.get(name)
        problem = None
        message = None if for_monitor else result.get("message")
        if name in configured and result.get("ok") is False:
            problem = f"off-site copy to {name} failed" + (f": {message}" if message else "")
        elif name in configured and newest is not None and now - newest.created_at >= max_lag \
                and not (result.get("ok") and (result.get("backup") or "") >= newest.name):
            # Pattern names sort by time: a copy of this backup or a newer one is up to date.
            problem = (f"no off-site copy at {name} of the newest backup {newest.name} after "
                       f"{(now - newest.created_at) // 60} minutes")
        if drill and for_monitor:
            drill = {**drill, "message": None}
        detail = result.get("detail") or {}
        changed, missing = detail.get("changed") or [], detail.get("missing") or []
        uncataloged = detail.get("uncataloged") or []
        broken = detail.get("broken") or []
        if name in configured and changed:
            altered = (f"{len(changed)} copies at {name} no longer match what was uploaded "
                       f"(replaced by someone with write access; not counted, older copies "
                       f"kept): {', '.join(changed)}")
            problem = f"{problem}; {altered}" if problem else altered
        if name in configured and missing:
            gone = (f"{len(missing)} copies at {name} are missing (deleted by someone with "
                    f"access, not pruned here; older copies kept): {', '.join(missing)}")
            problem = f"{problem}; {gone}" if problem else gone
        if name in configured and broken:
            lost = (f"{len(broken)} incremental copies at {name} cannot be restored (an older "
                    "copy their chain needs is missing or changed; the next copy is a full "
                    "one): " + ", ".join(f"{b['name']} (needs {b['ancestor']})"
                                         for b in broken))
            problem = f"{problem}; {lost}" if problem else lost
        if name in configured and drill and not drill["ok"]:
            failed = f"the last restore drill of {name} failed" + (
                f": {drill['message']}" if drill["message"] else "")
            problem = f"{problem}; {failed}" if problem else failed
        targets.append({
            "target": name, "configured": name in configured, "ok": result.get("ok"),
            "backup": result.get("backup"), "message": message,
            "finished_at": result.get("finished_at"),
            "last_success_at": copies.get(name, {}).get("last_at"),
            "failures": failures.get(name, {}).get("count", 0), "problem": problem,
            "stored_size": result.get("stored_size"), "ratio": result.get("ratio"),
            "kind": result.get("kind"), "uploaded_bytes": result.get("uploaded_bytes"),
            "chain_length": result.get("chain_length"),
            "held": result.get("held") or [],
            "changed": changed, "missing": missing, "broken": broken,
            "chained": detail.get("chained") or [],
            "uncataloged": [item["name"] for item in uncataloged],
            "warning": _uncataloged_warning(name, uncataloged) if name in configured else None,
            "notes": notes.get(name, []) + _altered(changed, missing) + _uncataloged(uncataloged)
            + _past_keep(detail),
            "drill": drill and {key: drill[key] for key in
                                ("ok", "remote_name", "message", "finished_at")}})
    return targets


def _last_success(event, now):
    if not event:
        return None
    detail = event["detail"] if isinstance(event["detail"], dict) else {}
    return {"name": event["target_id"], "at": event["created_at"],
            "age_seconds": max(0, now - event["created_at"]), "size": detail.get("size"),
            "duration_seconds": detail.get("duration_seconds"), "copy": detail.get("copy"),
            "disk_error": detail.get("disk_error"), "actor": event["actor"]}


def _last_failure(event):
    if not event:
        return None
    detail = event["detail"] if isinstance(event["detail"], dict) else {}
    return {"at": event["created_at"], "action": event["action"],
            "reason": detail.get("reason"), "actor": event["actor"]}


def _altered(changed, missing):
    """Notes naming the kept copies someone replaced or deleted (they are also the target's
    `problem`, which fails the verdict)."""
    notes = []
    if missing:
        notes.append(f"{', '.join(missing)}: missing (deleted by someone else, not pruned here)")
    if changed:
        notes.append(f"{', '.join(changed)}: changed (no longer what was uploaded)")
    return notes


def _uncataloged(uncataloged):
    """Notes naming the kept copies whose catalog entry the last run could not write: those
    without any entry, and those whose older entry could not be renewed (retried each run)."""
    notes = []
    absent = [item["name"] for item in uncataloged if not item.get("renewing")]
    stale = [item["name"] for item in uncataloged if item.get("renewing")]
    if absent:
        notes.append(f"{', '.join(absent)}: no catalog entry, and none could be written, so "
                     "`recover` cannot use it")
    if stale:
        notes.append(f"{', '.join(stale)}: the catalog entry could not be renewed (the older "
                     "one is kept, its lock not extended); tried again on the next run")
    return notes


def _uncataloged_warning(name, uncataloged):
    """The `warn` reason for kept copies at target `name` without a usable catalog entry."""
    if not uncataloged:
        return None
    return (f"{len(uncataloged)} kept copies at {name} lack a catalog entry that could be "
            f"written now: {', '.join(item['name'] for item in uncataloged)}")


def _past_keep(detail):
    """A note naming replaced copies past the keep count: no longer a failure (retention
    would have pruned them), never deleted here."""
    old = detail.get("changed_past_keep") or []
    return [f"{', '.join(old)}: replaced by someone with write access, past the keep count "
            "(no longer counted or a failure; never deleted here)"] if old else []


#: How long a restore's swap problem stays in the verdict (the audit keeps it for good).
RESTORE_PROBLEM_SECONDS = 7 * 24 * 3600


def restore_swap_problem(mc, now):
    """A warn for the newest restore (of the last `RESTORE_PROBLEM_SECONDS`) whose page swap
    failed, so that the backup API swapped every page and writes made during the restore may be
    missing from its safety backup, or whose safety backup, brought up to the replaced data,
    failed its `quick_check`; None otherwise."""
    event, _ = _newest(mc, "backup_restore")
    if event is None or now - event["created_at"] > RESTORE_PROBLEM_SECONDS:
        return None
    detail = event.get("detail") or {}
    swap = detail.get("swap") or {}
    if swap.get("page_swap_failed"):
        return ("warn", f"the restore of {detail.get('name')} could not write only the pages "
                        f"that differ ({swap['page_swap_failed']}): it wrote every page, and "
                        f"writes made during it may be missing from {detail.get('safety_backup')}")
    if swap.get("safety_checked") is False:
        return ("warn", f"the safety backup {detail.get('safety_backup')} of the restore of "
                        f"{detail.get('name')} fails quick_check")
    return None


def backup_status(mc, for_monitor=False):
    """The state of backups for monitoring, as a JSON-ready dict (see README, "Monitoring").

    `verdict` is "fail", "warn" or "pass" by the rules of `age_problem`, a failed last run (warn),
    auto-backup off (warn), an I/O error of the live database's disk during the last good
    backup (warn, until a backup meets none), the newest rotating backup failing verification
    (warn), each configured off-site target's `problem` (fail) and `warning` (warn: kept
    copies without a catalog entry), continuous protection's (fail) and each configured alert
    channel whose newest delivery failed (warn, see `alert_channels`), each stored setting
    whose value no longer validates and so reads as its default (warn), a recent restore whose
    page swap failed or whose safety backup fails its check (warn, `restore_swap_problem`);
    `reasons` says why it is not "pass", naming the target, channel or file at fault.

    :param for_monitor: the answer for the metrics token, without where off-site copies go (see
        `offsite_status`); the verdict is the same.
    """
    now = int(mc.clock())
    success, successes = _newest(mc, SUCCESS)
    failure, failures = None, 0
    for action in FAILURES:
        event, count = _newest(mc, action)
        failures += count
        if event and (failure is None or (event["created_at"], event["id"]) >
                      (failure["created_at"], failure["id"])):
            failure = event
    auto = mc.settings.get("general.auto_backup")
    switched = mc.settings.changed_at("general.auto_backup")
    files = mc.backups.list()
    last_success, last_failure = _last_success(success, now), _last_failure(failure)

    schedule = mc.settings.get("general.auto_backup_schedule")
    period = int(longest_gap(now, schedule))
    problems = [age_problem(last_success and last_success["age_seconds"], auto,
                            None if switched is None else now - switched, period)]
    if failure and (success is None or (failure["created_at"], failure["id"]) >
                    (success["created_at"], success["id"])):
        problems.append(("warn", f"last run failed: {last_failure['reason'] or failure['action']}"))
    if not auto:
        problems.append(("warn", "auto-backup disabled"))
    if last_success and last_success["disk_error"]:
        problems.append(("warn", "the disk under the live database "
                                 f"({mc.config.db_path.name}) gave an I/O error during the last "
                                 f"backup ({last_success['disk_error']}); check it now"))
    newest = next((b for b in files if PATTERN.match(b.name)), None)
    if newest is not None:
        problems.append(newest_verification_problem(mc, newest))
    offsite = offsite_status(mc, newest, now, for_monitor)
    problems += [("fail", target["problem"]) for target in offsite if target["problem"]]
    problems += [("warn", target["warning"]) for target in offsite if target["warning"]]
    pitr = point_in_time.health_summary(mc)
    if pitr["problem"]:
        problems.append(("fail", pitr["problem"]))
    if pitr["warning"]:
        problems.append(("warn", pitr["warning"]))
    alerts = alert_channels.status(mc, for_monitor)
    problems += [("warn", channel["problem"]) for channel in alerts if channel["problem"]]
    problems += [("warn", f"setting {key} holds a value that is no longer valid; its default is "
                          "used until it is set again") for key in mc.settings.invalid_keys()]
    problems.append(restore_swap_problem(mc, now))
    problems = [p for p in problems if p]

    by_kind = {}
    for backup in files:
        kind = by_kind.setdefault(file_kind(backup.name), {"count": 0, "total_size": 0})
        kind["count"] += 1
        kind["total_size"] += backup.size
    return {
        "verdict": max((v for v, _ in problems), key=_RANK.get, default="pass"),
        "reasons": [reason for _, reason in problems],
        "last_success": last_success,
        "last_failure": last_failure,
        "next_run": int(next_run(now, schedule)),
        "auto_backup": auto,
        "offsite": offsite,
        "pitr": pitr,
        "alerts": alerts,
        "schedule_period_seconds": period,
        "backups": {"count": len(files), "total_size": sum(b.size for b in files),
                    "by_kind": by_kind},
        "runs": {"success": successes, "failure": failures},
        "checked_at": now,
    }
