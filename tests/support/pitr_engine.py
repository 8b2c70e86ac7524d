"""A stand-in point-in-time engine for tests: a fixed window, and a given file as every moment's copy."""
import shutil

from mission_control import hookimpl


class Engine:
    """A stand-in engine: its window is fixed, and a moment's copy is a file it was given."""

    def __init__(self, source, earliest=1_000_000, latest=2_000_000, held=None, skipped=None):
        """:param held: the moment (unix ms) it says its copies hold, as a sealed stream does;
        None: it says only that it wrote the copy.
        :param skipped: `[{"key", "reason"}]`: the files it says it went around (then it answers
        `{"restored_to", "skipped"}`, as the sealed stream's engine does)."""
        self.source, self.earliest, self.latest, self.held = source, earliest, latest, held
        self.skipped = skipped
        self.asked = []

    @hookimpl(tryfirst=True)
    def pitr_status(self):
        return {"enabled": True, "installed": True, "running": True, "pid": 1, "replica": "x",
                "earliest": self.earliest, "latest": self.latest, "lag_seconds": 0,
                "last_error": None}

    @hookimpl(tryfirst=True)
    def pitr_restore_to(self, at_ms, dest):
        self.asked.append(at_ms)
        shutil.copyfile(self.source, dest)
        if self.skipped is not None:
            return {"restored_to": self.held, "skipped": self.skipped}
        return self.held or True
