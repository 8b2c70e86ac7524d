"""The settings forms (off-site folder and S3, point in time, alerts) in a real Chromium, at both
sizes: each saves through the settings API, comes back after a reload, never shows a secret, and
shows the API's own message next to the field for a bad value, saving nothing."""
import pytest

from tests.support.browser import ARTIFACTS, DESKTOP, PHONE, log_in, open_tab, shot, wait_ready
from tests.support.offsite import new_key
from tests.support.s3server import ACCESS_KEY, SECRET_KEY

expect = pytest.importorskip("playwright.sync_api",
                             reason="browser tests need playwright: pip install -e '.[test]'").expect

SIZES = pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])


#: The view (tab) each form is in.
VIEWS = {"offsite": "offsite", "pitr": "pitr", "alerts": "schedule"}


def form(page, name):
    """The form `name`, in its view and unfolded (a view's forms are folded away under what they
    are set to)."""
    view = VIEWS[name.split("-")[0]]
    if not page.locator(f"#view-{view}").is_visible():
        open_tab(page, view)
    details = page.locator(f"details:has(#{name}-form)")
    if details.get_attribute("open") is None:
        details.locator("summary").click()
    return page.locator(f"#{name}-form")


def save(box):
    box.get_by_role("button", name="Save", exact=True).click()


def field(box, label):
    return box.get_by_label(label, exact=True)


def reopen(page):
    page.reload()
    wait_ready(page)


def refresh(page):
    """Reload what the page shows with its Refresh button (in the Backups view), then come back."""
    back = page.locator(".view:visible").get_attribute("id").removeprefix("view-")
    open_tab(page, "backups")
    page.get_by_role("button", name="Refresh").click()
    wait_ready(page)
    open_tab(page, back)


@SIZES
def test_the_folder_form_round_trips_and_a_bad_value_saves_nothing(open_page, mc, tmp_path, size):
    share = tmp_path / "share"
    share.mkdir()
    _, recipient = new_key()
    page = open_page(size)
    log_in(page)
    open_tab(page, "offsite")
    expect(page.locator("#offsite-config-summary")).to_have_text(
        "(Folder copy: off · S3 bucket copy: off · All off-site copies: no decryption key)")
    expect(page.locator("#offsite-dir-form")).to_be_hidden()  # folded away until asked for
    folder = form(page, "offsite-dir")
    expect(field(folder, "Folder")).to_have_value("")
    field(folder, "Folder").fill(str(share))
    field(folder, "Copies to keep").fill("0")
    save(folder)
    alert = folder.get_by_role("alert")
    expect(alert).to_have_text("Nothing was saved. Validation failed. "
                               "offsite.dir.retention_count: must be between 1 and 1000.")
    expect(alert).to_be_focused()
    assert alert.bounding_box()["y"] >= 0  # drawn where the eye is, inside the viewport
    expect(folder.locator("#set-offsite-dir-retention_count-error")).to_have_text(
        "must be between 1 and 1000")
    expect(field(folder, "Copies to keep")).to_have_attribute("aria-invalid", "true")
    assert mc.settings.get("offsite.dir.path") == ""  # all or nothing: the good field too

    field(folder, "Copies to keep").fill("3")
    field(folder, "Compression").select_option("zstd")
    field(folder, "Encrypt to (age recipients)").fill(recipient)
    save(folder)
    status = folder.get_by_role("status")
    expect(status).to_have_text(
        "Saved 4 settings: offsite.dir.path, offsite.dir.retention_count, offsite.dir.compress, "
        "offsite.dir.age_recipients.")
    expect(status).to_be_focused()
    expect(field(folder, "Copies to keep")).not_to_have_attribute("aria-invalid", "true")
    assert mc.settings.get("offsite.dir.path") == str(share)
    assert mc.settings.get("offsite.dir.retention_count") == 3
    assert mc.settings.get("offsite.dir.compress") == "zstd"
    assert mc.settings.get("offsite.dir.age_recipients") == recipient
    expect(page.locator("#offsite-none")).to_be_hidden()

    reopen(page)  # the address keeps the view
    expect(page.locator("#offsite-config-summary")).to_contain_text(f"(Folder copy: on: {share} · ")
    folder = form(page, "offsite-dir")
    expect(field(folder, "Folder")).to_have_value(str(share))
    expect(field(folder, "Copies to keep")).to_have_value("3")
    expect(field(folder, "Compression")).to_have_value("zstd")
    expect(field(folder, "Encrypt to (age recipients)")).to_have_value(recipient)
    save(folder)
    expect(folder.get_by_role("status")).to_have_text("Nothing to save: no field was changed.")
    shot(page, f"30-offsite-forms-{size['width']}")


