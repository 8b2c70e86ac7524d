"""The service's log: one line per audited action, JSON lines on demand, and the access log."""
import json
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.accounts import PASSWORD

#: In the slow lane (real `serve` processes and CLI runs: ~6 s on the 2-core machine).
pytestmark = pytest.mark.slow

API_KEY = "k" * 32
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def command():
    """The installed console script (beside this Python), as a user would run it."""
    script = Path(sys.executable).parent / "mission-control"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mission_control"]


def serve(data_dir, env):
    """Start `mission-control serve` on a free port; returns (process, base URL)."""
    proc = subprocess.Popen(
        [*command(), "serve", "--port", "0", "--data-dir", str(data_dir)],
        env={**os.environ, "AUTH_USER": "alice", "AUTH_PASS": PASSWORD, "API_KEY": API_KEY,
             "PYTHONUNBUFFERED": "1", **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            found = re.search(r"on (http://127\.0\.0\.1:\d+)",
                              lines.get(timeout=max(0.1, deadline - time.monotonic())))
        except queue.Empty:
            break
        if found:
            return proc, found.group(1)
    proc.kill()
    raise AssertionError(f"the server did not start: {proc.communicate()[1]}")


def call(base, method, path, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"x-api-key": API_KEY, **(headers or {})})
    try:
        with OPENER.open(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_json_log_lines_parse_and_say_what_who_size_and_duration(tmp_path):
    data_dir = tmp_path / "data"
    proc, base = serve(data_dir, {"MC_LOG_FORMAT": "json", "MC_ACCESS_LOG": "1",
                                  "MC_LOG_LEVEL": "INFO"})
    try:
        status, body = call(base, "POST", "/api/backup")
        assert status == 200
        name = json.loads(body)["backup"]["name"]
        assert call(base, "GET", f"/api/backup/download?name={name}&token=sekrit")[0] == 200
        assert call(base, "PUT", "/api/settings",
                    {"settings": {"general.auto_backup": "true"}})[0] == 200
        assert call(base, "DELETE", "/api/backup", {"name": name})[0] == 200
        assert call(base, "GET", "/api/nothing-here")[0] == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    records = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert records and all({"time", "level", "logger", "message"} <= r.keys() for r in records)

    events = {r["action"]: r for r in records if r["logger"] == "mission_control.events"}
    made = events["backup_create"]
    assert made["level"] == "INFO" and made["actor"] == "api" and made["target"] == name
    assert made["size_bytes"] > 0 and made["duration_seconds"] >= 0
    assert made["client_ip"] == "127.0.0.1"
    assert re.fullmatch(rf"backup_create {name} \(\d+(\.\d)? KiB, \d+\.\d\d s\) by api "
                        r"from 127\.0\.0\.1", made["message"])
    assert events["settings_update"]["changes"] == {
        "general.auto_backup": {"old": "false", "new": "true"}}
    assert "general.auto_backup false -> true" in events["settings_update"]["message"]
    assert events["backup_delete"]["size_bytes"] == made["size_bytes"]
    assert events["backup_download"]["target"] == name

    access = [r for r in records if r["logger"] == "mission_control.access"]
    posted = next(r for r in access if r["method"] == "POST")
    assert posted.items() >= {"path": "/api/backup", "status": 200,
                              "client_ip": "127.0.0.1"}.items()
    assert posted["bytes"] > 0 and posted["duration_ms"] >= 0
    download = next(r for r in access if r["path"].startswith("/api/backup/download"))
    assert download["path"] == f"/api/backup/download?name={name}&token=%2A%2A%2A"
    assert download["bytes"] == made["size_bytes"] and "sekrit" not in stderr
    assert any(r["status"] == 404 and r["path"] == "/api/nothing-here" for r in access)
    # The database's absolute path is said once at start.
    assert any(str(data_dir / "mission-control.db") in r["message"] for r in records)


def test_the_cli_labels_binary_sizes_as_such(tmp_path):
    data_dir = tmp_path / "data"
    made = subprocess.run([*command(), "backup", "create", "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "AUTH_USER": "", "AUTH_PASS": ""})
    if made.returncode == 2:  # a CLI that refuses a missing database: start the service once
        proc, _ = serve(data_dir, {})
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        made = subprocess.run([*command(), "backup", "create", "--data-dir", str(data_dir)],
                              capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    assert re.fullmatch(r"created mc-backup-\S+\.db \(\d+(\.\d)? KiB, [\d.]+ s\); pruned 0; "
                        r"off-site: none configured\n", made.stdout), made.stdout
    listed = subprocess.run([*command(), "backup", "list", "--data-dir", str(data_dir)],
                            capture_output=True, text=True, timeout=120)
    assert re.search(r"\t\d+(\.\d)? KiB\t", listed.stdout), listed.stdout


@pytest.fixture
def mc(make_mc):
    return make_mc(access_log=True)


def test_the_access_log_has_the_request_line(live_server, caplog):
    caplog.set_level(logging.INFO, logger="mission_control.access")
    with OPENER.open(live_server + "/api/health", timeout=30) as response:
        size = len(response.read())
    try:
        OPENER.open(live_server + "/api/forged%0A127.0.0.1%20%22GET%20/x%22?api_key=abc",
                    timeout=30)
    except urllib.error.HTTPError as err:
        assert err.code == 404
    deadline = time.monotonic() + 10  # the line is written when waitress closes the response
    while len([r for r in caplog.records if r.name == "mission_control.access"]) < 2 \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    # Each line is written when waitress closes its response: in either order.
    forged, first = sorted((r.getMessage() for r in caplog.records
                            if r.name == "mission_control.access"), key=lambda m: "forged" not in m)
    assert re.fullmatch(rf'127\.0\.0\.1 "GET /api/health" 200 {size} \d+\.\d ms', first)
    assert "\n" not in forged and "%0A127.0.0.1%20%22GET" in forged
    assert "api_key=%2A%2A%2A" in forged and "abc" not in forged


def test_every_protective_action_is_one_log_line(make_mc, caplog, tmp_path):
    from werkzeug.test import Client

    from mission_control.web import WebApp
    mc = make_mc(api_key=API_KEY)
    nas = tmp_path / "nas"
    nas.mkdir()
    caplog.set_level(logging.INFO, logger="mission_control.events")
    mc.settings.update({"general.backup_retention_count": 1, "offsite.dir.path": str(nas)},
                       "alice")
    client = Client(WebApp(mc))
    headers = {"x-api-key": API_KEY}
    first = client.post("/api/backup", headers=headers).json["backup"]["name"]
    data = (mc.backups.dir / first).read_bytes()
    second = client.post("/api/backup", headers=headers).json["backup"]["name"]
    uploaded = client.post("/api/backup/upload?filename=old.db", data=data, headers=headers)
    assert uploaded.status_code == 200
    assert client.post("/api/backup/restore", json={"name": second},
                       headers=headers).status_code == 200
    assert client.delete("/api/backup", json={"name": uploaded.json["backup"]["name"]},
                         headers=headers).status_code == 200
    lines = {}
    for record in caplog.records:
        if record.name == "mission_control.events":
            lines.setdefault(record.action, []).append(record)
    for action in ("backup_create", "backup_prune", "backup_upload", "backup_restore",
                   "backup_delete", "offsite_copy", "settings_update"):
        assert action in lines, (action, sorted(lines))
        assert all(r.levelno == logging.INFO and " by " in r.getMessage() for r in lines[action])
    assert [r.target for r in lines["backup_prune"]] == [first]
    assert all(r.size_bytes > 0 for action in ("backup_create", "backup_prune", "backup_upload",
                                               "backup_restore", "backup_delete", "offsite_copy")
               for r in lines[action])
    assert lines["backup_restore"][0].duration_seconds >= 0
    assert lines["offsite_copy"][0].duration_seconds >= 0
    assert lines["offsite_copy"][0].getMessage().startswith(f"offsite_copy dir {first} (")


def test_a_client_cannot_forge_a_log_line_through_its_user_name(make_mc, caplog):
    from werkzeug.test import Client

    from mission_control.web import WebApp
    mc = make_mc()
    caplog.set_level(logging.INFO, logger="mission_control.events")
    forged = "mallory\n2026-03-04 03:00:00,000 INFO mission_control.events: backup_create"
    response = Client(WebApp(mc)).post("/api/auth/login",
                                       json={"username": forged, "password": "x" * 12})
    assert response.status_code == 401
    [record] = [r for r in caplog.records if r.name == "mission_control.events"]
    assert record.levelno == logging.WARNING and record.action == "login_failed"
    assert "\n" not in record.getMessage() and "mallory\\x0a2026" in record.getMessage()


#: A remote error that tries to end our line and start a record of its own (XML, which carries
#: S3's errors, has no escape, so no other C0 control).
FORGED = ("bucket refused\n2026-03-04 03:00:00,000 INFO mission_control.events: backup_create "
          "forged\rover\u2028sep\x85nel")
#: How each of those characters reads on our line once escaped.
ESCAPED = ("bucket refused\\x0a2026-03-04 03:00:00,000 INFO mission_control.events: "
           "backup_create forged\\x0dover\\u2028sep\\x85nel")
#: A user name that tries the same (user names are cut to 64 characters).
FORGED_USER, ESCAPED_USER = ("m\n2026-03-04 03:00:00,000 INFO x: forged\x1b[2K",
                             "m\\x0a2026-03-04 03:00:00,000 INFO x: forged\\x1b[2K")
RECORD_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \S+: ")


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_remote_error_text_cannot_forge_a_log_line(tmp_path, log_format):
    from tests.support.s3server import FailingS3
    aws = {"AWS_ACCESS_KEY_ID": "AKIDMCTEST", "AWS_SECRET_ACCESS_KEY": "mc-test-secret",
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    with FailingS3(FORGED) as s3:
        proc, base = serve(tmp_path / "data", {"MC_LOG_FORMAT": log_format, **aws})
        try:
            assert call(base, "PUT", "/api/settings", {"settings": {
                "offsite.s3.bucket": "b", "offsite.s3.endpoint_url": s3.url,
                "offsite.s3.region": "us-east-1"}})[0] == 200
            assert call(base, "POST", "/api/backup")[0] == 200  # the copy fails, not the backup
            assert call(base, "POST", "/api/auth/login",  # a user name is foreign text too
                        {"username": FORGED_USER, "password": "x" * 12})[0] == 401
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    lines = stderr.splitlines()
    assert lines and "2026-03-04 03:00:00" not in "".join(line[:30] for line in lines)
    if log_format == "json":
        records = [json.loads(line) for line in lines]  # one whole object per line
        mentions = [r for r in records if FORGED in r["message"]]
        assert "mission_control.offsite.results" in {r["logger"] for r in mentions}
        assert any(r["message"] == f"login_failed {ESCAPED_USER} by {ESCAPED_USER} from "
                   "127.0.0.1" for r in records)
        return
    # Every line is a record of ours; the remote text is on its record's line, escaped.
    assert all(RECORD_START.match(line) for line in lines), stderr
    mentions = [line for line in lines if "forged" in line]
    assert all(ESCAPED in line or ESCAPED_USER in line for line in mentions), stderr
    for start in (" ERROR mission_control.offsite.results: off-site copy to s3 of mc-backup-",
                  " WARNING mission_control.events: offsite_failed s3 mc-backup-",
                  f" WARNING mission_control.events: login_failed {ESCAPED_USER} by"):
        assert any(start in line for line in mentions), (start, stderr)


def test_a_traceback_keeps_its_lines_but_only_records_start_at_the_margin():
    import io

    from mission_control import logs
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter("text"))
    log = logging.getLogger("mission_control.test_forgery")
    log.addHandler(handler)
    log.propagate = False
    try:
        try:
            raise RuntimeError(FORGED)
        except RuntimeError:
            log.exception("restore of %s failed", "mc\u2028x.db", stack_info=True)
    finally:
        log.removeHandler(handler)
    first, *rest = stream.getvalue().splitlines()
    assert RECORD_START.match(first) and first.endswith("restore of mc\\u2028x.db failed")
    assert rest and all(line.startswith(logs.CONTINUATION) for line in rest)
    assert f"{logs.CONTINUATION}Traceback (most recent call last):" in rest
    # The exception's own lines stay lines, below the margin where only records start.
    forged_line = ESCAPED.split("\\x0a")[1]
    assert f"{logs.CONTINUATION}RuntimeError: bucket refused" in rest
    assert f"{logs.CONTINUATION}{forged_line}" in rest
    assert f"{logs.CONTINUATION}Stack (most recent call last):" in rest
