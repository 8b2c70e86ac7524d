"""A stand-in point-in-time engine for tests: a fixed window, and a given file as every moment's copy."""
import shutil

from mission_control import hookimpl


class Engine:
    """A stand-in engine: its window is fixed, and a moment's copy is a file it was given."""

    def __init__(self, source, earliest=1_000_000, latest=2_000_000):
        self.source, self.earliest, self.latest = source, earliest, latest
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
        return True
