"""The page names off-site copies that Object Lock holds (SeaweedFS) as held until a date, never as
a failure (issue 22: retention reports held copies on the page, the API and the CLI)."""
import time
from datetime import datetime, timezone

import pytest

from tests.support.browser import log_in, open_tab, shot
from tests.support.scheduling import FakeClock

expect = pytest.importorskip("playwright.sync_api",
                             reason="browser tests need playwright: pip install -e '.[test]'").expect


@pytest.fixture
def clock():
    """Real time (SeaweedFS judges the locks by its own clock), moved by hand."""
    return FakeClock(float(int(time.time())))


def test_copies_held_by_their_lock_show_held_until_and_no_failure(open_page, mc, clock, seaweed):
    bucket = seaweed.bucket(lock=True)
    mc.settings.update({**seaweed.settings(bucket), "offsite.s3.lock_mode": "GOVERNANCE",
                        "offsite.s3.lock_days": 1, "offsite.s3.retention_count": 1}, "alice")
    names = []
    for _ in range(3):
        names.append(mc.backups.create(actor="alice").name)
        clock.advance(60)
    held = mc.offsite.get("s3")["held"]
    assert [h["name"] for h in held] == names[1::-1], held  # the two past the count

    page = open_page()
    log_in(page)
    open_tab(page, "offsite")
    row = page.locator('#offsite-body tr[data-target="s3"]')
    result = row.locator('td[data-label="Last result"]')
    expect(result).to_contain_text(f"✓ Copied {names[-1]}")
    shown = result.locator(".held")
    expect(shown).to_have_count(2)
    for line, copy in zip(shown.all(), held):
        until = datetime.fromtimestamp(copy["until"], timezone.utc)
        expect(line).to_have_text(f"{copy['name']} held until "
                                  f"{until.strftime('%Y-%m-%d %H:%M:%S')} UTC")
        expect(line.locator("time")).to_have_attribute(
            "datetime", until.strftime("%Y-%m-%dT%H:%M:%S.000Z"))
    expect(result.locator(".fail")).to_have_count(0)
    expect(page.locator("#health-verdict")).not_to_have_text("Failing")
    shot(page, "offsite-held")
