"""The page's verify, download, upload and restore controls in headless Chromium, and their absence
when the service has no such endpoints."""
import threading

import pytest
import waitress

from mission_control.web import WebApp
from mission_control.web.app import API_MODULES, build_routes
from tests.support.browser import log_in, row_action, shot, wait_ready

expect = pytest.importorskip("playwright.sync_api",
                             reason="browser tests need playwright: pip install -e '.[test]'").expect


def row(page, name):
    return page.locator(f'#backups-body tr[data-name="{name}"]')


def test_verify_a_backup_and_see_it_verified(open_page, mc):
    made = mc.backups.create("alice")
    page = open_page()
    log_in(page)
    cell = row(page, made.name).locator('td[data-label="Verified"]')
    # quick_check ran as the backup was written: it is not "not verified"
    expect(cell).to_have_text("✓ Checked when made")
    expect(page.locator("#health-verdict")).to_have_text("Needs attention")
    expect(page.locator("#health-reasons")).to_contain_text("Auto-backup disabled.")
    row_action(page, made.name, "Verify")
    expect(page.get_by_role("status")).to_contain_text(f"{made.name} passed verification")
    expect(cell).to_contain_text("✓ Verified")
    expect(page.locator("#audit-body tr").first).to_contain_text("verified a backup")
    shot(page, "20-verified")


def test_a_broken_file_fails_verification_in_words(open_page, mc):
    mc.backups.ensure_dir()
    (mc.backups.dir / "broken.db").write_bytes(b"this is not a database" * 100)
    page = open_page()
    log_in(page)
    row_action(page, "broken.db", "Verify")
    expect(page.get_by_role("alert")).to_contain_text("broken.db failed verification: ")
    expect(row(page, "broken.db").locator('td[data-label="Verified"] .fail')).to_have_text(
        "✗ Failed verification")
    shot(page, "21-verify-failed")


def test_download_gives_the_same_bytes(open_page, mc, tmp_path):
    made = mc.backups.create("alice")
    page = open_page()
    log_in(page)
    with page.expect_download() as info:
        page.get_by_role("link", name=f"Download {made.name}").click()
    download = info.value
    assert download.suggested_filename == made.name
    target = tmp_path / "downloaded.db"
    download.save_as(target)
    assert target.read_bytes() == (mc.backups.dir / made.name).read_bytes()


def test_upload_a_backup_file(open_page, mc, tmp_path):
    made = mc.backups.create("alice")
    copy = tmp_path / "from-elsewhere.db"
    copy.write_bytes((mc.backups.dir / made.name).read_bytes())
    page = open_page()
    log_in(page)
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text("Choose a backup file (.db) to upload first.")
    page.get_by_label("Upload a backup file").set_input_files(str(copy))
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Uploaded from-elsewhere.db as uploaded-")
    expect(page.locator("#backups-body tr")).to_have_count(2)
    uploaded = [b.name for b in mc.backups.list() if b.name.startswith("uploaded-")]
    assert len(uploaded) == 1
    expect(row(page, uploaded[0]).locator('td[data-label="Verified"]')).to_contain_text("✓ Verified")


def test_uploading_something_else_is_refused_in_words(open_page, mc, tmp_path):
    junk = tmp_path / "notes.db"
    junk.write_text("shopping list")
    page = open_page()
    log_in(page)
    page.get_by_label("Upload a backup file").set_input_files(str(junk))
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("Upload is not a valid Mission Control backup.")
    assert mc.backups.list() == []


