"""Pruning by the retention rules: after a backup, `POST /api/backup/prune` (and its preview with
proposed settings), a plugin's own policy, and `mission-control backup prune`."""
import getpass
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mission_control import hookimpl
from mission_control.backup.service import LOCK_NAME
from mission_control.files import FileLock
from tests.support.helpers import DAYS, n, touch

ROOT = Path(__file__).resolve().parents[2]


def seed(mc, times, mtime=1000):
    """Rotating backups named for `times`, all with the same mtime (the name is the time)."""
    for text in times:
        touch(mc.backups.dir / n(text), mtime)


def on_disk(mc):
    return sorted(p.name for p in mc.backups.dir.iterdir() if p.name.endswith(".db"))


def twice_a_day(mc):
    times = [f"{day} {hour}" for day in DAYS for hour in ("15:00", "03:00")]
    seed(mc, times)
    return times


def pruned(mc):
    return [e["target_id"] for e in mc.audit_store.query(action="backup_prune")[0]]


def test_the_preview_says_safety_copies_and_uploads_are_kept_to_the_newest_few(admin_client, mc):
    """Uploads, safety copies and fetched copies are not pruned by the rules, nor kept forever."""
    seed(mc, ["2026-11-17 15:00"])
    others = ["pre-restore-2026-11-16_01-00-00.db", "uploaded-2026-11-16_02-00-00.db",
              "offsite-mc-backup-2026-11-16_03-00-00.db", "keep-forever.db"]
    for name in others:
        touch(mc.backups.dir / name, 5)
    response = admin_client.post("/api/backup/prune", json={"dry_run": True})
    assert response.status_code == 200, response.json
    reasons = {k["name"]: k["reasons"] for k in response.json["keep"]}
    for name, words in zip(others, ("pre-restore safety copy", "upload",
                                    "copy fetched back from off-site")):
        assert reasons[name] == [f"a {words}: not counted by the retention rules; only the newest "
                                 "general.safety_copies_keep of them are kept (rename it to keep "
                                 "it forever)"]
    assert reasons["keep-forever.db"] == ["not an mc-backup-<UTC time>.db name: never pruned"]


def test_dry_run_explains_and_touches_nothing(admin_client, mc):
    mc.settings.update({"general.backup_retention_count": 2, "retention.keep_daily": 3}, "t")
    twice_a_day(mc)
    touch(mc.backups.dir / "keep-forever.db", 5)
    before = on_disk(mc)
    response = admin_client.post("/api/backup/prune", json={"dry_run": True})
    assert response.status_code == 200, response.json
    body = response.json
    assert (body["dry_run"], body["policy"]) == (True, "rules")
    assert body["keep"] == [
        {"name": n("2026-11-17 15:00"), "reasons": ["last 2", "daily 2026-11-17"]},
        {"name": n("2026-11-17 03:00"), "reasons": ["last 2"]},
        {"name": n("2026-11-16 15:00"), "reasons": ["daily 2026-11-16"]},
        {"name": n("2026-11-15 15:00"), "reasons": ["daily 2026-11-15"]},
        {"name": "keep-forever.db",
         "reasons": ["not an mc-backup-<UTC time>.db name: never pruned"]}]
    assert [d["name"] for d in body["delete"]] == [
        n(f"{day} {hour}") for day in DAYS for hour in ("15:00", "03:00")
        if (day, hour) not in {("2026-11-17", "15:00"), ("2026-11-17", "03:00"),
                               ("2026-11-16", "15:00"), ("2026-11-15", "15:00")}]
    assert on_disk(mc) == before and pruned(mc) == []


def test_prune_now_deletes_by_the_rules_and_audits_each_file(admin_client, mc):
    mc.settings.update({"general.backup_retention_count": 1, "retention.keep_daily": 2}, "t")
    twice_a_day(mc)
    preview = admin_client.post("/api/backup/prune", json={"dry_run": True}).json
    response = admin_client.post("/api/backup/prune", json={"dry_run": False})
    assert response.status_code == 200
    assert response.json == {**preview, "dry_run": False}
    assert on_disk(mc) == sorted([n("2026-11-17 15:00"), n("2026-11-16 15:00")])
    events = mc.audit_store.query(action="backup_prune")[0]
    assert sorted(e["target_id"] for e in events) == sorted(d["name"] for d in preview["delete"])
    assert {e["actor"] for e in events} == {"alice"} and len(events) == 10


