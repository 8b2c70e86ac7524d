"""When the daily backup runs: a pure function of the time, so tests need no sleeping."""
from datetime import datetime, timedelta, timezone

DAILY_HOUR_UTC = 3


def slot_start(now, hour=DAILY_HOUR_UTC):
    """Unix seconds of the most recent daily slot at or before `now` (`hour`:00 UTC)."""
    moment = datetime.fromtimestamp(now, timezone.utc)
    start = moment.replace(hour=hour, minute=0, second=0, microsecond=0)
    if start > moment:
        start -= timedelta(days=1)
    return start.timestamp()


def next_run(now, hour=DAILY_HOUR_UTC):
    """Unix seconds of the next daily slot strictly after `now`."""
    return slot_start(now, hour) + 24 * 3600
