"""Restore drills: the newest off-site copy is fetched, unpacked, checked and compared, then deleted."""
import pytest

from mission_control import metrics
from mission_control.health import backup_status
from mission_control.offsite_drill import drill_all

from .test_offsite_crypt import new_key
from .test_offsite_fetch import damage

pytest.importorskip("pyrage")
pytest.importorskip("zstandard")
prometheus = pytest.importorskip("prometheus_client.parser")


def drill_series(mc, target):
    body, _ = metrics.render(mc)
    values = {s.name + str(sorted(s.labels.items())): s.value
              for family in prometheus.text_string_to_metric_families(body.decode())
              for s in family.samples}
    return values.get(f"mission_control_offsite_drill_ok[('target', '{target}')]")


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


def test_a_drill_passes_then_fails_once_the_remote_copy_is_damaged(mc, nas, clock):
    made = mc.backups.create(actor="test")
    [passed] = drill_all(mc, "test")
    assert passed["ok"] is True, passed
    [result] = [e["detail"] for e in mc.audit_store.query(action="offsite_verify")[0]]
    assert result == {"target": "dir", "ok": True, "name": f"{made.name}.zst.age",
                      "mode": "full", "message": result["message"]}
    assert "matches the backup that was sent" in result["message"]
    status = backup_status(mc)
    assert status["verdict"] == "pass", status["reasons"]
    assert status["offsite"][0]["drill"]["ok"] is True
    assert drill_series(mc, "dir") == 1
    assert hidden_files(mc) == [] and [b.name for b in mc.backups.list()] == [made.name]

    damage(nas / f"{made.name}.zst.age", "flipped")
    clock.advance(60)
    [failed] = drill_all(mc, "test")
    assert failed["ok"] is False and "decrypt" in failed["message"]
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


def test_a_drill_of_an_empty_target_fails(mc, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    mc.settings.update({"offsite.dir.path": str(empty)}, actor="test")
    [result] = drill_all(mc, "test")
    assert result["ok"] is False and "no copy" in result["message"]


def test_a_drill_against_the_bucket(mc, s3, s3_server, bucket):
    identity, recipient = new_key()
    mc.settings.update({"offsite.s3.bucket": bucket, "offsite.s3.endpoint_url": s3_server.url,
                        "offsite.s3.region": "us-east-1", "offsite.s3.compress": "zstd",
                        "offsite.s3.age_recipients": recipient, "offsite.age_identity": identity},
                       actor="test")
    mc.backups.create(actor="test")
    [result] = drill_all(mc, "test")
    assert result["ok"] is True and result["mode"] == "full", result
