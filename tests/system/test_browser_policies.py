"""The page's retention rules (preview, confirm, save) and schedule picker, in a real Chromium."""
import pytest

from tests.support.browser import log_in, open_tab, shot
from tests.support.helpers import DAYS, n, touch

expect = pytest.importorskip("playwright.sync_api",
                             reason="browser tests need playwright: pip install -e '.[test]'").expect


def seed(mc):
    """Twelve backups, two a day; the fake clock says 2026-11-18 11:06:40 UTC."""
    for day in DAYS:
        for hour in ("15:00", "03:00"):
            touch(mc.backups.dir / n(f"{day} {hour}"), 1000)


def on_disk(mc):
    return {b.name for b in mc.backups.list()}


def set_rules(page, keep, daily):
    page.get_by_label("Backups to keep").fill(keep)
    page.get_by_label("Daily", exact=True).fill(daily)
    page.locator("#retention-form").get_by_role("button", name="Save rules").click()


def test_retention_changes_are_previewed_and_confirmed_before_saving(open_page, mc):
    seed(mc)
    page = open_page()
    log_in(page)
    open_tab(page, "schedule")
    set_rules(page, "1", "2")
    dialog = page.get_by_role("dialog", name="Save these retention rules?")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#prune-text")).to_have_text(
        "These 10 backups will be deleted at the next backup:")
    expect(dialog.locator("#prune-list li")).to_have_count(10)
    expect(dialog.locator("#prune-list")).to_contain_text(n("2026-11-16 03:00"))
    expect(dialog.locator("#prune-kept")).to_have_text("2 backups are kept by the rules.")
    shot(page, "20-retention-preview")
    dialog.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("status")).to_have_text("Retention rules not changed.")
    expect(page.get_by_label("Backups to keep")).to_have_value("10")
    expect(page.get_by_label("Daily", exact=True)).to_have_value("0")
    assert mc.settings.get("general.backup_retention_count") == 10
    assert mc.settings.get("retention.keep_daily") == 0 and len(on_disk(mc)) == 12

    set_rules(page, "1", "2")
    dialog.get_by_role("button", name="Save rules").click()
    expect(page.get_by_role("status")).to_have_text(
        "Keeping the newest 1 backups and every backup the other rules keep. "
        "10 backups will be deleted at the next backup.")
    assert mc.settings.get("general.backup_retention_count") == 1
    assert mc.settings.get("retention.keep_daily") == 2
    assert len(on_disk(mc)) == 12  # nothing is deleted until the next backup

    open_tab(page, "backups")
    page.get_by_role("button", name="Back up now").click()
    expect(page.locator("#backups-body tr")).to_have_count(2)
    made = mc.backups.list()[0].name
    assert on_disk(mc) == {made, n("2026-11-17 15:00")}
    expect(page.locator("#audit-body")).to_contain_text("pruned an old backup")


def test_a_bad_rule_is_explained_and_nothing_is_asked_or_saved(open_page, mc):
    page = open_page()
    log_in(page)
    open_tab(page, "schedule")
    page.get_by_label("Keep all within").fill("14 days")
    page.locator("#retention-form").get_by_role("button", name="Save rules").click()
    expect(page.get_by_role("alert").first).to_have_text(
        "Validation failed. retention.keep_within: must be a duration like 36h, 14d, 2w, 6m, "
        "1y or 1y6m (empty: unused).")
    expect(page.locator("#prune-dialog")).not_to_be_visible()
    assert mc.settings.get("retention.keep_within") == ""
    page.get_by_label("Keep all within").fill("2d")
    page.locator("#retention-form").get_by_role("button", name="Save rules").click()
    # Nothing would be deleted (there is no backup yet): saved without asking.
    expect(page.get_by_role("status")).to_have_text(
        "Keeping the newest 10 backups and every backup the other rules keep.")
    assert mc.settings.get("retention.keep_within") == "2d"


def next_runs(page):
    return [text.split(" (")[0] for text in page.locator("#schedule-next li").all_inner_texts()]


