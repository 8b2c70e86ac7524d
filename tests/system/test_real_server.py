"""Through a real waitress server on 127.0.0.1: proxy headers, connection limits, odd paths, HEAD."""
import contextlib
import http.client
import json
import socket

import pytest
from waitress import wasyncore

from mission_control.config import Config, ConfigError
from mission_control.server import _Stop

from tests.support.accounts import PASSWORD
from tests.support.helpers import serving

CLIENT_A, CLIENT_B = "203.0.113.7", "203.0.113.8"
#: The start of a request that never ends: headers cut off before their blank line.
HALF_REQUEST = b"POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Len"


def call(base, method, path, body=None, headers=None, timeout=30):
    """One request on a new connection: (status, headers, parsed JSON body or raw bytes)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        data = json.dumps(body) if body is not None else None
        conn.request(method, path, data, headers=headers or {})
        response = conn.getresponse()
        raw = response.read()
        is_json = response.getheader("Content-Type") == "application/json"
        return response.status, response.headers, json.loads(raw) if is_json and raw else raw
    finally:
        conn.close()


def login(base, forwarded_for=None, password=PASSWORD, **headers):
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    return call(base, "POST", "/api/auth/login", {"username": "alice", "password": password},
                headers)


def audited_ips(mc, action):
    return [e["ip_address"] for e in mc.audit_store.query(action=action)[0]]


def test_behind_a_trusted_proxy_each_client_has_its_own_budget_ip_and_secure_cookie(make_mc):
    mc = make_mc(trusted_proxies=frozenset({"127.0.0.1"}))
    mc.users.add("alice", PASSWORD, role="admin")
    with serving(mc) as base:
        for _ in range(5):
            assert login(base, CLIENT_A, password="wrong-password!")[0] == 401
        assert login(base, CLIENT_A)[0] == 429
        # One client spending its attempts does not lock out the others behind the same proxy.
        status, headers, _ = login(base, f"{CLIENT_B}, 127.0.0.1",
                                   **{"X-Forwarded-Proto": "https"})
        assert status == 200
        cookie = headers["Set-Cookie"]
        assert cookie.startswith("__Host-mc-session=") and "Secure" in cookie
        status, headers, _ = login(base, CLIENT_B)
        assert status == 200 and "Secure" not in headers["Set-Cookie"]
    assert audited_ips(mc, "login_failed") == [CLIENT_A] * 5
    assert audited_ips(mc, "login") == [CLIENT_B, CLIENT_B]


def test_from_an_untrusted_peer_the_forwarded_headers_are_ignored(make_mc):
    mc = make_mc(trusted_proxies=frozenset({"192.0.2.1"}))
    mc.users.add("alice", PASSWORD, role="admin")
    with serving(mc) as base:
        status, headers, _ = login(base, CLIENT_B, **{"X-Forwarded-Proto": "https"})
        assert status == 200
        assert headers["Set-Cookie"].startswith("mc-session=") and "Secure" not in headers["Set-Cookie"]
        for _ in range(5):
            assert login(base, CLIENT_A, password="wrong-password!")[0] == 401
        # Every "client" is really 127.0.0.1, so they share one budget of failures.
        assert login(base, CLIENT_B)[0] == 429
    assert audited_ips(mc, "login") == ["127.0.0.1"]
    assert audited_ips(mc, "login_failed") == ["127.0.0.1"] * 5


@pytest.mark.parametrize("trusted, forwarded_proto, origin_scheme, status", [
    (False, None, "http", 200),
    (False, None, "https", 403),             # an https page posting to a plain-HTTP service
    (True, "https", "https", 200),           # TLS ends at a trusted proxy
    (True, "https", "http", 403),            # a plain-HTTP page posting to the HTTPS site
    (False, "https", "https", 403),          # X-Forwarded-Proto from anyone else is ignored
])
def test_the_csrf_check_compares_the_scheme_too(make_mc, trusted, forwarded_proto, origin_scheme,
                                                status):
    mc = make_mc(api_key="k" * 32, trusted_proxies=frozenset({"127.0.0.1"} if trusted else ()))
    with serving(mc) as base:
        host = base.removeprefix("http://")
        headers = {"x-api-key": "k" * 32, "Origin": f"{origin_scheme}://{host}"}
        if forwarded_proto:
            headers["X-Forwarded-Proto"] = forwarded_proto
        answer = call(base, "PUT", "/api/settings",
                      {"settings": {"general.site_name": "Ops"}}, headers)
    assert answer[0] == status, answer[2]
    if status == 403:
        assert answer[2] == {"error": "CSRF origin mismatch"}
    assert mc.settings.get("general.site_name") == ("Ops" if status == 200 else "Mission Control")


@pytest.mark.parametrize("path", ["//api//backup", "/api//backup", "/api/backup//download"])
def test_doubled_slashes_are_not_found_rather_than_a_redirect_to_nowhere(make_mc, path):
    mc = make_mc(api_key="k" * 32)
    with serving(mc) as base:
        status, headers, body = call(base, "GET", path, headers={"x-api-key": "k" * 32})
        assert (status, body) == (404, {"error": "Not found"})
        assert "Location" not in headers
        assert call(base, "GET", "/api/backup/", headers={"x-api-key": "k" * 32})[0] == 200


def test_head_on_a_download_is_answered_but_not_audited_as_a_download(make_mc):
    mc = make_mc(api_key="k" * 32)
    made = mc.backups.create("t")
    path = f"/api/backup/download?name={made.name}"
    with serving(mc) as base:
        status, headers, body = call(base, "HEAD", path, headers={"x-api-key": "k" * 32})
        assert (status, body) == (200, b"")
        assert int(headers["Content-Length"]) == made.path.stat().st_size
        assert mc.audit_store.query(action="backup_download")[1] == 0
        assert call(base, "GET", path, headers={"x-api-key": "k" * 32})[0] == 200
    assert mc.audit_store.query(action="backup_download")[1] == 1


@contextlib.contextmanager
def half_sent_requests(base, count):
    """`count` loopback connections that each sent the start of a request and then nothing."""
    host, port = base.removeprefix("http://").split(":")
    with contextlib.ExitStack() as stack:
        sockets = []
        for _ in range(count):
            sock = stack.enter_context(socket.create_connection((host, int(port)), timeout=30))
            sock.sendall(HALF_REQUEST)
            sockets.append(sock)
        yield sockets


def test_two_hundred_half_sent_requests_do_not_lock_out_a_new_client(make_mc):
    mc = make_mc()
    mc.users.add("alice", PASSWORD, role="admin")
    with serving(mc) as base, half_sent_requests(base, 200):
        # Waitress' defaults (100 connections, 120 s timeout) kept this waiting for minutes.
        assert login(base, timeout=30)[0] == 200


def test_connections_that_send_nothing_are_closed_after_the_idle_timeout(make_mc):
    mc = make_mc(connection_limit=10, idle_timeout=1)
    mc.users.add("alice", PASSWORD, role="admin")
    with serving(mc) as base, half_sent_requests(base, 10) as idle:
        # Every slot is taken: the new client waits in the listen queue until idle ones go.
        assert login(base, timeout=60)[0] == 200
        for sock in idle:
            try:
                assert sock.recv(1024) == b""  # closed by the server, nothing answered
            except ConnectionResetError:
                pass


def test_connection_limit_and_idle_timeout_come_from_the_environment():
    config = Config.from_env({"MC_CONNECTION_LIMIT": "2000", "MC_IDLE_TIMEOUT": "5"})
    assert (config.connection_limit, config.idle_timeout) == (2000, 5)
    assert (Config.from_env({}).connection_limit, Config.from_env({}).idle_timeout) == (500, 15)
    for key in ("MC_CONNECTION_LIMIT", "MC_IDLE_TIMEOUT"):
        with pytest.raises(ConfigError, match=key):
            Config.from_env({key: "0"})


def test_a_stop_signal_during_a_connection_handler_stops_the_server():
    """The signal handler raises `_Stop` wherever the main loop is, often inside a connection's
    handler; waitress must let it through rather than log it and carry on serving."""
    class Channel:
        swallowed = False

        def handle_read_event(self):
            raise _Stop()

        def handle_error(self):
            self.swallowed = True

    channel = Channel()
    with pytest.raises(_Stop):
        wasyncore.read(channel)
    assert not channel.swallowed
