"""Alert channels: `POST /api/alerts/test` and `mission-control alerts test` through a real HTTP
ping receiver and a real SMTP server (aiosmtpd) on loopback; a failing channel warns the
verdict, counts in /metrics and clears when a delivery gets through again."""
import re

import pytest
from werkzeug.test import Client

from mission_control import SCHEDULER, hookimpl
from mission_control.web import WebApp
from tests.support.accounts import PASSWORD, logged_in_client
from tests.support.cli_run import run_cli
from tests.support.receivers import WAIT, MailReceiver, PingReceiver, free_port

TOKEN = "metrics-token-0123456789"


@pytest.fixture
def receiver():
    with PingReceiver() as running:
        yield running


@pytest.fixture
def smtp():
    with MailReceiver() as running:
        yield running


@pytest.fixture
def mc(make_mc):
    return make_mc(metrics_token=TOKEN)


def pings_to(mc, url, **more):
    mc.settings.update({"healthchecks.url": url, **more}, "alice")


def mails_to(mc, port):
    mc.settings.update({"email.smtp_host": "127.0.0.1", "email.smtp_port": port,
                        "email.starttls": False, "email.to": "ops@example.com"}, "alice")


def as_monitor(mc, path):
    return Client(WebApp(mc)).get(path, headers={"Authorization": f"Bearer {TOKEN}"})


def sample(text, name, channel):
    """The value of `name{channel="…"}` in a scrape, or None when the series is absent."""
    found = re.search(rf'^{name}\{{channel="{channel}"\}} (\S+)$', text, re.M)
    return None if found is None else float(found.group(1))


def test_a_test_goes_through_each_channel_and_says_what_each_answered(mc, admin_client, receiver,
                                                                     smtp):
    pings_to(mc, f"{receiver.url}/ping/abc")
    mails_to(mc, smtp.port)
    answer = admin_client.post("/api/alerts/test")
    assert answer.status_code == 200, answer.json
    assert answer.json["ok"] is True
    by_channel = {r["channel"]: r for r in answer.json["channels"]}
    assert by_channel["healthchecks"] == {"channel": "healthchecks", "ok": True,
                                          "answer": "HTTP 200: OK"}
    assert by_channel["email"]["ok"] is True
    assert by_channel["email"]["answer"].startswith("250 ")
    # The ping went to /log, which records it without changing the check's state.
    [(method, path, body)] = receiver.requests
    assert (method, path) == ("POST", "/ping/abc/log") and "alice" in body
    [mail] = smtp.messages
    assert mail["Subject"] == "[Mission Control] Test alert" and "alice" in mail.get_content()
    sent = mc.audit_store.query(action="alert_sent")[0]
    assert sorted((e["target_id"], e["detail"]["kind"], e["actor"]) for e in sent) == [
        ("email", "test", "alice"), ("healthchecks", "test", "alice")]


def test_a_failing_channel_warns_counts_and_clears_when_it_works_again(mc, admin_client,
                                                                      receiver):
    mc.backups.create(SCHEDULER)  # else "no backup has ever been made" fails the verdict
    pings_to(mc, f"{receiver.url}/p", **{"healthchecks.all_backups": True})
    mails_to(mc, free_port())  # nothing listens there
    receiver.status = 500
    answer = admin_client.post("/api/alerts/test").json
    assert answer["ok"] is False
    by_channel = {r["channel"]: r for r in answer["channels"]}
    assert by_channel["healthchecks"] == {"channel": "healthchecks", "ok": False,
                                          "answer": "HTTPError: HTTP Error 500: "
                                                    "Internal Server Error"}
    assert by_channel["email"]["ok"] is False
    assert "Connection refused" in by_channel["email"]["answer"]
    assert "127.0.0.1" not in str(answer) and str(mc.config.db_path.parent) not in str(answer)

    status = admin_client.get("/api/backup/status").json
    assert status["verdict"] == "warn"
    failing = [r for r in status["reasons"] if r.startswith("alert channel")]
    assert len(failing) == 2 and any("healthchecks" in r and "HTTP Error 500" in r
                                     for r in failing)
    assert {c["channel"]: c["ok"] for c in status["alerts"]} == {"email": False,
                                                                "healthchecks": False}
    # The metrics token reads the same verdict, without the receiver's words.
    monitored = as_monitor(mc, "/api/backup/status").json
    assert monitored["verdict"] == "warn" and "HTTP Error" not in str(monitored["reasons"])
    scrape = as_monitor(mc, "/metrics").get_data(as_text=True)
    assert sample(scrape, "mission_control_alert_failures_total", "healthchecks") == 1
    assert sample(scrape, "mission_control_alert_channel_ok", "healthchecks") == 0
    assert sample(scrape, "mission_control_alert_channel_ok", "email") == 0

    # The monitor answers again: the next backup's pings get through, the warning clears.
    receiver.status = 200
    mc.backups.create(SCHEDULER)
    assert receiver.wait_for(3) and mc.outbox.wait_idle(WAIT)
    recovered = [e for e in mc.audit_store.query(action="alert_sent")[0]
                 if e["target_id"] == "healthchecks"]
    assert len(recovered) == 1 and recovered[0]["detail"]["answer"] == "HTTP 200: OK"
    status = admin_client.get("/api/backup/status").json
    assert not any("healthchecks" in r for r in status["reasons"])
    assert any("alert channel email" in r for r in status["reasons"])
    scrape = as_monitor(mc, "/metrics").get_data(as_text=True)
    assert sample(scrape, "mission_control_alert_channel_ok", "healthchecks") == 1
    assert sample(scrape, "mission_control_alert_failures_total", "healthchecks") == 1  # a count

    # Mail turned off: a channel no longer configured does not warn (its count stays).
    mc.settings.update({"email.smtp_host": ""}, "alice")
    status = admin_client.get("/api/backup/status").json
    assert not any(r.startswith("alert channel") for r in status["reasons"])
    scrape = as_monitor(mc, "/metrics").get_data(as_text=True)
    assert sample(scrape, "mission_control_alert_channel_ok", "email") is None
    assert sample(scrape, "mission_control_alert_failures_total", "email") == 1


