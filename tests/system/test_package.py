"""The sdist and the wheel build with `python -m build` and pass `twine check`; the sdist carries
the documentation site's sources, the changelog and the monitoring files (MANIFEST.in)."""
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from mission_control import __version__

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("setup.cfg", "pyproject.toml", "MANIFEST.in", "README.md", "CHANGELOG.md", "mkdocs.yml",
           "mission_control", "plugins", "docs", "deploy")

pytest.importorskip("build", reason="build is not installed (the [test] extra installs it)")
pytest.importorskip("twine", reason="twine is not installed (the [test] extra installs it)")


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """The sdist and wheel of a copy of the sources (the build leaves nothing in the tree)."""
    source = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    # No isolation: the build needs only setuptools and wheel, which the [test] extra installs.
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel",
                           "--outdir", str(out), str(source)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [sdist] = out.glob("*.tar.gz")
    [wheel] = out.glob("*.whl")
    return sdist, wheel


def test_both_pass_twine_check(dist):
    done = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, dist)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2, done.stdout


def test_the_sdist_carries_the_docs_changelog_and_monitoring(dist):
    sdist, wheel = dist
    assert f"-{__version__}" in sdist.name and f"-{__version__}-" in wheel.name
    top = sdist.name[:-len(".tar.gz")]
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    assert {"CHANGELOG.md", "mkdocs.yml", "docs/index.md", "docs/gen_reference.py",
            "docs/reference/settings.md", "docs/api/openapi.json",
            "deploy/prometheus/alerts.yml", "deploy/prometheus/alerts_test.yml",
            "deploy/grafana/mission-control.json", "deploy/mission-control.service"} <= names, top
    with zipfile.ZipFile(wheel) as archive:
        wheel_names = archive.namelist()
    assert "mission_control/static/index.html" in wheel_names
    assert not [n for n in wheel_names if n.startswith(("docs/", "tests/"))]
