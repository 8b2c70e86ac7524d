"""deploy/mission-control.service: systemd-analyze accepts it; hardened; runs our command, and
a backup and a restore succeed under its system-call filter and its read-only file system."""
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import unit_seccomp
from tests.support.cli_run import COMMAND, PASSWORD, Ran, run_cli
from tests.support.helpers import read_titles

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "mission-control.service"
INSTALLED = "/opt/mission-control/bin/mission-control"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed "
                                   "(Debian package systemd)")
# The filter lines the unit shipped with before SystemCallErrorNumber=: a refused call killed the
# service (the negative case below shows it did).
OLD_FILTER = ("SystemCallArchitectures=native\nSystemCallFilter=@system-service\n"
              "SystemCallFilter=~@privileged @resources\n")
HARDENING = ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
             "PrivateDevices=yes", "RestrictSUIDSGID=yes", "CapabilityBoundingSet=",
             "User=mission-control", "StateDirectory=mission-control", "UMask=0077")


def local_unit(folder, text=None):
    """The unit with ExecStart pointing at this environment's `mission-control` (verify checks
    that the command exists and is executable)."""
    script = Path(sys.executable).with_name("mission-control")
    path = folder / "mission-control.service"
    path.write_text((text or UNIT.read_text()).replace(INSTALLED, str(script)))
    return path


def verify(path):
    """`systemd-analyze verify`: returns (exit status, its complaints)."""
    result = subprocess.run([ANALYZE, "verify", str(path)], capture_output=True, text=True,
                            timeout=60)
    return result.returncode, (result.stdout + result.stderr).strip()


@needs_analyze
def test_the_unit_verifies_without_a_complaint(tmp_path):
    assert verify(local_unit(tmp_path)) == (0, "")


@needs_analyze
def test_verify_would_catch_a_misspelled_or_missing_command(tmp_path):
    typo = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSystm=strict")
    assert "Unknown key" in verify(local_unit(tmp_path, typo))[1]
    missing = UNIT.read_text().replace(INSTALLED, "/nonexistent/mission-control")
    path = tmp_path / "missing.service"
    path.write_text(missing)
    assert verify(path)[0] != 0


@needs_analyze
def test_the_units_exposure_is_low(tmp_path):
    """`systemd-analyze security` scores exposure 0 (locked down) to 10; 2.0 or less is "OK"."""
    result = subprocess.run([ANALYZE, "security", "--offline=yes", "--threshold=20",
                             str(local_unit(tmp_path))], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]


def test_the_unit_is_hardened_and_serves_from_its_state_directory():
    lines = set(UNIT.read_text().splitlines())
    assert set(HARDENING) <= lines, set(HARDENING) - lines
    [start] = [line for line in lines if line.startswith("ExecStart=")]
    assert start == f"ExecStart={INSTALLED} serve --data-dir /var/lib/mission-control"


def as_unit(folder, unit_text, read_write=None):
    """The argv prefix that runs a command the way `unit_text` would: its system-call filter,
    as an ordinary user; with `read_write`, ProtectSystem=strict with those writable paths."""
    spec = folder / "unit-spec.json"
    spec.write_text(json.dumps({"filter": unit_seccomp.unit_filter(unit_text),
                                "read_write": read_write}))
    return unit_seccomp.wrapped(spec, [])


def add_task(db, title):
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("INSERT INTO tasks (title, status, created_at, updated_at) "
                     "VALUES (?, 'inbox', 0, 0)", (title,))
    conn.close()


def start(prefix, data):
    """A fresh service database with an admin, made under `prefix`."""
    made = run_cli("user", "add", "ann", "--role", "admin", "--password-stdin", "--data-dir",
                   data, stdin=PASSWORD + "\n", prefix=prefix)
    assert made.code == 0, made.err


def _probe(folder, read_write=None):
    ran = subprocess.run([*as_unit(folder, UNIT.read_text(), read_write), "/bin/true"],
                         capture_output=True, text=True, timeout=60)
    return ran.returncode == 0, ran.stderr[-300:]