def test_only_an_admin_may_send_a_test(mc, client, users, receiver):
    pings_to(mc, f"{receiver.url}/p")
    assert client.post("/api/alerts/test").status_code == 401
    assert as_monitor(mc, "/api/alerts/test").status_code in (401, 405)
    assert Client(WebApp(mc)).post("/api/alerts/test", headers={
        "Authorization": f"Bearer {TOKEN}"}).status_code == 401
    assert client.post("/api/auth/login", json={"username": "olga",
                                                "password": PASSWORD}).status_code == 200
    assert client.post("/api/alerts/test").status_code == 403
    assert receiver.requests == []
    assert mc.audit_store.query(action="alert_sent")[1] == 0


def test_with_no_channel_configured_nothing_is_tested(mc, admin_client):
    assert admin_client.post("/api/alerts/test").json == {"ok": False, "channels": []}


class BadGauges:
    """A plugin whose gauges break the `metrics` hook's rules, beside one that keeps them."""

    @hookimpl
    def metrics(self, mc):
        return [{"name": "mission_control_backup_verdict", "help": "a host's name", "value": 1},
                {"name": "not mine", "help": "x", "value": 1},
                {"name": "mission_control_thing", "help": "no value"},
                {"name": "mission_control_widgets", "help": "widgets", "value": 3,
                 "labels": {"kind": "blue"}}]


class BrokenGauges:
    @hookimpl
    def metrics(self, mc):
        raise RuntimeError("boom")


def test_plugins_add_gauges_and_a_bad_one_is_left_out(make_mc):
    mc = make_mc(plugins=[BadGauges(), BrokenGauges()])
    text = logged_in_client(mc).get("/metrics").get_data(as_text=True)
    assert 'mission_control_widgets{kind="blue"} 3.0' in text
    assert "not mine" not in text and "mission_control_thing" not in text
    assert text.count("# TYPE mission_control_backup_verdict gauge") == 1
    assert text.count('mission_control_backup_verdict{verdict="pass"}') == 1
    # The disk guard's: free space and what it asks for (2 x the database by default).
    free = float(re.search(r"^mission_control_disk_free_bytes (\S+)$", text, re.M).group(1))
    needed = float(re.search(r"^mission_control_disk_guard_needed_bytes (\S+)$", text,
                             re.M).group(1))
    assert free > 0 and needed > 0


@pytest.mark.slow
def test_the_command_tests_each_channel_and_fails_when_one_does(make_mc, receiver, smtp):
    mc = make_mc()
    data_dir = mc.config.db_path.parent
    ran = run_cli("alerts", "test", "--data-dir", data_dir)
    assert ran.code == 1 and "no alert channel is configured" in ran.out
    pings_to(mc, f"{receiver.url}/p")
    mails_to(mc, smtp.port)
    ran = run_cli("alerts", "test", "--data-dir", data_dir)
    assert ran.code == 0, ran.err
    lines = sorted(ran.out.splitlines())
    assert lines[0].startswith("email\tok\t250 ") and lines[1] == "healthchecks\tok\tHTTP 200: OK"
    receiver.status = 404
    ran = run_cli("alerts", "test", "--data-dir", data_dir, "--json")
    assert ran.code == 1
    assert {r["channel"]: r["ok"] for r in ran.json["channels"]} == {"email": True,
                                                                      "healthchecks": False}
    assert ran.json["ok"] is False and "HTTP Error 404" in str(ran.json)
    assert mc.audit_store.query(action="alert_failed")[0][0]["actor"].startswith("cli")
