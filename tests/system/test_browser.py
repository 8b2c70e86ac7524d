"""The admin page in a real headless Chromium against a real waitress server."""
import re

import pytest

from mission_control.backup.service import LOCK_NAME
from mission_control.files import FileLock
from tests.support.browser import PHONE, log_in, open_tab, row_action, shot, wait_ready

expect = pytest.importorskip("playwright.sync_api",
                             reason="browser tests need playwright: pip install -e '.[test]'").expect


@pytest.fixture
def mc_overrides():
    return {}


@pytest.fixture
def mc(make_mc, mc_overrides):
    """The served MissionControl; a test may parametrize `mc_overrides` to change its config."""
    return make_mc(**mc_overrides)


def test_without_a_session_the_page_shows_the_login_form(open_page):
    page = open_page()
    page.goto("/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.locator("#app-view")).to_be_hidden()
    expect(page.get_by_label("Username")).to_be_focused()
    shot(page, "01-login")


def test_wrong_password_shows_an_error(open_page, mc):
    page = open_page()
    log_in(page, password="not-the-password")
    expect(page.get_by_role("alert")).to_have_text("Invalid credentials.")
    expect(page.locator("#app-view")).to_be_hidden()
    shot(page, "02-login-wrong-password")
    events, _ = mc.audit_store.query(action="login_failed")
    assert [e["actor"] for e in events] == ["alice"]


def test_log_in_back_up_see_the_row_and_delete_it(open_page, mc):
    page = open_page()
    log_in(page)
    expect(page.get_by_role("heading", name="Backups", exact=True)).to_be_visible()
    expect(page.locator("#whoami-text")).to_have_text("Signed in as alice (admin)")
    expect(page.get_by_text("No backups yet")).to_be_visible()
    shot(page, "03-empty")

    page.get_by_role("button", name="Back up now").click()
    rows = page.locator("#backups-body tr")
    expect(rows).to_have_count(1)
    made = mc.backups.list()
    assert len(made) == 1
    name = made[0].name
    row = page.locator(f'#backups-body tr[data-name="{name}"]')
    expect(row.locator("th")).to_have_text(name)
    expect(row.locator('td[data-label="Size"]')).to_have_text(re.compile(r"^\d+(\.\d)? KiB$"))
    expect(row.locator('td[data-label="Created"] .utc-time')).to_have_text(
        re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$"))
    expect(page.get_by_role("status")).to_contain_text(f"Backup {name} created")
    expect(page.locator("#audit-body")).to_contain_text("created a backup")
    shot(page, "04-backup-made")

    row_action(page, name, "Delete")
    dialog = page.get_by_role("dialog", name="Delete backup?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"Delete {name}?")
    shot(page, "05-delete-confirm")
    dialog.get_by_role("button", name="Delete").click()
    expect(rows).to_have_count(0)
    expect(page.get_by_role("status")).to_have_text(f"Deleted {name}.")
    expect(page.locator("#audit-body tr").first).to_contain_text("deleted a backup")
    assert mc.backups.list() == []


def test_cancelling_the_delete_keeps_the_file(open_page, mc):
    made = mc.backups.create("alice")
    page = open_page()
    log_in(page)
    row_action(page, made.name, "Delete")
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("dialog")).to_be_hidden()
    page.get_by_role("button", name=f"More actions for {made.name}").press("Enter")
    page.get_by_role("button", name=f"Delete {made.name}").press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    assert [b.name for b in mc.backups.list()] == [made.name]


def test_back_up_now_shows_progress_while_it_runs(open_page, mc):
    page = open_page()
    log_in(page)
    button = page.locator("#backup-now")
    expect(button).to_be_enabled()
    mc.backups.ensure_dir()
    with FileLock(mc.backups.dir / LOCK_NAME).hold(0) as locked:  # the backup waits for this
        assert locked
        button.click()
        expect(button).to_be_disabled()
        expect(button).to_have_attribute("aria-busy", "true")
        expect(button).to_have_text(re.compile(r"Backing up… \d+ s"))
        expect(button.locator(".spinner")).to_be_visible()
        shot(page, "06-backing-up")
    expect(page.locator("#backups-body tr")).to_have_count(1)
    expect(button).to_be_enabled()
    expect(button).to_have_text("Back up now")


@pytest.mark.parametrize("mc_overrides", [{"backup_rate_limit": 1}])
def test_too_many_backups_says_when_to_retry(open_page, mc):
    page = open_page()
    log_in(page)
    page.get_by_role("button", name="Back up now").click()
    expect(page.locator("#backups-body tr")).to_have_count(1)
    page.get_by_role("button", name="Back up now").click()
    alert = page.locator("#error-message")
    # What happened, then when to retry (from Retry-After): each said once.
    expect(alert).to_have_text(re.compile(r"^Too many backups: at most 1 per hour, uploads "
                                          r"included\. Try again in 60 minutes \(at [^)]+\)\.$"))
    shot(page, "07-rate-limited")
    assert len(mc.backups.list()) == 1


@pytest.mark.parametrize("mc_overrides", [{"backup_lock_timeout": 0.2}])
def test_a_busy_backup_lock_is_explained(open_page, mc):
    page = open_page()
    log_in(page)
    mc.backups.ensure_dir()
    with FileLock(mc.backups.dir / LOCK_NAME).hold(0):
        page.get_by_role("button", name="Back up now").click()
        expect(page.get_by_role("alert")).to_contain_text("A backup is already in progress. Try again in")


def test_auto_backup_switch_and_next_run(open_page, mc):
    page = open_page()
    log_in(page)
    open_tab(page, "schedule")
    switch = page.get_by_role("switch", name="Automatic backup")
    expect(switch).not_to_be_checked()
    # The fake clock says 2026-11-18 11:06 UTC: the next slot is tomorrow 03:00 UTC.
    expect(page.locator("#next-run")).to_contain_text("(03:00:00 UTC) — will not run while")
    expect(page.locator("#last-result")).to_have_text("No run yet")
    switch.check()
    expect(page.get_by_role("status")).to_have_text("Automatic backup is on.")
    expect(page.locator("#next-run")).not_to_contain_text("will not run")
    expect(page.locator("#next-run")).to_contain_text("(03:00:00 UTC)")
    assert mc.settings.get("general.auto_backup") is True
    expect(page.locator("#audit-body tr").first).to_contain_text(
        "general.auto_backup: false → true")
    page.get_by_role("button", name="Run the scheduled backup now").click()
    expect(page.get_by_role("status")).to_contain_text("Scheduled backup task: Backup created (")
    expect(page.locator("#last-result")).to_contain_text("✓ Succeeded: Backup created")
    expect(page.locator("#backups-body tr")).to_have_count(1)
    expect(page.locator("#audit-body tr").first).to_contain_text("ran the scheduled backup")
    [task] = [t for t in mc.scheduler.status() if t.id == "auto_backup"]
    assert task.last_ok is True
    shot(page, "08-auto-backup-on")
    switch.press("Space")  # a switch works from the keyboard too
    expect(page.get_by_role("status")).to_have_text("Automatic backup is off.")
    assert mc.settings.get("general.auto_backup") is False


def test_retention_count_is_saved_and_bad_values_explained(open_page, mc):
    page = open_page()
    log_in(page)
    open_tab(page, "schedule")
    field = page.get_by_label("Backups to keep")
    expect(field).to_have_value("10")
    field.fill("3")
    field.press("Enter")
    expect(page.get_by_role("status")).to_have_text("Keeping the newest 3 backups.")
    assert mc.settings.get("general.backup_retention_count") == 3
    field.fill("0")
    page.locator("#retention-form").get_by_role("button", name="Save rules").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Validation failed. general.backup_retention_count: must be between 1 and 1000.")
    shot(page, "09-retention-error")
    assert mc.settings.get("general.backup_retention_count") == 3


def test_an_ended_session_returns_to_the_login_form(open_page, mc):
    page = open_page()
    log_in(page)
    wait_ready(page)  # a load still running when the session ends would show the form first
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "mc-session")
    mc.users.end_session(token)  # as if it expired
    page.get_by_role("button", name="Back up now").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.locator("#login-notice")).to_have_text("Your session has ended. Please log in again.")
    shot(page, "10-session-ended")
    assert mc.backups.list() == []
    log_in(page)  # and logging in again brings the page back
    expect(page.get_by_role("heading", name="Backups", exact=True)).to_be_visible()


