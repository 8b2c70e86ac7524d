"""Downloading and uploading backup files: streamed, checksummed, validated, nothing half-done."""
import hashlib
import io
import json
import os
import tracemalloc
import urllib.request

import pytest

from mission_control.config import Config
from mission_control.core import MissionControl

from tests.support.backup_files import add_tasks, foreign_sqlite, titles


def test_download_streams_the_file_with_headers(mc, admin_client):
    add_tasks(mc, "a")
    name = mc.backups.create("test").name
    data = (mc.backups.dir / name).read_bytes()
    response = admin_client.get(f"/api/backup/download?name={name}")
    assert response.status_code == 200
    assert response.data == data
    assert response.headers["Content-Length"] == str(len(data))
    assert response.headers["Content-Disposition"] == f"attachment; filename={name}"
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["X-Checksum-SHA256"] == hashlib.sha256(data).hexdigest()
    assert response.headers["Digest"].startswith("sha-256=")
    assert response.headers["Accept-Ranges"] == "bytes"
    event = admin_client.get("/api/audit?action=backup_download").json["events"][0]
    assert event["actor"] == "alice" and event["target_id"] == name


def test_download_ranges_and_conditional(mc, admin_client):
    name = mc.backups.create("test").name
    data = (mc.backups.dir / name).read_bytes()
    part = admin_client.get(f"/api/backup/download?name={name}", headers={"Range": "bytes=10-99"})
    assert part.status_code == 206 and part.data == data[10:100]
    assert part.headers["Content-Range"] == f"bytes 10-99/{len(data)}"
    etag = admin_client.get(f"/api/backup/download?name={name}").headers["ETag"]
    assert admin_client.get(f"/api/backup/download?name={name}",
                            headers={"If-None-Match": etag}).status_code == 304
    bad = admin_client.get(f"/api/backup/download?name={name}",
                           headers={"Range": f"bytes={len(data) + 5}-"})
    assert bad.status_code == 416


def test_download_errors(mc, admin_client, client, tmp_path):
    assert admin_client.get("/api/backup/download").status_code == 400
    assert admin_client.get("/api/backup/download?name=..%2Fx.db").status_code == 400
    assert admin_client.get("/api/backup/download?name=none.db").json == {
        "error": "Backup not found"}
    (tmp_path / "secret.db").write_bytes(b"secret")
    os.symlink(tmp_path / "secret.db", mc.backups.dir / "link.db")
    assert admin_client.get("/api/backup/download?name=link.db").status_code == 404
    admin_client.post("/api/auth/logout")
    assert client.get("/api/backup/download?name=none.db").status_code == 401


def test_download_of_a_large_file_keeps_memory_flat(mc, admin_client):
    size = 64 * 1024 * 1024
    with open(mc.backups.dir / "big.db", "wb") as f:
        f.truncate(size)  # sparse: costs no disk, reads as zeros
    tracemalloc.start()
    try:
        response = admin_client.get("/api/backup/download?name=big.db", buffered=False)
        received = sum(len(chunk) for chunk in response.response)
        response.close()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert received == size
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes for a {size} byte download"


def test_download_over_a_real_server_with_range(mc, users, live_server):
    name = mc.backups.create("test").name
    data = (mc.backups.dir / name).read_bytes()
    login = urllib.request.Request(f"{live_server}/api/auth/login", method="POST",
                                   data=b'{"username":"alice","password":"correct-horse-battery"}')
    cookie = urllib.request.urlopen(login).headers["Set-Cookie"].split(";")[0]
    request = urllib.request.Request(f"{live_server}/api/backup/download?name={name}",
                                     headers={"Cookie": cookie, "Range": "bytes=0-15"})
    with urllib.request.urlopen(request) as response:
        assert response.status == 206 and response.read() == b"SQLite format 3\x00"
    request = urllib.request.Request(f"{live_server}/api/backup/download?name={name}",
                                     headers={"Cookie": cookie})
    with urllib.request.urlopen(request) as response:
        body = response.read()
        assert body == data
        assert response.headers["X-Checksum-SHA256"] == hashlib.sha256(data).hexdigest()


