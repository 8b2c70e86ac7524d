"""Running the installed `mission-control` command as a subprocess, the way a script would."""
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

COMMAND = str(Path(sys.executable).with_name("mission-control"))
PASSWORD = "correct-horse-battery"


@dataclass
class Ran:
    code: int
    out: str
    err: str

    @property
    def json(self):
        return json.loads(self.out)


def run_cli(*args, env=None, stdin="", cwd=None, timeout=120, prefix=()):
    """Run the command with `args` (after `prefix`, a wrapper's argv that execs the rest);
    asserts no traceback on stderr (no --debug here)."""
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("MC_", "MISSION_CONTROL_", "AUTH_", "API_KEY"))}
    environ.update(env or {})
    result = subprocess.run([*prefix, COMMAND, *map(str, args)], input=stdin,
                            capture_output=True, text=True, env=environ, cwd=cwd,
                            timeout=timeout)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return Ran(result.returncode, result.stdout, result.stderr)
