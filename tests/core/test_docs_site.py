"""The documentation site builds with `mkdocs build --strict`: a broken link, a missing anchor or a
page left out of the navigation fails the suite (the `[test]` extra installs mkdocs)."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[docs]')")
pytest.importorskip("material", reason="mkdocs-material is not installed (pip install -e '.[docs]')")


def build(site, config=ROOT / "mkdocs.yml"):
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                           "--config-file", str(config), "--site-dir", str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"})


def test_the_site_builds_strictly(tmp_path):
    done = build(tmp_path / "site")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for page in ("index.html", "reference/http-api/index.html", "reference/settings/index.html",
                 "changelog/index.html", "monitoring/index.html"):
        assert (tmp_path / "site" / page).is_file(), page
    changelog = (tmp_path / "site" / "changelog" / "index.html").read_text()
    assert "Keep a Changelog" in changelog  # CHANGELOG.md is included, not linked


def test_a_broken_link_fails_the_build(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\nSee [the missing page](missing.md).\n")
    config = tmp_path / "mkdocs.yml"
    config.write_text(
        (ROOT / "mkdocs.yml").read_text().split("\nnav:\n", 1)[0]
        .replace("docs_dir: docs", f"docs_dir: {docs}") + "\nnav:\n  - Home: index.md\n")
    done = build(tmp_path / "site", config)
    assert done.returncode != 0
    assert "missing.md" in done.stdout + done.stderr
