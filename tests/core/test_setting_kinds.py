"""Setting kinds through the real API: values that can never work are 400s, what passes is usable."""
import ipaddress
import os
import re
from email import message_from_bytes, policy
from email.utils import getaddresses
from urllib.parse import urlsplit

import pytest
from croniter import croniter
from hypothesis import HealthCheck, given, settings, strategies as st
from werkzeug.test import Client

from mission_control import CRON, EMAIL, EMAILS, HOST, PATH, URL
from mission_control.builtins.email_alerts import build_message
from mission_control.builtins.pitr import RETENTION
from mission_control.setting_kinds import duration_seconds
from mission_control.web import WebApp
from mission_control.web.openapi import setting_value_schema

KEY = "kinds-key-0123456789"

#: A setting of each kind, with a value a real user would type.
BY_KIND = {"url": ("offsite.s3.endpoint_url", "https://s3.example.com"),
           "host": ("email.smtp_host", "smtp.example.com"),
           "path": ("offsite.dir.path", "/mnt/nas"),
           "email": ("email.from", "Backups <mc@example.com>"),
           "emails": ("email.to", "ops@example.com, boss@example.com"),
           "cron": ("general.auto_backup_schedule", "0 3 * * *"),
           "duration": ("pitr.retention", "72h")}
KINDS = {"url": URL, "host": HOST, "path": PATH, "email": EMAIL, "emails": EMAILS, "cron": CRON,
         "duration": RETENTION}
