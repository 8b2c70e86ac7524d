"""The point-in-time form in a real Chromium in Europe/Berlin against the real app with a stand-in
engine (a fixed window): the repeated hour when the clocks go back, quick picks on the service's
clock, errors and a running restore that a background refresh leaves alone, and what a plain
stream's restore says it restored to."""
import re
import threading
import time
from datetime import datetime, timezone

import pytest

from mission_control import hookimpl
from tests.support.browser import DESKTOP, open_tab, wait_ready
from tests.support.accounts import PASSWORD
from tests.support.pitr_engine import Engine

expect = pytest.importorskip("playwright.sync_api",
                             reason="browser tests need playwright: pip install -e '.[test]'").expect

ZONE = "Europe/Berlin"
# 2026-10-25: at 03:00 CEST the clocks go back to 02:00 CET, so 02:30 happens twice.
FIRST = datetime(2026, 10, 25, 0, 30, tzinfo=timezone.utc)   # 02:30 CEST (UTC+02:00)
SECOND = datetime(2026, 10, 25, 1, 30, tzinfo=timezone.utc)  # 02:30 CET (UTC+01:00)
EARLIEST = datetime(2026, 10, 24, 12, 0, tzinfo=timezone.utc)
LATEST = datetime(2026, 10, 25, 12, 0, tzinfo=timezone.utc)
HALF_PAST_TWO = re.compile(r"^2026-10-25T02:30(:00)?$")  # Chromium drops ":00" seconds


def ms(when):
    return int(when.timestamp() * 1000)


class SlowEngine(Engine):
    """The stand-in engine, whose restore waits until the test lets it go (`release`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.started, self.release = threading.Event(), threading.Event()

    @hookimpl(tryfirst=True)
    def pitr_restore_to(self, at_ms, dest):
        self.started.set()
        assert self.release.wait(30)
        return super().pitr_restore_to(at_ms, dest)


@pytest.fixture
def berlin(browser, live_server, users):
    """A page in Europe/Berlin on the live server; fails the test if the page threw."""
    context = browser.new_context(base_url=live_server, viewport=DESKTOP, timezone_id=ZONE)
    page = context.new_page()
    # The page's clock stands still, as the service's fake clock does, and moves only when the
    # test moves it (the 30 s refresh). Were it to flow, the page's idea of the service's time
    # would run ahead of the frozen service by the time the test takes between a refresh and a
    # quick pick: a second or more on a loaded machine, and "1 min ago" a second late.
    page.clock.install()
    page.clock.pause_at(datetime.fromtimestamp(time.time() + 2, timezone.utc))
    page.set_default_timeout(10_000)
    problems = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    yield page
    context.close()
    assert problems == []


def log_in(page):
    page.goto("/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    wait_ready(page)


def refresh(page):
    """Let 30 s pass on the page's clock: its background refresh reloads everything it shows."""
    with page.expect_response(lambda r: r.url.endswith("/api/backup/pitr")):
        page.clock.run_for(30_000)
    wait_ready(page)


@pytest.fixture
def engine(mc):
    """The stand-in engine over a window around the change, registered once a session exists
    (its copy is a backup made after the login, so the session survives the restore)."""
    made = {}

    def start(kind=Engine):
        made["engine"] = kind(mc.backups.create("alice").path, earliest=ms(EARLIEST),
                              latest=ms(LATEST))
        mc.pm.register(made["engine"])
        return made["engine"]
    return start


def test_the_repeated_hour_is_restored_to_the_instant_picked(berlin, mc, clock, engine):
    """"1 min ago" at 02:31 CET on the night the clocks go back is 02:30 CET (01:30Z), not the
    02:30 CEST an hour before; the quick pick counts from the service's clock, not the browser's
    (here a month later); a typed 02:30 is said to be ambiguous and offered both ways."""
    clock.now = SECOND.timestamp() + 60
    page = berlin
    log_in(page)
    started = engine()
    refresh(page)
    open_tab(page, "pitr")
    field = page.get_by_label("Moment (your time, to the second)")
    utc = page.locator("#pitr-utc")

    page.get_by_role("button", name="1 min ago", exact=True).click()
    expect(field).to_have_value(HALF_PAST_TWO)
    expect(utc).to_contain_text("2026-10-25T01:30:00Z")
    expect(page.locator("#pitr-error")).to_be_hidden()
    refresh(page)  # the background refresh keeps the instant picked
    expect(utc).to_contain_text("2026-10-25T01:30:00Z")

    page.get_by_role("button", name="Restore to this moment…").click()
    dialog = page.get_by_role("dialog", name="Restore to this moment?")
    expect(dialog.locator("#pitr-typed-hint")).to_contain_text("2026-10-25 02:30:00+01:00")
    typed = dialog.get_by_label("Type the moment")
    confirm = dialog.get_by_role("button", name="Restore", exact=True)
    typed.fill("2026-10-25 02:30:00")  # which 02:30? neither
    expect(confirm).to_be_disabled()
    typed.fill("2026-10-25 02:30:00+02:00")  # the other one
    expect(confirm).to_be_disabled()
    typed.fill("2026-10-25 02:30:00+01:00")
    expect(confirm).to_be_enabled()
    confirm.click()
    result = page.locator("#pitr-result")
    # A plain stream does not say what it restored to: an hour-old moment is a step at or before.
    expect(result).to_contain_text("Restored the database to a moment at or before ")
    expect(result).to_contain_text("(2026-10-25T01:30:00.000Z)")
    assert started.asked == [ms(SECOND)]

    # Typed in the picker: 02:30 that night is two instants; the page asks which.
    field.fill("2026-10-25T02:30:00")
    expect(utc).to_contain_text("2026-10-25 02:30:00 happens twice in Europe/Berlin")
    choices = page.locator("#pitr-choices button")
    expect(choices).to_have_count(2)
    expect(choices.nth(0)).to_contain_text("+02:00")
    page.get_by_role("button", name="Restore to this moment…").click()
    expect(page.locator("#pitr-error")).to_contain_text("happens twice")
    choices.nth(0).click()
    expect(utc).to_contain_text("2026-10-25T00:30:00Z")
    # ... or typed in UTC or with its offset in the text field.
    page.get_by_label("…or type it in UTC or with its offset").fill("2026-10-25T01:30:00Z")
    expect(field).to_have_value(HALF_PAST_TWO)
    expect(utc).to_contain_text("2026-10-25T01:30:00Z")
    field.fill("2026-03-29T02:30:00")
    expect(utc).to_contain_text("does not exist in Europe/Berlin")


