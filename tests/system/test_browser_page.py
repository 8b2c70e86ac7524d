"""The page's layout in a real Chromium at 1280×900 and 390×844: errors drawn inside the viewport,
backups above the fold, paging, names never broken, activity filters, retention preview and prune."""
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mission_control.actor import Actor
from mission_control.backup.names import backup_time
from mission_control.backup.verify import verify_backup
from tests.support.browser import DESKTOP, PHONE, log_in, open_tab, row_action
from tests.support.helpers import DAYS, n, touch
from tests.support.pitr_engine import Engine

expect = pytest.importorskip("playwright.sync_api",
                             reason="browser tests need playwright: pip install -e '.[test]'").expect

SIZES = pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x900", "390x844"])
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def seed_hourly(mc, count, size=48_000):
    """`count` backups an hour apart, the newest at 2026-11-18 10:00 UTC (the fake clock's morning);
    each file's mtime is the time in its name. Returns the names, newest first."""
    mc.backups.ensure_dir()
    newest = int(datetime(2026, 11, 18, 10, tzinfo=timezone.utc).timestamp())
    names = []
    for i in range(count):
        at = newest - i * 3600
        name = datetime.fromtimestamp(at, timezone.utc).strftime("mc-backup-%Y-%m-%d_%H-%M-%S.db")
        touch(mc.backups.dir / name, at, b"x" * size)
        names.append(name)
    return names


def rows(page):
    return page.locator("#backups-body tr")


def in_viewport(page, locator):
    """Whether the element's box lies wholly inside the viewport, as drawn now."""
    box = locator.bounding_box()
    size = page.viewport_size
    return (box is not None and box["y"] >= 0 and box["x"] >= 0
            and box["y"] + box["height"] <= size["height"] and box["x"] + box["width"] <= size["width"])


@SIZES
def test_an_error_is_drawn_inside_the_viewport_and_takes_focus(open_page, mc, viewport):
    names = seed_hourly(mc, 20)
    page = open_page(viewport=viewport)
    log_in(page)
    expect(rows(page)).to_have_count(20)
    last = names[-1]
    (mc.backups.dir / last).unlink()  # gone behind the page's back: its delete is a 404
    row_action(page, last, "Delete")
    page.get_by_role("dialog", name="Delete backup?").get_by_role("button", name="Delete").click()
    error = page.locator("#error-message")
    expect(error).to_have_text("Backup not found.")
    assert page.evaluate("window.scrollY") > 300  # scrolled down at the table, as the user was
    assert in_viewport(page, error), error.bounding_box()
    expect(error).to_be_focused()
    page.keyboard.press("Escape")  # dismissed from the keyboard
    expect(error).to_be_hidden()


@SIZES
def test_a_result_is_drawn_inside_the_viewport_too(open_page, mc, viewport):
    names = seed_hourly(mc, 20)
    page = open_page(viewport=viewport)
    log_in(page)
    last = names[-1]
    row_action(page, last, "Delete")
    page.get_by_role("dialog", name="Delete backup?").get_by_role("button", name="Delete").click()
    status = page.locator("#status-message")
    expect(status).to_have_text(f"Deleted {last}.")
    assert in_viewport(page, status), status.bounding_box()
    expect(status).to_be_focused()
    page.get_by_role("button", name="Dismiss the message").click()
    expect(status).to_be_hidden()