SEPARATORS = ["\r", "\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


def put(client, key, value):
    return client.put("/api/settings", json={"settings": {key: value}})


def stored(client, key):
    return {s["key"]: s["value"] for s in client.get("/api/settings").json["settings"]}[key]


@pytest.mark.parametrize("key, value, reason", [
    ("offsite.s3.endpoint_url", "ftp://x", "must be an http(s) URL with a host"),
    ("offsite.s3.endpoint_url", "http://", "must be an http(s) URL with a host"),
    ("offsite.s3.endpoint_url", "not a url", "must be an http(s) URL with a host"),
    ("offsite.s3.endpoint_url", "http://minio:pw@127.0.0.1:9000", "must not hold a user name"),
    ("healthchecks.url", "javascript:alert(1)", "must be an http(s) URL with a host"),
    ("pitr.s3_endpoint", "http:///path", "must be an http(s) URL with a host"),
    ("offsite.dir.path", "relative/path", "must be an absolute path"),
    ("audit.jsonl.path", "audit.jsonl", "must be an absolute path"),
    ("email.smtp_host", "a b\tc", "must be a host name or an IP address"),
    ("email.from", "not an address", "must be an e-mail address"),
    # Python's mail parser reads no address from these (found by the property test below).
    ("email.from", ".<0@A>", "must be an e-mail address"),
    ("email.from", "backups@example.com.", "must be an e-mail address"),
    ("email.to", "ops@example.com, nobody", "must be an e-mail address"),
])
def test_values_that_can_never_work_are_refused_and_change_nothing(admin_client, key, value,
                                                                   reason):
    before = stored(admin_client, key)
    answer = put(admin_client, key, value)
    assert answer.status_code == 400
    [detail] = answer.json["details"]
    assert detail.startswith(f"{key}: {reason}")
    assert stored(admin_client, key) == before


@pytest.mark.parametrize("key, value", [
    # The README's and docs' examples, and what the tests configure.
    ("healthchecks.url", "https://hc-ping.com/0f3a2b4c-1111-2222-3333-444455556666"),
    ("healthchecks.url", "http://kuma:3001/api/push/x?status=up"),
    ("email.smtp_host", "smtp.example.com"), ("email.smtp_host", "127.0.0.1"),
    ("email.to", "ops@example.com"), ("email.to", "ops@example.com, boss@example.com"),
    ("email.from", "mc@example.com"), ("email.from", "Mission Control <mc@example.com>"),
    ("offsite.dir.path", "/mnt/nas/mission-control"), ("offsite.s3.endpoint_url", ""),
    ("offsite.s3.endpoint_url", "http://127.0.0.1:9000"),
    ("pitr.s3_endpoint", "https://[::1]:9000"),
    ("audit.jsonl.path", "/var/log/mission-control/audit.jsonl"),
    ("pitr.retention", "72h"), ("pitr.retention", "1h30m"), ("pitr.retention", "8760h"),
    ("general.auto_backup_schedule", "0 3 * * *"), ("general.auto_backup_schedule", "0 */6 * * *"),
    ("general.auto_backup_schedule", "30 2 * * 1"), ("general.auto_backup_schedule", "*/5 * * * *"),
    ("general.auto_backup_schedule", "0 3 L * *"), ("general.auto_backup_schedule", "0 3 * * 5#1"),
    ("general.auto_backup_schedule", "0 0 1 1 *"), ("general.auto_backup_schedule", "0 0 L 2 *"),
    ("general.auto_backup_schedule", "0 3 * JAN-MAR mon-fri"),
    ("offsite.verify_schedule", "0 4 * * 0"),
])
def test_what_was_valid_stays_valid(admin_client, key, value):
    answer = put(admin_client, key, value)
    assert answer.status_code == 200, answer.json
    assert stored(admin_client, key) == value


@pytest.mark.parametrize("schedule, reason", [
    ("R/5 * * * *", "is not a plain cron field"),   # random: every 0.7-4 minutes
    ("R R * * *", "is not a plain cron field"),     # made GET /api/scheduler answer 500
    ("H 3 * * *", "is not a plain cron field"),
    ("0 3 ? * *", "is not a plain cron field"),
    ("0 3 1W * *", "is not a plain cron field"),
    ("@reboot", "must be a cron expression of 5 fields"),
    ("@daily * * * *", "is not a plain cron field"),
    ("0 3 * * * 2026", "must be a cron expression of 5 fields"),
    ("0\u20283 * * *", "without control characters or line separators"),
    ("0 0 30 2 *", "never runs"),
    ("0 0 31 2 *", "never runs"),
    ("0 0 29 2 *", "must run at least once a year"),   # leap days only: every 4 years
    ("0 0 * 2 1#5", "must run at least once a year"),  # a fifth Monday in February: decades apart
])
def test_schedules_that_are_not_plain_or_yearly_are_refused(admin_client, schedule, reason):
    for key in ("general.auto_backup_schedule", "offsite.verify_schedule"):
        answer = put(admin_client, key, schedule)
        assert answer.status_code == 400
        [detail] = answer.json["details"]
        assert detail.startswith(f"{key}: ") and reason in detail
    preview = admin_client.get("/api/scheduler/preview", query_string={"schedule": schedule})
    assert preview.status_code == 400 and reason in preview.json["details"][0]


def test_a_random_schedule_stored_before_the_check_no_longer_breaks_the_scheduler(admin_client,
                                                                                  mc):
    with mc.db.transaction() as conn:
        conn.execute("INSERT INTO settings (key, value, updated_at) VALUES (?, ?, 0)",
                     ("general.auto_backup_schedule", "R R * * *"))
    answer = admin_client.get("/api/scheduler")
    assert answer.status_code == 200
    assert answer.json["tasks"][0]["schedule"] == "0 3 * * *"


@pytest.mark.slow  # 60 cases through the real API: ~8 s
@pytest.mark.parametrize("separator", SEPARATORS)
@pytest.mark.parametrize("key, value", [
    ("general.site_name", "Mission{}Control"), ("email.from", "Ops{}Team <mc@example.com>"),
    ("email.to", "ops@example.com,{}boss@example.com"), ("email.smtp_host", "smtp{}.example.com"),
    ("email.username", "mc{}user"), ("email.password", "pass{}word")])
def test_line_separators_never_reach_a_mail_header(admin_client, mc, separator, key, value):
    answer = put(admin_client, key, value.format(separator))
    assert answer.status_code == 400
    assert answer.json["details"][0].startswith(f"{key}: ")
    assert mc.audit_store.query(action="settings_update")[1] == 0


@pytest.mark.parametrize("value", ["8761h", "525601m", "99999999999999999999h", "0h", "59s",
                                   "3 days", "72"])
def test_pitr_retention_is_bounded(admin_client, value):
    answer = put(admin_client, "pitr.retention", value)
    assert answer.status_code == 400
    assert answer.json["details"] == [
        "pitr.retention: must be a duration such as 72h, 90m or 1h30m, from 1m to 8760h"]
    assert stored(admin_client, "pitr.retention") == "72h"


def test_the_openapi_document_names_each_kind(client):
    properties = client.get("/api/openapi.json").json["components"]["schemas"][
        "SettingsChange"]["properties"]
    for kind, (key, example) in BY_KIND.items():
        schema = properties[key]
        assert schema["x-kind"] == kind and re.search(schema["pattern"], example), key
    assert not re.search(properties["offsite.dir.path"]["pattern"], "relative/path")
    assert not re.search(properties["healthchecks.url"]["pattern"], "javascript:alert(1)")
    assert not re.search(properties["general.site_name"]["pattern"], "a\u2028b")


def usable(kind, value, secret):
    """Whether `value`, accepted and stored for `kind`, is what that kind promises."""
    if kind == "url":
        parts = urlsplit(value)
        return parts.scheme.lower() in ("http", "https") and bool(parts.hostname) and \
            (secret or "@" not in parts.netloc) and (parts.port is None or parts.port < 65536)
    if kind == "host":
        try:
            ipaddress.ip_address(value)
            return True
        except ValueError:
            return value.encode("idna").decode() == value and " " not in value
    if kind == "path":
        return os.path.isabs(value)
    if kind in ("email", "emails"):
        addresses = getaddresses([value])
        return addresses and all(a.count("@") == 1 and a.split("@")[0] for _, a in addresses)
    if kind == "cron":
        return len(value.split(" ")) == 5 and croniter.is_valid(value)
    return 60 <= duration_seconds(value) <= 365 * 86400


#: Text near each kind's shape: its example cut and spliced with arbitrary characters.
def near(example):
    alphabet = st.sampled_from(list(example) + list(":/@<>,.# *-?R\\[]%_\t") + SEPARATORS)
    return st.one_of(st.text(), st.text(alphabet, max_size=40),
                     st.builds(lambda a, b, c: a + b + c, st.text(max_size=3),
                               st.just(example), st.text(alphabet, max_size=6)))


@pytest.mark.parametrize("kind", sorted(BY_KIND))
def test_each_kind_accepts_only_usable_values_and_a_refusal_changes_nothing(make_mc, kind):
    """Property: for arbitrary text, an accepted value is usable as its kind and matches the
    OpenAPI pattern; a refused one is a 400 that leaves the stored value as it was."""
    mc = make_mc(api_key=KEY)
    client = Client(WebApp(mc))
    headers = {"x-api-key": KEY}
    key, example = BY_KIND[kind]
    definition = mc.settings.definitions[key]
    assert definition.kind.name == KINDS[kind].name
    schema = setting_value_schema(definition)

    @settings(max_examples=150, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(value=near(example))
    def check(value):
        before = mc.settings.get_raw(key)
        answer = client.put("/api/settings", json={"settings": {key: value}}, headers=headers)
        after = mc.settings.get_raw(key)
        if answer.status_code == 200:
            assert usable(kind, after, definition.secret) or after == "", (value, after)
            assert re.search(schema["pattern"], value), (value, schema["pattern"])
            assert mc.settings.get(key) == after  # reads back as written, not as the default
        else:
            assert answer.status_code == 400, answer.json
            assert answer.json["details"][0].startswith(f"{key}: ")
            assert after == before
    check()


@given(site=st.text(max_size=100), sender=near("Backups <mc@example.com>"))
@settings(max_examples=200, deadline=None)
def test_what_the_settings_accept_always_makes_a_mail(site, sender):
    """Every accepted site name and sender builds a message the mail plugin can send."""
    from mission_control.settings import HOST_SETTINGS
    [site_name] = [d for d in HOST_SETTINGS if d.key == "general.site_name"]
    try:
        config = {"site": site_name.normalize(site), "from": EMAIL.clean(sender),
                  "to": ["ops@example.com"]}
    except ValueError:
        return
    if not config["from"]:
        return
    sent = build_message(config, "Backup FAILED", ["reason"], 1_764_730_800).as_bytes()
    received = message_from_bytes(sent, policy=policy.default)
    assert set(received.keys()) == {"Subject", "From", "To", "Date", "Message-ID",
                                    "Content-Type", "Content-Transfer-Encoding", "MIME-Version"}
    assert received["Subject"].endswith("] Backup FAILED")
    assert received["From"].addresses[0].addr_spec == getaddresses([config["from"]])[0][1]
