"""Each HTTP operation declared once (route, operationId, OpenAPI entry, body schema), and every
JSON body checked against the schema the document shows, with a compiled check per app."""
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from werkzeug.test import Client

from mission_control.errors import MissionControlError
from mission_control.web import WebApp, api_restore
from mission_control.web.app import API_MODULES
from mission_control.web.openapi import operations, request_components
from mission_control.web.openapi_schemas import SCHEMAS, obj
from mission_control.web.operations import BodyCheck, Operation

WEB = Path(__file__).resolve().parents[2] / "mission_control" / "web"


def test_at_most_one_openapi_helper_module_is_left():
    assert [p.name for p in WEB.glob("openapi_*.py")] == ["openapi_schemas.py"]


def test_each_documented_operation_comes_from_its_modules_declaration(client):
    """The document is built from the `OPERATIONS` beside the handlers: nothing else adds to it."""
    paths = client.get("/api/openapi.json").json["paths"]
    documented = {(path, method, op["operationId"]) for path, ops in paths.items()
                  for method, op in ops.items()}
    declared = {(op.openapi_path, op.method.lower(), op.operation_id)
                for module in API_MODULES for op in module.OPERATIONS if op.doc is not None}
    assert documented == declared
    by_path = {(p, m): op for p, ops in paths.items() for m, op in ops.items()}
    for module in API_MODULES:
        for op in module.OPERATIONS:
            if op.body is not None:  # the schema documented is the one that is checked
                documented_body = by_path[(op.openapi_path, op.method.lower())]["requestBody"]
                assert documented_body["content"]["application/json"]["schema"] == op.body


def test_the_body_checks_are_compiled_once_when_the_app_is_built(mc):
    app = WebApp(mc)
    with_body = {endpoint for endpoint, op in operations(API_MODULES).items()
                 if op.body is not None}
    assert set(app.body_checks) == with_body and len(with_body) == 10
    checks = dict(app.body_checks)
    components = request_components(API_MODULES, list(mc.scheduler.tasks))
    for endpoint in with_body:
        body = operations(API_MODULES)[endpoint].body
        Draft202012Validator.check_schema({**body, "components": {"schemas": components}})
    Client(app).delete("/api/backup", json={"name": 5})
    assert app.body_checks == checks and all(app.body_checks[e] is checks[e] for e in checks)


def test_a_body_wrong_in_both_shapes_is_told_the_shape_it_chose(admin_client, mc):
    """`timestamp` picks the point-in-time shape: every problem of that shape is named, at once."""
    response = admin_client.post("/api/backup/restore",
                                 json={"timestamp": 5, "keep_settings": "yes"})
    assert response.status_code == 400
    assert response.json == {"error": "Validation failed", "details": [
        "timestamp: must be a string", "keep_settings: must be true or false"]}
    mc.backups.create("test")
    both = admin_client.post("/api/backup/restore", json={"name": 7, "extra": 1})
    assert both.json["details"] == ["name: must be a string", "extra: unknown field"]


def test_an_identity_that_is_not_text_or_null_is_refused(admin_client):
    """The document says `identity` is a string or null; `false` or `0` are no longer read as
    "no identity"."""
    for identity in (False, 0, []):
        response = admin_client.post("/api/offsite/dir/fetch", json={
            "name": "mc-backup-2026-03-04_03-00-00.db.zst.age", "identity": identity})
        assert response.status_code == 400
        assert response.json["details"] == ["identity: must be a string or null"]


@pytest.mark.parametrize("body, details", [
    ({"dry_run": 1}, ["dry_run: must be true or false"]),  # 1 is not true
    ({"dry_run": "true"}, ["dry_run: must be true or false"]),
    ({"dry_run": True, "settings": {}}, ["settings: must not be empty"]),
])
def test_prune_types_are_exact(admin_client, body, details):
    response = admin_client.post("/api/backup/prune", json=body)
    assert (response.status_code, response.json) == (
        400, {"error": "Validation failed", "details": details})


def test_no_detail_repeats_the_value_sent(admin_client):
    secret = "/etc/shadow-" + "x" * 40
    for method, path in (("DELETE", "/api/backup"), ("POST", "/api/backup/verify")):
        response = admin_client.open(path, method=method, json={"name": secret})
        assert response.status_code == 400
        assert secret not in response.get_data(as_text=True)
        assert [d.split(":")[0] for d in response.json["details"]] == ["name"]


def test_login_still_takes_fields_it_does_not_know(client, users):
    response = client.post("/api/auth/login", json={"username": "alice", "password": "wrong" * 4,
                                                    "remember": True})
    assert (response.status_code, response.json) == (401, {"error": "Invalid credentials"})


def check(schema, mc=None, **options):
    """A `BodyCheck` of a made-up operation with this body schema."""
    op = Operation("POST", "/x", lambda mc, request: None, "x", {}, body=schema, **options)
    return BodyCheck(op, {"Name": {"type": "string", "maxLength": 3}}, mc)


def test_details_name_nested_fields_and_list_items():
    schema = obj(a=obj(b={"type": "array", "items": {"$ref": "#/components/schemas/Name"}}))
    with pytest.raises(MissionControlError) as refused:
        check(schema).check({"a": {"b": ["ok", "long", 5], "c": 1}})
    assert refused.value.details == ["a.b[1]: must be at most 3 characters",
                                     "a.b[2]: must be a string", "a.c: unknown field"]
    assert check(schema).check({"a": {"b": []}}) == {"a": {"b": []}}


def test_a_plain_error_covers_only_its_fields():
    plain = check(obj(task_id={"enum": ["a"]}), plain_fields=("task_id",),
                  plain_error=lambda mc: f"task_id required: {mc}", mc="a, b")
    with pytest.raises(MissionControlError) as refused:
        plain.check({"task_id": "z", "x": 1})
    assert (refused.value.status, refused.value.message, refused.value.details) == (
        400, "task_id required: a, b", None)
    with pytest.raises(MissionControlError) as refused:
        plain.check({"task_id": "a", "x": 1})
    assert refused.value.details == ["x: unknown field"]


def test_the_restore_body_schema_is_declared_beside_its_handler():
    [op] = api_restore.OPERATIONS
    assert op.view is api_restore.backup_restore and op.operation_id == "restoreBackup"
    assert [set(b["required"]) for b in op.body["oneOf"]] == [
        {"name"}, {"timestamp"}, {"name", "tables"}, {"name", "rows"}]


def test_no_two_modules_declare_the_same_component_schema():
    names = [*SCHEMAS] + [name for module in API_MODULES for name in getattr(module, "SCHEMAS", {})]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
