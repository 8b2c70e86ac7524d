"""The Containerfile: built with podman, run without network, non-root, 200 on /api/health.

No base image can be pulled here, so the test makes one from Debian's packages (mmdebstrap:
bookworm with python3 and its venv module) and passes it as BASE; the image built from it is
the same recipe as with the default python:slim base. Skipped, with the reason, when podman or
mmdebstrap is missing (.ci/run installs both).
"""
import json
import resource
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE = "localhost/mission-control-test-base:bookworm"
SOURCES = ("setup.cfg", "pyproject.toml", "MANIFEST.in", "README.md", "mission_control", "plugins")
PROBE = ("import json, urllib.request; r = urllib.request.urlopen("
         "'http://127.0.0.1:8000/api/health', timeout=5); print(r.status, r.read().decode())")

pytestmark = [
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed"),
    pytest.mark.skipif(shutil.which("mmdebstrap") is None,
                       reason="mmdebstrap is not installed (it makes the base image)"),
]


def podman(*args, timeout=600, check=True):
    """Run podman. runc where installed: crun refuses hosts with hybrid cgroups (v1 + v2)."""
    runtime = ["--runtime", "runc"] if shutil.which("runc") else []
    result = subprocess.run(["podman", *runtime, *args], capture_output=True, text=True,
                            timeout=timeout)
    if check:
        assert result.returncode == 0, (args, result.stdout[-3000:], result.stderr[-3000:])
    return result


def ulimits():
    """Limits the host grants: podman's defaults (1048576 files, 4194304 processes) are refused
    by a host that caps them, and even the host's own process cap may be (it counts per user)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    files = 4096 if hard == resource.RLIM_INFINITY else min(soft, hard, 4096)
    return ["--ulimit", f"nofile={files}:{files}", "--ulimit", "nproc=4096:4096"]


@pytest.fixture(scope="session")
def base_image(tmp_path_factory):
    """Debian bookworm with python3, made from Debian's packages once and kept in podman's store."""
    if podman("image", "exists", BASE, check=False).returncode != 0:
        tar = tmp_path_factory.mktemp("base") / "rootfs.tar"
        made = subprocess.run(["mmdebstrap", "--variant=minbase",
                               "--include=python3,python3-venv,passwd", "--format=tar",
                               "bookworm", str(tar)], capture_output=True, text=True, timeout=900)
        assert made.returncode == 0, made.stderr[-3000:]
        podman("import", str(tar), BASE)
    return BASE


@pytest.fixture(scope="session")
def context(tmp_path_factory):
    """The build context: the Containerfile and a wheels folder (ours and our dependencies)."""
    folder = tmp_path_factory.mktemp("context")
    source = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(ROOT / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet",
                            "--no-build-isolation", "--wheel-dir", str(folder / "wheels"),
                            str(source)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    shutil.copy(ROOT / "Containerfile", folder / "Containerfile")
    shutil.copy(ROOT / ".containerignore", folder / ".containerignore")
    return folder


@pytest.fixture
def container(base_image, context):
    tag = f"localhost/mission-control-test:{uuid.uuid4().hex[:12]}"
    podman("build", "--format", "docker", "--network", "none", *ulimits(),
           "--build-arg", f"BASE={base_image}", "-t", tag, str(context), timeout=900)
    name = f"mc-test-{uuid.uuid4().hex[:12]}"
    try:
        podman("run", "-d", "--name", name, "--network", "none", *ulimits(),
               "-e", "AUTH_USER=admin", "-e", "AUTH_PASS=container-pass-123", tag)
        yield name, tag
    finally:
        logs = podman("logs", name, check=False)
        podman("rm", "-f", "-v", name, check=False)
        podman("rmi", "-f", tag, check=False)
        assert "Traceback" not in logs.stdout + logs.stderr, logs.stderr[-3000:]


def test_the_image_serves_health_as_a_non_root_user(container):
    name, tag = container
    deadline = time.monotonic() + 120
    while True:
        probe = podman("exec", name, "python3", "-c", PROBE, check=False, timeout=60)
        if probe.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert probe.returncode == 0, probe.stderr[-2000:]
    status, body = probe.stdout.split(" ", 1)
    assert status == "200"
    assert json.loads(body)["db"] == "ok"
    assert podman("healthcheck", "run", name, check=False).returncode == 0
    assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
    config = json.loads(podman("image", "inspect", tag).stdout)[0]["Config"]
    assert "/data" in config["Volumes"]
    assert podman("exec", name, "ls", "/data/mission-control.db").returncode == 0
