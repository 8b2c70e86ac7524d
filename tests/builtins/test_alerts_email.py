"""The built-in `email_alerts` plugin against a real SMTP server (aiosmtpd) on loopback."""
import shutil

import pytest

from mission_control import SCHEDULER, BackupRefused
from tests.support.accounts import PASSWORD
from tests.support.receivers import WAIT, MailReceiver, free_port
from tests.support.servers import Http

HOUR = 3600


@pytest.fixture
def smtp():
    with MailReceiver() as running:
        yield running


def configure(mc, port, **more):
    mc.settings.update({"email.smtp_host": "127.0.0.1", "email.smtp_port": port,
                        "email.starttls": False, "email.to": "ops@example.com, boss@example.com",
                        **more}, "alice")


def refuse_backups(mc):
    free_mb = shutil.disk_usage(mc.backups.dir).free // 2**20
    mc.settings.update({"diskguard.min_free_mb": free_mb + 10**6}, "alice")


def body(message):
    return message.get_content()


def by_subject(smtp, count):
    return {m["Subject"]: m for m in smtp.wait_for(count)}


def test_a_refused_backup_is_mailed_with_its_reason(mc, users, live_server, smtp):
    configure(mc, smtp.port)
    refuse_backups(mc)
    http = Http(live_server)
    assert http("POST", "/api/auth/login", {"username": "alice", "password": PASSWORD})[0] == 200
    assert http("POST", "/api/backup")[0] == 507
    # No backup was ever made and auto-backup is off: the verdict turns to fail as well.
    mails = by_subject(smtp, 2)
    refused = mails["[Mission Control] Backup refused"]
    assert "Reason: Not enough free disk space for a backup" in body(refused)
    assert "Asked by: alice" in body(refused)
    assert refused["From"] == "ops@example.com"
    assert refused["To"] == "ops@example.com, boss@example.com"
    assert smtp.envelopes[0].rcpt_tos == ["ops@example.com", "boss@example.com"]
    status = mails["[Mission Control] Backup health is FAIL"]
    assert "- no backup has ever been made" in body(status)
    assert mc.outbox.wait_idle(WAIT)
    sent = mc.audit_store.query(action="alert_sent")[0]
    assert sorted(e["detail"]["kind"] for e in sent) == ["backup", "status"]


def test_a_failed_backup_is_mailed(make_mc, smtp):
    mc = make_mc()
    configure(mc, smtp.port, **{"email.from": "mc@example.com"})
    shutil.rmtree(mc.backups.dir)
    mc.backups.dir.write_bytes(b"a file where the backups folder should be")
    with pytest.raises(Exception):
        mc.backups.create(SCHEDULER)
    mails = by_subject(smtp, 2)
    failed = mails["[Mission Control] Backup failed"]
    assert "Reason: FileExistsError: File exists" in body(failed)
    assert "- health check failed: The backups folder cannot be read" in \
        body(mails["[Mission Control] Backup health is FAIL"])
    assert "Asked by: scheduler" in body(failed) and failed["From"] == "mc@example.com"


