"""The OpenAPI document: valid 3.1, in step with the routes, and schemathesis against a live server."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from mission_control.web.app import build_routes

from tests.support.accounts import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
KEY = "schemathesis-key-0123456789"
#: Plugins whose settings name paths or addresses: fuzzed values would write files all over the
#: host or send packets. They are covered by their own tests; the fuzzer leaves them out. So is
#: the disk guard: a fuzzed `diskguard.min_free_mb` rightly refuses every later backup, upload
#: and restore (507, and a failed scheduler run is a 500), which the fuzzer reads as server errors.
UNSAFE_TO_FUZZ = "audit_jsonl,audit_syslog,offsite_dir,offsite_s3,disk_guard"
IGNORED_METHODS = {"HEAD", "OPTIONS"}
#: The API key scheme is the valid credential (so `ignored_auth` checks that dropping it gives
#: 401). An upload's bytes must be a real Mission Control database, which no schema can say:
#: there, schema-valid random bytes are rightly refused with 400. Likewise a schedule must be a
#: cron expression that runs at most every 5 minutes, and a keep_within a duration: the
#: operations that take them may refuse schema-valid text with 400.
SCHEMATHESIS_CONFIG = """
[auth.openapi.apiKeyAuth]
api_key = "{key}"

[[operations]]
include-path = "/api/backup/upload"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "413"]

