"""Backup health: last success and failure, next run, what is on disk, and a pass/warn/fail verdict.

Successes and failures come from the audit trail (`backup_create`, `backup_failed`,
`backup_refused`), which every backup writes whoever started it: API, scheduler, CLI or script,
in any process sharing the database.
"""
from .backups import PATTERN
from .schedule import next_run

WARN_AFTER = 24 * 3600
FAIL_AFTER = 7 * 24 * 3600
SUCCESS = "backup_create"
FAILURES = ("backup_failed", "backup_refused")


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
    for prefix, kind in (("pre-restore-", "pre_restore"), ("uploaded-", "uploaded")):
        if name.startswith(prefix):
            return kind
    return "other"


def backup_status(mc):
    """The state of backups for monitoring, as a JSON-ready dict (see docs/restore-and-health.md).

    `verdict` is "pass" under 24 h since the last good backup with nothing wrong, "fail" at 7 days
    or more (or never, with auto-backup off), "warn" otherwise; `reasons` says why it is not "pass".
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
    files = mc.backups.list()

    last_success = None
    if success:
        detail = success["detail"] if isinstance(success["detail"], dict) else {}
        last_success = {"name": success["target_id"], "at": success["created_at"],
                        "age_seconds": max(0, now - success["created_at"]),
                        "size": detail.get("size"),
                        "duration_seconds": detail.get("duration_seconds"),
                        "actor": success["actor"]}
    last_failure = None
    if failure:
        detail = failure["detail"] if isinstance(failure["detail"], dict) else {}
        last_failure = {"at": failure["created_at"], "action": failure["action"],
                        "reason": detail.get("reason"), "actor": failure["actor"]}

    reasons, verdict = [], "pass"
    if last_success is None:
        verdict = "warn" if auto else "fail"
        reasons.append("waiting for the first run" if auto else "no backup has ever been made")
    elif last_success["age_seconds"] >= FAIL_AFTER:
        verdict = "fail"
        reasons.append(f"last good backup is {last_success['age_seconds'] // 86400} days old")
    elif last_success["age_seconds"] >= WARN_AFTER:
        verdict = "warn"
        reasons.append(f"last good backup is {last_success['age_seconds'] // 3600} hours old")
    if failure and (success is None or (failure["created_at"], failure["id"]) >
                    (success["created_at"], success["id"])):
        verdict = "fail" if verdict == "fail" else "warn"
        reasons.append(f"last run failed: {last_failure['reason'] or failure['action']}")
    if not auto:
        verdict = "fail" if verdict == "fail" else "warn"
        reasons.append("auto-backup disabled")

    by_kind = {}
    for backup in files:
        kind = by_kind.setdefault(file_kind(backup.name), {"count": 0, "total_size": 0})
        kind["count"] += 1
        kind["total_size"] += backup.size
    return {
        "verdict": verdict,
        "reasons": reasons,
        "last_success": last_success,
        "last_failure": last_failure,
        "next_run": int(next_run(now)),
        "auto_backup": auto,
        "backups": {"count": len(files), "total_size": sum(b.size for b in files),
                    "by_kind": by_kind},
        "runs": {"success": successes, "failure": failures},
        "checked_at": now,
    }