def test_log_out(open_page):
    page = open_page()
    log_in(page)
    page.get_by_role("button", name="Log out").click()
    expect(page.locator("#login-notice")).to_have_text("You have logged out.")
    page.reload()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()


def test_a_session_survives_a_reload(open_page):
    page = open_page()
    log_in(page)
    expect(page.get_by_role("heading", name="Backups", exact=True)).to_be_visible()
    page.reload()
    expect(page.get_by_role("heading", name="Backups", exact=True)).to_be_visible()
    expect(page.locator("#login-view")).to_be_hidden()


def test_a_viewer_is_told_backups_are_for_admins(open_page):
    page = open_page()
    log_in(page, "vic")
    expect(page.get_by_role("heading", name="Admins only")).to_be_visible()
    expect(page.locator("#forbidden-text")).to_contain_text("has the viewer role")
    expect(page.locator("#app-view")).to_be_hidden()


def test_keyboard_only_login_and_backup(open_page, mc):
    page = open_page()
    page.goto("/")
    expect(page.get_by_label("Username")).to_be_focused()
    page.keyboard.type("alice")
    page.keyboard.press("Tab")
    page.keyboard.type("correct-horse-battery")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Backups", exact=True)).to_be_visible()
    wait_ready(page)
    page.locator("#backup-now").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#backups-body tr")).to_have_count(1)
    assert len(mc.backups.list()) == 1