@SIZES
def test_s3_secrets_are_write_only_and_a_refused_lock_saves_nothing(open_page, mc, s3_server,
                                                                   bucket, size):
    page = open_page(size)
    log_in(page)
    s3 = form(page, "offsite-s3")
    expect(s3.locator("#set-offsite-s3-secret_access_key-state")).to_have_text("Not set.")
    field(s3, "Bucket").fill(bucket)
    field(s3, "Endpoint URL").fill(s3_server.url)
    field(s3, "Region").fill("us-east-1")
    field(s3, "Access key id").fill(ACCESS_KEY)
    field(s3, "Secret access key").fill(SECRET_KEY)
    field(s3, "Never delete in the bucket").check()
    save(s3)
    expect(s3.get_by_role("status")).to_contain_text("Saved 6 settings")
    assert mc.settings.get("offsite.s3.secret_access_key") == SECRET_KEY
    assert mc.settings.get("offsite.s3.no_delete") is True

    reopen(page)
    s3 = form(page, "offsite-s3")
    expect(field(s3, "Bucket")).to_have_value(bucket)
    expect(field(s3, "Never delete in the bucket")).to_be_checked()
    expect(field(s3, "Secret access key")).to_have_value("")
    expect(s3.locator("#set-offsite-s3-secret_access_key-state")).to_have_text(
        "Set (hidden). Type a new value to replace it.")
    assert SECRET_KEY not in page.content()

    # moto's bucket has no Object Lock: the service's own check refuses, naming the field.
    field(s3, "Object Lock mode").select_option("GOVERNANCE")
    field(s3, "Lock days").fill("7")
    save(s3)
    expect(s3.get_by_role("alert")).to_contain_text(
        f"offsite.s3.lock_mode: bucket {bucket} does not have Object Lock enabled")
    expect(s3.get_by_role("alert")).to_be_focused()
    expect(s3.locator("#set-offsite-s3-lock_mode-error")).to_contain_text("does not have Object Lock")
    assert mc.settings.get("offsite.s3.lock_mode") == "" and mc.settings.get("offsite.s3.lock_days") == 30
    s3.screenshot(path=str(ARTIFACTS / f"35-s3-form-refused-{size['width']}.png"))

    s3.get_by_role("button", name="Undo changes").click()
    expect(field(s3, "Object Lock mode")).to_have_value("")
    field(s3, "Clear the stored secret access key").check()
    expect(field(s3, "Secret access key")).to_be_disabled()
    save(s3)
    expect(s3.get_by_role("status")).to_have_text("Saved 1 setting: offsite.s3.secret_access_key.")
    expect(s3.locator("#set-offsite-s3-secret_access_key-state")).to_have_text("Not set.")
    assert mc.settings.get("offsite.s3.secret_access_key") == ""
    assert mc.settings.get("offsite.s3.access_key_id") == ACCESS_KEY