def test_preview_with_proposed_settings_saves_nothing(admin_client, mc):
    twice_a_day(mc)  # 12 backups; the default keeps the newest 10
    current = admin_client.post("/api/backup/prune", json={"dry_run": True}).json
    assert len(current["delete"]) == 2
    proposed = {"general.backup_retention_count": "1", "retention.keep_weekly": 2,
                "retention.keep_within": "2D"}
    body = admin_client.post("/api/backup/prune",
                             json={"dry_run": True, "settings": proposed}).json
    reasons = {k["name"]: k["reasons"] for k in body["keep"]}
    assert reasons == {n("2026-11-17 15:00"): ["last 1", "weekly 2026-W47", "within 2d"],
                       n("2026-11-17 03:00"): ["within 2d"],
                       n("2026-11-16 15:00"): ["within 2d"],
                       n("2026-11-16 03:00"): ["within 2d"],
                       n("2026-11-15 15:00"): ["weekly 2026-W46"]}  # exactly 2 d: not within
    assert len(body["delete"]) == 7
    assert mc.settings.get("general.backup_retention_count") == 10
    assert mc.settings.get("retention.keep_weekly") == 0
    assert mc.audit_store.query(action="settings_update")[1] == 0 and len(on_disk(mc)) == 12


@pytest.mark.parametrize("body, details", [
    ({}, ["dry_run: is required"]),
    ({"dry_run": "yes"}, ["dry_run: must be true or false"]),
    ({"dry_run": True, "force": 1}, ["force: unknown field"]),
    ({"dry_run": True, "settings": None}, ["settings: must be a JSON object"]),
    ({"dry_run": True, "settings": {"retention.keep_within": "14 days",
                                    "retention.keep_daily": 1001, "nope": 1}},
     ["retention.keep_within: must be a duration like 36h, 14d, 2w, 6m, 1y or 1y6m "
      "(empty: unused)", "retention.keep_daily: must be between 0 and 1000",
      "nope: unknown setting"]),
    ({"dry_run": False, "settings": {"retention.keep_daily": 1}},
     ["settings: unknown field"]),
])
def test_bad_bodies_are_refused_and_nothing_is_deleted(admin_client, mc, body, details):
    twice_a_day(mc)
    response = admin_client.post("/api/backup/prune", json=body)
    assert response.status_code == 400
    assert response.json == {"error": "Validation failed", "details": details}
    assert len(on_disk(mc)) == 12


def test_prune_is_admin_only(client, auth, mc):
    assert client.post("/api/backup/prune", json={"dry_run": True}).status_code == 401
    auth.login("olga")
    assert client.post("/api/backup/prune", json={"dry_run": True}).status_code == 403


def test_prune_now_waits_for_no_backup_and_answers_409(admin_client, mc):
    twice_a_day(mc)
    with FileLock(mc.backups.dir / LOCK_NAME).hold(0):
        response = admin_client.post("/api/backup/prune", json={"dry_run": False})
        assert response.status_code == 409 and response.headers["Retry-After"]
        assert response.json == {"error": "A backup is already in progress"}
        # A preview reads only: it answers while a backup runs.
        assert admin_client.post("/api/backup/prune", json={"dry_run": True}).status_code == 200
    assert len(on_disk(mc)) == 12 and pruned(mc) == []


def test_every_backup_prunes_by_the_same_rules(mc, clock):
    mc.settings.update({"general.backup_retention_count": 1, "retention.keep_daily": 3}, "t")
    times = twice_a_day(mc)
    made = mc.backups.create("t")  # 2026-11-18: a new day, the newest
    assert set(on_disk(mc)) == {made.name, n("2026-11-17 15:00"), n("2026-11-16 15:00")}
    assert len(pruned(mc)) == len(times) - 2


class KeepAll:
    @hookimpl
    def prune(self):
        return []


class DeleteOldest:
    @hookimpl
    def prune(self, backups, settings):
        assert settings.get("retention.keep_daily") in (0, 7)
        return [backups[-1].name]


class Deferring:
    @hookimpl
    def prune(self):
        return None


class Broken:
    @hookimpl
    def prune(self):
        raise ValueError("policy bug in /srv/secret")


def plugin_client(make_mc, plugin):
    from tests.support.accounts import logged_in_client
    mc = make_mc(plugins=[plugin])
    return mc, logged_in_client(mc)


