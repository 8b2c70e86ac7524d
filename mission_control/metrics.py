"""Prometheus metrics of backup health, rendered with `prometheus_client` (the `[metrics]` extra).

Every scrape reads the current state (audit trail, backups folder, settings) through a custom
collector in a registry made for that scrape: no process-global registry, no counters kept in
memory, so several processes sharing one database all report the same truth.
"""
import logging
import re

from . import __version__, alert_channels
from .health import action_counts, backup_status

log = logging.getLogger(__name__)

VERDICTS = ("pass", "warn", "fail")


def available():
    """Whether the optional `prometheus_client` (the `[metrics]` extra) is installed."""
    import importlib.util
    return importlib.util.find_spec("prometheus_client") is not None


class BackupCollector:
    """A `prometheus_client` collector over one MissionControl's backup state."""

    def __init__(self, mc):
        self.mc = mc

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

        status = backup_status(self.mc)
        yield InfoMetricFamily("mission_control", "Mission Control backup service",
                               value={"version": __version__})
        success = status["last_success"] or {}
        failure = status["last_failure"] or {}
        for name, doc, value in (
            ("last_success_timestamp_seconds", "Unix time of the last successful backup",
             success.get("at")),
            ("last_duration_seconds", "How long the last successful backup took",
             success.get("duration_seconds")),
            ("last_size_bytes", "Size of the last successful backup", success.get("size")),
            ("last_failure_timestamp_seconds", "Unix time of the last failed or refused backup",
             failure.get("at")),
            ("next_run_timestamp_seconds", "Unix time of the next auto-backup slot",
             status["next_run"]),
        ):
            if value is not None:
                yield GaugeMetricFamily(f"mission_control_backup_{name}", doc, value=value)
        if success.get("copy") is not None:  # known for backups made since the kernel copy
            yield GaugeMetricFamily(
                "mission_control_backup_last_page_copy",
                "1 when the last good backup was copied page by page (the slower fallback: the "
                "kernel copy could not run; the log says why)",
                value=int(success["copy"] == "pages"))
        yield GaugeMetricFamily("mission_control_backup_auto_enabled",
                                "1 when general.auto_backup is on", value=int(status["auto_backup"]))
        yield GaugeMetricFamily(
            "mission_control_backup_schedule_period_seconds",
            "The longest time between two runs of general.auto_backup_schedule (how long no new "
            "backup is normal)", value=status["schedule_period_seconds"])

        runs = CounterMetricFamily("mission_control_backup_runs",
                                   "Backups by result, from the audit trail", labels=["result"])
        counts = action_counts(self.mc.db, "backup_%")
        for result, action in (("success", "backup_create"), ("failed", "backup_failed"),
                               ("refused", "backup_refused")):
            runs.add_metric([result], counts.get(action, 0))
        yield runs

        offsite = CounterMetricFamily("mission_control_offsite_events",
                                      "Off-site copy events reported by plugins to the audit trail",
                                      labels=["action"])
        for action, count in sorted(action_counts(self.mc.db, "offsite%").items()):
            offsite.add_metric([action], count)
        yield offsite

        last_copy = GaugeMetricFamily(
            "mission_control_offsite_last_success_timestamp_seconds",
            "Unix time of the last verified off-site copy to the target (0: never)",
            labels=["target"])
        copy_failures = CounterMetricFamily("mission_control_offsite_failures",
                                            "Failed off-site copies to the target",
                                            labels=["target"])
        configured = GaugeMetricFamily(
            "mission_control_offsite_configured",
            "1 when a plugin copies to the target now, 0 for a target with past results only",
            labels=["target"])
        healthy = GaugeMetricFamily("mission_control_offsite_ok",
                                    "1 when the target is configured and has no problem "
                                    "(its last copy worked and is recent enough)",
                                    labels=["target"])
        drill_ok = GaugeMetricFamily("mission_control_offsite_drill_ok",
                                     "1 when the target's last restore drill (offsite_verify) "
                                     "passed, 0 when it failed", labels=["target"])
        drill_at = GaugeMetricFamily("mission_control_offsite_drill_timestamp_seconds",
                                     "Unix time of the target's last restore drill",
                                     labels=["target"])
        uploaded_last = GaugeMetricFamily(
            "mission_control_offsite_last_uploaded_bytes",
            "Bytes the target's last copy uploaded (an incremental copy: only the pages that "
            "changed, and its manifest)", labels=["target"])
        chain = GaugeMetricFamily(
            "mission_control_offsite_chain_length",
            "Incremental copies from the target's last full copy to its last copy (0: the last "
            "copy is a full copy)", labels=["target"])
        uploaded = CounterMetricFamily(
            "mission_control_offsite_uploaded_bytes",
            "Bytes uploaded to the target by every copy this service recorded",
            labels=["target"])
        for name, total in self.mc.offsite.uploaded_totals().items():
            uploaded.add_metric([name], total)
        for target in status["offsite"]:
            if target.get("uploaded_bytes") is not None:  # a target whose last copy failed: none
                uploaded_last.add_metric([target["target"]], target["uploaded_bytes"])
                chain.add_metric([target["target"]], target["chain_length"] or 0)
            last_copy.add_metric([target["target"]], target["last_success_at"] or 0)
            copy_failures.add_metric([target["target"]], target["failures"])
            configured.add_metric([target["target"]], int(target["configured"]))
            healthy.add_metric([target["target"]],
                               int(target["configured"] and not target["problem"]))
            if target.get("drill"):  # a target never drilled has no drill series
                drill_ok.add_metric([target["target"]], int(target["drill"]["ok"]))
                drill_at.add_metric([target["target"]], target["drill"]["finished_at"])
        yield last_copy
        yield uploaded_last
        yield chain
        yield uploaded
        yield copy_failures
        yield configured
        yield healthy
        yield drill_ok
        yield drill_at

        files = GaugeMetricFamily("mission_control_backup_files",
                                  "Backup files in the backups folder", labels=["kind"])
        size = GaugeMetricFamily("mission_control_backup_files_bytes",
                                 "Total size of the backup files", labels=["kind"])
        for kind, found in sorted(status["backups"]["by_kind"].items()):
            files.add_metric([kind], found["count"])
            size.add_metric([kind], found["total_size"])
        yield files
        yield size

        pitr = status["pitr"]
        if pitr["enabled"]:
            yield GaugeMetricFamily("mission_control_pitr_up",
                                    "1 when Litestream runs for continuous protection",
                                    value=int(pitr["running"]))
            yield GaugeMetricFamily("mission_control_pitr_max_lag_seconds",
                                    "pitr.max_lag_seconds: the lag past which health fails",
                                    value=self.mc.settings.get("pitr.max_lag_seconds"))
            if pitr["lag_seconds"] is not None:
                yield GaugeMetricFamily("mission_control_pitr_lag_seconds",
                                        "How far the point-in-time replica is behind",
                                        value=pitr["lag_seconds"])

        channel_ok = GaugeMetricFamily(
            "mission_control_alert_channel_ok",
            "1 when the configured alert channel works (its newest delivery got through, or "
            "none was tried yet), 0 when it failed", labels=["channel"])
        alert_failures = CounterMetricFamily(
            "mission_control_alert_failures",
            "Alerts (pings, mail, tests) that never got through, by channel, from the audit trail",
            labels=["channel"])
        failures_by_channel = {name: seen["failures"]
                               for name, seen in alert_channels.deliveries(self.mc.db).items()}
        for channel in status["alerts"]:
            channel_ok.add_metric([channel["channel"]], int(channel["ok"] is not False))
            failures_by_channel.setdefault(channel["channel"], 0)
        for name, count in sorted(failures_by_channel.items()):
            alert_failures.add_metric([name], count)
        yield channel_ok
        yield alert_failures

        yield from plugin_gauges(self.mc)

        verdict = GaugeMetricFamily("mission_control_backup_verdict",
                                    "1 for the current health verdict (pass, warn or fail)",
                                    labels=["verdict"])
        for name in VERDICTS:
            verdict.add_metric([name], int(status["verdict"] == name))
        yield verdict


