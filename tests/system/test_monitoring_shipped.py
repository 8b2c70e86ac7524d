"""The monitoring that ships: deploy/prometheus/alerts.yml (checked and unit-tested with Debian's
promtool) and deploy/grafana/mission-control.json; every PromQL expression in either names only
series a real scrape of a real app, with every feature on, exports."""
import json
import re
import shutil
import subprocess

import pytest
import yaml

from mission_control import BackupRefused, alert_channels, hookimpl, metrics
from mission_control.offsite.drill import drill_all
from tests.support.monitoring import (DASHBOARD, ROOT, RULE_TESTS, RULES, dashboard_exprs,
                                      metric_names, rules)
from tests.support.receivers import free_port

prometheus = pytest.importorskip("prometheus_client.parser")

DOC = ROOT / "docs" / "monitoring.md"
#: The one table of metrics, generated from a scrape by docs/gen_reference.py.
METRICS_TABLE = ROOT / "docs" / "reference" / "metrics.md"
#: Where every runbook link points; alerts.yml says how to change it in one go.
RUNBOOK_BASE = "docs/monitoring.md#"
#: Series Prometheus makes itself for every scrape target, not the collector.
PROMETHEUS_OWN = {"up"}

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian package prometheus; "
                             ".ci/run installs it)")


def anchors(markdown):
    """GitHub's anchors of the headings of `markdown`."""
    found = set()
    for heading in re.findall(r"^#+ +(.+)$", markdown, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


class Engine:
    """A point-in-time engine reporting Litestream running, 3 s behind (the `pitr_status` hook)."""

    @hookimpl(tryfirst=True)
    def pitr_status(self):
        return {"enabled": True, "installed": True, "running": True, "pid": 7,
                "replica": "file:///r", "earliest": 1, "latest": 2, "lag_seconds": 3.0,
                "last_error": None}


@pytest.fixture
def scraped(make_mc, tmp_path):
    """The sample names of a real scrape of an app with every feature on: a refused and a good
    backup, an off-site copy and its restore drill, continuous protection, a failing alert
    channel, the disk guard."""
    mc = make_mc(plugins=[Engine()])
    nas = tmp_path / "nas"
    nas.mkdir()
    mc.settings.update({"offsite.dir.path": str(nas), "general.auto_backup": True,
                        "healthchecks.url": f"http://127.0.0.1:{free_port()}/p"}, "test")
    free_mb = shutil.disk_usage(mc.backups.dir).free // 2**20
    mc.settings.update({"diskguard.min_free_mb": free_mb + 10**6}, "test")
    with pytest.raises(BackupRefused):
        mc.backups.create("test")
    mc.settings.update({"diskguard.min_free_mb": 0}, "test")
    mc.backups.create("test")
    assert [r["ok"] for r in drill_all(mc, "test")] == [True]
    assert [r["ok"] for r in alert_channels.test_all(mc, "test")] == [False]  # nothing listens
    body, _ = metrics.render(mc)
    text = body.decode()
    families = list(prometheus.text_string_to_metric_families(text))
    empty = [f.name for f in families if not f.samples]
    assert not empty, f"families without a sample: a feature is off in this scrape: {empty}"
    return {sample.name for family in families for sample in family.samples}, text


def test_metric_names_are_read_out_of_promql():
    expr = ('sum by (result) (rate(foo_total{job="x", a=~"b|c"}[5m] offset 1h)) > on(job) '
            'group_left(kind) (bar_seconds + 1e3) and ignoring(x) baz unless time() < 1.5 * qux')
    assert metric_names(expr) == {"foo_total", "bar_seconds", "baz", "qux"}
    assert metric_names('label_replace(up, "a", "$1", "b", "(.*)")') == {"up"}


def test_the_documented_metrics_are_the_ones_a_scrape_exports(scraped):
    names, _ = scraped
    documented = set(re.findall(r"^\| `(mission_control_\w+)", METRICS_TABLE.read_text(), re.M))
    assert names == documented, (f"undocumented: {names - documented}; "
                                 f"documented, not exported: {documented - names}")


def test_every_series_the_rules_and_the_dashboard_read_is_exported(scraped):
    names, _ = scraped
    exprs = [rule["expr"] for rule in rules()] + dashboard_exprs()
    used = set().union(*map(metric_names, exprs))
    assert used - PROMETHEUS_OWN <= names, f"not exported: {used - PROMETHEUS_OWN - names}"
    # The dashboard shows what the issue asks for: the off-site traffic and chains among them.
    shown = set().union(*map(metric_names, dashboard_exprs()))
    assert {"mission_control_backup_verdict", "mission_control_backup_last_duration_seconds",
            "mission_control_backup_last_size_bytes", "mission_control_pitr_lag_seconds",
            "mission_control_offsite_uploaded_bytes_total",
            "mission_control_offsite_chain_length"} <= shown


@needs_promtool
def test_the_scrape_passes_promtools_lint(scraped):
    _, text = scraped
    done = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_summary_a_description_and_a_runbook_in_the_docs():
    found = rules()
    assert len(found) >= 10
    sections = anchors(DOC.read_text())
    for rule in found:
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        url = notes["runbook_url"]
        assert url.startswith(RUNBOOK_BASE), rule["alert"]
        assert url[len(RUNBOOK_BASE):] in sections, f"{rule['alert']}: no section {url}"


def test_every_alert_is_unit_tested_firing():
    tested = yaml.safe_load(RULE_TESTS.read_text())
    firing = {case["alertname"] for group in tested["tests"]
              for case in group["alert_rule_test"] if case["exp_alerts"]}
    assert {rule["alert"] for rule in rules()} == firing


@needs_promtool
def test_the_rules_are_valid_and_their_unit_tests_pass():
    checked = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([PROMTOOL, "test", "rules", RULE_TESTS.name], capture_output=True,
                            text=True, timeout=120, cwd=RULE_TESTS.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


@needs_promtool
def test_the_unit_tests_fail_on_a_wrong_rule(tmp_path):
    """The rule tests can fail: with the disk guard's comparison turned around they do."""
    wrong = RULES.read_text().replace(
        "expr: mission_control_disk_free_bytes < mission_control_disk_guard_needed_bytes",
        "expr: mission_control_disk_free_bytes > mission_control_disk_guard_needed_bytes")
    assert wrong != RULES.read_text()
    (tmp_path / "alerts.yml").write_text(wrong)
    shutil.copy(RULE_TESTS, tmp_path)
    tested = subprocess.run([PROMTOOL, "test", "rules", RULE_TESTS.name], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path)
    assert tested.returncode != 0
    assert "MissionControlDiskUnderGuard" in tested.stdout + tested.stderr


@needs_promtool
def test_every_dashboard_expression_parses(tmp_path):
    """promtool parses each expression, given to it as a recording rule."""
    exprs = dashboard_exprs()
    assert len(exprs) >= 20
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump({"groups": [{
        "name": "dashboard", "rules": [{"record": f"dashboard:expr{i}", "expr": expr}
                                       for i, expr in enumerate(exprs)]}]}))
    checked = subprocess.run([PROMTOOL, "check", "rules", str(tmp_path / "dashboard.yml")],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_dashboard_lays_out_its_panels_once_each_on_grafanas_grid():
    board = json.loads(DASHBOARD.read_text())
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    taken = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for cell in ((x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                     for y in range(grid["y"], grid["y"] + grid["h"])):
            assert cell not in taken, f"{panel['title']} overlaps {taken[cell]}"
            taken[cell] = panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["description"], panel["title"]
    assert [v["name"] for v in board["templating"]["list"]] == ["datasource", "instance"]
