"""What a killed fetch, drill, S3 packing or upload left is swept at start; nothing else is."""
import os
import stat
import subprocess
import sys
import time

import pytest

from mission_control.backup.scratch import create_scratch

from tests.support.cli_run import run_cli

#: In the slow lane (real CLI runs after killed children: ~0.7 s on the 2-core machine).
pytestmark = pytest.mark.slow

#: What a run killed with SIGKILL leaves: the service's prefixes, nobody holding them.
LEFTOVERS = (".mc-tmp-fetch-4242-0123456789ab.tmp", ".mc-tmp-drill-4242-0123456789ab.tmp",
             ".mc-tmp-s3-4242-0123456789ab.tmp", ".mc-upload-4242-0123456789ab.tmp",
             ".mc-tmp-fetch-4242-0123456789ab.tmp-journal")
#: Not the service's, or not a file: never touched.
FOREIGN = ("notes.txt", ".mc-tmp-fetch-notes.txt", ".mc-tmpfile.tmp", ".other-4242.tmp",
           "mc-tmp-fetch-1.tmp")

HOLDER = """
import sys, pathlib
from mission_control.backup.scratch import create_scratch
path, out = create_scratch(pathlib.Path(sys.argv[1]), ".mc-tmp-fetch-")
print(path, flush=True)
sys.stdin.read()
"""


def test_a_start_sweeps_dead_scratch_files_and_nothing_else(mc, tmp_path):
    folder = mc.backups.dir
    data_dir = mc.config.db_path.parent
    mc.close()
    for name in LEFTOVERS + FOREIGN:
        (folder / name).write_bytes(b"left")
    (folder / ".mc-tmp-dir-1.tmp").mkdir()
    outside = tmp_path / "outside.tmp"
    outside.write_bytes(b"theirs")
    (folder / ".mc-tmp-link-1.tmp").symlink_to(outside)
    # Another process's fetch, running right now: its file is in use and must stay.
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        live = holder.stdout.readline().strip()
        ran = run_cli("--data-dir", data_dir, "backup", "list")
        assert ran.code == 0, ran.err
        left = {p.name for p in folder.iterdir()}
        assert not left & set(LEFTOVERS)
        assert set(FOREIGN) <= left
        assert {".mc-tmp-dir-1.tmp", ".mc-tmp-link-1.tmp", os.path.basename(live)} <= left
        assert outside.read_bytes() == b"theirs"
    finally:
        holder.stdin.close()
        holder.wait(10)
    run_cli("--data-dir", data_dir, "backup", "list")
    assert not os.path.exists(live)  # its process is gone now: the next start sweeps it


def test_scratch_files_are_private_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        path, out = create_scratch(tmp_path, ".mc-tmp-fetch-")
    finally:
        os.umask(old)
    with out:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert path.name.startswith(f".mc-tmp-fetch-{os.getpid()}-")


UPLOAD_HOLDER = HOLDER.replace('".mc-tmp-fetch-"', '".mc-upload-"')


def test_an_upload_in_progress_survives_another_upload_however_old(mc, admin_client):
    """Uploads are swept like every scratch file: by their writer's lock, not their age (an upload
    that has been trickling in for a day is still someone's)."""
    folder = mc.backups.dir
    holder = subprocess.Popen([sys.executable, "-c", UPLOAD_HOLDER, str(folder)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        live = holder.stdout.readline().strip()
        two_days_ago = time.time() - 2 * 86400  # file times are the OS clock's
        os.utime(live, (two_days_ago, two_days_ago))
        data = (folder / mc.backups.create(actor="test").name).read_bytes()
        uploaded = admin_client.post("/api/backup/upload", data=data,
                                     content_type="application/octet-stream")
        assert uploaded.status_code == 200, uploaded.json
        assert os.path.exists(live)
    finally:
        holder.stdin.close()
        holder.wait(10)


FOLDER_HOLDER = """
import sys, pathlib
from mission_control.backup.scratch import scratch_folder
with scratch_folder(pathlib.Path(sys.argv[1]), ".mc-tmp-send-") as path:
    (path / "pack").write_bytes(b"pages")
    print(path, flush=True)
    sys.stdin.read()
"""


def test_scratch_folders_are_removed_after_use_and_swept_only_when_dead(mc, tmp_path):
    from mission_control.backup.scratch import scratch_folder, sweep_scratch
    folder = mc.backups.dir
    with scratch_folder(folder, ".mc-tmp-send-") as path:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
        (path / "pack").write_bytes(b"pages")
    assert not path.exists()
    dead = folder / ".mc-tmp-send-4242-0123456789ab.d"  # a killed send's folder
    dead.mkdir()
    (dead / "manifest").write_bytes(b"left")
    outside = tmp_path / "outside"
    outside.mkdir()
    (folder / ".mc-tmp-send-4243-0123456789ab.d").symlink_to(outside)  # never followed
    holder = subprocess.Popen([sys.executable, "-c", FOLDER_HOLDER, str(folder)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        live = holder.stdout.readline().strip()
        assert sweep_scratch(folder) == 1
        assert not dead.exists() and os.path.isdir(live) and outside.is_dir()
    finally:
        holder.stdin.close()
        holder.wait(10)
    assert not os.path.exists(live)  # removed by its own process on the way out
