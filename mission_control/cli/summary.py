"""What one backup did, told by its audit events as they happen: the file made, the files pruned,
each off-site target's result; drawn as bars while it runs and said in one restic-style line."""
from dataclasses import dataclass

from .. import hookimpl
from ..units import human_size


@dataclass(frozen=True)
class TargetResult:
    """One off-site target's result for this backup."""

    target: str
    ok: bool
    message: str
    stored_size: int | None = None
    packing: str = ""

    def text(self):
        """`off-site dir: copied 6.1 KiB (zstd+age)` or `off-site s3: FAILED: <reason>`."""
        if not self.ok:
            return f"off-site {self.target}: FAILED: {self.message}"
        size = "" if self.stored_size is None else f" {human_size(self.stored_size)}"
        return f"off-site {self.target}: copied{size} ({self.packing or 'plain'})"

    def to_json(self):
        return {"target": self.target, "ok": self.ok, "message": self.message,
                "stored_size": self.stored_size, "packing": self.packing or "plain"}


def _packing(detail):
    return "+".join(word for word, on in (("zstd", detail.get("compressed")),
                                          ("age", detail.get("encrypted"))) if on)


class BackupWatch:
    """A plugin the CLI registers for one command: its `audit` hook sees the backup's events.

    :param bars: the command's `Bars`: the backup's bar is filled when the file is made, then
        each configured off-site target gets its own labelled bar until its result comes.
    :param total: the bytes the backup is expected to write (the database and its WAL).
    :param label: the first bar's label.
    """

    def __init__(self, bars, total=None, label="backup"):
        self._bars = bars
        self.backup_bar = bars.add(label, total)
        self._target_bars = {}
        self.duration = None
        self.pruned = []
        self.results = {}
        self.plugin_errors = []

    @hookimpl
    def audit(self, mc, event):
        action, detail = event["action"], event.get("detail") or {}
        if action == "backup_create":
            self.duration = detail.get("duration_seconds")
            self.backup_bar.done()
            for target in mc.offsite.configured():
                self._target_bars[target] = self._bars.add(f"off-site {target}")
        elif action == "backup_prune":
            self.pruned.append(event["target_id"])
        elif action in ("offsite_copy", "offsite_failed"):
            ok = action == "offsite_copy"
            target = detail.get("target") or event["target_id"]
            result = TargetResult(target, ok, "copied and verified" if ok
                                  else str(detail.get("reason") or "failed"),
                                  # An incremental copy's own objects: manifest and pack.
                                  detail.get("uploaded_bytes", detail.get("stored_size")),
                                  _packing(detail))
            self.results[target] = result
            bar = self._target_bars.get(target)
            if bar is not None:
                bar.done(f"off-site {target}: {'copied' if ok else 'FAILED'}")
        elif action == "plugin_error" and detail.get("hook") == "post_backup":
            self.plugin_errors.append(f"{detail.get('plugin')}: {detail.get('error')}")

    def outcome(self, configured):
        """Each target's `TargetResult`, in name order, for the `configured` target names: one
        that reported nothing this time (its plugin crashed) is a failure too."""
        results = dict(self.results)
        reason = "; ".join(self.plugin_errors) or "its plugin reported no result"
        for target in configured:
            results.setdefault(target, TargetResult(target, False, reason))
        return [results[name] for name in sorted(results)]


def summary(made, watch, results):
    """The restic-style line: `created NAME (301 MiB, 0.26 s); pruned 79; off-site dir: copied
    6.1 KiB (zstd+age)`. `results` are `BackupWatch.outcome`'s."""
    took = "" if watch.duration is None else f", {watch.duration:.2f} s"
    parts = [f"created {made.name} ({human_size(made.size)}{took})", f"pruned {len(watch.pruned)}"]
    parts += [result.text() for result in results] or ["off-site: none configured"]
    return "; ".join(parts)
