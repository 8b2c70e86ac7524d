"""The built-in disk-space guard refuses a backup with 507 when the backups folder is too full."""
import shutil

from mission_control import human_size
from mission_control.builtins.disk_guard import database_size, needed_bytes


def test_refuses_with_507_and_a_clear_reason(admin_client, mc):
    free_mb = shutil.disk_usage(mc.backups.dir).free // 2**20
    mc.settings.update({"diskguard.min_free_mb": free_mb + 10**6}, actor="test")
    refused = admin_client.post("/api/backup")
    assert refused.status_code == 507
    assert refused.json["error"].startswith("Not enough free disk space for a backup:")
    assert str(mc.backups.dir) not in refused.json["error"]
    assert mc.backups.list() == []
    [event] = mc.audit_store.query(action="backup_refused")[0]
    assert event["detail"]["status"] == 507


def test_default_factor_lets_a_normal_backup_through(admin_client, mc):
    assert mc.settings.get("diskguard.factor") == 2
    assert admin_client.post("/api/backup").status_code == 200


def test_factor_is_measured_against_the_database_and_its_wal(mc):
    size = database_size(mc.config.db_path)
    assert size >= mc.config.db_path.stat().st_size > 0
    assert needed_bytes(size, 2, 0) == 2 * size
    assert needed_bytes(size, 0, 1) == 2**20
    assert human_size(3 * 2**30) == "3.0 GiB" and human_size(512) == "512 bytes"


def test_factor_refuses_a_database_too_big_for_the_disk(admin_client, mc):
    # Twice the free space now: other processes may free space before the backup looks again.
    free = 2 * shutil.disk_usage(mc.backups.dir).free
    size = database_size(mc.config.db_path)
    factor = free // size + 1
    if factor > 1000:  # the disk is too roomy for the factor alone; the guard is still exercised
        mc.settings.update({"diskguard.factor": 1000,
                            "diskguard.min_free_mb": free // 2**20 + 1}, actor="test")
    else:
        mc.settings.update({"diskguard.factor": factor}, actor="test")
    assert admin_client.post("/api/backup").status_code == 507


def test_zero_turns_it_off(admin_client, mc):
    mc.settings.update({"diskguard.factor": 0, "diskguard.min_free_mb": 0}, actor="test")
    assert admin_client.post("/api/backup").status_code == 200
