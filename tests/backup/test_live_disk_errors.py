"""An I/O error on the live database's disk during a backup is logged and turns the verdict.

The error is real: an `LD_PRELOAD` shim, compiled here with the system's C compiler, makes every
`fsync`/`fdatasync` of the live database's file fail with EIO in the `mission-control backup
create` process, as a failing disk would. The backup's checkpoint (which writes WAL frames into
the file and fsyncs it) is the first to meet it.
"""
import json
import shutil
import subprocess
import time

import pytest
from werkzeug.test import Client

from mission_control.web import WebApp

from tests.support.cli_run import run_cli
from tests.support.helpers import add_tasks

#: In the slow lane (real CLI runs on a failing disk: ~2.5 s on the 2-core machine).
pytestmark = pytest.mark.slow

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failing(int fd) {
    const char *target = getenv("EIO_FSYNC_PATH");
    char link[64], path[4096];
    ssize_t n;
    if (target == NULL) return 0;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof path - 1);
    if (n < 0) return 0;
    path[n] = 0;
    return strcmp(path, target) == 0;
}

#define FAIL_ON_TARGET(name) \
    int name(int fd) { \
        static int (*real)(int); \
        if (failing(fd)) { errno = EIO; return -1; } \
        if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, #name); \
        return real(fd); \
    }
FAIL_ON_TARGET(fsync)
FAIL_ON_TARGET(fdatasync)
"""
KEY = "d" * 32


@pytest.fixture
def eio_shim(tmp_path):
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the EIO shim")
    (tmp_path / "eio.c").write_text(SHIM)
    built = subprocess.run([compiler, "-shared", "-fPIC", "-o", str(tmp_path / "eio.so"),
                            str(tmp_path / "eio.c"), "-ldl"], capture_output=True, text=True)
    if built.returncode:
        pytest.skip(f"the EIO shim does not build here: {built.stderr[-300:]}")
    return tmp_path / "eio.so"


def _status(mc):
    response = Client(WebApp(mc)).get("/api/backup/status", headers={"x-api-key": KEY})
    assert response.status_code == 200
    return response


def test_an_eio_on_the_live_database_is_logged_and_warns_until_a_clean_backup(make_mc,
                                                                               eio_shim):
    mc = make_mc(clock=time.time, api_key=KEY)
    mc.settings.update({"general.auto_backup": "true"}, "alice")
    db_path = mc.config.db_path.resolve()
    data_dir = db_path.parent
    add_tasks(mc, 200)  # WAL frames for the backup's checkpoint; mc's connection keeps the WAL

    failing = run_cli("backup", "create", "--data-dir", data_dir, env={
        "LD_PRELOAD": str(eio_shim), "EIO_FSYNC_PATH": str(db_path)})
    assert failing.code == 0, failing.err  # the backup is still made, page by page
    [line] = [line for line in failing.err.splitlines() if "I/O error on the live" in line]
    assert "ERROR" in line and str(db_path) in line and "disk I/O error" in line

    response = _status(mc)
    status = response.json
    assert status["last_success"]["copy"] == "pages"
    assert status["last_success"]["disk_error"] == "sqlite: disk I/O error"
    assert status["verdict"] == "warn"
    [reason] = status["reasons"]
    assert reason.startswith("the disk under the live database (mission-control.db) gave an I/O "
                             "error during the last backup")
    assert str(data_dir) not in response.get_data(as_text=True)
    made = status["last_success"]["name"]
    assert run_cli("backup", "verify", made, "--data-dir", data_dir, "--json").json["ok"]

    time.sleep(1.1)  # the next backup takes the next second's name anyway; keep them apart
    clean = run_cli("backup", "create", "--data-dir", data_dir)
    assert clean.code == 0 and "I/O error" not in clean.err
    cleared = _status(mc).json
    assert (cleared["verdict"], cleared["reasons"]) == ("pass", [])
    assert cleared["last_success"]["disk_error"] is None
    assert json.loads(run_cli("backup", "status", "--data-dir", data_dir, "--json").out)[
        "verdict"] == "pass"