@pytest.fixture(scope="module")
def unit_filter_here(tmp_path_factory):
    """Skips unless the unit's filter can be loaded here (as an ordinary user: from root, in a
    user namespace of its own)."""
    if ANALYZE is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    try:
        import pyseccomp  # noqa: F401 - the `test` extra
    except (ImportError, OSError, RuntimeError) as exc:  # no libseccomp.so: Debian libseccomp2
        pytest.skip(f"pyseccomp cannot load libseccomp: {exc}")
    worked, why = _probe(tmp_path_factory.mktemp("probe"))
    if not worked:
        pytest.skip(f"cannot run a command under a seccomp filter here: {why}")


@pytest.fixture(scope="module")
def protect_system_here(unit_filter_here, tmp_path_factory):
    """Skips unless ProtectSystem=strict can be played (a mount namespace of its own: root)."""
    if os.geteuid() != 0:
        pytest.skip("a mount namespace of its own needs root")
    worked, why = _probe(tmp_path_factory.mktemp("probe"), read_write=[])
    if not worked:
        pytest.skip(f"no mount namespace here: {why}")


def test_the_unit_names_a_read_write_path_for_each_path_setting(mc):
    """Every setting that names a place on disk has its ReadWritePaths= line in the unit's
    header (ProtectSystem=strict makes everything else read-only), as has the database path."""
    header = [line for line in UNIT.read_text().splitlines() if line.startswith("#")]
    keys = [s["key"] for s in mc.settings.list()
            if s["key"].endswith(".path") or "file:///" in s["description"]]
    assert {"offsite.dir.path", "audit.jsonl.path", "pitr.replica_url"} <= set(keys)
    for key in [*keys, "MISSION_CONTROL_DB_PATH"]:
        [at] = [i for i, line in enumerate(header) if f" {key} = " in line]
        assert "ReadWritePaths=/" in " ".join(header[at:at + 2]), key


def test_the_install_line_names_every_extra_the_service_uses():
    from configparser import ConfigParser
    extras = ConfigParser()
    extras.read(ROOT / "setup.cfg")
    # test and docs build and check the project; the running service never imports them.
    wanted = set(extras["options.extras_require"]) - {"test", "docs"}
    [line] = [line for line in UNIT.read_text().splitlines() if "pip install" in line]
    listed = line.split("mission-control-backup[", 1)[1].split("]", 1)[0].split(",")
    assert set(listed) == wanted


def test_the_units_filter_refuses_resource_calls_softly(unit_filter_here, tmp_path):
    """Under the shipped unit the calls the backup makes fail with EPERM (the filter is loaded:
    they are refused, not allowed), and a call it never makes is still refused."""
    spec = unit_seccomp.unit_filter(UNIT.read_text())
    assert spec["default"] == 1 and "ioprio_set" not in spec["rules"]  # EPERM, not allowed
    probe = ("import errno, os\n"
             "for call in (lambda: os.setpriority(os.PRIO_PROCESS, 0, 10), lambda: os.nice(1),\n"
             "             lambda: os.sched_setaffinity(0, {0})):\n"
             "    try:\n        call()\n        print('allowed')\n"
             "    except OSError as exc:\n        print(errno.errorcode[exc.errno])\n")
    ran = subprocess.run([*as_unit(tmp_path, UNIT.read_text()), sys.executable, "-I", "-c",
                          probe], capture_output=True, text=True, timeout=60)
    assert (ran.returncode, ran.stdout.split()) == (0, ["EPERM"] * 3), ran.stderr


def test_a_backup_and_a_restore_run_under_the_units_system_call_filter(unit_filter_here, tmp_path):
    data = tmp_path / "data"
    prefix = as_unit(tmp_path, UNIT.read_text())
    start(prefix, data)
    db = data / "mission-control.db"
    add_task(db, "before")
    made = run_cli("backup", "create", "--json", "--data-dir", data, prefix=prefix)
    assert made.code == 0, made.err
    name = made.json["backup"]["name"]
    add_task(db, "after")
    restored = run_cli("backup", "restore", name, "--yes", "--json", "--data-dir", data,
                       prefix=prefix)
    assert restored.code == 0 and restored.json["success"] is True, restored.err
    assert read_titles(db) == ["before"]
    # The swap's child (sqlean's SQLite, prctl) ran under the filter: no fallback to the backup API.
    with sqlite3.connect(db) as conn:
        [(detail,)] = conn.execute("SELECT detail FROM audit_log WHERE action = 'backup_restore'")
    assert json.loads(detail)["swap"]["method"] == "pages"
    checked = run_cli("backup", "verify", name, "--json", "--data-dir", data, prefix=prefix)
    assert checked.code == 0 and checked.json["ok"] is True, checked.err


