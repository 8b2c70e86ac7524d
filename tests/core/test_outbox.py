"""`Outbox`: background channels are bounded, survive a failing job, retry, and close without hanging."""
import threading

import pytest

from mission_control.outbox import Outbox

WAIT = 30


def test_jobs_of_a_channel_run_in_order_and_a_failing_one_does_not_end_it():
    outbox, ran = Outbox(), []

    def boom():
        raise RuntimeError("job bug")

    for job in (lambda: ran.append(1), boom, lambda: ran.append(2)):
        assert outbox.submit("c", job)
    assert outbox.wait_idle(WAIT) and ran == [1, 2]
    assert outbox.close(WAIT)


def test_a_full_channel_refuses_and_other_channels_go_on():
    outbox, release, ran = Outbox(max_queued=1), threading.Event(), []
    started = threading.Event()

    def stuck():
        started.set()
        release.wait(WAIT)

    assert outbox.submit("slow", stuck) and started.wait(WAIT)
    assert outbox.submit("slow", lambda: ran.append("queued"))
    assert not outbox.submit("slow", lambda: ran.append("dropped"))
    assert outbox.submit("fast", lambda: ran.append("fast"))
    assert not outbox.wait_idle(0.01)
    release.set()
    assert outbox.wait_idle(WAIT) and sorted(ran) == ["fast", "queued"]
    assert outbox.close(WAIT)


def test_close_gives_up_on_a_stuck_job_drops_the_rest_and_refuses_new_ones():
    outbox, release, ran = Outbox(), threading.Event(), []
    started = threading.Event()

    def stuck():
        started.set()
        release.wait(WAIT)

    outbox.submit("c", stuck)
    outbox.submit("c", lambda: ran.append("never"))
    assert started.wait(WAIT)
    assert outbox.close(timeout=0.05) is False
    assert outbox.cancelled.is_set() and not outbox.submit("c", lambda: None)
    release.set()
    assert outbox.wait_idle(WAIT) and ran == []


def test_retry_returns_the_first_success_and_raises_the_last_failure():
    outbox, calls = Outbox(retry_delays=(0, 0)), []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OSError("down")
        return "ok"

    assert outbox.retry(flaky) == "ok" and len(calls) == 3
    attempts = []

    def down():
        attempts.append(1)
        raise OSError("down")

    with pytest.raises(OSError, match="down"):
        outbox.retry(down, delays=(0,))
    assert len(attempts) == 2


def test_retry_stops_waiting_once_cancelled():
    outbox, calls = Outbox(retry_delays=(WAIT * 10,)), []
    outbox.cancelled.set()

    def down():
        calls.append(1)
        raise OSError("down")

    with pytest.raises(OSError):
        outbox.retry(down)  # would wait 300 s before its second attempt if not cancelled
    assert calls == [1]