@SIZES
def test_a_failed_verify_restore_or_upload_is_drawn_where_the_eye_is(open_page, mc, viewport,
                                                                     tmp_path):
    """The issue's three cases, each met scrolled down at the control: its error is drawn inside
    the viewport and takes focus."""
    names = seed_hourly(mc, 19)
    oldest = int(datetime(2026, 11, 1, tzinfo=timezone.utc).timestamp())
    touch(mc.backups.dir / "broken.db", oldest, b"this is not a database" * 100)  # the 20th row
    junk = tmp_path / "notes.db"
    junk.write_text("shopping list")
    page = open_page(viewport=viewport)
    log_in(page)
    expect(rows(page)).to_have_count(20)
    error = page.locator("#error-message")

    def drawn_here(text):
        expect(error).to_contain_text(text)
        assert page.evaluate("window.scrollY") > 300  # the user is down at the control
        assert in_viewport(page, error), (text, error.bounding_box())
        expect(error).to_be_focused()
        page.keyboard.press("Escape")
        expect(error).to_be_hidden()

    row_action(page, "broken.db", "Verify")
    drawn_here("broken.db failed verification: ")
    page.get_by_role("button", name="Restore broken.db", exact=True).click()
    dialog = page.get_by_role("dialog", name="Restore this backup?")
    dialog.get_by_label("Type the backup name to confirm").fill("broken.db")
    dialog.get_by_role("button", name="Restore", exact=True).click()
    drawn_here("Backup failed verification. not a SQLite database.")
    page.get_by_label("Upload a backup file").set_input_files(str(junk))
    page.get_by_role("button", name="Upload", exact=True).click()
    drawn_here("Upload is not a valid Mission Control backup.")
    # Nothing half-done: no safety copy of the refused restore, no upload kept.
    assert {b.name for b in mc.backups.list()} == {*names, "broken.db"}


def test_backups_and_back_up_now_are_above_the_fold_at_1280x900(open_page, mc):
    seed_hourly(mc, 30)
    mc.settings.update({"offsite.dir.path": "/nonexistent/share"}, "alice")  # a failing verdict
    page = open_page(viewport=DESKTOP)
    log_in(page)
    expect(rows(page)).to_have_count(20)
    assert page.evaluate("window.scrollY") == 0
    assert in_viewport(page, page.get_by_role("button", name="Back up now"))
    assert in_viewport(page, page.get_by_role("heading", name="Backups", exact=True))
    for i in range(3):  # the newest rows show without scrolling
        assert in_viewport(page, rows(page).nth(i)), i
    # The first control of the page is not a destructive one.
    first = page.locator("#app-view button:visible, #app-view a.button:visible").first
    expect(first).not_to_have_class("danger")
    expect(page.locator("#pitr-submit")).to_be_hidden()


def test_back_up_now_is_on_the_first_screen_of_a_phone(open_page, mc):
    seed_hourly(mc, 30)
    page = open_page(viewport=PHONE)
    log_in(page)
    assert in_viewport(page, page.get_by_role("button", name="Back up now"))
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


@SIZES
def test_a_row_shows_download_and_restore_and_keeps_the_rest_in_its_menu(open_page, mc,
                                                                         viewport):
    [name, *_] = seed_hourly(mc, 3)
    page = open_page(viewport=viewport)
    log_in(page)
    row = page.locator(f'#backups-body tr[data-name="{name}"]')
    download = row.get_by_role("link", name=f"Download {name}", exact=True)
    restore = row.get_by_role("button", name=f"Restore {name}", exact=True)
    more = row.get_by_role("button", name=f"More actions for {name}", exact=True)
    in_menu = [row.get_by_role("button", name=f"{label} {name}", exact=True)
               for label in ("Verify", "Delete")]
    for control in (download, restore, more):
        expect(control).to_be_visible()
        assert in_viewport(page, control), control.bounding_box()  # not cut off at the side
    for control in in_menu:
        expect(control).to_be_hidden()
    more.click()
    for control in in_menu:
        expect(control).to_be_visible()
    page.keyboard.press("Escape")
    for control in in_menu:
        expect(control).to_be_hidden()


@SIZES
def test_past_20_rows_the_list_has_pages(open_page, mc, viewport):
    names = seed_hourly(mc, 45)
    page = open_page(viewport=viewport)
    log_in(page)
    expect(rows(page)).to_have_count(20)
    expect(rows(page).first).to_have_attribute("data-name", names[0])
    pager = page.get_by_role("navigation", name="Backup pages")
    expect(pager.locator("#backups-range")).to_have_text("1–20 of 45")
    expect(pager.get_by_role("button", name="← Newer")).to_be_disabled()
    pager.get_by_role("button", name="Older →").click()
    expect(pager.locator("#backups-range")).to_have_text("21–40 of 45")
    expect(rows(page).first).to_have_attribute("data-name", names[20])
    pager.get_by_role("button", name="Older →").click()
    expect(pager.locator("#backups-range")).to_have_text("41–45 of 45")
    expect(rows(page)).to_have_count(5)
    expect(pager.get_by_role("button", name="Older →")).to_be_disabled()
    page.get_by_role("button", name="Refresh").click()  # a reload stays on the page shown
    expect(pager.locator("#backups-range")).to_have_text("41–45 of 45")
    pager.get_by_role("button", name="← Newer").click()
    expect(rows(page).first).to_have_attribute("data-name", names[20])


