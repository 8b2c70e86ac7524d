"""The web page's serving: HTML and assets from package data, strict CSP, no way out of /static."""
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import mission_control

STATIC = Path(mission_control.__file__).parent / "static"


def test_root_serves_the_page_with_a_strict_csp(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert b'<script type="module" src="/static/app.js">' in response.data


def test_page_has_no_inline_script_or_style():
    """The CSP would block them, so none may exist (the browser tests check nothing is blocked)."""
    html = (STATIC / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert "<style" not in html and " style=" not in html
    assert not re.search(r"\son[a-z]+=", html)  # no onclick= and friends
    for script in STATIC.glob("*.js"):
        text = script.read_text()
        assert "innerHTML" not in text and "eval(" not in text, script.name


@pytest.mark.parametrize("name, mimetype", [("app.js", "text/javascript"), ("api.js", "text/javascript"),
                                            ("format.js", "text/javascript"), ("dom.js", "text/javascript"),
                                            ("render.js", "text/javascript"), ("app.css", "text/css"),
                                            ("favicon.svg", "image/svg+xml")])
def test_static_assets_are_served_and_revalidated(client, name, mimetype):
    response = client.get(f"/static/{name}")
    assert response.status_code == 200
    assert response.mimetype == mimetype
    assert response.data == (STATIC / name).read_bytes()
    assert response.headers["Cache-Control"] == "no-cache"
    etag = response.headers["ETag"]
    again = client.get(f"/static/{name}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""


@pytest.mark.parametrize("path", ["/static/missing.js", "/static/../core.py", "/static/%2e%2e/core.py",
                                  "/static/index.html", "/static/schema/0001_initial.sql",
                                  "/static/..%2fcore.py", "/static/APP.JS", "/static/"])
def test_static_serves_nothing_else(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.json == {"error": "Not found"}


def test_page_needs_no_session_but_the_api_does(client):
    assert client.get("/").status_code == 200
    assert client.get("/api/backup").status_code == 401


def test_post_to_the_page_is_refused(client):
    response = client.post("/")
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]


def test_static_files_are_package_data():
    """setup.cfg and MANIFEST.in ship every file the page loads, so an installed copy works."""
    root = Path(mission_control.__file__).parent.parent
    setup = (root / "setup.cfg").read_text()
    manifest = (root / "MANIFEST.in").read_text()
    assert "static/*" in setup
    assert "recursive-include mission_control/static" in manifest
    html = (STATIC / "index.html").read_text()
    for ref in re.findall(r'(?:src|href)="/static/([^"]+)"', html):
        assert (STATIC / ref).is_file(), ref
        assert ref.rsplit(".", 1)[1] in manifest


@pytest.mark.slow
def test_a_built_wheel_carries_the_page(tmp_path):
    """What pip installs from a wheel has every static file (package data, not just the tree)."""
    root = Path(mission_control.__file__).parent.parent
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(root), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(tmp_path)], check=True,
                   capture_output=True, cwd=tmp_path)
    [wheel] = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in STATIC.iterdir():
        assert f"mission_control/static/{path.name}" in names
