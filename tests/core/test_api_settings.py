"""`/api/settings` through the real WSGI app: shapes, validation, all-or-nothing, audit, plugins."""
import pytest
from werkzeug.test import Client

from mission_control import SettingDef, hookimpl
from mission_control.web import WebApp
from tests.support.accounts import Auth

HOST_KEYS = ["general.auto_backup", "general.auto_backup_schedule",
             "general.backup_retention_count", "general.safety_copies_keep", "general.site_name"]


def values(client):
    return {s["key"]: s["value"] for s in client.get("/api/settings").json["settings"]}


def test_list_shape_and_defaults(admin_client):
    response = admin_client.get("/api/settings")
    assert response.status_code == 200 and response.content_type == "application/json"
    body = response.json
    general = body["grouped"]["general"]
    assert [s["key"] for s in general] == HOST_KEYS
    assert [s for s in body["settings"] if s["category"] == "general"] == general
    assert sorted(body["grouped"]) == sorted({s["category"] for s in body["settings"]})
    auto = general[0]
    assert auto == {"key": "general.auto_backup", "value": "false", "category": "general",
                    "description": auto["description"], "updated_by": None, "updated_at": None,
                    "is_default": True}
    assert values(admin_client).items() >= {"general.auto_backup": "false",
                                            "general.backup_retention_count": "10",
                                            "general.site_name": "Mission Control"}.items()