def test_readable_on_a_phone(open_page, mc):
    mc.backups.create("alice")
    page = open_page(viewport=PHONE)
    log_in(page)
    expect(page.locator("#backups-body tr")).to_have_count(1)
    shot(page, "11-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    expect(page.get_by_role("button", name="Back up now")).to_be_in_viewport()


@pytest.mark.parametrize("mc_overrides", [{"login_attempts_per_minute": 1}])
def test_too_many_login_attempts_say_when_to_retry(open_page):
    page = open_page()
    log_in(page, password="wrong-password-1")
    expect(page.get_by_role("alert")).to_have_text("Invalid credentials.")
    page.get_by_role("button", name="Log in").click()
    # What happened, then when to retry (from Retry-After): each said once.
    expect(page.get_by_role("alert")).to_have_text(re.compile(
        r"^Too many login attempts: 1 failed within a minute from this address\. "
        r"Try again in 60 seconds \(at [^)]+\)\.$"))


def test_the_policy_blocks_injected_inline_script(browser, live_server, users):
    """The CSP is enforced by the browser, and a violation is visible to the tests' error check."""
    context = browser.new_context(base_url=live_server)
    try:
        page = context.new_page()
        messages = []
        page.on("console", lambda msg: messages.append(msg.text))
        page.goto("/")
        expect(page.get_by_role("heading", name="Log in")).to_be_visible()
        page.evaluate("""() => { const s = document.createElement('script');
                                 s.textContent = 'window.injected = 1'; document.body.append(s); }""")
        assert page.evaluate("window.injected") is None
        page.wait_for_function("true")  # one more round trip, so the console message has arrived
        assert any("Content Security Policy" in m for m in messages), messages
    finally:
        context.close()


def test_sizes_and_times_in_words(open_page):
    """format.js, run in the browser itself: human sizes, UTC times, audit lines."""
    page = open_page()
    page.goto("/")
    out = page.evaluate("""async () => {
        const f = await import('/static/format.js');
        return {
            sizes: [0, 1, 1023, 1024, 1536, 10 * 1024, 5 * 1024 * 1024, 3 * 1024 ** 3].map(f.humanSize),
            utc: f.utcTime(1795000000), none: f.utcTime(null),
            both: f.bothTimes(1795000000).endsWith('(11:06:40 UTC)'),
            action: [f.actionText('backup_restore'), f.actionText('something_new')],
            detail: [f.detailText({detail: {changes: {'general.auto_backup': {old: null, new: 'true'}}}}),
                     f.detailText({detail: {name: 'x.db', ok: false}}),
                     f.detailText({detail: null, target_type: 'backup', target_id: 'y.db'})],
        };
    }""")
    assert out == {
        "sizes": ["0 bytes", "1 byte", "1023 bytes", "1.0 KiB", "1.5 KiB", "10 KiB", "5.0 MiB",
                  "3.0 GiB"],
        "utc": "2026-11-18 11:06:40 UTC", "none": "—", "both": True,
        "action": ["restored a backup", "something new"],
        "detail": ["general.auto_backup: default → true", "x.db (failed)", "y.db"],
    }