@SIZES
def test_the_alert_forms_round_trip_with_a_write_only_password(open_page, mc, size):
    page = open_page(size)
    log_in(page)
    mail = form(page, "alerts-mail")
    field(mail, "SMTP server").fill("smtp.example.com")
    field(mail, "SMTP port").fill("2525")
    field(mail, "Use STARTTLS").uncheck()
    field(mail, "SMTP password").fill("mail-password-1234")
    field(mail, "From").fill("not an address")
    field(mail, "To (comma-separated)").fill("ops@example.com, oncall@example.com")
    save(mail)
    expect(mail.get_by_role("alert")).to_contain_text("email.from: must be")
    expect(mail.locator("#set-email-from-error")).to_contain_text("must be")
    assert mc.settings.get("email.smtp_host") == "" and mc.settings.get("email.password") == ""

    field(mail, "From").fill("backups@example.com")
    refresh(page)  # a reload leaves a form being edited alone
    expect(field(mail, "From")).to_have_value("backups@example.com")
    expect(field(mail, "SMTP server")).to_have_value("smtp.example.com")
    save(mail)
    expect(mail.get_by_role("status")).to_contain_text("Saved 6 settings")
    pings = form(page, "alerts-pings")
    field(pings, "Ping URL").fill("ftp://hc-ping.com/x")
    save(pings)
    expect(pings.get_by_role("alert")).to_contain_text("healthchecks.url: must be an http(s) URL")
    assert mc.settings.get("healthchecks.url") == ""
    field(pings, "Ping URL").fill("https://hc-ping.com/0b1c")
    field(pings, "Ping for manual backups too").check()
    save(pings)
    expect(pings.get_by_role("status")).to_have_text(
        "Saved 2 settings: healthchecks.url, healthchecks.all_backups.")

    reopen(page)
    mail = form(page, "alerts-mail")
    expect(field(mail, "SMTP server")).to_have_value("smtp.example.com")
    expect(field(mail, "SMTP port")).to_have_value("2525")
    expect(field(mail, "Use STARTTLS")).not_to_be_checked()
    expect(field(mail, "To (comma-separated)")).to_have_value("ops@example.com, oncall@example.com")
    expect(field(mail, "SMTP password")).to_have_value("")
    expect(mail.locator("#set-email-password-state")).to_contain_text("Set (hidden)")
    assert "mail-password-1234" not in page.content()
    assert mc.settings.get("email.password") == "mail-password-1234"
    expect(field(form(page, "alerts-pings"), "Ping URL")).to_have_value("https://hc-ping.com/0b1c")
    shot(page, f"31-alert-forms-{size['width']}")


@SIZES
def test_the_point_in_time_settings_round_trip(open_page, mc, tmp_path, size):
    page = open_page(size)
    log_in(page)
    settings = form(page, "pitr-settings")
    expect(page.locator("#pitr-off")).to_be_visible()
    field(settings, "Continuous protection on (Litestream)").check()
    field(settings, "Replica").fill(f"file://{tmp_path / 'replica'}")
    field(settings, "How far back").fill("3 days")
    save(settings)
    expect(settings.get_by_role("alert")).to_contain_text("pitr.retention:")
    expect(settings.locator("#set-pitr-retention-error")).not_to_be_empty()
    assert mc.settings.get("pitr.enabled") is False and mc.settings.get("pitr.replica_url") == ""

    field(settings, "How far back").fill("36h")
    save(settings)
    expect(settings.get_by_role("status")).to_have_text(
        "Saved 3 settings: pitr.enabled, pitr.replica_url, pitr.retention.")
    assert mc.settings.get("pitr.enabled") is True and mc.settings.get("pitr.retention") == "36h"

    reopen(page)
    settings = form(page, "pitr-settings")
    expect(field(settings, "Continuous protection on (Litestream)")).to_be_checked()
    expect(field(settings, "Replica")).to_have_value(f"file://{tmp_path / 'replica'}")
    expect(field(settings, "How far back")).to_have_value("36h")
    expect(settings.locator("#set-pitr-s3_secret_access_key-state")).to_have_text("Not set.")
    # On, but this test's server runs no Litestream: nothing to restore to yet.
    expect(page.locator("#pitr-state")).to_contain_text("On, but Litestream is not running")
    expect(page.locator("#pitr-submit")).to_be_disabled()


