"""Built-in retention policy: keep-last N plus grandfather-father-son rules, as restic's `forget`.

`general.backup_retention_count` is keep-last; the `retention.keep_*` settings this plugin
declares add hourly, daily, weekly, monthly, yearly and keep-within rules (0 or "" = unused, so by
default only the newest N are kept). A backup is kept when any rule keeps it; the policy itself
is `mission_control.decide_retention`, shared with the preview (`POST /api/backup/prune`).

It runs last (``trylast``), so any plugin that returns a list from ``prune`` replaces it, and one
that returns ``None`` defers to it. It answers with a `RetentionPlan`, which lists the names to
delete like any answer and also says why each kept backup is kept.
"""
from mission_control import (WITHIN_PATTERN, RetentionRules, SettingDef, check_within,
                             decide_retention, hookimpl)

BUCKETS = ("hourly", "daily", "weekly", "monthly", "yearly")
_UNIT = {"hourly": "hour", "daily": "UTC day", "weekly": "ISO week (Monday to Sunday, UTC)",
         "monthly": "month", "yearly": "year"}


@hookimpl
def register_settings():
    counts = [SettingDef(f"retention.keep_{bucket}", "int", "0",
                         f"Keep the newest backup of each of the last N {_UNIT[bucket]}s that "
                         "have backups (0: rule unused)", "retention", minimum=0, maximum=1000)
              for bucket in BUCKETS]
    return [*counts, SettingDef(
        "retention.keep_within", "text", "",
        "Keep every backup made within this long before the newest one: 36h, 14d, 2w, 6m, 1y "
        "(empty: rule unused)", "retention", max_length=40, clean=check_within,
        pattern=WITHIN_PATTERN)]


def rules_from(settings):
    """The `RetentionRules` that `settings` (anything with `get(key)`) hold."""
    return RetentionRules(last=settings.get("general.backup_retention_count"),
                          within=settings.get("retention.keep_within"),
                          **{bucket: settings.get(f"retention.keep_{bucket}")
                             for bucket in BUCKETS})


@hookimpl(trylast=True)
def prune(mc, backups, keep_names, settings):
    return decide_retention([b.name for b in backups], rules_from(settings), keep_names,
                            now=mc.clock())
