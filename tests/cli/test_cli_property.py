"""Random command lines: whatever a script types, the exit code is one of the documented six and
there is never a traceback; under --json a failure is the API's error shape on stdout."""
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.cli_run import PASSWORD, run_cli

#: In the slow lane (hypothesis drives the installed command: ~13 s on the 2-core machine).
pytestmark = pytest.mark.slow

#: Words the command knows, so random lines reach deep into the grammar, and some it does not.
#: `serve` is left out (it would run until stopped), and so are `--debug` (it prints tracebacks
#: by design) and path options with random values (they would make databases anywhere).
WORDS = ["backup", "create", "list", "status", "delete", "prune", "--dry-run", "verify", "upload",
         "download", "restore", "--yes", "--at", "-o", "--force", "user", "add", "remove",
         "set-password", "--password-stdin", "--role", "admin", "settings", "get", "set",
         "scheduler", "run", "auto_backup", "plugins", "offsite", "fetch", "dir", "config",
         "show", "--json", "--quiet", "-q", "-v", "--version", "--config", "--help",
         "general.backup_retention_count=3", "general.auto_backup=maybe", "=", "x.db",
         "mc-backup-2026-01-01_00-00-00.db", "../etc/passwd", "2026-13-45T99:00:00Z", ""]
TOKENS = st.one_of(st.sampled_from(WORDS), st.text(max_size=12).filter(
    lambda t: "\x00" not in t and not t.startswith(("--data", "--db", "--debug"))))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prop") / "data"
    assert run_cli("user", "add", "ann", "--role", "admin", "--password-stdin", "--data-dir",
                   folder, stdin=PASSWORD + "\n").code == 0
    return folder


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(argv=st.lists(TOKENS, max_size=6))
def test_any_command_line_exits_0_to_5_without_a_traceback(data, tmp_path_factory, argv):
    if "serve" in argv:
        return
    ran = run_cli(*argv, env={"MISSION_CONTROL_DATA_DIR": str(data)},
                  cwd=tmp_path_factory.getbasetemp(), timeout=60)  # run_cli: no Traceback
    assert ran.code in (0, 1, 2, 3, 4, 5), (argv, ran.code, ran.err[-2000:])
    head = argv[:argv.index("--")] if "--" in argv else argv
    if ran.code not in (0, 5) and "--json" in head and not {"--help", "-h"} & set(head):
        answer = json.loads(ran.out)  # nothing but the JSON document on stdout
        assert set(answer) == {"error", "details"}, (argv, ran.out)
