"""The "Recover on an empty machine" section of the README and of docs/offsite-and-recovery.md
(the same commands): its three commands, run as written in a fresh venv, bring
a database back from a folder and from S3 (SeaweedFS) and start `serve` on it."""
import json
import os
import re
import shlex
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from mission_control.offsite.storage import FolderStorage, S3Storage
from tests.support.offsite import new_key
from tests.support.offsite_catalog import new_signer, publish
from tests.support.seaweed import SERVICE

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SOURCE = "s3://my-bucket/mission-control"

pytest.importorskip("pyrage")
pytest.importorskip("zstandard")


def documented_commands(page="docs/offsite-and-recovery.md"):
    """The sh block of `page`'s "Recover on an empty machine" section, one command a line."""
    text = (ROOT / page).read_text(encoding="utf-8")
    section = text.split("## Recover on an empty machine", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [line for line in block.splitlines() if line.strip()]


def test_the_documented_recovery_takes_at_most_three_commands():
    commands = documented_commands()
    assert documented_commands("README.md") == commands  # the README's are the ones run below
    assert len(commands) <= 3
    assert any(" recover " in c and EXAMPLE_SOURCE in c for c in commands)
    assert any(" serve " in c for c in commands)


def _run(command, cwd, env, timeout=600):
    done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, (command, done.stdout[-3000:], done.stderr[-3000:])
    assert "Traceback" not in done.stderr
    return done


def _serve_health(command, cwd, env):
    proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=cwd,
                            env={**env, "MC_PORT": "0", "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        for line in proc.stdout:
            found = re.search(r"(http://127\.0\.0\.1:\d+)", line)
            if found:
                with urllib.request.urlopen(found.group(1) + "/api/health", timeout=30) as r:
                    return r.status, json.loads(r.read())
            assert time.monotonic() < deadline
        raise AssertionError("serve did not start")
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.slow
def test_recover_from_a_fresh_venv_with_the_documented_commands(wheel, make_mc, seaweed,  # noqa: F811
                                                             tmp_path):
    install, recover, serve = documented_commands()
    mc = make_mc()
    mc.db.execute("INSERT INTO agents (name, status, created_at, updated_at) "
                  "VALUES ('agent-readme', 'online', 1, 1)")
    backup = mc.backups.create(actor="test").path
    identity, recipient = new_key()
    signer, verify_key = new_signer(tmp_path)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    nas = tmp_path / "nas"
    nas.mkdir()
    publish(FolderStorage(nas), backup, signer, target="dir", recipients=[recipient],
            scratch=scratch)
    bucket = seaweed.bucket(lock=False)
    publish(S3Storage(seaweed.client(SERVICE), bucket, "mission-control/"), backup, signer,
            recipients=[recipient], scratch=scratch)

    machine = tmp_path / "empty-machine"
    machine.mkdir()
    (machine / "key.txt").write_text(identity + "\n")
    env = {k: v for k, v in seaweed.environ().items()
           if not k.startswith(("MC_", "MISSION_CONTROL_", "VIRTUAL_ENV"))}
    # The package is not on an index here: pip finds it (and its dependencies) in local folders.
    env.update(MC_VERIFY_KEY=verify_key,
               PIP_FIND_LINKS=f"{wheel.parent} {os.environ.get('PIP_FIND_LINKS', '')}".strip())
    _run(install, machine, env)
    assert (machine / "mc" / "bin" / "mission-control").exists()

    sources = {"folder": shlex.quote(str(nas)),
               "s3": f"s3://{bucket}/mission-control --endpoint-url {seaweed.url}"}
    for kind, source in sources.items():
        folder = machine / kind
        folder.mkdir()
        (folder / "key.txt").write_text(identity + "\n")
        venv = os.path.relpath(machine / "mc", folder)
        _run(recover.replace(EXAMPLE_SOURCE, source).replace("mc/bin/", f"{venv}/bin/"),
             folder, env)
        db = folder / "data" / "mission-control.db"
        assert db.read_bytes() == backup.read_bytes(), kind
    status, health = _serve_health(serve.replace("mc/bin/", "../mc/bin/"), machine / "s3", env)
    assert status == 200 and health