#: What a plugin's gauge may be called (hook `metrics`).
PLUGIN_NAME = re.compile(r"mission_control_[a-z0-9_]+")
#: Families the host exports (a plugin may not add samples to them).
HOST_PREFIXES = ("mission_control_backup_", "mission_control_offsite_", "mission_control_pitr_",
                 "mission_control_alert_", "mission_control_info")


def plugin_gauges(mc):
    """The gauges plugins add (hook `metrics`), one family per name; an item that breaks the
    hook's rules is logged and left out, the rest still reported."""
    from prometheus_client.core import GaugeMetricFamily

    families = {}
    for answer in mc.hooks.metrics():
        for item in answer or ():
            try:
                name, doc, value = item["name"], str(item["help"]), float(item["value"])
                labels = {str(k): str(v) for k, v in (item.get("labels") or {}).items()}
                if not isinstance(name, str) or not PLUGIN_NAME.fullmatch(name) or \
                        name.startswith(HOST_PREFIXES):
                    raise ValueError(f"a gauge may not be called {name!r}")
                names = sorted(labels)
                if name not in families:
                    families[name] = (GaugeMetricFamily(name, doc, labels=names), names)
                family, known = families[name]
                if names != known:
                    raise ValueError(f"{name} is reported with different label names")
                family.add_metric([labels[k] for k in names], value)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                log.warning("a plugin's gauge is left out of /metrics: %s", exc)
    return [family for family, _ in families.values()]


def render(mc):
    """`(body_bytes, content_type)` of the metrics in Prometheus' text format."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(BackupCollector(mc))
    return generate_latest(registry), CONTENT_TYPE_LATEST
