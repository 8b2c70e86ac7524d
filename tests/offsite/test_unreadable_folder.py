"""A folder target that cannot be read is not an empty one: listing it fails, and so does a copy
run that cannot see everything there (the installed CLI, run without root's power to read any
file, as the service's own user is)."""
import os
import shutil

import pytest

from tests.support.cli_run import run_cli


@pytest.fixture
def unprivileged():
    """The argv prefix that drops root's override of file permissions (nothing when not root)."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv to run without CAP_DAC_OVERRIDE as root")
    return ("setpriv", "--bounding-set=-dac_override,-dac_read_search")


@pytest.fixture
def nas(mc, tmp_path):
    folder = tmp_path / "nas"
    folder.mkdir(mode=0o700)
    mc.settings.update({"offsite.dir.path": str(folder)}, actor="test")
    mc.backups.create(actor="test")
    assert mc.offsite.get("dir")["ok"] is True
    yield folder
    for path in (folder, folder / "archive"):
        if path.exists():
            path.chmod(0o700)


def test_an_unreadable_folder_does_not_list_as_empty(mc, nas, unprivileged):
    nas.chmod(0o300)  # can be entered and written, not read: a share with the wrong rights
    listed = run_cli("offsite", "list", "dir", "--data-dir", mc.config.data_dir,
                     prefix=unprivileged)
    assert listed.code != 0, listed.out
    assert "Permission denied" in listed.err and str(nas) not in listed.err


def test_a_copy_run_that_cannot_read_the_whole_folder_fails(mc, nas, unprivileged):
    (nas / "archive").mkdir(mode=0o000)  # someone else's, unreadable to the service
    (nas / "lost+found").mkdir(mode=0o000)  # a filesystem's own: never looked into
    made = run_cli("backup", "create", "--data-dir", mc.config.data_dir, prefix=unprivileged)
    # The local backup is never affected; the failed copy is exit 5, and named in the summary.
    assert made.code == 5, made.err
    assert "; off-site dir: FAILED: copied and verified, but keeping" in made.out
    result = mc.offsite.get("dir")
    assert result["ok"] is False
    assert result["message"] == ("copied and verified, but keeping the newest copies failed: "
                                 "PermissionError: Permission denied")
    status = run_cli("backup", "status", "--json", "--data-dir", mc.config.data_dir)
    assert status.json["verdict"] == "fail"
    assert any("Permission denied" in reason for reason in status.json["reasons"])
    (nas / "archive").rmdir()
    made = run_cli("backup", "create", "--data-dir", mc.config.data_dir, prefix=unprivileged)
    assert made.code == 0 and mc.offsite.get("dir")["ok"] is True, mc.offsite.get("dir")