def test_seed_put_enables_auto_backup_and_is_audited(admin_client, mc, clock):
    response = admin_client.put("/api/settings",
                                data='{"settings": {"general.auto_backup": "true"}}',
                                headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert response.json == {"updated": ["general.auto_backup"], "count": 1}
    [auto] = [s for s in admin_client.get("/api/settings").json["settings"]
              if s["key"] == "general.auto_backup"]
    assert (auto["value"], auto["is_default"], auto["updated_by"], auto["updated_at"]) == \
        ("true", False, "alice", int(clock.now))
    assert mc.settings.get("general.auto_backup") is True
    [event] = mc.audit_store.query(action="settings_update")[0]
    assert event["actor"] == "alice"
    assert event["detail"] == {"changes": {"general.auto_backup": {"old": "false", "new": "true"}}}


@pytest.mark.parametrize("given, stored", [
    (True, "true"), (False, "false"), ("TRUE", "true"), (" false ", "false"),
])
def test_bool_accepts_json_booleans_and_strings(admin_client, given, stored):
    assert admin_client.put("/api/settings",
                            json={"settings": {"general.auto_backup": given}}).status_code == 200
    assert values(admin_client)["general.auto_backup"] == stored


@pytest.mark.parametrize("given, stored", [(25, "25"), ("7", "7"), (" 1000 ", "1000"), (1, "1")])
def test_int_accepts_numbers_and_numeric_strings(admin_client, given, stored):
    body = {"settings": {"general.backup_retention_count": given}}
    assert admin_client.put("/api/settings", json=body).status_code == 200
    assert values(admin_client)["general.backup_retention_count"] == stored


@pytest.mark.parametrize("key, value, detail", [
    ("general.nope", "x", "general.nope: unknown setting"),
    ("general.auto_backup", "yes", 'general.auto_backup: must be "true" or "false"'),
    ("general.auto_backup", 1, 'general.auto_backup: must be "true" or "false"'),
    ("general.backup_retention_count", 0, "general.backup_retention_count: must be between 1 and 1000"),
    ("general.backup_retention_count", "1001", "general.backup_retention_count: must be between 1 and 1000"),
    ("general.backup_retention_count", "1_0", "general.backup_retention_count: must be a whole number"),
    ("general.backup_retention_count", 2.5, "general.backup_retention_count: must be a whole number"),
    ("general.backup_retention_count", True, "general.backup_retention_count: must be a whole number"),
    ("general.backup_retention_count", "\u0661\u0660", "general.backup_retention_count: must be a whole number"),
    ("general.site_name", 5, "general.site_name: must be a string"),
    ("general.site_name", "a\x00b", "general.site_name: must be at most 100 printable characters"),
    ("general.site_name", "x" * 101, "general.site_name: must be at most 100 printable characters"),
])
def test_bad_values_are_refused(admin_client, key, value, detail):
    response = admin_client.put("/api/settings", json={"settings": {key: value}})
    assert response.status_code == 400
    assert response.json == {"error": "Validation failed", "details": [detail]}


def test_invalid_settings_never_half_apply(admin_client, mc):
    before = values(admin_client)
    response = admin_client.put("/api/settings", json={"settings": {
        "general.site_name": "Renamed",              # fine
        "general.auto_backup": "true",               # fine
        "general.backup_retention_count": "5000",    # out of range
        "general.unknown": "1",                      # unknown
    }})
    assert response.status_code == 400
    assert response.json["details"] == [
        "general.backup_retention_count: must be between 1 and 1000",
        "general.unknown: unknown setting"]
    assert values(admin_client) == before
    assert mc.audit_store.query(action="settings_update")[1] == 0


@pytest.mark.parametrize("data, status, body", [
    ("", 400, {"error": "Request body required"}),
    ("{not json", 400, {"error": "Request body required"}),
    ("[]", 400, {"error": "Validation failed", "details": ["body: must be a JSON object with settings"]}),
    ("{}", 400, {"error": "Validation failed", "details": ["settings: is required"]}),
    ('{"settings": {}, "x": 1}', 400,
     {"error": "Validation failed", "details": ["settings: must not be empty", "x: unknown field"]}),
    ('{"settings": {}}', 400,
     {"error": "Validation failed", "details": ["settings: must not be empty"]}),
    ('{"settings": ["general.auto_backup"]}', 400,
     {"error": "Validation failed", "details": ["settings: must be a JSON object"]}),
])
def test_bad_put_bodies(admin_client, data, status, body):
    response = admin_client.put("/api/settings", data=data,
                                headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json) == (status, body)


def test_delete_resets_to_the_default(admin_client, mc):
    admin_client.put("/api/settings", json={"settings": {"general.backup_retention_count": "3"}})
    response = admin_client.delete("/api/settings", json={"key": "general.backup_retention_count"})
    assert response.status_code == 200
    assert response.json == {"reset": "general.backup_retention_count", "default_value": "10"}
    [item] = [s for s in admin_client.get("/api/settings").json["settings"]
              if s["key"] == "general.backup_retention_count"]
    assert (item["value"], item["is_default"], item["updated_by"]) == ("10", True, None)
    [event] = mc.audit_store.query(action="settings_reset")[0]
    assert event["actor"] == "alice" and event["target_id"] == "general.backup_retention_count"
    again = admin_client.delete("/api/settings", json={"key": "general.backup_retention_count"})
    assert (again.status_code, again.json) == (404, {"error": "Setting is already at its default"})


@pytest.mark.parametrize("data, status, body", [
    ('{"key": "general.nope"}', 404, {"error": "Setting not found"}),
    ("", 400, {"error": "Request body required"}),
    ("{}", 400, {"error": "Validation failed", "details": ["key: is required"]}),
    ('{"key": 3}', 400, {"error": "Validation failed", "details": ["key: must be a string"]}),
    ('{"key": " "}', 400, {"error": "Validation failed", "details": ["key: must be a setting's key"]}),
    ('{"key": "general.site_name", "value": 1}', 400,
     {"error": "Validation failed", "details": ["value: unknown field"]}),
])
def test_bad_delete_bodies(admin_client, data, status, body):
    response = admin_client.delete("/api/settings", data=data)
    assert (response.status_code, response.json) == (status, body)


@pytest.mark.parametrize("user, status", [(None, 401), ("vic", 403), ("olga", 403)])
@pytest.mark.parametrize("method, body", [("GET", None), ("PUT", {"settings": {"general.auto_backup": "true"}}),
                                          ("DELETE", {"key": "general.auto_backup"})])
def test_admin_only(client, auth, mc, user, status, method, body):
    if user:
        auth.login(user)
    response = client.open("/api/settings", method=method, json=body)
    assert response.status_code == status
    assert mc.settings.get("general.auto_backup") is False


class OffsitePlugin:
    @hookimpl
    def register_settings(self):
        return [SettingDef("demo.keep_days", "int", "30", "Days to keep copies", "demo",
                           minimum=1, maximum=365),
                SettingDef("demo.token", "text", "", "Upload token", "demo", secret=True)]


@pytest.fixture
def plugin_client(make_mc):
    mc = make_mc(plugins=[OffsitePlugin()])
    mc.users.add("alice", "correct-horse-battery", role="admin")
    client = Client(WebApp(mc))
    assert Auth(client).login().status_code == 200
    client.mc = mc
    return client


def test_plugin_settings_are_listed_validated_and_grouped(plugin_client):
    body = plugin_client.get("/api/settings").json
    assert [s["key"] for s in body["grouped"]["general"]] == HOST_KEYS
    assert [s["key"] for s in body["grouped"]["demo"]] == ["demo.keep_days"]
    bad = plugin_client.put("/api/settings", json={"settings": {"demo.keep_days": 400}})
    assert bad.json["details"] == ["demo.keep_days: must be between 1 and 365"]
    ok = plugin_client.put("/api/settings", json={"settings": {"demo.keep_days": 14}})
    assert ok.status_code == 200 and plugin_client.mc.settings.get("demo.keep_days") == 14


def test_secrets_are_writable_but_never_returned(plugin_client):
    response = plugin_client.put("/api/settings", json={"settings": {"demo.token": "s3cr3t-value"}})
    assert response.json == {"updated": ["demo.token"], "count": 1}
    assert plugin_client.mc.settings.get("demo.token") == "s3cr3t-value"
    assert b"s3cr3t-value" not in plugin_client.get("/api/settings").data
    assert b"s3cr3t-value" not in plugin_client.get("/api/audit").data
    [event] = plugin_client.mc.audit_store.query(action="settings_update")[0]
    assert event["detail"]["changes"]["demo.token"] == {"old": "[secret]", "new": "[secret]"}


def test_a_secret_is_listed_only_as_set_or_not_and_cleared_with_an_empty_value(plugin_client):
    def token():
        [entry] = [s for s in plugin_client.get("/api/settings").json["secrets"]
                   if s["key"] == "demo.token"]
        return entry
    assert token() == {"key": "demo.token", "description": "Upload token", "category": "demo",
                       "is_set": False, "updated_by": None, "updated_at": None}
    plugin_client.put("/api/settings", json={"settings": {"demo.token": "s3cr3t-value"}})
    assert token()["is_set"] is True and token()["updated_by"] == "alice"
    assert "value" not in token()
    plugin_client.put("/api/settings", json={"settings": {"demo.token": ""}})
    assert token()["is_set"] is False and plugin_client.mc.settings.get("demo.token") == ""


def test_a_failing_listener_does_not_fail_the_update(admin_client, mc):
    def broken(keys):
        raise RuntimeError("listener bug")
    mc.settings.on_change(broken)
    response = admin_client.put("/api/settings", json={"settings": {"general.site_name": "Ops"}})
    assert response.status_code == 200 and mc.settings.get("general.site_name") == "Ops"


def test_an_invalid_stored_value_reads_as_the_default(mc):
    with mc.db.transaction() as conn:
        conn.execute("INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)",
                     ("general.backup_retention_count", "lots", 0))
    assert mc.settings.get("general.backup_retention_count") == 10
