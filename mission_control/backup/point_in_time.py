"""Point-in-time restore: the window a replication engine offers, and restoring to a moment in it.

The engine is a plugin (the built-in `pitr` runs Litestream) answering the `pitr_status` and
`pitr_restore_to` hooks. The moment's copy is written to a temporary file and restored through
`restore.restore_prepared_file`: the same checks, safety backup, swap and audit as any restore.
"""
import os
import secrets
from datetime import datetime, timezone

from ..actor import as_actor
from .service import TEMP_PREFIX
from ..errors import ValidationFailed
from ..files import remove_files
from .restore import restore_prepared_file

NOT_INSTALLED = {"enabled": False, "installed": False, "running": False, "pid": None,
                 "replica": None, "earliest": None, "latest": None, "lag_seconds": None,
                 "checked_at": None, "last_error": None}
#: What an engine that knows nothing of sealing answers for it.
UNSEALED = {"sealed": False, "staging_bytes": None, "seal_error": None, "sealing": None,
            "seal_warning": None}


def status(mc, fresh=False):
    """The engine's state (`GET /api/backup/pitr`); "not installed" when no plugin answers.

    :param fresh: ask the engine now rather than read the state it keeps (see `pitr_status`).
    """
    return {"checked_at": None, **UNSEALED, **(mc.hooks.pitr_status(fresh) or NOT_INSTALLED)}


def health(mc):
    """`status(mc)` plus `problem`: why continuous protection fails the health verdict, or None.

    It fails when it is enabled and Litestream is missing, its sealed stream cannot be sealed
    (so nothing streams: never a plaintext fallback), it is not running, further behind than
    `pitr.max_lag_seconds` (a replica that cannot be written falls behind from its last
    progress), or its state was last checked longer ago than that. Off (or no engine plugin),
    it is never a problem.
    """
    state = status(mc)
    problem = None
    if state["enabled"]:
        limit = mc.settings.get("pitr.max_lag_seconds")
        if not state["installed"]:
            problem = "continuous protection is on but Litestream is not installed"
        elif not state["replica"]:
            problem = "continuous protection is on but pitr.replica_url is not set"
        elif state["seal_error"]:
            problem = ("continuous protection is stopped: its replica is sealed and "
                       f"{state['seal_error']}")
        elif not state["running"]:
            problem = "continuous protection is on but Litestream is not running"
        elif state["lag_seconds"] is not None and state["lag_seconds"] > limit:
            problem = (f"the point-in-time replica is {state['lag_seconds']:.0f} s behind "
                       f"(pitr.max_lag_seconds is {limit})")
        elif state["checked_at"] is not None and \
                mc.clock() - state["checked_at"] / 1000 > limit:
            problem = (f"the point-in-time replica was last checked "
                       f"{mc.clock() - state['checked_at'] / 1000:.0f} s ago "
                       f"(pitr.max_lag_seconds is {limit})")
    # Worth a look, not a failure: what the sealed stream left in the bucket, a host that
    # could not restore it.
    warning = state["seal_warning"] if state["enabled"] else None
    return {**state, "problem": problem, "warning": warning}


#: What `GET /api/backup/status` shows of continuous protection: it is also open to the metrics
#: token, so no replica location (a host path or bucket), process id or engine error text.
HEALTH_FIELDS = ("enabled", "installed", "running", "earliest", "latest", "lag_seconds",
                 "checked_at", "problem", "warning")


def health_summary(mc):
    """`health(mc)` cut to `HEALTH_FIELDS`, for the status verdict."""
    state = health(mc)
    return {key: state[key] for key in HEALTH_FIELDS}