@pytest.fixture
def elsewhere(tmp_path):
    """A backup made by another Mission Control, as bytes."""
    with MissionControl(Config.from_env({}, data_dir=tmp_path / "elsewhere"),
                        entry_points=False, create=True) as other:
        add_tasks(other, "from elsewhere")
        return (other.backups.dir / other.backups.create("test").name).read_bytes()


def _everything(mc):
    return sorted(os.listdir(mc.backups.dir))


def test_upload_then_restore(mc, admin_client, elsewhere):
    response = admin_client.post("/api/backup/upload?filename=theirs.db", data=elsewhere,
                                 content_type="application/octet-stream")
    assert response.status_code == 200, response.json
    made = response.json["backup"]
    assert made["name"].startswith("uploaded-") and made["size"] == len(elsewhere)
    assert made["sha256"] == hashlib.sha256(elsewhere).hexdigest()
    assert (mc.backups.dir / made["name"]).read_bytes() == elsewhere
    listed = {b["name"]: b for b in admin_client.get("/api/backup").json["backups"]}
    assert listed[made["name"]]["verified_ok"] is True
    assert not [n for n in _everything(mc) if n.startswith(".mc-upload-")]
    event = admin_client.get("/api/audit?action=backup_upload").json["events"][0]
    assert event["detail"]["original_name"] == "theirs.db"
    restored = admin_client.post("/api/backup/restore", json={"name": made["name"]})
    assert restored.status_code == 200, restored.json
    assert titles(mc) == ["from elsewhere"]


def test_upload_as_a_multipart_form(mc, admin_client, elsewhere):
    response = admin_client.post("/api/backup/upload",
                                 data={"file": (io.BytesIO(elsewhere), "theirs.db")})
    assert response.status_code == 200, response.json
    assert (mc.backups.dir / response.json["backup"]["name"]).read_bytes() == elsewhere
    two = admin_client.post("/api/backup/upload", data={
        "a": (io.BytesIO(elsewhere), "a.db"), "b": (io.BytesIO(elsewhere), "b.db")})
    assert two.status_code == 400 and two.json["error"] == "Send one file per upload"
    none = admin_client.post("/api/backup/upload", data={"field": "value"},
                             content_type="multipart/form-data")
    assert none.status_code == 400 and "no file" in none.json["error"]


def _corrupt(data):
    buf = bytearray(data)
    buf[4096:8192] = bytes(b ^ 0xFF for b in buf[4096:8192])
    return bytes(buf)


def _foreign(tmp_path):
    foreign_sqlite(tmp_path / "photos.db")
    return (tmp_path / "photos.db").read_bytes()


