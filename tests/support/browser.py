"""Browser-test support: one headless Debian Chromium per session, driven by Playwright.

The fixtures are imported by `conftest.py`, so that the session has exactly one browser.
"""
import os
from pathlib import Path

import pytest

from tests.support.accounts import PASSWORD

CHROMIUM = os.environ.get("MC_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium, launched once; skips (never passes) when there is no browser."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"browser tests need Chromium at {CHROMIUM}: "
                    "apt-get install -y chromium (or set MC_TEST_CHROMIUM)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="browser tests need playwright: pip install -e '.[test]'")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def open_page(browser, live_server, users):
    """`open_page(viewport=DESKTOP)`: a fresh browser context on the live server.

    Fails the test afterwards if the page threw, or logged an error other than a failed request
    (the API's 401/404/429 answers are logged by Chromium as failed resources; a CSP violation is not).
    """
    contexts, problems = [], []

    def open_(viewport=DESKTOP):
        context = browser.new_context(base_url=live_server, viewport=viewport, accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.on("console", lambda msg: problems.append(f"console: {msg.text}")
                if msg.type == "error" and "Failed to load resource" not in msg.text else None)
        return page

    yield open_
    for context in contexts:
        context.close()
    assert problems == []


def shot(page, name):
    """Save a full-page screenshot as tests/artifacts/<name>.png (git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def log_in(page, username="alice", password=None, ready=None):
    """Open `/` and log in through the form, as a person would (default: the users' PASSWORD).

    With `ready` (the default for an admin and the right password), wait until the backups page
    has finished loading (`#main` loses `aria-busy`), so the test does not race its first fetches.
    """
    if password is None:
        password = PASSWORD
        ready = username == "alice" if ready is None else ready
    page.goto("/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    if ready:
        wait_ready(page)


def wait_ready(page):
    """Wait until the backups page shows and none of its loads is still running."""
    page.locator("#app-view").wait_for(state="visible")
    page.locator("#main:not([aria-busy])").wait_for(state="attached")


TABS = {"backups": "Backups", "schedule": "Schedule & retention", "offsite": "Off-site",
        "pitr": "Point in time", "activity": "Activity"}


def open_tab(page, key):
    """Show the page's view `key` (a key of TABS) by clicking its tab, as a person would."""
    page.get_by_role("tab", name=TABS[key], exact=True).click()
    page.locator(f"#view-{key}").wait_for(state="visible")


def row_action(page, name, label):
    """Click the row action `label` ("Verify", "Delete", ...) of backup `name`: directly when the
    row shows it, else through the row's "More" menu."""
    button = page.get_by_role("button", name=f"{label} {name}", exact=True)
    if not button.is_visible():
        page.get_by_role("button", name=f"More actions for {name}", exact=True).click()
    button.click()
