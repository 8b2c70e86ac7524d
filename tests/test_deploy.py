"""deploy/mission-control.service: systemd-analyze accepts it; hardened; runs our command."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "mission-control.service"
INSTALLED = "/opt/mission-control/bin/mission-control"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed "
                                   "(Debian package systemd)")
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
