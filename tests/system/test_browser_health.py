"""The admin page tells the truth and stays current: off-site panel, reasons, refresh, elapsed."""
import re
import threading
import time

import pytest

from mission_control import human_size
from mission_control.backup.service import LOCK_NAME
from mission_control.files import FileLock
from tests.support.browser import PHONE, log_in, open_tab, shot

expect = pytest.importorskip("playwright.sync_api",
                             reason="browser tests need playwright: pip install -e '.[test]'").expect

UNMOUNTED = "offsite.dir.path is not an existing absolute folder (is the share mounted?)"
HIDE = """(state) => {
    Object.defineProperty(document, "visibilityState", {configurable: true, get: () => state});
    document.dispatchEvent(new Event("visibilitychange"));
}"""


@pytest.fixture
def mc(make_mc):
    return make_mc(backup_lock_timeout=120)  # a backup waits while a test holds the lock


def test_the_offsite_panel_shows_each_target_and_why_the_verdict_fails(open_page, mc, tmp_path):
    share = tmp_path / "share"
    mc.settings.update({"general.auto_backup": "true", "offsite.dir.path": str(share)}, "alice")
    mc.backups.create("scheduler")
    page = open_page()
    log_in(page)
    expect(page.locator("#health-verdict")).to_have_text("Failing")
    expect(page.locator("#health-reasons li")).to_have_text(
        [f"Off-site copy to dir failed: {UNMOUNTED}."])
    row = page.locator('#offsite-body tr[data-target="dir"]')
    expect(row.locator("th")).to_have_text("dir")
    expect(row.locator('td[data-label="Last result"]')).to_contain_text(f"✗ Failed: {UNMOUNTED}")
    expect(row.locator('td[data-label="When"] time')).to_have_count(1)
    expect(row.locator('td[data-label="Last good copy"]')).to_have_text("never")
    expect(page.locator("#offsite-none")).to_be_hidden()
    open_tab(page, "offsite")
    expect(row).to_be_visible()
    shot(page, "offsite-failing")

    share.mkdir()  # the share is mounted again; the next backup reaches it
    open_tab(page, "backups")
    page.locator("#backup-now").click()
    expect(row.locator('td[data-label="Last result"]')).to_contain_text("✓ Copied mc-backup-")
    expect(row.locator('td[data-label="Last good copy"] time')).to_have_count(1)
    expect(page.locator("#health-verdict")).to_have_text("Healthy")
    expect(page.locator("#health-reasons li")).to_have_count(0)
    expect(page.locator("#audit-body")).to_contain_text("copied a backup off-site")


def test_without_an_offsite_target_the_panel_says_backups_stay_here(open_page, mc):
    page = open_page()
    log_in(page)
    open_tab(page, "offsite")
    expect(page.locator("#offsite-none")).to_be_visible()
    expect(page.locator("#offsite-none")).to_contain_text("on this server only")
    expect(page.locator("#offsite-table")).to_be_hidden()


def test_the_page_refreshes_itself_while_visible_and_not_while_hidden(open_page, mc):
    page = open_page()
    page.clock.install()  # the page's timers run on a clock the test moves
    log_in(page)
    rows = page.locator("#backups-body tr")
    expect(rows).to_have_count(0)
    made = mc.backups.create("scheduler")  # behind the page's back
    page.clock.run_for(30_500)
    expect(rows).to_have_count(1)
    expect(page.locator("#audit-body tr").first).to_contain_text("created a backup")
    expect(page.locator("#health-summary")).to_contain_text(made.name)

    fetched = []
    page.on("request", lambda request: fetched.append(request.url))
    page.evaluate(HIDE, "hidden")
    mc.backups.create("scheduler")
    page.clock.run_for(95_000)
    page.evaluate("() => new Promise((done) => setTimeout(done, 0))")  # let anything queued run
    assert [url for url in fetched if "/api/" in url] == []
    expect(rows).to_have_count(1)
    page.evaluate(HIDE, "visible")  # back on screen after more than 30 s: at once
    expect(rows).to_have_count(2)


def test_a_running_backup_shows_the_time_it_has_taken(open_page, mc):
    page = open_page()
    page.clock.install()
    log_in(page)
    button = page.locator("#backup-now")
    with FileLock(mc.backups.dir / LOCK_NAME).hold(0) as locked:  # the backup waits for this
        assert locked
        button.click()
        expect(button).to_have_text("Backing up… 0 s")
        page.clock.run_for(5_000)
        expect(button).to_have_text("Backing up… 5 s")
        expect(page.get_by_role("status")).to_have_text("Making a backup… 5 s so far.")
    expect(page.locator("#backups-body tr")).to_have_count(1)
    expect(button).to_have_text("Back up now")
    expect(page.get_by_role("status")).to_contain_text("created")


def test_a_scheduled_run_in_progress_shows_how_long_it_has_gone_on(open_page, mc):
    page = open_page()
    page.clock.install()
    log_in(page)
    last = page.locator("#last-result")
    with FileLock(mc.backups.dir / LOCK_NAME).hold(0) as locked:  # the run waits for this
        assert locked
        runner = threading.Thread(target=mc.scheduler.run_now, args=("auto_backup", "scheduler"))
        runner.start()
        deadline = time.monotonic() + 30
        while not mc.scheduler.status()[0].running and time.monotonic() < deadline:
            time.sleep(0.05)
        page.clock.run_for(30_500)  # the page's own refresh finds it running
        expect(last).to_have_text(re.compile(r"^Running now… \d+ s$"))
        page.clock.run_for(5_000)
        expect(last).to_have_text(re.compile(r"^Running now… ([5-9]|\d\d+) s$"))
    runner.join(60)
    page.clock.run_for(30_500)
    expect(last).to_contain_text("✓ Succeeded")


def test_the_page_opens_at_the_top_on_a_phone(open_page, mc):
    for _ in range(4):  # a page longer than the screen
        mc.backups.create("alice")
    page = open_page(viewport=PHONE)
    log_in(page)
    expect(page.locator("#backups-body tr")).to_have_count(4)
    assert page.evaluate("window.scrollY") == 0
    expect(page.locator(".topbar")).to_be_in_viewport()
    expect(page.locator("#main")).to_be_focused()
    shot(page, "phone-top")


def test_sizes_read_the_same_on_the_page_and_in_the_cli(open_page):
    sizes = [0, 1, 1023, 1024, 1280, 1536, 10_239, 10_240, 1_048_575, 5 * 2**20, 1_572_864,
             3 * 2**30, 1023 * 2**30 + 2**29, 3 * 2**50]
    page = open_page()
    page.goto("/")
    shown = page.evaluate("""async (sizes) => {
        const f = await import('/static/format.js');
        return sizes.map(f.humanSize);
    }""", sizes)
    assert shown == [human_size(n) for n in sizes]
    assert all(re.fullmatch(r"\d+ bytes?|\d+(\.\d)? [KMGTP]iB", text) for text in shown)