def parse_timestamp(text):
    """Unix ms of an ISO 8601 time with a zone ("2026-11-27T15:52:56Z", "...+01:00").

    :raises ValidationFailed: not a string, not ISO 8601, or no zone (a local time is ambiguous).
    """
    if not isinstance(text, str) or not text.strip():
        raise ValidationFailed(["timestamp: must be an ISO 8601 time such as "
                                "2026-11-27T15:52:56Z"])
    raw = text.strip()
    try:
        when = datetime.fromisoformat(raw[:-1] + "+00:00" if raw[-1:] in "zZ" else raw)
    except ValueError:
        raise ValidationFailed(["timestamp: must be an ISO 8601 time such as "
                                "2026-11-27T15:52:56Z"]) from None
    if when.tzinfo is None:
        raise ValidationFailed(["timestamp: give the zone: Z for UTC, or an offset like +01:00"])
    return int(when.timestamp() * 1000)


def iso(ms):
    """`2026-11-27T15:52:56.250Z` for unix ms."""
    when = datetime.fromtimestamp(ms / 1000, timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def engine_answer(written):
    """`(restored_to, skipped)` from what `pitr_restore_to` returned.

    An engine may say which moment the copy holds (an int, unix ms: a sealed stream's compaction
    steps), or `{"restored_to": ms, "skipped": [{"key", "reason"}, ...]}` naming as well the
    files it went around; `skipped` is None when it did not say.
    """
    if isinstance(written, dict):
        held = written.get("restored_to")
        skipped = [{"key": str(item.get("key")), "reason": str(item.get("reason"))}
                   for item in written.get("skipped") or () if isinstance(item, dict)]
        return (held if type(held) is int else None), skipped
    return (written if type(written) is int else None), None


def restore_at(mc, timestamp, actor, *, session_token=None, keep_settings=True):
    """Replace the live database's content with its state at `timestamp` (ISO 8601 text).

    `keep_settings` as in `restore.restore_backup`: the live protection settings stay by default.

    :return: as `restore.restore_backup`; `restored` also has `timestamp` (the moment asked
        for) and, when the engine says, `restored_to` (the moment the copy holds, at or before)
        and `skipped` (`[{"key", "reason"}]`: the stream's files it went around).
    :raises ValidationFailed: bad timestamp, point-in-time restore off, or the time outside
        `[earliest, latest]` (400). Nothing is changed then.
    :raises Conflict, RestoreFailed, RestoredWithErrors: as `restore.restore_backup`.
    """
    actor = as_actor(actor)
    at_ms = restorable_moment(mc, timestamp)
    dest = mc.backups.dir / f"{TEMP_PREFIX}pitr-{os.getpid()}-{secrets.token_hex(6)}.db"
    label = f"point-in-time {iso(at_ms)}"
    try:
        written = mc.hooks.pitr_restore_to(at_ms, dest)
        held, skipped = engine_answer(written)
        detail = {"timestamp": iso(at_ms), **({"restored_to": iso(held)} if held else {}),
                  **({"skipped": skipped} if skipped is not None else {})}
        return restore_prepared_file(mc, dest, actor, label=label, detail=detail,
                                     session_token=session_token, keep_settings=keep_settings)
    finally:
        remove_files(dest, f"{dest}-wal", f"{dest}-shm", f"{dest}-journal")


def restorable_moment(mc, timestamp):
    """Unix ms of `timestamp` (ISO 8601 text), checked against the engine's window.

    :raises ValidationFailed: bad timestamp, point-in-time restore off, or the time outside
        `[earliest, latest]` (400).
    """
    at_ms = parse_timestamp(timestamp)
    state = status(mc, fresh=True)
    if not (state["enabled"] and state["installed"]):
        raise ValidationFailed(["timestamp: point-in-time restore is off (pitr.enabled) or "
                                "not installed"], "Point-in-time restore is not available")
    if state["earliest"] is None or not state["earliest"] <= at_ms <= state["latest"]:
        window = ("nothing is restorable yet" if state["earliest"] is None else
                  f"restorable from {iso(state['earliest'])} to {iso(state['latest'])}")
        raise ValidationFailed([f"timestamp: outside the restorable window: {window}"],
                               "Timestamp outside the restorable window")
    return at_ms
