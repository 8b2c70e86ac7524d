"""Restore drills: the newest off-site copy is fetched, unpacked, checked and compared, then deleted."""
import pytest

from mission_control import metrics
from mission_control.health import backup_status
from mission_control.offsite.drill import drill_all

from tests.support.offsite import damage, new_key
from tests.support.scheduling import ts

pytest.importorskip("pyrage")
pytest.importorskip("zstandard")
prometheus = pytest.importorskip("prometheus_client.parser")


def drill_series(mc, target):
    body, _ = metrics.render(mc)
    values = {s.name + str(sorted(s.labels.items())): s.value
              for family in prometheus.text_string_to_metric_families(body.decode())
              for s in family.samples}
    return values.get(f"mission_control_offsite_drill_ok[('target', '{target}')]")


def run_drill(admin_client):
    """The drill as an admin runs it: `POST /api/scheduler {"task_id": "offsite_verify"}`."""
    return admin_client.post("/api/scheduler", json={"task_id": "offsite_verify"})


def hidden_files(mc):
    return [p.name for p in mc.backups.dir.iterdir() if p.name.startswith(".mc-")]


@pytest.fixture
def nas(mc, tmp_path):
    folder = tmp_path / "nas"
    folder.mkdir()
    identity, recipient = new_key()
    mc.settings.update({"offsite.dir.path": str(folder), "offsite.dir.compress": "zstd",
                        "offsite.dir.age_recipients": recipient,
                        "offsite.age_identity": identity, "general.auto_backup": "true"},
                       actor="test")
    return folder


def test_a_drill_passes_then_fails_once_the_remote_copy_is_damaged(admin_client, mc, nas, clock):
    made = mc.backups.create(actor="test")
    passed = run_drill(admin_client)
    assert passed.status_code == 200, passed.json
    assert passed.json["message"] == "Restore drill passed: dir: passed (restored and compared)"
    [result] = [e["detail"] for e in mc.audit_store.query(action="offsite_verify")[0]]
    assert result == {"target": "dir", "ok": True, "name": f"{made.name}.zst.age",
                      "mode": "full", "message": result["message"], "unrecorded": []}
    assert "matches the backup that was sent" in result["message"]
    assert mc.audit_store.query(action="offsite_verify")[0][0]["actor"] == "alice"
    status = backup_status(mc)
    assert status["verdict"] == "pass", status["reasons"]
    assert status["offsite"][0]["drill"]["ok"] is True
    assert drill_series(mc, "dir") == 1
    assert hidden_files(mc) == [] and [b.name for b in mc.backups.list()] == [made.name]

    damage(nas / f"{made.name}.zst.age", "flipped")
    clock.advance(60)
    failed = run_drill(admin_client)
    assert failed.status_code == 500 and failed.json["ok"] is False
    assert failed.json["message"].startswith("Restore drill failed: dir: FAILED: cannot decrypt")
    [task] = [t for t in admin_client.get("/api/scheduler").json["tasks"]
              if t["id"] == "offsite_verify"]
    assert task["lastResult"]["ok"] is False
    status = backup_status(mc)
    assert status["verdict"] == "fail"
    assert any("the last restore drill of dir failed" in r for r in status["reasons"]), status
    assert status["offsite"][0]["drill"]["ok"] is False
    assert drill_series(mc, "dir") == 0
    assert len(mc.audit_store.query(action="offsite_verify")[0]) == 2
    assert hidden_files(mc) == [] and [b.name for b in mc.backups.list()] == [made.name]


def test_without_an_identity_only_the_header_and_stored_hash_are_checked(mc, nas):
    mc.settings.reset("offsite.age_identity", "test")
    made = mc.backups.create(actor="test")
    [result] = drill_all(mc, "test")
    assert result["ok"] is True and result["mode"] == "header_and_hash"
    assert "not decrypted" in result["message"]
    damage(nas / f"{made.name}.zst.age", "truncated")
    [result] = drill_all(mc, "test")
    assert result["ok"] is False and "SHA-256" in result["message"]


def test_a_target_with_no_copy_yet_has_nothing_to_drill(mc, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    mc.settings.update({"offsite.dir.path": str(empty)}, actor="test")
    [result] = drill_all(mc, "test")
    assert result["ok"] is True and result["mode"] is None and "no copy yet" in result["message"]
    mc.settings.update({"offsite.dir.path": str(tmp_path / "unmounted")}, actor="test")
    [result] = drill_all(mc, "test")
    assert result["ok"] is False and "cannot be read" in result["message"]


@pytest.mark.slow  # moto's S3 server is a real process: not in the quick lane
def test_a_drill_against_the_bucket(mc, s3, s3_server, bucket):
    identity, recipient = new_key()
    mc.settings.update({"offsite.s3.bucket": bucket, "offsite.s3.endpoint_url": s3_server.url,
                        "offsite.s3.region": "us-east-1", "offsite.s3.compress": "zstd",
                        "offsite.s3.age_recipients": recipient, "offsite.age_identity": identity},
                       actor="test")
    mc.backups.create(actor="test")
    [result] = drill_all(mc, "test")
    assert result["ok"] is True and result["mode"] == "full", result


def test_the_drill_runs_weekly_on_sundays_at_4_while_a_target_is_configured(smc, at, tmp_path):
    at("2026-03-07 12:00:00")  # a Saturday
    [task] = [t for t in smc.scheduler.status() if t.id == "offsite_verify"]
    assert task.enabled is False and task.schedule == "0 4 * * 0"
    assert task.next_run == ts("2026-03-08 04:00:00") * 1000
    nas = tmp_path / "nas"
    nas.mkdir()
    smc.settings.update({"offsite.dir.path": str(nas)}, actor="test")
    smc.backups.create(actor="test")
    assert [t.enabled for t in smc.scheduler.status() if t.id == "offsite_verify"] == [True]
    [caught_up] = smc.scheduler.run_due()  # last Sunday's slot, once, as for any task
    assert caught_up.ok is True
    at("2026-03-08 03:59:00")
    assert smc.scheduler.run_due() == []
    at("2026-03-08 04:00:30")
    [result] = smc.scheduler.run_due()
    assert result.ok is True and "dir: passed" in result.message
    event = smc.audit_store.query(action="offsite_verify")[0][0]
    assert event["actor"] == "scheduler" and event["detail"]["ok"] is True
    assert smc.scheduler.run_due() == []  # once per slot
    at("2026-03-15 04:00:10")
    assert len(smc.scheduler.run_due()) == 1
    smc.settings.reset("offsite.dir.path", "test")  # no target: the task is off
    at("2026-03-22 04:00:10")
    assert smc.scheduler.run_due() == []