@SIZES
def test_no_name_or_time_is_broken_inside_a_word(open_page, mc, viewport):
    seed_hourly(mc, 3)
    page = open_page(viewport=viewport)
    log_in(page)
    expect(rows(page)).to_have_count(3)
    # A piece of text on one line has one client rect per word at most; a broken word spans two lines.
    broken = page.evaluate("""() => {
        const lines = (node) => {
            const range = document.createRange();
            range.selectNodeContents(node);
            return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
        };
        const out = [];
        for (const node of document.querySelectorAll('#backups-body .filename, #backups-body time')) {
            for (const word of node.textContent.split(' ')) {
                if (word.length < 4) continue;
                const text = node.firstChild;
                const start = text.textContent.indexOf(word);
                const range = document.createRange();
                range.setStart(text, start);
                range.setEnd(text, start + word.length);
                const tops = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
                if (tops.size > 1) out.push(word);
            }
            if (node.classList.contains('filename') && lines(node) > 1) out.push(node.textContent);
        }
        return out;
    }""")
    assert broken == []
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]


@SIZES
def test_fresh_backups_say_checked_when_made_and_a_failed_file_warns_before_restore(open_page, mc,
                                                                                  viewport):
    made = mc.backups.create("alice")
    (mc.backups.dir / "broken.db").write_bytes(b"this is not a database" * 100)
    # A canonical name says nothing: a file copied in under one, or one cut short, was not
    # checked as the service made it (the service's record of the check decides).
    copied = "mc-backup-2020-01-01_00-00-00.db"
    (mc.backups.dir / copied).write_bytes(made.path.read_bytes())
    cut = mc.backups.create("alice")
    with open(cut.path, "r+b") as f:
        f.truncate(cut.size // 2)
    page = open_page(viewport=viewport)
    log_in(page)
    cell = page.locator(f'#backups-body tr[data-name="{made.name}"] td[data-label="Verified"]')
    expect(cell).to_have_text("✓ Checked when made")
    for name in (copied, cut.name):
        expect(page.locator(f'#backups-body tr[data-name="{name}"] td[data-label="Verified"]')) \
            .to_have_text("Not verified")
    broken = page.locator('#backups-body tr[data-name="broken.db"] td[data-label="Verified"]')
    expect(broken).to_have_text("Not verified")
    row_action(page, "broken.db", "Verify")
    expect(broken).to_contain_text("✗ Failed verification")
    page.get_by_role("button", name="Restore broken.db").click()
    dialog = page.get_by_role("dialog", name="Restore this backup?")
    expect(dialog.locator("#restore-verify-warning")).to_be_visible()
    expect(dialog.locator("#restore-verify-warning")).to_contain_text("This file failed verification")
    dialog.get_by_role("button", name="Cancel").click()
    page.get_by_role("button", name=f"Restore {made.name}").click()
    expect(dialog.locator("#restore-verify-warning")).to_be_hidden()


def seed_twelve(mc):
    """Twelve backups, two a day, and one upload; the fake clock says 2026-11-18 11:06:40 UTC."""
    mc.backups.ensure_dir()
    for day in DAYS:
        for hour in ("15:00", "03:00"):
            touch(mc.backups.dir / n(f"{day} {hour}"), 1000)
    touch(mc.backups.dir / "uploaded-2026-11-10_09-00-00.db", 1000)


def on_disk(mc):
    return {b.name for b in mc.backups.list()}


@SIZES
def test_retention_preview_lists_what_is_kept_and_why_then_saves(open_page, mc, viewport):
    seed_twelve(mc)
    page = open_page(viewport=viewport)
    log_in(page)
    open_tab(page, "schedule")
    page.get_by_label("Backups to keep").fill("1")
    page.get_by_label("Daily", exact=True).fill("2")
    save = page.locator("#retention-form").get_by_role("button", name="Save rules")
    page.get_by_role("button", name="Preview").click()
    preview = page.locator("#retention-preview")
    expect(preview).to_contain_text("10 backups would be deleted at the next backup:")
    expect(preview).to_contain_text("Kept (3):")
    kept = preview.locator(".keep-list li")
    expect(kept).to_have_text([
        f"{n('2026-11-17 15:00')} — last 1, daily 2026-11-17",
        f"{n('2026-11-16 15:00')} — daily 2026-11-16",
        "uploaded-2026-11-10_09-00-00.db — not touched by these rules; only the newest 5 uploads "
        "are kept (general.safety_copies_keep)"])
    assert mc.settings.get("general.backup_retention_count") == 10  # a preview saves nothing
    # The Save button sits under the rules.
    assert save.bounding_box()["y"] > page.get_by_label("Keep all within").bounding_box()["y"]
    save.click()
    dialog = page.get_by_role("dialog", name="Save these retention rules?")
    expect(dialog.locator("#prune-list li")).to_have_count(10)
    expect(dialog.locator("#prune-keep-list li")).to_have_count(3)
    expect(dialog.locator("#prune-keep-list li").first).to_contain_text("last 1, daily 2026-11-17")
    dialog.get_by_role("button", name="Save rules").click()
    expect(page.get_by_role("status")).to_contain_text("10 backups will be deleted at the next backup.")
    assert mc.settings.get("general.backup_retention_count") == 1
    assert mc.settings.get("retention.keep_daily") == 2
    assert len(on_disk(mc)) == 13  # nothing deleted before the next backup


@SIZES
def test_prune_now_asks_then_deletes_at_once(open_page, mc, viewport):
    seed_twelve(mc)
    mc.settings.update({"general.backup_retention_count": "3"}, "alice")
    page = open_page(viewport=viewport)
    log_in(page)
    open_tab(page, "schedule")
    page.get_by_role("button", name="Prune now…").click()
    dialog = page.get_by_role("dialog", name="Prune now?")
    expect(dialog.locator("#prune-text")).to_have_text("These 9 backups will be deleted now:")
    dialog.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("status")).to_have_text("Nothing pruned.")
    assert len(on_disk(mc)) == 13
    page.get_by_role("button", name="Prune now…").click()
    dialog.get_by_role("button", name="Delete 9 backups").click()
    expect(page.get_by_role("status")).to_have_text("Pruned 9 backups; 3 kept by the rules.")
    assert on_disk(mc) == {n("2026-11-17 15:00"), n("2026-11-17 03:00"), n("2026-11-16 15:00"),
                           "uploaded-2026-11-10_09-00-00.db"}
    page.get_by_role("button", name="Prune now…").click()
    expect(page.get_by_role("status")).to_have_text("Nothing to prune: the saved rules keep all 3 backups.")