def test_one_mail_per_kind_per_hour(make_mc, clock, smtp):
    mc = make_mc()
    configure(mc, smtp.port)
    refuse_backups(mc)
    for _ in range(3):
        with pytest.raises(BackupRefused):
            mc.backups.create(SCHEDULER)
        clock.advance(HOUR // 4)
    assert mc.outbox.wait_idle(WAIT)
    assert sorted(smtp.subjects()) == ["[Mission Control] Backup health is FAIL",
                                       "[Mission Control] Backup refused"]
    clock.advance(HOUR)
    with pytest.raises(BackupRefused):
        mc.backups.create(SCHEDULER)
    assert smtp.wait_for(3)[2]["Subject"] == "[Mission Control] Backup refused"
    assert mc.outbox.wait_idle(WAIT) and len(smtp.messages) == 3  # the verdict stayed fail


def test_a_failed_offsite_copy_is_mailed(make_mc, smtp, tmp_path):
    mc = make_mc()
    configure(mc, smtp.port)
    mc.settings.update({"offsite.dir.path": str(tmp_path / "unmounted")}, "alice")
    made = mc.backups.create(SCHEDULER)
    assert made.path.exists()
    mails = by_subject(smtp, 2)
    mail = mails["[Mission Control] Off-site copy to dir failed"]
    assert "is the share mounted?" in body(mail) and f"Backup: {made.name}" in body(mail)
    assert str(tmp_path) not in body(mail)
    # A configured target whose last copy failed turns the verdict to fail, naming the target.
    assert "dir" in body(mails["[Mission Control] Backup health is FAIL"])


def test_health_changes_are_audited_and_only_fail_is_mailed(make_mc, clock, smtp):
    mc = make_mc()
    configure(mc, smtp.port)
    mc.backups.create("alice")
    assert mc.outbox.wait_idle(WAIT)
    [change] = mc.audit_store.query(action="health_changed")[0]
    assert change["detail"]["from"] is None and change["detail"]["to"] != "fail"
    assert smtp.messages == []
    clock.advance(8 * 24 * HOUR)  # the last good backup is now 8 days old
    refuse_backups(mc)
    with pytest.raises(BackupRefused):
        mc.backups.create("alice")
    status = by_subject(smtp, 2)["[Mission Control] Backup health is FAIL"]
    assert "last good backup is 8 days old" in body(status)
    newest = mc.audit_store.query(action="health_changed")[0][0]
    assert newest["detail"]["to"] == "fail"


def test_health_turning_to_fail_with_time_alone_is_mailed(make_mc, clock, smtp):
    mc = make_mc()
    configure(mc, smtp.port)
    mc.backups.create("alice")
    assert mc.outbox.wait_idle(WAIT) and smtp.messages == []
    clock.advance(8 * 24 * HOUR)  # no event at all: only time passes
    mc.scheduler.start()  # a running service checks every few minutes
    [status] = smtp.wait_for(1)
    assert status["Subject"] == "[Mission Control] Backup health is FAIL"
    assert "last good backup is 8 days old" in body(status)
    assert mc.outbox.wait_idle(WAIT)
    newest = mc.audit_store.query(action="health_changed")[0][0]
    assert newest["detail"]["to"] == "fail" and newest["actor"] == "scheduler"


def test_off_until_configured(make_mc, smtp):
    mc = make_mc()
    refuse_backups(mc)
    with pytest.raises(BackupRefused):
        mc.backups.create(SCHEDULER)
    assert mc.outbox.wait_idle(WAIT) and smtp.messages == []
    assert mc.audit_store.query(action="health_changed")[1] == 0


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_login_and_the_password_stays_secret(make_mc):
    mc = make_mc()
    with MailReceiver(login=("mc", "s3cret-pass")) as smtp:
        configure(mc, smtp.port, **{"email.username": "mc", "email.password": "s3cret-pass"})
        refuse_backups(mc)
        with pytest.raises(BackupRefused):
            mc.backups.create(SCHEDULER)
        assert smtp.wait_for(2)
    assert "email.password" not in {s["key"] for s in mc.settings.list()}
    [update] = [e for e in mc.audit_store.query(action="settings_update")[0]
                if "email.password" in e["detail"]["changes"]]
    assert update["detail"]["changes"]["email.password"]["new"] == "[secret]"


def test_an_unreachable_mail_server_is_audited(make_mc):
    mc = make_mc()
    mc.outbox.retry_delays = (0.01, 0.01)
    configure(mc, free_port())
    refuse_backups(mc)
    with pytest.raises(BackupRefused):
        mc.backups.create(SCHEDULER)
    assert mc.outbox.wait_idle(WAIT)
    failures = mc.audit_store.query(action="alert_failed")[0]
    assert sorted(f["detail"]["kind"] for f in failures) == ["backup", "status"]
    assert all("Connection refused" in f["detail"]["reason"] for f in failures)
    assert mc.audit_store.query(action="alert_sent")[1] == 0