@SIZES
def test_the_all_offsite_copies_form_round_trips_with_a_masked_identity(open_page, mc, size):
    identity, _ = new_key()
    page = open_page(size)
    log_in(page)
    common = form(page, "offsite-common")
    key = field(common, "Decryption key (age identity)")
    expect(common.locator("#set-offsite-age_identity-state")).to_have_text("Not set.")
    # Typed like a password: masked on the screen, never echoed.
    assert key.evaluate("(e) => getComputedStyle(e).webkitTextSecurity") == "disc"
    key.fill(identity)
    field(common, "Health fails after (minutes without a copy)").fill("0")
    field(common, "Restore drill schedule (cron, UTC)").fill("30 5 * * 1")
    save(common)
    expect(common.get_by_role("alert")).to_contain_text(
        "offsite.max_lag_minutes: must be between 1 and 10080")
    expect(key).to_have_value(identity)  # kept to correct the form, not saved
    assert mc.settings.get("offsite.age_identity") == ""
    field(common, "Health fails after (minutes without a copy)").fill("90")
    save(common)
    expect(common.get_by_role("status")).to_have_text(
        "Saved 3 settings: offsite.age_identity, offsite.max_lag_minutes, offsite.verify_schedule.")
    expect(key).to_have_value("")  # cleared once saved
    assert mc.settings.get("offsite.age_identity") == identity
    assert mc.settings.get("offsite.max_lag_minutes") == 90
    assert mc.settings.get("offsite.verify_schedule") == "30 5 * * 1"

    reopen(page)
    expect(page.locator("#offsite-config-summary")).to_contain_text("All off-site copies: decryption key set")
    common = form(page, "offsite-common")
    expect(field(common, "Health fails after (minutes without a copy)")).to_have_value("90")
    expect(field(common, "Restore drill schedule (cron, UTC)")).to_have_value("30 5 * * 1")
    expect(field(common, "Decryption key (age identity)")).to_have_value("")
    expect(common.locator("#set-offsite-age_identity-state")).to_have_text(
        "Set (hidden). Type a new value to replace it.")
    assert identity not in page.content()


@SIZES
def test_the_point_in_time_s3_fields_and_recipients_round_trip(open_page, mc, size):
    _, recipient = new_key()
    page = open_page(size)
    log_in(page)
    settings = form(page, "pitr-settings")
    field(settings, "S3 endpoint URL").fill("https://s3.example.com")
    field(settings, "S3 region").fill("eu-central-1")
    field(settings, "S3 access key id").fill(ACCESS_KEY)
    field(settings, "S3 secret access key").fill(SECRET_KEY)
    field(settings, "Seal to (age recipients)").fill("age1notakey")
    save(settings)
    expect(settings.get_by_role("alert")).to_contain_text("pitr.age_recipients")
    assert mc.settings.get("pitr.s3_region") == ""
    field(settings, "Seal to (age recipients)").fill(recipient)
    save(settings)
    expect(settings.get_by_role("status")).to_have_text(
        "Saved 5 settings: pitr.s3_endpoint, pitr.s3_region, pitr.s3_access_key_id, "
        "pitr.s3_secret_access_key, pitr.age_recipients.")
    assert mc.settings.get("pitr.s3_endpoint") == "https://s3.example.com"
    assert mc.settings.get("pitr.s3_secret_access_key") == SECRET_KEY

    reopen(page)
    settings = form(page, "pitr-settings")
    expect(field(settings, "S3 endpoint URL")).to_have_value("https://s3.example.com")
    expect(field(settings, "S3 region")).to_have_value("eu-central-1")
    expect(field(settings, "Seal to (age recipients)")).to_have_value(recipient)
    for secret in ("access_key_id", "secret_access_key"):
        expect(settings.locator(f"#set-pitr-s3_{secret}-state")).to_have_text(
            "Set (hidden). Type a new value to replace it.")
    expect(field(settings, "S3 secret access key")).to_have_value("")
    assert SECRET_KEY not in page.content()