@SIZES
def test_upload_text_says_how_many_are_kept_and_how_to_keep_one_forever(open_page, mc, viewport):
    mc.settings.update({"general.safety_copies_keep": "7"}, "alice")
    page = open_page(viewport=viewport)
    log_in(page)
    help_text = page.locator("#upload-help")
    expect(help_text).to_contain_text("Only the newest 7 uploads are kept")
    expect(help_text).to_contain_text("keep-2026-q1.db")
    expect(page.locator("#app-view")).not_to_contain_text("never pruned)")


def audit_rows(page):
    return page.locator("#audit-body tr")


@SIZES
def test_activity_filters_folds_logins_shows_the_address_and_pages(open_page, mc, viewport):
    for i in range(30):
        mc.audit.emit("backup_create", "scheduler", target_type="backup", target_id=f"b{i}.db")
    mc.audit.emit("settings_update", "bob")
    page = open_page(viewport=viewport)
    log_in(page)  # alice's login: audited with her address
    open_tab(page, "activity")
    expect(page.locator("#audit-range")).to_have_text("1–25 of 31")
    expect(page.locator('#audit-body tr[data-action="login"]')).to_have_count(0)
    expect(page.locator("#audit-folded")).to_have_text(
        "1 login or logout is folded away; tick “Show logins and logouts” to see them.")
    page.get_by_role("button", name="Older →").click()
    expect(page.locator("#audit-range")).to_have_text("26–31 of 31")
    expect(audit_rows(page)).to_have_count(6)

    page.get_by_label("Show logins and logouts").check()
    expect(page.locator("#audit-range")).to_have_text("1–25 of 32")  # back to the first page
    login = page.locator('#audit-body tr[data-action="login"]')
    expect(login).to_have_count(1)
    expect(login.locator('td[data-label="From"]')).to_have_text("127.0.0.1")
    expect(login.locator('td[data-label="Who"]')).to_have_text("alice")

    page.get_by_label("Action").select_option("settings_update")
    expect(audit_rows(page)).to_have_count(1)
    expect(audit_rows(page).first).to_contain_text("bob")
    expect(page.locator("#audit-pager")).to_be_hidden()

    page.get_by_label("Action").select_option("")
    page.get_by_label("Who").fill("scheduler")
    page.get_by_label("Who").press("Enter")
    expect(page.locator("#audit-range")).to_have_text("1–25 of 30")
    assert set(page.locator('#audit-body td[data-label="Who"]').all_inner_texts()) == {"scheduler"}
    page.get_by_label("Who").fill("nobody")
    page.get_by_label("Who").press("Enter")
    expect(audit_rows(page)).to_have_text(["Nothing matches."])


