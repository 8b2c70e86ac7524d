"""Oversized bodies are refused with 413 before they are read: declared, chunked, and over waitress."""
import http.client
import io
import json
import time

import pytest
from werkzeug.test import EnvironBuilder, run_wsgi_app
from werkzeug.wrappers import Response

from mission_control.web import WebApp

from tests.support.accounts import PASSWORD

KEY = "body-limit-key-0123456789"
MiB = 1024 * 1024
JSON_ENDPOINTS = [("POST", "/api/auth/login"), ("DELETE", "/api/backup"), ("PUT", "/api/settings"),
                  ("DELETE", "/api/settings"), ("POST", "/api/scheduler"),
                  ("POST", "/api/backup/verify"), ("POST", "/api/backup/restore")]


class CountingInput(io.RawIOBase):
    """A wsgi.input of `size` bytes that counts what the application reads."""

    def __init__(self, size):
        self.size, self.read_bytes = size, 0

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), self.size - self.read_bytes)
        buffer[:n] = b" " * n
        self.read_bytes += n
        return n


def send(mc, method, path, stream, content_length=None, terminated=False, key=KEY):
    headers = {"Content-Type": "application/json", **({"x-api-key": key} if key else {})}
    environ = EnvironBuilder(path=path, method=method, headers=headers).get_environ()
    environ["wsgi.input"] = stream
    environ.pop("CONTENT_LENGTH", None)
    if content_length is not None:
        environ["CONTENT_LENGTH"] = str(content_length)
    if terminated:
        environ["wsgi.input_terminated"] = True
    app_iter, status, headers = run_wsgi_app(WebApp(mc), environ)
    return Response(b"".join(app_iter), status=status, headers=headers)


@pytest.mark.parametrize("method,path", JSON_ENDPOINTS)
def test_a_declared_oversized_body_is_refused_unread(make_mc, method, path):
    mc = make_mc(api_key=KEY)
    stream = CountingInput(64 * MiB)
    response = send(mc, method, path, stream, content_length=64 * MiB)
    assert (response.status_code, response.json) == (413, {"error": "Request body too large"})
    assert stream.read_bytes == 0
    anonymous = CountingInput(64 * MiB)  # and a stranger's body is never read at all
    response = send(mc, method, path, anonymous, content_length=64 * MiB, key=None)
    assert response.status_code == (413 if path == "/api/auth/login" else 401)
    assert anonymous.read_bytes == 0


def test_an_undeclared_chunked_body_is_cut_off_at_the_limit(make_mc):
    mc = make_mc(api_key=KEY)
    stream = CountingInput(64 * MiB)
    response = send(mc, "PUT", "/api/settings", stream, terminated=True)
    assert response.status_code == 413
    assert stream.read_bytes <= mc.config.max_body_bytes + 64 * 1024


def test_an_oversized_upload_is_refused_unread(make_mc):
    mc = make_mc(api_key=KEY, max_upload_mb=1)
    stream = CountingInput(64 * MiB)
    response = send(mc, "POST", "/api/backup/upload", stream, content_length=64 * MiB)
    assert response.status_code == 413 and "MC_MAX_UPLOAD_MB" in response.json["error"]
    assert stream.read_bytes == 0
    assert [p.name for p in mc.backups.dir.iterdir() if p.name.startswith(".mc-upload")] == []


def test_endpoints_without_a_body_never_read_one(make_mc):
    mc = make_mc(api_key=KEY)
    for method, path in (("GET", "/api/backup"), ("GET", "/api/settings"),
                         ("GET", "/api/health"), ("POST", "/api/auth/logout")):
        stream = CountingInput(64 * MiB)
        response = send(mc, method, path, stream, content_length=64 * MiB)
        assert response.status_code == 200
        assert stream.read_bytes == 0


def test_over_waitress_a_big_json_body_gets_413_and_the_server_stays_well(live_server, users):
    """Waitress buffers a request body (spooling past 512 KiB to a temp file) before the app
    runs, so memory stays flat; the app then refuses without reading it."""
    host, port = live_server.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("POST", "/api/auth/login", json.dumps({"username": "alice", "password": PASSWORD}))
    login = conn.getresponse()
    login.read()
    cookie = login.getheader("Set-Cookie").split(";")[0]
    started = time.monotonic()
    conn.putrequest("PUT", "/api/settings")
    conn.putheader("Cookie", cookie)
    conn.putheader("Content-Length", str(8 * MiB))
    conn.endheaders()
    chunk = b" " * MiB
    for _ in range(8):
        conn.send(chunk)
    response = conn.getresponse()
    assert response.status == 413
    assert b"Request body too large" in response.read()
    assert time.monotonic() - started < 20
    conn.request("GET", "/api/health")
    assert conn.getresponse().status == 200
    conn.close()
