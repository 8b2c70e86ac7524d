"""The host's layers and the plugins' boundary, as import-linter contracts in setup.cfg."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).parent / "lint-imports"


def lint(*args):
    return subprocess.run([str(LINT), "--no-cache", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_no_module_imports_a_layer_above_it_and_plugins_use_the_public_face():
    done = lint()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout


def test_the_contract_is_checked(tmp_path):
    """The same contract with two layers swapped is broken: the check can fail."""
    config = (ROOT / "setup.cfg").read_text().replace(
        "    mission_control.offsite\n    mission_control.backup\n",
        "    mission_control.backup\n    mission_control.offsite\n")
    (tmp_path / "swapped.cfg").write_text(config)
    done = lint("--config", str(tmp_path / "swapped.cfg"))
    assert done.returncode != 0
    assert "mission_control.backup is not allowed to import mission_control.offsite" \
        not in done.stdout
    assert "mission_control.offsite is not allowed to import mission_control.backup" in done.stdout
