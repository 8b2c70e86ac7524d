"""The scheduler with real threads and processes: one backup per slot, waking, stopping."""
import subprocess
import sys
import threading

from mission_control import hookimpl
from tests.support.scheduling import RUN_DUE, backups, enable, events, ts


def test_two_instances_on_one_database_make_one_backup_per_slot(make_mc, make_config, at):
    config = make_config()
    at("2026-03-04 02:00:00")
    instances = [make_mc(config=config, clock=at.clock) for _ in range(4)]
    enable(instances[0])
    for day in ("2026-03-04", "2026-03-05"):
        at(f"{day} 03:00:00")
        barrier = threading.Barrier(len(instances))
        results = []

        def race(mc):
            barrier.wait()
            results.extend(mc.scheduler.run_due())
        threads = [threading.Thread(target=race, args=(mc,)) for mc in instances]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(results) == 1, day
    assert backups(instances[0]) == ["mc-backup-2026-03-05_03-00-00.db",
                                     "mc-backup-2026-03-04_03-00-00.db"]
    assert len(events(instances[1])) == 2


def test_a_slot_claim_is_won_by_exactly_one_instance(make_mc, make_config, at):
    config = make_config()
    instances = [make_mc(config=config, clock=at.clock) for _ in range(6)]
    for slot in ("2026-03-04T03:00:00Z", "2026-03-05T03:00:00Z"):
        barrier = threading.Barrier(len(instances))
        won = []

        def claim(mc):
            barrier.wait()
            won.append(mc.scheduler.state.claim_slot("auto_backup", slot, at.clock()))
        threads = [threading.Thread(target=claim, args=(mc,)) for mc in instances]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(won) == [False] * 5 + [True], slot
    assert instances[0].scheduler.state.claim_slot("auto_backup", "2026-03-04T03:00:00Z", 0) \
        is False  # an older slot is never claimed again


def test_no_thread_until_started(smc):
    assert not smc.scheduler.is_alive()
    assert not [t for t in threading.enumerate() if t.name == "mc-scheduler"]


class Made:
    def __init__(self):
        self.event = threading.Event()
        self.actors = []

    @hookimpl
    def post_backup(self, actor):
        self.actors.append(str(actor))
        self.event.set()


def test_thread_catches_up_on_start_and_a_settings_change_wakes_it(make_mc, make_config, at):
    config = make_config()
    at("2026-03-03 10:00:00")
    first = make_mc(config=config, clock=at.clock)
    enable(first)
    first.close()
    made = Made()
    at("2026-03-04 02:00:00")  # enabled after the slot of the 3rd: nothing to catch up
    mc = make_mc(config=config, clock=at.clock, plugins=[made])
    mc.scheduler.start()
    try:
        assert mc.scheduler.is_alive()
        assert mc.scheduler.run_due() == [] and made.actors == []  # nothing due yet: it sleeps
        at("2026-03-04 03:00:00")
        mc.settings.update({"general.site_name": "Ops"}, "alice")  # any change wakes it
        assert made.event.wait(10)
        assert made.actors == ["scheduler"]
    finally:
        assert mc.scheduler.stop(timeout=10)
    assert not mc.scheduler.is_alive()


def test_thread_runs_a_missed_slot_at_start(make_mc, make_config, at):
    config = make_config()
    at("2026-03-03 01:00:00")
    enable(make_mc(config=config, clock=at.clock))
    made = Made()
    at("2026-03-04 05:00:00")
    mc = make_mc(config=config, clock=at.clock, plugins=[made])
    mc.scheduler.start()
    assert made.event.wait(10)
    mc.close()  # closing stops the thread first
    assert not mc.scheduler.is_alive()
    assert len(backups(mc)) == 1


def test_stop_lets_a_running_backup_finish(make_mc, make_config, at):
    config = make_config()
    at("2026-03-03 01:00:00")
    enable(make_mc(config=config, clock=at.clock))
    entered, release = threading.Event(), threading.Event()

    class Slow:
        @hookimpl
        def pre_backup(self):
            entered.set()
            release.wait(10)

    made = Made()
    at("2026-03-04 05:00:00")
    mc = make_mc(config=config, clock=at.clock, plugins=[Slow(), made])
    mc.scheduler.start()
    assert entered.wait(10)
    assert mc.scheduler.stop(timeout=0.1) is False  # still making the backup
    release.set()
    assert mc.scheduler.stop(timeout=10) is True
    assert made.actors == ["scheduler"] and len(backups(mc)) == 1
    assert mc.scheduler.status()[0].last_ok is True


def test_several_processes_on_one_database_make_one_backup(make_mc, make_config, at):
    config = make_config()
    at("2026-03-04 02:00:00")
    enable(make_mc(config=config, clock=at.clock))
    slot = str(ts("2026-03-04 03:00:00"))
    procs = [subprocess.Popen([sys.executable, "-c", RUN_DUE, str(config.data_dir), slot],
                              stdout=subprocess.PIPE, text=True) for _ in range(3)]
    ran = [int(p.communicate(timeout=60)[0]) for p in procs]
    assert sorted(ran) == [0, 0, 1]
    assert backups(make_mc(config=config, clock=at.clock)) == ["mc-backup-2026-03-04_03-00-00.db"]
