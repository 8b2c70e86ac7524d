"""Built-in audit sink: appends every audit event as one JSON line to a file, for log shippers and SIEMs.

Off until ``audit.jsonl.path`` names an absolute ``*.jsonl`` file. Each event is one ``write`` of
one whole line to a descriptor opened with ``O_APPEND``, under an exclusive ``flock``, then
fsynced: lines from many threads and processes never interleave, and a line the sink reported
written survives a crash.
"""
import fcntl
import json
import os

from mission_control import PATH, SettingDef, hookimpl


@hookimpl
def register_settings():
    return [SettingDef("audit.jsonl.path", "text", "",
                       "Absolute path of a .jsonl file that receives every audit event as one "
                       "JSON line (empty turns it off)", "audit", kind=PATH, clean=_jsonl)]


def _jsonl(path):
    if path and not path.endswith(".jsonl"):
        raise ValueError("must end in .jsonl")
    return path


def check_path(path):
    """The reason `path` is not an acceptable audit file, or None.

    Only absolute ``.jsonl`` paths are accepted, so the setting cannot be used to append to an
    arbitrary file the service can write.
    """
    if not os.path.isabs(path):
        return "audit.jsonl.path must be an absolute path"
    if not path.endswith(".jsonl"):
        return "audit.jsonl.path must end in .jsonl"
    return None


def append_line(path, record):
    """Append `record` as one JSON line to `path` (created 0600), durably and atomically."""
    data = (json.dumps(record, sort_keys=True, separators=(",", ":"), default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        # O_APPEND alone keeps whole writes from overlapping on a local disk; the lock also
        # covers network filesystems and the rare short write finished by the loop below.
        fcntl.flock(fd, fcntl.LOCK_EX)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)  # closing drops the lock


@hookimpl
def audit(mc, event):
    path = mc.settings.get("audit.jsonl.path")
    if not path:
        return
    problem = check_path(path)
    if problem:
        raise ValueError(problem)
    append_line(path, event)