# An age public key's Bech32 checksum cannot be written in JSON Schema: a key that matches the
# documented pattern may still be a typo, refused with 400.
""" + "".join(f"""
[[operations]]
include-name = "{name}"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "409", "413"]
""" for name in ("PUT /api/settings", "POST /api/backup/prune", "GET /api/scheduler/preview")) + """
# A well-formed timestamp outside the restorable window (or with PITR off) is a 400.
[[operations]]
include-name = "POST /api/backup/restore"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "413"]
"""


def is_api_path(path):
    """The document covers the API, not pages: `/api/*` and `/metrics` (not `/`, `/static/*`)."""
    return path.startswith("/api/") or path == "/metrics"


def routed_operations():
    url_map, _ = build_routes()
    # Werkzeug's `<target>` (or `<string:target>`) is OpenAPI's `{target}`.
    return {(re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method.lower())
            for rule in url_map.iter_rules() if is_api_path(rule.rule)
            for method in rule.methods - IGNORED_METHODS}


def documented_operations(document):
    return {(path, method) for path, ops in document["paths"].items() for method in ops}


def test_every_route_is_documented_and_nothing_else(client):
    document = client.get("/api/openapi.json").json
    routed, documented = routed_operations(), documented_operations(document)
    assert routed - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routed == set(), "documented operations that have no route"


def test_the_route_check_sees_api_paths_only():
    assert is_api_path("/api/backup") and is_api_path("/metrics")
    assert not is_api_path("/") and not is_api_path("/static/app.js")
    assert ("/api/backup", "delete") in routed_operations()


def test_the_document_is_valid_openapi_3_1_and_public(client):
    response = client.get("/api/openapi.json")  # no credentials
    assert response.status_code == 200
    assert response.content_type == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    document = response.json
    assert document["openapi"] == "3.1.0"
    validate(document)
    schemes = document["components"]["securitySchemes"]
    assert schemes["cookieAuth"] == {**schemes["cookieAuth"], "in": "cookie", "name": "mc-session"}
    assert schemes["apiKeyAuth"] == {**schemes["apiKeyAuth"], "in": "header", "name": "x-api-key"}
    assert schemes["bearerAuth"]["scheme"] == "bearer"


def test_every_operation_documents_its_errors(client):
    document = client.get("/api/openapi.json").json
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            assert "200" in codes, (path, method)
            if op.get("security") != []:
                assert {"401", "403"} <= codes, (path, method)
            if "requestBody" in op:
                assert {"400", "413"} <= codes, (path, method)


def test_settings_keys_and_task_ids_come_from_the_running_service(client, mc):
    schemas = client.get("/api/openapi.json").json["components"]["schemas"]
    assert set(schemas["SettingsChange"]["properties"]) == set(mc.settings.definitions)
    retention = schemas["SettingsChange"]["properties"]["general.backup_retention_count"]
    assert (retention["minimum"], retention["maximum"]) == (1, 1000)
    assert schemas["TaskId"] == {"enum": list(mc.scheduler.tasks)}


@pytest.fixture
def fuzz_target(tmp_path):
    """A real server on its own data folder, an admin API key, no backup rate limit."""
    log = tmp_path / "server.log"
    env = dict(os.environ, AUTH_USER="alice", AUTH_PASS=PASSWORD, MC_LOG_LEVEL="WARNING",
               API_KEY=KEY, MC_BACKUP_RATE_LIMIT="0", MC_DISABLE_PLUGINS=UNSAFE_TO_FUZZ)
    with open(log, "w") as stderr:  # a file, not a pipe: a full pipe would block the server
        proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--port", "0",
                                 "--data-dir", str(tmp_path / "data")], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=stderr, text=True)
    base = next(("http://" + line.split("http://", 1)[1].split()[0] for line in proc.stdout
                 if "http://" in line), None)
    assert base, log.read_text()
    yield base, tmp_path / "data"
    proc.terminate()
    proc.communicate(timeout=30)
    assert "Traceback" not in log.read_text(), log.read_text()[-4000:]


@pytest.mark.slow
def test_schemathesis_finds_nothing_against_the_live_server(fuzz_target, tmp_path):
    """Every operation, every check: no 5xx, no undocumented status, no response off the schema,
    valid data accepted, invalid data refused, and no answer without the API key."""
    base, data = fuzz_target
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG.format(key=KEY))
    result = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
         f"{base}/api/openapi.json",
         "--checks", "all", "--max-examples", "25", "--seed", "7", "--request-timeout", "60"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    tested = re.search(r"Tested: (\d+)", result.stdout)
    # Every operation but GET /api/openapi.json, which schemathesis leaves out as the schema itself.
    assert tested and int(tested.group(1)) == len(routed_operations()) - 1, result.stdout[-3000:]
    backups = data / "backups"
    assert not [p for p in backups.iterdir() if p.name.startswith(".mc-backup-")]


#: (method, path) -> operationId, as generated clients know them: add, never rename.
OPERATION_IDS = {
    ("get", "/api/openapi.json"): "getOpenapiDocument",
    ("post", "/api/auth/login"): "login",
    ("post", "/api/auth/logout"): "logout",
    ("get", "/api/auth/me"): "getCurrentUser",
    ("get", "/api/backup"): "listBackups",
    ("post", "/api/backup"): "createBackup",
    ("delete", "/api/backup"): "deleteBackup",
    ("post", "/api/backup/verify"): "verifyBackup",
    ("get", "/api/backup/download"): "downloadBackup",
    ("post", "/api/backup/upload"): "uploadBackup",
    ("post", "/api/backup/restore"): "restoreBackup",
    ("post", "/api/backup/restore/undo"): "undoPartialRestore",
    ("get", "/api/backup/diff"): "diffBackup",
    ("get", "/api/backup/status"): "getBackupStatus",
    ("get", "/api/backup/pitr"): "getPitrStatus",
    ("get", "/api/settings"): "listSettings",
    ("put", "/api/settings"): "updateSettings",
    ("delete", "/api/settings"): "resetSetting",
    ("post", "/api/backup/prune"): "pruneBackups",
    ("get", "/api/scheduler"): "listTasks",
    ("get", "/api/scheduler/preview"): "previewSchedule",
    ("post", "/api/scheduler"): "runTask",
    ("get", "/api/audit"): "listAuditEvents",
    ("get", "/api/plugins"): "listPlugins",
    ("get", "/api/offsite"): "listOffsiteResults",
    ("get", "/api/offsite/{target}/backups"): "listOffsiteCopies",
    ("post", "/api/offsite/{target}/fetch"): "fetchOffsiteCopy",
    ("get", "/api/health"): "getHealth",
    ("get", "/metrics"): "getMetrics",
    ("post", "/api/alerts/test"): "testAlerts",
}


def test_every_operation_has_a_unique_stable_operation_id(client):
    """Generated clients name their functions after these: each one unique, declared by hand
    beside its handler (not derived), and pinned here, so a new or moved route cannot silently
    rename one."""
    paths = client.get("/api/openapi.json").json["paths"]
    ids = {(method, path): op.get("operationId") for path, ops in paths.items()
           for method, op in ops.items()}
    assert None not in ids.values(), [key for key, value in ids.items() if value is None]
    assert len(set(ids.values())) == len(ids), "operationIds are not unique"
    assert all(re.fullmatch(r"[a-z][A-Za-z0-9]*", value) for value in ids.values()), ids
    routed = {(method, path) for path, method in routed_operations()}
    unnamed = routed - set(OPERATION_IDS)
    assert unnamed == set(), f"pin these operations in OPERATION_IDS: {sorted(unnamed)}"
    assert {key: ids[key] for key in routed} == {key: OPERATION_IDS[key] for key in routed}
    assert ids[("get", "/api/backup")] == "listBackups"
    assert ids[("post", "/api/backup")] == "createBackup"
