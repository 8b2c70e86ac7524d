"""What the replica holds and how far behind the live database it is, checked in the background.

The process that runs Litestream checks every `interval` (two short `litestream` commands) and
keeps the result in the state file beside the database; every process reads it from there. A read
(the page, the status, health, metrics) therefore never starts a process: eight scrapers cost
eight file reads, not sixteen `litestream` runs, and the answer says how old it is (`checked_at`).

The lag is measured from progress: the last check at which the replica held every transaction
Litestream had seen, or held a newer one than the check before. A replica that cannot be written
(a folder replaced by a file, an endpoint that does not answer) makes no progress, so its lag
grows from the last progress whether or not Litestream can still list it.
"""
from . import litestream

MAX_INTERVAL = 30.0
MIN_INTERVAL = 0.5


def interval(max_lag):
    """Seconds between two checks: a third of `pitr.max_lag_seconds` (at most 30 s), so a
    replica that stops is seen well within the limit."""
    return max(MIN_INTERVAL, min(max_lag / 3, MAX_INTERVAL))


def check(binary, files, environ, replica, previous, now, since, window=None):
    """Run `litestream ltx` and `litestream status` once; the new check, a JSON-ready dict.

    :param replica: the `pitr.replica_url` checked (a check of another replica is no guide).
    :param previous: the last check (dict) or None.
    :param now: the time (unix seconds).
    :param since: when the running Litestream started (unix seconds): the lag counts no time
        before it (a service down overnight was not lagging), and a replica whose first check
        fails has made no progress since then.
    :return: `replica`, `checked_at`, `error` (None, or the failed command's message, without
        host paths), `earliest`, `latest`, `replica_txid`, `local_txid` (the last known ones
        when the check failed), `caught_up` and `progress_at`.
    :param window: for a sealed stream, a function returning what the storage holds sealed
        (`{"earliest", "latest", "replica_txid"}`, the sealer's record) instead of what
        `litestream ltx` lists in the staging folder: only sealed and uploaded counts.
    """
    if previous is not None and previous.get("replica") != replica:
        previous = None
    known = previous or {"earliest": None, "latest": None, "replica_txid": None,
                         "local_txid": None, "progress_at": since}
    known = {**known, "progress_at": max(known["progress_at"], since)}
    try:
        window = window() if window else litestream.listing(binary, files, environ)
        local = litestream.local_txid(binary, files, environ)
    except litestream.EngineError as exc:
        return {**known, "replica": replica, "checked_at": now, "error": str(exc),
                "caught_up": False}
    txid = window["replica_txid"]
    caught_up = local is None or (txid is not None and txid >= local)
    moved = previous is None or txid != previous.get("replica_txid")
    return {"replica": replica, "checked_at": now, "error": None,
            "earliest": window["earliest"], "latest": window["latest"], "replica_txid": txid,
            "local_txid": local, "caught_up": caught_up,
            "progress_at": now if caught_up or moved else known["progress_at"]}


def lag(found, now):
    """Seconds the replica is behind at `now` by the check `found`: 0 when it held everything
    then, else the time since its last progress; None without a check."""
    if found is None:
        return None
    if found["caught_up"]:
        return 0.0
    return round(max(0.0, now - found["progress_at"]), 1)
