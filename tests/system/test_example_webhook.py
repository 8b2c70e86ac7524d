"""The example third-party plugin (examples/mc-webhook), pip-installed for real and fired end to end."""
import json
import shutil
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.accounts import PASSWORD

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mc-webhook"


@pytest.fixture(scope="session")
def webhook_site(tmp_path_factory):
    """A folder into which pip installed mc-webhook (its code and its dist-info)."""
    target = tmp_path_factory.mktemp("site")
    # Built from a copy, so the build leaves nothing in the source tree.
    source = shutil.copytree(EXAMPLE, tmp_path_factory.mktemp("src") / "mc-webhook",
                             ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(target), str(source)],
                   check=True, capture_output=True, text=True)
    assert list(target.glob("mc_webhook-0.1.0.dist-info"))
    return target


@pytest.fixture
def mc(make_mc, webhook_site, monkeypatch):
    """The service with entry points on, seeing the installed example as an installed package."""
    monkeypatch.syspath_prepend(str(webhook_site))
    return make_mc(entry_points=True)


class Receiver(ThreadingHTTPServer):
    """A loopback HTTP server that records the JSON it is sent and answers `status`."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received, self.status, self.arrived = [], 204, threading.Event()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/mc"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.server.arrived.set()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def corrupt_database(mc):
    """Damage one table's root page on disk, as a failing disk would: the next backup fails."""
    with mc.db.transaction() as conn:
        conn.executemany("INSERT INTO tasks (title, created_at, updated_at) VALUES (?, 0, 0)",
                         [("t" * 200,)] * 50)
    mc.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    root = mc.db.query_one("SELECT rootpage FROM sqlite_master WHERE name = 'tasks'")["rootpage"]
    page_size = mc.db.query_one("PRAGMA page_size")["page_size"]
    with open(mc.config.db_path, "r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xff" * page_size)


def post(url, path, cookie=None, body=None):
    request = urllib.request.Request(url + path, method="POST", data=json.dumps(body).encode()
                                     if body is not None else b"",
                                     headers={"Content-Type": "application/json",
                                              **({"Cookie": cookie} if cookie else {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, err.headers, json.loads(err.read())


def test_installed_example_is_found_through_its_entry_point(admin_client):
    plugins = {p["name"]: p for p in admin_client.get("/api/plugins").json["plugins"]}
    assert plugins["webhook"] == {"name": "webhook", "kind": "entry_point", "version": "0.1.0",
                                  "hooks": ["audit", "register_settings"]}


def test_failed_backup_fires_the_webhook_end_to_end(mc, users, live_server, receiver):
    mc.settings.update({"webhook.url": receiver.url}, actor="test")
    status, headers, _ = post(live_server, "/api/auth/login",
                              body={"username": "alice", "password": PASSWORD})
    assert status == 200
    cookie = headers["Set-Cookie"].split(";")[0]
    assert post(live_server, "/api/backup", cookie)[0] == 200
    assert receiver.received == []  # a good backup sends nothing
    corrupt_database(mc)
    status, _, body = post(live_server, "/api/backup", cookie)
    assert (status, body) == (500, {"error": "Backup failed"})
    assert receiver.arrived.wait(10)
    [(path, content_type, notice)] = receiver.received
    assert path == "/hooks/mc" and content_type == "application/json"
    assert notice["service"] == "mission-control" and notice["event"] == "backup_failed"
    assert notice["actor"] == "alice" and "malformed" in notice["detail"]["reason"]


def test_refused_backup_fires_it_too(mc, receiver):
    mc.settings.update({"webhook.url": receiver.url, "diskguard.min_free_mb": 10**9},
                       actor="test")
    with pytest.raises(Exception):
        mc.backups.create(actor="scheduler")
    assert [n["event"] for _, _, n in receiver.received] == ["backup_refused"]


def test_a_failing_receiver_is_audited_not_fatal(mc, receiver):
    receiver.status = 500
    mc.settings.update({"webhook.url": receiver.url,
                        "webhook.events": "backup_create"}, actor="test")
    made = mc.backups.create(actor="test")
    assert made.path.is_file() and len(receiver.received) == 1
    [error] = mc.audit_store.query(action="plugin_error")[0]
    assert error["target_id"] == "webhook"
    assert error["detail"]["error"] == "HTTPError: HTTP Error 500: Internal Server Error"


def test_blocked_by_mc_disable_plugins(make_mc, webhook_site, monkeypatch):
    monkeypatch.syspath_prepend(str(webhook_site))
    blocked = make_mc(entry_points=True, disabled_plugins=("webhook",))
    assert blocked.pm.get_plugin("webhook") is None
    assert "webhook.url" not in blocked.settings.definitions