@pytest.mark.parametrize("kind", ["corrupt", "not sqlite", "foreign", "truncated file", "empty"])
def test_bad_uploads_are_refused_and_nothing_changes(mc, admin_client, elsewhere, tmp_path, kind):
    add_tasks(mc, "live")
    body = {"corrupt": lambda: _corrupt(elsewhere),
            "not sqlite": lambda: b"PK\x03\x04 a zip file, say" * 100,
            "foreign": lambda: _foreign(tmp_path),
            "truncated file": lambda: elsewhere[:len(elsewhere) // 2],
            "empty": lambda: b""}[kind]()
    before = _everything(mc)
    response = admin_client.post("/api/backup/upload", data=body,
                                 content_type="application/octet-stream")
    assert response.status_code == 400, response.json
    assert response.json["error"].startswith("Upload is")
    assert _everything(mc) == before and titles(mc) == ["live"]
    if kind != "empty":
        assert response.json["details"]
        event = admin_client.get("/api/audit?action=backup_upload_refused").json["events"][0]
        assert event["detail"]["reason"]


def test_truncated_request_body_is_refused(mc, admin_client, elsewhere):
    before = _everything(mc)
    response = admin_client.post("/api/backup/upload",
                                 input_stream=io.BytesIO(elsewhere[:1000]),
                                 environ_overrides={"CONTENT_LENGTH": str(len(elsewhere))},
                                 content_type="application/octet-stream")
    assert response.status_code == 400
    assert response.json["error"].startswith("Upload incomplete")
    assert _everything(mc) == before


def test_upload_size_cap(make_mc, elsewhere):
    from werkzeug.test import Client
    from mission_control.web import WebApp
    mc = make_mc(max_upload_mb=1)
    mc.users.add("alice", "correct-horse-battery", role="admin")
    client = Client(WebApp(mc))
    client.post("/api/auth/login", json={"username": "alice", "password": "correct-horse-battery"})
    before = _everything(mc)
    big = elsewhere + b"\0" * (2 * 1024 * 1024)
    declared = client.post("/api/backup/upload", data=big, content_type="application/octet-stream")
    assert declared.status_code == 413 and "MC_MAX_UPLOAD_MB" in declared.json["error"]
    # Without a Content-Length (chunked through a server), the cap is enforced while streaming.
    streamed = client.post("/api/backup/upload", input_stream=io.BytesIO(big),
                           environ_overrides={"wsgi.input_terminated": True},
                           content_type="application/octet-stream")
    assert streamed.status_code == 413
    multipart = client.post("/api/backup/upload", data={"file": (io.BytesIO(big), "x.db")})
    assert multipart.status_code == 413
    assert _everything(mc) == before


def test_upload_of_a_live_wal_database_is_made_self_contained(mc, admin_client, tmp_path):
    with MissionControl(Config.from_env({}, data_dir=tmp_path / "live"),
                        entry_points=False, create=True) as other:
        add_tasks(other, "copied live")
        db_path = other.config.db_path
    data = db_path.read_bytes()
    assert data[18:20] == b"\x02\x02"  # WAL mode
    response = admin_client.post("/api/backup/upload", data=data,
                                 content_type="application/octet-stream")
    assert response.status_code == 200, response.json
    stored = (mc.backups.dir / response.json["backup"]["name"]).read_bytes()
    assert stored[18:20] == b"\x01\x01"
    assert response.json["backup"]["sha256"] == hashlib.sha256(stored).hexdigest()
    assert not [n for n in _everything(mc) if n.endswith(("-wal", "-shm", "-journal"))]


def test_upload_over_a_real_server(mc, users, live_server, elsewhere):
    import http.client
    import socket
    from urllib.parse import urlsplit

    host, port = urlsplit(live_server).hostname, urlsplit(live_server).port
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("POST", "/api/auth/login",
                 body=b'{"username":"alice","password":"correct-horse-battery"}')
    login = conn.getresponse()
    cookie = login.getheader("Set-Cookie").split(";")[0]
    login.read()
    before = _everything(mc)
    # A client that goes away half-way: the server never stores anything.
    with socket.create_connection((host, port), timeout=10) as raw:
        raw.sendall(f"POST /api/backup/upload HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n"
                    f"Content-Length: {len(elsewhere)}\r\n\r\n".encode() + elsewhere[:5000])
    conn.request("POST", "/api/backup/upload", body=elsewhere,
                 headers={"Cookie": cookie, "Content-Type": "application/octet-stream"})
    response = conn.getresponse()
    assert response.status == 200
    made = json.loads(response.read())["backup"]
    assert _everything(mc) == sorted(before + [made["name"]])
    conn.close()


def test_upload_cap_from_the_environment(tmp_path):
    from mission_control.config import ConfigError
    assert Config.from_env({"MC_MAX_UPLOAD_MB": "5"}, data_dir=tmp_path).max_upload_mb == 5
    assert Config.from_env({}, data_dir=tmp_path).max_upload_mb == 1024
    with pytest.raises(ConfigError):
        Config.from_env({"MC_MAX_UPLOAD_MB": "0"}, data_dir=tmp_path)