def test_the_old_filter_lines_kill_the_backups_copy(unit_filter_here, tmp_path):
    """The same run under the filter the unit shipped with: the copy child's first ioprio_set
    is its last call, and the backup fails."""
    data = tmp_path / "data"
    old_unit = UNIT.read_text().replace("SystemCallErrorNumber=EPERM\n", "")
    assert OLD_FILTER in old_unit  # the fix is that one line, nothing else
    prefix = as_unit(tmp_path, old_unit)
    start(prefix, data)
    ran = subprocess.run([*prefix, COMMAND, "backup", "create", "--data-dir", str(data)],
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 1 and "stopped by signal SIGSYS" in ran.stderr, ran.stderr[-2000:]
    assert not list((data / "backups").glob("*.db"))


def unit_cli(prefix, data, *args, failures_logged=False):
    """The CLI under `prefix`; `failures_logged`: a plugin's failure is expected, and the host
    logs it with its traceback (run_cli would take that for a crash of the command)."""
    if not failures_logged:
        return run_cli(*args, "--data-dir", data, prefix=prefix)
    ran = subprocess.run([*prefix, COMMAND, *map(str, args), "--data-dir", str(data)],
                         capture_output=True, text=True, timeout=120)
    return Ran(ran.returncode, ran.stdout, ran.stderr)


def read_write_paths(text):
    return [word for line in text.splitlines() if line.startswith("ReadWritePaths=")
            for word in line.partition("=")[2].split()]


@pytest.mark.parametrize("drop_in", [True, False], ids=["with-drop-in", "as-shipped"])
def test_paths_outside_the_state_directory_need_the_documented_drop_in(protect_system_here,
                                                                       tmp_path, drop_in):
    """ProtectSystem=strict played in a mount namespace: the state directory (the data folder
    here) and the unit's ReadWritePaths= are writable, all else read-only. With the drop-in the
    header describes, the off-site folder and the JSONL audit file are written; without it they
    are not, and the backup itself still succeeds."""
    data, nas, logs = tmp_path / "data", tmp_path / "nas", tmp_path / "log"
    for folder in (data, nas, logs):
        folder.mkdir()
    text = UNIT.read_text()
    if drop_in:  # what `systemctl edit mission-control` adds, as the header says
        text += f"\n[Service]\nReadWritePaths={nas}\nReadWritePaths={logs}\n"
    writable = [str(data), *read_write_paths(text)]
    assert writable == ([str(data), str(nas), str(logs)] if drop_in else [str(data)])
    prefix = as_unit(tmp_path, text, read_write=writable)
    start(prefix, data)
    failing = not drop_in
    assert unit_cli(prefix, data, "settings", "set", f"offsite.dir.path={nas}",
                    f"audit.jsonl.path={logs / 'audit.jsonl'}",
                    failures_logged=failing).code == 0
    made = unit_cli(prefix, data, "backup", "create", "--json", failures_logged=failing)
    assert made.code == (5 if failing else 0), made.err  # 5: made, but the off-site copy failed
    name = json.loads(made.out)["backup"]["name"]
    assert [t["ok"] for t in json.loads(made.out)["offsite"]] == [not failing]
    assert (data / "backups" / name).is_file()
    if drop_in:
        assert sorted(os.listdir(nas)) == ["catalog", name, f"{name}.manifest.json"]  # signed
        assert os.listdir(nas / "catalog") == [f"{name}.json"]  # its catalog entry
        assert "backup_create" in (logs / "audit.jsonl").read_text()
    else:
        assert os.listdir(nas) == [] and os.listdir(logs) == []
        assert "Read-only file system" in made.err
        status = run_cli("backup", "status", "--json", "--data-dir", data)
        problem = "off-site copy to dir failed: OSError: Read-only file system"
        assert problem in status.out, status.out