def test_a_recent_moment_of_a_plain_stream_is_restored_to_the_second(berlin, mc, clock, engine):
    clock.now = LATEST.timestamp() + 60
    page = berlin
    log_in(page)
    engine()
    refresh(page)
    open_tab(page, "pitr")
    page.get_by_role("button", name="1 min ago", exact=True).click()  # 12:00:00Z, the newest
    page.get_by_role("button", name="Restore to this moment…").click()
    dialog = page.get_by_role("dialog", name="Restore to this moment?")
    dialog.get_by_label("Type the moment").fill("RESTORE")
    dialog.get_by_role("button", name="Restore", exact=True).click()
    result = page.locator("#pitr-result")
    expect(result).to_contain_text("Restored the database to ")
    expect(result).to_contain_text("(2026-10-25T12:00:00.000Z).")
    expect(result).not_to_contain_text("at or before")


def test_a_refresh_keeps_the_error_shown_and_the_running_restore_busy(berlin, mc, clock, engine):
    clock.now = LATEST.timestamp() + 60
    page = berlin
    log_in(page)
    slow = engine(SlowEngine)
    refresh(page)
    open_tab(page, "pitr")
    page.get_by_role("button", name="15 min ago", exact=True).click()
    page.get_by_label("Moment (your time, to the second)").fill("2026-10-20T10:00:00")
    page.get_by_role("button", name="Restore to this moment…").click()
    error = page.locator("#pitr-error")
    expect(error).to_contain_text("is outside the restorable window")
    refresh(page)
    expect(error).to_contain_text("is outside the restorable window")  # still there
    page.get_by_role("button", name="5 min ago", exact=True).click()  # what the user does clears it
    expect(error).to_be_hidden()

    page.get_by_role("button", name="Restore to this moment…").click()
    dialog = page.get_by_role("dialog", name="Restore to this moment?")
    dialog.get_by_label("Type the moment").fill("RESTORE")
    dialog.get_by_role("button", name="Restore", exact=True).click()
    assert slow.started.wait(10)
    submit = page.locator("#pitr-submit")
    expect(submit).to_be_disabled()
    try:
        refresh(page)
        expect(submit).to_be_disabled()
        expect(submit).to_have_attribute("aria-busy", "true")
    finally:
        slow.release.set()
    expect(page.locator("#pitr-result")).to_contain_text("Restored the database to")
    expect(submit).to_be_enabled()


def test_quick_picks_count_from_the_services_clock_to_the_millisecond(berlin, mc, clock, engine):
    """The service's clock 1.5 s ahead of the browser's: "1 min ago" is a minute before the
    service's time, measured to the millisecond (no difference is taken for rounding)."""
    whole = int(time.time()) + 60
    page = berlin
    page.clock.pause_at(datetime.fromtimestamp(whole + 0.25, timezone.utc))
    clock.now = whole + 30 + 1.75  # when the refresh (30 s on the page's clock) asks
    log_in(page)
    started = Engine(mc.backups.create("alice").path, earliest=(whole - 3600) * 1000,
                     latest=(whole + 3600) * 1000)
    mc.pm.register(started)
    refresh(page)
    open_tab(page, "pitr")
    page.get_by_role("button", name="1 min ago", exact=True).click()
    picked = datetime.fromtimestamp(whole - 29, timezone.utc)  # floor(whole + 31.75 - 60)
    expect(page.locator("#pitr-utc")).to_contain_text(picked.strftime("%Y-%m-%dT%H:%M:%SZ"))