def test_the_schedule_picker_describes_previews_and_saves(open_page, mc):
    page = open_page()
    log_in(page)
    open_tab(page, "schedule")
    expect(page.get_by_label("Daily at")).to_be_checked()
    expect(page.get_by_label("Time of day, UTC")).to_have_value("03:00")
    expect(page.locator("#schedule-description")).to_have_text("every day at 03:00 UTC")
    expect(page.locator("#schedule-next li")).to_have_count(3)
    assert next_runs(page) == ["2026-11-19 03:00:00 UTC", "2026-11-20 03:00:00 UTC",
                               "2026-11-21 03:00:00 UTC"]

    page.get_by_label("Every").check()
    page.get_by_label("Hours between backups").select_option("6")
    expect(page.locator("#schedule-description")).to_have_text("every 6 hours (UTC)")
    expect(page.locator("#schedule-expression")).to_have_text("0 */6 * * *")
    expect(page.locator("#schedule-next li").first).to_contain_text("2026-11-18 12:00:00 UTC")
    assert next_runs(page) == ["2026-11-18 12:00:00 UTC", "2026-11-18 18:00:00 UTC",
                               "2026-11-19 00:00:00 UTC"]
    assert mc.settings.get("general.auto_backup_schedule") == "0 3 * * *"  # not saved yet
    page.get_by_role("button", name="Save schedule").click()
    expect(page.get_by_role("status")).to_have_text("Schedule saved: every 6 hours (UTC).")
    assert mc.settings.get("general.auto_backup_schedule") == "0 */6 * * *"
    expect(page.locator("#auto-when")).to_have_text("every 6 hours (UTC)")
    expect(page.locator("#next-run")).to_contain_text("(12:00:00 UTC)")

    custom = page.get_by_label("Cron expression: minute hour day month weekday, UTC")
    custom.fill("*/2 * * * *")
    expect(page.locator("#schedule-error")).to_have_text(
        "Validation failed. schedule: must not run more often than every 5 minutes.")
    expect(page.get_by_role("button", name="Save schedule")).to_be_disabled()
    expect(page.get_by_label("Custom")).to_be_checked()
    shot(page, "21-schedule-error")
    custom.fill("30 2 * * 1")
    expect(page.locator("#schedule-description")).to_have_text("at 02:30 UTC, only on Monday")
    assert next_runs(page)[0] == "2026-11-23 02:30:00 UTC"  # the next Monday
    shot(page, "22-schedule-custom")

    page.get_by_label("Time of day, UTC").fill("05:30")
    expect(page.get_by_label("Daily at")).to_be_checked()
    expect(page.locator("#schedule-description")).to_have_text("every day at 05:30 UTC")
    page.get_by_role("button", name="Save schedule").click()
    expect(page.get_by_role("status")).to_have_text("Schedule saved: every day at 05:30 UTC.")
    assert mc.settings.get("general.auto_backup_schedule") == "30 5 * * *"
    [task] = [t for t in mc.scheduler.status() if t.id == "auto_backup"]
    assert task.description == "every day at 05:30 UTC"


def background_refresh(page):
    """Let 30 s pass on the page's clock (installed before the login): the page reloads itself."""
    with page.expect_response(lambda r: r.url.endswith("/api/scheduler")):
        page.clock.run_for(30_000)
    page.locator("#main:not([aria-busy])").wait_for(state="attached")


def test_the_background_refresh_keeps_retention_edits_and_hides_a_stale_preview(open_page, mc):
    seed(mc)
    page = open_page()
    page.clock.install()  # time flows; the test moves it on to the 30 s refresh
    log_in(page)
    open_tab(page, "schedule")
    keep = page.get_by_label("Backups to keep")
    keep.fill("12")
    page.get_by_label("Daily", exact=True).fill("3")
    page.locator("#retention-form").get_by_role("button", name="Preview").click()
    preview = page.locator("#retention-preview")
    expect(preview).to_contain_text("Nothing would be deleted.")
    page.get_by_role("tab", name="Backups", exact=True).focus()  # the fields have no focus
    background_refresh(page)
    expect(keep).to_have_value("12")
    expect(page.get_by_label("Daily", exact=True)).to_have_value("3")
    expect(preview).to_be_visible()
    page.locator("#retention-form").get_by_role("button", name="Save rules").click()
    expect(page.get_by_role("status")).to_contain_text("Keeping the newest 12 backups")
    assert mc.settings.get("general.backup_retention_count") == 12
    assert mc.settings.get("retention.keep_daily") == 3

    # Saved: the form is filled from the service again, and a preview of other values is hidden.
    page.locator("#retention-form").get_by_role("button", name="Preview").click()
    expect(preview).to_be_visible()
    mc.settings.update({"general.backup_retention_count": "7"}, "bob")
    background_refresh(page)
    expect(keep).to_have_value("7")
    expect(preview).to_be_hidden()
