"""`Outbox`: best-effort deliveries (alert pings, mail) on background threads, never in a request.

Each named channel has a bounded queue and one daemon thread, started on its first job, so a slow
mail server never delays a health ping and neither ever delays a backup. Closing gives queued jobs
a short grace period to finish (a CLI backup's ping still goes out), then drops what is left.
"""
import logging
import threading
from collections import deque

log = logging.getLogger(__name__)

#: Jobs a channel holds before refusing more: a dead receiver cannot grow memory without bound.
MAX_QUEUED = 100
#: Waits between attempts of `Outbox.retry` (seconds); their count + 1 is the number of attempts.
RETRY_DELAYS = (1.0, 3.0)


class Outbox:
    """Named background queues for slow, best-effort work; owned by `MissionControl` (`mc.outbox`).

    :param max_queued: jobs each channel holds before `submit` refuses more.
    :param retry_delays: default waits between the attempts of `retry`.
    """

    def __init__(self, max_queued=MAX_QUEUED, retry_delays=RETRY_DELAYS):
        self.max_queued = max_queued
        self.retry_delays = tuple(retry_delays)
        #: Set when `close` stops waiting: jobs stop retrying and report nothing more.
        self.cancelled = threading.Event()
        self._cond = threading.Condition()
        self._queues = {}
        self._threads = {}
        self._busy = set()
        self._closing = False

    def submit(self, channel, job):
        """Queue `job` (a callable without arguments) to run on `channel`'s thread.

        Jobs of one channel run one at a time, in order; an exception a job raises is logged.
        :return: True when queued; False when the channel is full or the outbox is closing.
        """
        with self._cond:
            if self._closing:
                return False
            queue = self._queues.setdefault(channel, deque())
            if len(queue) >= self.max_queued:
                log.warning("outbox channel %s is full; a delivery was dropped", channel)
                return False
            queue.append(job)
            if channel not in self._threads:
                thread = threading.Thread(target=self._work, args=(channel,), daemon=True,
                                          name=f"mc-outbox-{channel}")
                self._threads[channel] = thread
                thread.start()
            self._cond.notify_all()
        return True

    def _work(self, channel):
        while True:
            with self._cond:
                queue = self._queues[channel]
                while not queue and not self._closing:
                    self._cond.wait()
                if not queue or self.cancelled.is_set():
                    return
                job = queue.popleft()
                self._busy.add(channel)
            try:
                job()
            except Exception:  # noqa: BLE001 - one bad job must not end the channel
                log.exception("outbox job on %s failed", channel)
            finally:
                with self._cond:
                    self._busy.discard(channel)
                    self._cond.notify_all()

    def _idle(self):
        return not self._busy and not any(self._queues.values())

    def wait_idle(self, timeout=None):
        """Block until every queued job has finished. :return: False if `timeout` ran out first."""
        with self._cond:
            return self._cond.wait_for(self._idle, timeout)

    def retry(self, attempt, delays=None):
        """Call `attempt()` until it returns, waiting `delays` (default `retry_delays`) in between.

        The waits end at once when the outbox is cancelled, and no further attempt is made.
        :return: what `attempt` returned.
        :raises Exception: the last attempt's exception, once every attempt has failed.
        """
        delays = self.retry_delays if delays is None else delays
        for delay in (*delays, None):
            try:
                return attempt()
            except Exception:
                if delay is None or self.cancelled.wait(delay):
                    raise

    def close(self, timeout=5.0):
        """Refuse new jobs, give queued ones `timeout` seconds, then drop the rest.

        :return: True when everything queued was delivered (or failed) in time.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        done = self.wait_idle(timeout)
        if not done:
            with self._cond:
                dropped = sum(len(q) for q in self._queues.values())
                for queue in self._queues.values():
                    queue.clear()
            self.cancelled.set()
            log.warning("outbox closed with deliveries unfinished (%d dropped)", dropped)
        for thread in list(self._threads.values()):
            thread.join(0.5)  # daemon threads: a job stuck in a network call cannot hold the exit
        return done
