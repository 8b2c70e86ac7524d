"""Every test in this folder starts real processes, browsers, containers or installs: mark it
`slow`; the wheel of this tree, built once for the tests that install it."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SOURCES = ("setup.cfg", "pyproject.toml", "MANIFEST.in", "README.md", "mission_control", "plugins")


def pytest_collection_modifyitems(items):
    # A conftest's hook sees every collected item, not just this folder's: pick ours by path.
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory):
    """A wheel built from a copy of the sources (the build leaves nothing in the tree)."""
    source = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, source / name, **({"ignore": shutil.ignore_patterns(
            "__pycache__", "*.egg-info")} if (ROOT / name).is_dir() else {}))
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                             "--no-build-isolation", "--no-index", "-w", str(out), str(source)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [built] = out.glob("mission_control_backup-*.whl")
    return built
