"""A sliding-window rate limiter with an injected clock, shared by login and backup creation."""
import threading
from collections import defaultdict, deque


class RateLimiter:
    """At most `limit` events per `window` seconds per key; `limit` 0 means unlimited.

    `reserve` takes a slot up front and returns a token; `release` gives it back when the action
    did not happen (a failed backup does not use up the budget).
    """

    def __init__(self, limit, window, clock):
        self.limit = limit
        self.window = window
        self._clock = clock
        self._events = defaultdict(deque)
        self._lock = threading.Lock()

    def _trim(self, key, now):
        events = self._events[key]
        while events and events[0][0] <= now - self.window:
            events.popleft()
        if not events:
            del self._events[key]
        return events

    def reserve(self, key):
        """Take a slot; return `(token, 0)` on success or `(None, seconds_until_a_slot_frees)`."""
        if self.limit <= 0:
            return object(), 0
        with self._lock:
            now = self._clock()
            events = self._trim(key, now)
            if len(events) >= self.limit:
                return None, events[0][0] + self.window - now
            token = (now, object())
            self._events[key].append(token)
            return token, 0

    def release(self, key, token):
        if self.limit <= 0:
            return
        with self._lock:
            events = self._events.get(key)
            if events and token in events:
                events.remove(token)