def test_a_plugin_policy_wins_and_the_preview_shows_its_answer(make_mc):
    mc, client = plugin_client(make_mc, DeleteOldest())
    twice_a_day(mc)
    body = client.post("/api/backup/prune", json={
        "dry_run": True, "settings": {"retention.keep_daily": 7}}).json
    assert body["policy"] == "plugin"
    assert body["delete"] == [{"name": n("2026-11-12 03:00")}]
    assert all(k["reasons"] == [] for k in body["keep"]) and len(body["keep"]) == 11
    assert client.post("/api/backup/prune", json={"dry_run": False}).json["delete"] == \
        body["delete"]
    assert n("2026-11-12 03:00") not in on_disk(mc) and len(on_disk(mc)) == 11


def test_a_plugin_that_keeps_everything_wins_over_the_rules(make_mc):
    mc, client = plugin_client(make_mc, KeepAll())
    twice_a_day(mc)
    body = client.post("/api/backup/prune", json={"dry_run": False}).json
    assert (body["policy"], body["delete"]) == ("plugin", []) and len(on_disk(mc)) == 12


def test_a_deferring_plugin_leaves_the_rules_and_their_reasons(make_mc):
    mc, client = plugin_client(make_mc, Deferring())
    twice_a_day(mc)
    body = client.post("/api/backup/prune", json={"dry_run": True}).json
    assert body["policy"] == "rules" and body["keep"][0]["reasons"] == ["last 10"]


def test_a_failing_policy_is_a_500_without_details_and_deletes_nothing(make_mc):
    mc, client = plugin_client(make_mc, Broken())
    twice_a_day(mc)
    response = client.post("/api/backup/prune", json={"dry_run": False})
    assert response.status_code == 500
    assert response.json == {"error": "The retention policy failed; the reason is in the audit "
                                      "trail"}
    [event] = mc.audit_store.query(action="plugin_error")[0]
    assert event["detail"]["hook"] == "prune" and len(on_disk(mc)) == 12


def test_without_any_policy_nothing_is_pruned(make_mc, clock):
    mc = make_mc(disabled_plugins=("retention",))
    twice_a_day(mc)
    outcome = mc.pruning.run("t")
    assert (outcome.policy, outcome.delete) == ("none", ()) and len(on_disk(mc)) == 12


def test_times_come_from_names_not_mtimes(mc, clock):
    """Copies and restores change mtimes: the oldest name with the newest mtime still goes."""
    mc.settings.update({"general.backup_retention_count": 2}, "t")
    seed(mc, ["2026-11-10 03:00", "2026-11-11 03:00", "2026-11-12 03:00"], mtime=1000)
    touch(mc.backups.dir / n("2026-11-10 03:00"), 5000)
    assert mc.pruning.run("t").delete == (n("2026-11-10 03:00"),)


def cli(data_dir, *args, **environ):
    env = {**os.environ, "MC_LOG_LEVEL": "WARNING", **environ}
    return subprocess.run([sys.executable, "-m", "mission_control", "backup", "prune", *args,
                           "--data-dir", str(data_dir)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env=env)


@pytest.mark.slow
def test_cli_prune_dry_run_then_for_real(mc):
    mc.settings.update({"general.backup_retention_count": 3}, "t")
    twice_a_day(mc)
    data_dir = mc.config.data_dir
    dry = cli(data_dir, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    body = json.loads(dry.stdout)
    assert body["dry_run"] is True and len(body["delete"]) == 9 and len(on_disk(mc)) == 12
    text = cli(data_dir, "--dry-run").stdout.splitlines()
    assert text[0] == f"keep\t{n('2026-11-17 15:00')}\tlast 3"
    assert text[3] == f"would delete\t{n('2026-11-16 03:00')}"
    assert text[-1] == "3 kept, 9 would delete"
    real = cli(data_dir)
    assert real.returncode == 0 and real.stdout.splitlines()[-1] == "3 kept, 9 deleted"
    assert len(on_disk(mc)) == 3
    assert {e["actor"] for e in mc.audit_store.query(action="backup_prune")[0]} == \
        {f"cli:{getpass.getuser()}"}


def test_cli_prune_refuses_while_a_backup_runs(mc):
    twice_a_day(mc)
    with FileLock(mc.backups.dir / LOCK_NAME).hold(0):
        result = cli(mc.config.data_dir)
    assert result.returncode == 4  # refused: the lock is busy
    assert result.stderr.strip() == "mission-control: A backup is already in progress"
    assert "Traceback" not in result.stderr and len(on_disk(mc)) == 12


def test_cli_prune_says_when_no_policy_decides(mc):
    twice_a_day(mc)
    result = cli(mc.config.data_dir, "--dry-run", MC_DISABLE_PLUGINS="retention")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"keep\t{n('2026-11-17 15:00')}\tno retention policy: nothing is pruned"
    assert lines[-1] == "12 kept, 0 would delete"
