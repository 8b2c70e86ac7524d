"""The shipped rules in a real Prometheus (Debian's `prometheus`), scraping a real service with the
metrics token as docs/monitoring.md says: the alerts whose condition holds fire, the others do
not."""
import json
import shutil
import subprocess
import time
import urllib.request

import pytest
import yaml

from mission_control import SCHEDULER, alert_channels
from tests.support.helpers import serving
from tests.support.monitoring import RULES, rules
from tests.support.receivers import free_port

PROMETHEUS = shutil.which("prometheus")
TOKEN = "metrics-token-0123456789"
WAIT = 60  # seconds; a cold Prometheus on a shared 2-core machine

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed (Debian package "
                                                  "prometheus; .ci/run installs it)"),
]
pytest.importorskip("prometheus_client")


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


@pytest.fixture
def prometheus(tmp_path):
    """Start Prometheus on `config` (a dict for prometheus.yml); yields a function doing so and
    returning its base URL. Stopped (its own process only) afterwards."""
    started = []

    def start(config):
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        log = open(tmp_path / "prometheus.log", "wb")
        started.append(subprocess.Popen(
            [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT))
        log.close()
        return f"http://127.0.0.1:{port}"

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def firing(base):
    """`{alertname: {instance label sets}}` of the alerts firing now, or None while Prometheus
    does not answer yet."""
    try:
        alerts = get_json(f"{base}/api/v1/alerts")["data"]["alerts"]
    except OSError:
        return None
    found = {}
    for alert in alerts:
        if alert["state"] == "firing":
            found.setdefault(alert["labels"]["alertname"], []).append(alert["labels"])
    return found


def test_a_real_prometheus_fires_the_alerts_whose_condition_holds(make_mc, prometheus, tmp_path):
    mc = make_mc(metrics_token=TOKEN)
    mc.backups.create(SCHEDULER)
    # A dead ping receiver (the channel fails its test), a disk guard asking for more than the
    # disk has, and nothing else wrong that an alert without `for` would see.
    mc.settings.update({"healthchecks.url": f"http://127.0.0.1:{free_port()}/p"}, "test")
    assert [r["ok"] for r in alert_channels.test_all(mc, "test")] == [False]
    free_mb = shutil.disk_usage(mc.backups.dir).free // 2**20
    mc.settings.update({"diskguard.min_free_mb": free_mb + 10**6}, "test")
    shutil.copy(RULES, tmp_path / "alerts.yml")
    with serving(mc) as url:
        base = prometheus({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(tmp_path / "alerts.yml")],
            "scrape_configs": [{
                "job_name": "mission-control",
                "authorization": {"credentials": TOKEN},
                "static_configs": [{"targets": [url.removeprefix("http://")]}]}]})
        deadline = time.monotonic() + WAIT
        found = None
        while time.monotonic() < deadline:
            found = firing(base)
            if found and {"MissionControlAlertChannelFailing",
                          "MissionControlDiskUnderGuard"} <= set(found):
                break
            time.sleep(0.5)
        log = (tmp_path / "prometheus.log").read_text(errors="replace")[-3000:]
        assert found is not None, f"Prometheus never answered: {log}"
        [target] = get_json(f"{base}/api/v1/targets")["data"]["activeTargets"]
        assert target["health"] == "up", target
    assert set(found) == {"MissionControlAlertChannelFailing", "MissionControlDiskUnderGuard"}, \
        (found, log)
    [channel] = found["MissionControlAlertChannelFailing"]
    assert channel["channel"] == "healthchecks" and channel["job"] == "mission-control"
    # Every rule loaded, none broken by the real series.
    groups = get_json(f"{base}/api/v1/rules")["data"]["groups"]
    loaded = [rule for group in groups for rule in group["rules"]]
    assert len(loaded) == len(rules())
    assert all(rule["health"] == "ok" for rule in loaded), [
        (rule["name"], rule.get("lastError")) for rule in loaded if rule["health"] != "ok"]