def test_restore_needs_the_typed_name_and_warns(open_page, mc):
    made = mc.backups.create("alice")  # taken before this login: the session is not in it
    mc.settings.update({"general.backup_retention_count": "5"}, "alice")
    page = open_page()
    log_in(page)
    page.get_by_role("button", name=f"Restore {made.name}").click()
    dialog = page.get_by_role("dialog", name="Restore this backup?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("This replaces all current data")
    expect(dialog).to_contain_text("safety backup")
    typed = dialog.get_by_label("Type the backup name to confirm")
    expect(typed).to_be_focused()
    confirm = dialog.get_by_role("button", name="Restore")
    expect(confirm).to_be_disabled()
    typed.fill(made.name[:-1])
    expect(confirm).to_be_disabled()
    typed.press("Enter")  # does nothing while the name is wrong
    expect(dialog).to_be_visible()
    typed.fill(made.name)
    expect(confirm).to_be_enabled()
    shot(page, "22-restore-confirm")
    confirm.click()
    # The backup predates this login, so the restored data has no such session: log in again.
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    notice = page.locator("#login-notice")
    expect(notice).to_contain_text(f"Restored {made.name}. The data it replaced is in pre-restore-")
    expect(notice).to_contain_text("Kept the current protection settings instead of the backup's: "
                                   "general.backup_retention_count.")
    expect(notice).to_contain_text("Log in again")
    shot(page, "23-restored-log-in-again")
    assert mc.settings.get("general.backup_retention_count") == 5  # the live value, kept
    assert any(b.name.startswith("pre-restore-") for b in mc.backups.list())
    log_in(page)
    expect(page.locator("#audit-body")).to_contain_text("restored a backup")


def test_the_box_restores_the_backups_protection_settings_too(open_page, mc):
    mc.settings.update({"general.auto_backup": "true"}, "alice")
    made = mc.backups.create("alice")
    mc.settings.update({"general.auto_backup": "false"}, "alice")
    page = open_page()
    log_in(page)
    page.get_by_role("button", name=f"Restore {made.name}").click()
    dialog = page.get_by_role("dialog", name="Restore this backup?")
    expect(dialog).to_contain_text("stay as they are now, unless you tick the box below")
    box = dialog.get_by_label("Also restore the backup's daily-backup, retention, off-site")
    expect(box).not_to_be_checked()
    box.check()
    dialog.get_by_label("Type the backup name to confirm").fill(made.name)
    dialog.get_by_role("button", name="Restore").click()
    notice = page.locator("#login-notice")
    expect(notice).to_contain_text("settings were restored too")
    assert mc.settings.get("general.auto_backup") is True  # the backup's value


def test_cancelling_a_restore_changes_nothing(open_page, mc):
    made = mc.backups.create("alice")
    mc.settings.update({"general.backup_retention_count": "5"}, "alice")
    page = open_page()
    log_in(page)
    page.get_by_role("button", name=f"Restore {made.name}").click()
    page.get_by_label("Type the backup name to confirm").fill(made.name)
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    assert mc.settings.get("general.backup_retention_count") == 5
    assert [b.name for b in mc.backups.list()] == [made.name]


@pytest.fixture
def server_without_file_endpoints(mc, users):
    """A waitress server whose app lacks verify, download, upload, restore and status (404)."""
    app = WebApp(mc)
    modules = [m for m in API_MODULES
               if m.__name__.rsplit(".", 1)[-1] not in ("api_backup_files", "api_restore", "api_health")]
    assert len(modules) == len(API_MODULES) - 3
    app.url_map, app.views = build_routes(modules)
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()
    server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
    thread.join(5)


def test_without_those_endpoints_the_controls_are_hidden(browser, server_without_file_endpoints, mc):
    made = mc.backups.create("alice")
    context = browser.new_context(base_url=server_without_file_endpoints)
    try:
        page = context.new_page()
        log_in(page)
        expect(row(page, made.name)).to_be_visible()
        expect(page.get_by_role("button", name=f"Delete {made.name}")).to_be_visible()
        for role, label in (("button", "Verify"), ("button", "Restore"), ("link", "Download")):
            expect(page.get_by_role(role, name=f"{label} {made.name}")).to_have_count(0)
        expect(page.get_by_role("columnheader", name="Verified")).to_be_hidden()
        expect(page.locator("#upload-form")).to_be_hidden()
        expect(page.locator("#health")).to_be_hidden()
        expect(page.locator("#error-message")).to_be_hidden()
    finally:
        context.close()


def test_restoring_a_backup_that_has_my_session_keeps_me_logged_in(open_page, mc):
    page = open_page()
    log_in(page)
    made = mc.backups.create("alice")  # taken after this login: the session is in it
    mc.settings.update({"general.backup_retention_count": "7"}, "alice")
    page.get_by_role("button", name="Refresh").click()
    wait_ready(page)
    page.get_by_role("button", name=f"Restore {made.name}").click()
    page.get_by_label("Type the backup name to confirm").fill(made.name)
    page.get_by_label("Type the backup name to confirm").press("Enter")
    expect(page.get_by_role("status")).to_contain_text(
        f"Restored {made.name}. The data it replaced is in pre-restore-")
    expect(page.get_by_role("status")).to_contain_text(
        "Kept the current protection settings instead of the backup's: "
        "general.backup_retention_count.")
    expect(page.locator("#app-view")).to_be_visible()
    expect(page.get_by_label("Backups to keep")).to_have_value("7")  # the live value, kept
    expect(page.locator("#audit-body tr").first).to_contain_text("restored a backup")
    expect(page.locator("#backups-body tr")).to_have_count(2)  # the backup and the safety backup


def test_the_page_shows_the_offsite_copy_its_ratio_and_drill(open_page, mc, tmp_path):
    pytest.importorskip("zstandard")
    from mission_control.offsite.drill import drill_all
    nas = tmp_path / "nas"
    nas.mkdir()
    mc.settings.update({"offsite.dir.path": str(nas), "offsite.dir.compress": "zstd"}, "alice")
    mc.backups.create("alice")
    drill_all(mc, "alice")
    percent = mc.offsite.get("dir")["ratio"] * 100
    page = open_page()
    log_in(page)
    row = page.locator('#offsite-body tr[data-target="dir"]')
    expect(row.locator('td[data-label="Last result"]')).to_contain_text("✓ Copied mc-backup-")
    stored = row.locator('td[data-label="Stored"]')
    expect(stored).to_contain_text("% of the backup)")
    expect(row.locator('td[data-label="Restore drill"]')).to_contain_text("✓ Passed")
    shown = stored.text_content().split("(")[1].split("%")[0]
    assert abs(int(shown) - percent) <= 1


def test_the_page_shows_what_an_incremental_copy_uploaded(open_page, mc, tmp_path, clock):
    pytest.importorskip("zstandard")
    nas = tmp_path / "nas"
    nas.mkdir()
    mc.settings.update({"offsite.dir.path": str(nas), "offsite.dir.incremental": "true"},
                       "alice")
    mc.backups.create("alice")
    clock.advance(60)
    mc.backups.create("alice")
    result = mc.offsite.get("dir")
    assert (result["kind"], result["chain_length"]) == ("delta", 1)
    page = open_page()
    log_in(page)
    stored = page.locator('#offsite-body tr[data-target="dir"] td[data-label="Stored"]')
    expect(stored).to_contain_text(
        "uploaded: the pages that changed (1 copy since the full copy)")
    assert not stored.text_content().startswith("0 ")
