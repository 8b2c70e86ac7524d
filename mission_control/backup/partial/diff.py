"""`GET /api/backup/diff`: what changed between a backup (or a moment) and the live database (or
another backup), per table, read-only on both sides, in one read transaction, within a time limit.
"""
import time
from contextlib import ExitStack

from ...actor import as_actor
from ...errors import MissionControlError, ValidationFailed
from .compare import tally
from .source import LIVE, MOMENT, check_backup, moment_copy, open_pair
from .tables import refusal, schema_differences, shapes

PROGRESS_STEPS = 10000


class DiffTimedOut(MissionControlError):
    """The comparison ran longer than its limit (500); nothing was changed."""

    status = 500


def diff(mc, source, target=LIVE, actor="api"):
    """How `target` differs from `source`.

    :param source: a backup's name, or "@" and an ISO 8601 time (point-in-time recovery on).
    :param target: "live" (the default) or another backup's name.
    :return: the answer of `GET /api/backup/diff` (see docs/partial-restore.md).
    :raises ValidationFailed: a bad name or time (400); `FileRejected`: a file failed its checks.
    :raises NotFound: no such backup (404).
    :raises DiffTimedOut: longer than `MC_VERIFY_TIMEOUT` seconds (500).
    """
    actor = as_actor(actor)
    if not isinstance(source, str) or not source:
        raise ValidationFailed(["from: give a backup's name, or @ and an ISO 8601 time"])
    if not isinstance(target, str) or not target:
        raise ValidationFailed(["to: give live or a backup's name"])
    started = time.perf_counter()
    timeout = mc.config.verify_timeout
    with ExitStack() as stack:
        if source.startswith(MOMENT):
            source_path, source_label = stack.enter_context(
                moment_copy(mc, source[len(MOMENT):], timeout))
        else:
            source_path, source_label = check_backup(mc, source, actor, reuse=True), source
        target_path = None if target == LIVE else check_backup(mc, target, actor, reuse=True)
        conn = open_pair(source_path, target_path, mc.config.db_path)
        stack.callback(conn.close)
        tables = compare_all(conn, mc.clock, timeout)
    totals = {kind: sum(t[kind]["count"] for t in tables if t["compared"])
              for kind in ("inserted", "updated", "deleted")}
    return {"from": source_label, "to": target, "tables": tables, "totals": totals,
            "duration_seconds": round(time.perf_counter() - started, 3)}


def compare_all(conn, clock, timeout):
    """Every table's entry, in one read transaction on `conn` (`src` against `main`)."""
    end = clock() + timeout
    conn.set_progress_handler(lambda: clock() > end, PROGRESS_STEPS)
    conn.execute("BEGIN")
    try:
        old, new = shapes(conn, "src"), shapes(conn, "main")
        return [table_entry(conn, name, old.get(name), new.get(name))
                for name in sorted(set(old) | set(new))]
    except Exception:
        if clock() > end:
            raise DiffTimedOut(f"The comparison stopped after {timeout} seconds "
                               "(MC_VERIFY_TIMEOUT); nothing was changed") from None
        raise
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.set_progress_handler(None, 0)


def table_entry(conn, name, old, new):
    """One table's entry: schema differences, and the changes when the rows can be compared."""
    schema = schema_differences(name, old, new)
    shape = old or new
    reason = refusal(name)
    if reason is None and not shape.key:
        reason = "it has no primary key (rows are matched by rowid, which a VACUUM may renumber)"
    entry = {"table": name, "key": list(shape.key) or ["rowid"], "schema": schema,
             "restorable": reason is None and not schema, "refused": reason}
    if reason is None and schema:
        entry["refused"] = "its schema differs between the two sides"
    if old is None or new is None or old.key != new.key:
        return {**entry, "compared": False, "inserted": None, "updated": None, "deleted": None}
    return {**entry, "compared": True, **tally(conn, name, old, new).to_json()}