def test_an_older_activity_answer_arriving_last_is_not_drawn(open_page, mc):
    """Two loads of the Activity table overlap and the older answer comes last: the table shows
    what the filters ask for now."""
    for i in range(3):
        mc.audit.emit("backup_create", "scheduler", target_type="backup", target_id=f"b{i}.db")
    mc.audit.emit("settings_update", "bob")
    page = open_page()
    log_in(page)
    open_tab(page, "activity")
    held = []

    def hold_unfiltered(route):
        if "action=" not in route.request.url.replace("exclude_action=", ""):
            held.append(route)  # answered later, after the newer load
        else:
            route.continue_()
    page.route("**/api/audit?*", hold_unfiltered)
    page.get_by_label("Show logins and logouts").check()  # load 1: every action (held)
    for _ in range(100):  # the route handler runs as Playwright's events are pumped
        if held:
            break
        page.wait_for_timeout(50)
    assert held
    page.get_by_label("Action").select_option("settings_update")  # load 2: answered at once
    expect(audit_rows(page)).to_have_count(1)
    with page.expect_response(lambda r: r.request.url == held[0].request.url):
        for route in held:
            route.continue_()
    page.evaluate("() => new Promise((done) => setTimeout(done, 300))")
    expect(audit_rows(page)).to_have_count(1)
    expect(audit_rows(page).first).to_contain_text("bob")


def test_tabs_follow_the_address_and_the_back_button(open_page, mc):
    page = open_page()
    log_in(page)
    open_tab(page, "activity")
    assert page.url.endswith("#activity")
    expect(page.get_by_role("tab", name="Activity")).to_have_attribute("aria-selected", "true")
    page.keyboard.press("ArrowLeft")  # the keyboard moves between tabs
    expect(page.locator("#view-pitr")).to_be_visible()
    expect(page.get_by_role("tab", name="Point in time")).to_be_focused()
    page.go_back()
    expect(page.locator("#view-activity")).to_be_visible()
    page.reload()
    expect(page.locator("#view-activity")).to_be_visible()
    expect(page.locator("#view-backups")).to_be_hidden()
    for container in ("offsite-config", "pitr-config", "alerts-config"):  # for the settings forms
        expect(page.locator(f"#{container}")).to_have_count(1)


def seed_for_screenshots(mc):
    """A page worth looking at: real backups, a verified one, a failed one, older ones over two
    pages, an upload, settings changed from two addresses, and point in time on (a stand-in engine
    over the last three hours)."""
    mc.settings.update({"general.backup_retention_count": "40"}, "alice")
    seed_hourly(mc, 24, size=310_000)
    first = mc.backups.create("alice")
    second = mc.backups.create("scheduler")
    for made in (first, second):  # listed by the time in the name, as the fake clock made it
        at = backup_time(made.name)
        os.utime(made.path, (at, at))
    verify_backup(mc, first.name, "alice")
    uploaded = int(datetime(2026, 11, 12, 8, 15, tzinfo=timezone.utc).timestamp())
    touch(mc.backups.dir / "uploaded-2026-11-12_08-15-00.db", uploaded, b"x" * 290_000)
    touch(mc.backups.dir / "keep-2026-q3.db", uploaded - 86400, b"not a database" * 1000)
    verify_backup(mc, "keep-2026-q3.db", "alice")
    mc.settings.update({"general.auto_backup": "true", "retention.keep_daily": "7"}, "alice")
    mc.audit.emit("settings_update", Actor("bob", ip_address="192.0.2.17"),
                  detail={"changes": {"retention.keep_daily": {"old": "0", "new": "7"}}})
    now_ms = int(mc.clock() * 1000)
    mc.pm.register(Engine(first.path, earliest=now_ms - 3 * 3600_000, latest=now_ms - 2000))


def unfold_settings(page):
    """Open every folded settings form of the view shown (as a reader of the docs would)."""
    for summary in page.locator(".view:visible details.settings-details:not([open]) > summary").all():
        summary.click()


def extra_shot(page, name, size):
    """One more docs/screenshots/<name>-<size>.png of what the page shows now, with
    MC_SCREENSHOTS=1."""
    if os.environ.get("MC_SCREENSHOTS") == "1":
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{size}.png"), full_page=True)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_each_view_at_both_sizes(open_page, mc, viewport):
    """Every view shows its part (its settings unfolded, the point-in-time form on); with
    MC_SCREENSHOTS=1 also saves docs/screenshots/<view>-<size>.png and the dialogs and previews
    (committed), so a normal run leaves the tree as it was."""
    seed_for_screenshots(mc)
    page = open_page(viewport=viewport)
    log_in(page)
    size = "desktop" if viewport is DESKTOP else "phone"
    parts = {"backups": "#backups-body tr", "schedule": "#schedule-next li",
             "offsite": "#offsite-dir-form", "pitr": "#pitr-bar",
             "activity": '#audit-body tr[data-action="login"]'}
    for view, part in parts.items():
        open_tab(page, view)
        unfold_settings(page)
        if view == "schedule":
            page.locator("#retention-form").get_by_role("button", name="Preview").click()
            expect(page.locator("#retention-preview")).to_contain_text("Kept (")
        if view == "pitr":
            page.get_by_role("button", name="1 min ago", exact=True).click()
            expect(page.locator("#pitr-bar-mark")).to_be_visible()
        if view == "activity":
            page.get_by_label("Show logins and logouts").check()
            expect(page.locator("#audit-body .address", has_text="192.0.2.17")).to_have_count(1)
        expect(page.locator(part).first).to_be_visible()
        # Nothing is cut off: no table scrolls sideways, nor the page.
        cut = page.evaluate("""() => [...document.querySelectorAll('.table-wrap')]
            .filter((w) => w.offsetParent !== null && w.scrollWidth > w.clientWidth + 1)
            .map((w) => w.querySelector('table').id)""")
        assert cut == [], view
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"], view
        for other in parts:
            if other != view:
                expect(page.locator(f"#view-{other}")).to_be_hidden()
        if os.environ.get("MC_SCREENSHOTS") == "1":
            SCREENSHOTS.mkdir(exist_ok=True)
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(SCREENSHOTS / f"{view}-{size}.png"), full_page=True)
        if view == "pitr":  # its confirm step
            page.get_by_role("button", name="Restore to this moment…").click()
            dialog = page.get_by_role("dialog", name="Restore to this moment?")
            dialog.get_by_label("Type the moment").fill("RESTORE")
            expect(dialog.get_by_role("button", name="Restore", exact=True)).to_be_enabled()
            extra_shot(page, "pitr-confirm", size)
            dialog.get_by_role("button", name="Cancel").click()

    # A file that failed verification warns in the restore dialog.
    open_tab(page, "backups")
    page.get_by_role("button", name="Older →").click()
    page.get_by_role("button", name="Restore keep-2026-q3.db").click()
    warning = page.get_by_role("dialog", name="Restore this backup?").locator("#restore-verify-warning")
    expect(warning).to_contain_text("This file failed verification")
    extra_shot(page, "restore-failed-verification", size)
