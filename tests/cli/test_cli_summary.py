"""The installed `mission-control` is quiet by default and ends with one summary line naming each
off-site target's result; a failed off-site copy exits 5, as its --help says; on a terminal its log
lines never cut through the progress bars."""
import os
import re
import subprocess
import textwrap
import time

import pytest

from tests.support.cli_run import COMMAND, PASSWORD, run_cli
from tests.support.offsite import new_key

#: One real `mission-control` process per step: the slow lane.
pytestmark = pytest.mark.slow

SIZE = r"[\d.]+ (?:bytes?|KiB|MiB)"
#: A drop-in plugin with two more targets: one whose copies always fail, one whose plugin crashes.
PLUGIN = textwrap.dedent('''\
    """Test targets: `tape` always fails, `crash`'s plugin raises."""
    from mission_control import hookimpl


    @hookimpl
    def offsite_targets(mc):
        return ["tape", "crash"]


    @hookimpl
    def post_backup(mc, backup, actor):
        mc.offsite.failed("tape", backup, actor, "the tape is full", location="tape://0")
        raise RuntimeError("the robot arm is stuck")
''')


@pytest.fixture
def data(tmp_path):
    """A data folder with an admin and an off-site folder getting zstd+age copies."""
    folder = tmp_path / "data"
    assert run_cli("user", "add", "ann", "--role", "admin", "--password-stdin", "--data-dir",
                   folder, stdin=PASSWORD + "\n").code == 0
    (tmp_path / "nas").mkdir()
    _, recipient = new_key()
    assert cli(folder, "settings", "set", f"offsite.dir.path={tmp_path / 'nas'}",
               "offsite.dir.compress=zstd", f"offsite.dir.age_recipients={recipient}").code == 0
    assert cli(folder, "offsite", "key").code == 0  # the signing key's one-time notice: said
    return folder


def cli(data, *args, **kwargs):
    return run_cli(*args, "--data-dir", data, **kwargs)


def info_lines(text):
    return [line for line in text.splitlines() if " INFO " in line]


def test_quiet_by_default_with_one_summary_line(data):
    ran = cli(data, "backup", "create")
    assert ran.code == 0, ran.err
    assert ran.err == ""  # no INFO line, nor anything else when all went well
    assert re.fullmatch(rf"created mc-backup-\S+\.db \({SIZE}, [\d.]+ s\); pruned 0; "
                        rf"off-site dir: copied {SIZE} \(zstd\+age\)\n", ran.out), ran.out
    for loud in (cli(data, "backup", "create", "-v"),
                 cli(data, "backup", "create", env={"MC_LOG_LEVEL": "INFO"})):
        assert loud.code == 0 and any("backup_create" in line for line in info_lines(loud.err))
        assert "off-site dir: copied" in loud.out.splitlines()[-1]
    for quiet_command in (("backup", "list"), ("backup", "status"), ("offsite", "status"),
                          ("backup", "prune", "--dry-run"), ("scheduler", "list")):
        ran = cli(data, *quiet_command)
        assert ran.code == 0 and info_lines(ran.err) == [], (quiet_command, ran.err)


def test_commands_that_change_things_log_nothing_at_the_default_level(data, tmp_path):
    """Each of these audits what it did (an INFO record): on stderr, nothing unless -v."""
    assert cli(data, "backup", "create").code == 0
    name = cli(data, "backup", "list", "--json").json["backups"][0]["name"]
    commands = [("backup", "verify", name), ("backup", "download", name, "-o", tmp_path / "a.db"),
                ("backup", "upload", tmp_path / "a.db"), ("backup", "restore", name, "--yes"),
                ("backup", "prune"), ("scheduler", "run", "auto_backup"),
                ("settings", "set", "general.site_name=Ops"),
                ("user", "add", "bob", "--role", "viewer", "--password-stdin"),
                ("backup", "delete", name)]
    for command in commands:
        ran = cli(data, *command, stdin=PASSWORD + "\n")
        assert ran.code == 0, (command, ran.err)
        assert ran.err == "", (command, ran.err)
    left = cli(data, "backup", "list", "--json").json["backups"][0]["name"]
    loud = cli(data, "backup", "verify", left, "-v")  # the same command, asked to say more
    assert any("backup_verify" in line for line in info_lines(loud.err)), loud.err


def test_an_incremental_copy_says_it_uploaded_only_the_changed_pages(data):
    assert cli(data, "settings", "set", "offsite.dir.incremental=true").code == 0
    assert cli(data, "backup", "create").code == 0  # the full copy a chain starts with
    time.sleep(1.05)  # backup names have whole seconds
    ran = cli(data, "backup", "create")
    assert ran.code == 0, ran.err
    assert re.search(rf"off-site dir: copied {SIZE} of changed pages \(zstd\+age; 1 since the "
                     r"full copy\)\n$", ran.out), ran.out
    status = cli(data, "offsite", "status")
    assert re.search(rf"  last copy: only the pages that changed, {SIZE} uploaded \(1 since the "
                     r"full copy\)", status.out), status.out


def test_a_failed_offsite_copy_is_named_and_exits_5(data, tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "tapes.py").write_text(PLUGIN)
    env = {"MC_PLUGINS_DIR": str(plugins)}
    ran = cli(data, "backup", "create", env=env)
    assert ran.code == 5, (ran.out, ran.err)
    [line] = ran.out.splitlines()
    assert re.search(rf"; off-site crash: FAILED: \S*tapes\S*: .*the robot arm is stuck; "
                     rf"off-site dir: copied {SIZE} \(zstd\+age\); "
                     r"off-site tape: FAILED: the tape is full$", line), line
    # The failed copy is said once, by the summary; its records are INFO (-v shows them).
    assert info_lines(ran.err) == [] and "the tape is full" not in ran.err, ran.err
    assert "the robot arm is stuck" in ran.err  # one line, no traceback (run_cli checks)
    loud = cli(data, "backup", "create", "-v", env=env)
    assert [line for line in loud.err.splitlines() if "the tape is full" in line] == \
        [line for line in info_lines(loud.err) if "the tape is full" in line] != []

    as_json = cli(data, "backup", "create", "--json", env=env)
    assert as_json.code == 5
    answer = as_json.json
    assert answer["success"] is True and answer["backup"]["name"].startswith("mc-backup-")
    assert {t["target"]: t["ok"] for t in answer["offsite"]} == \
        {"crash": False, "dir": True, "tape": False}
    quiet = cli(data, "backup", "create", "--quiet", env=env)
    assert (quiet.code, quiet.out) == (5, "") and "the tape is full" in quiet.err  # no summary

    scheduled = cli(data, "scheduler", "run", "auto_backup", env=env)
    assert scheduled.code == 5 and "off-site tape: FAILED: the tape is full" in scheduled.out
    assert cli(data, "scheduler", "run", "auto_backup").code == 0  # without the plugin: all ok


def test_the_exit_codes_are_in_help():
    for args in ((), ("backup", "create"), ("scheduler", "run")):
        ran = run_cli(*args, "--help")
        assert ran.code == 0 and "exit codes:" in ran.out, args
        assert re.search(r"\n  5  the backup was made, but a copy to an off-site target failed",
                         ran.out), ran.out
        assert "\nexamples:\n  mission-control " in ran.out


def read_terminal(argv):
    """Run `argv` with stdout and stderr on one pseudo-terminal; `(exit code, what it showed)`."""
    import pty
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, stdout=follower, stderr=follower, stdin=subprocess.DEVNULL,
                            env={**os.environ, "COLUMNS": "120"})
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the command is done
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    return proc.wait(timeout=60), seen.decode(errors="replace")


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_log_lines_never_cut_through_the_bars(data):
    code, shown = read_terminal([COMMAND, "backup", "create", "-v", "--data-dir", str(data)])
    assert code == 0
    assert "━" in shown and "KiB" in shown and "off-site dir" in shown  # the bars were drawn
    assert not re.search(r"\d kB\b", shown)  # binary units only
    logged = 0
    for line in shown.split("\n"):
        if " INFO mission_control" in line:
            # What the terminal shows of that line: after its last carriage return, no escapes.
            visible = ANSI.sub("", line.split("\r")[-1] if line.split("\r")[-1] else
                               line.split("\r")[-2])
            assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO ", visible), repr(line)
            logged += 1
    assert logged >= 2  # backup_create and offsite_copy
    assert ANSI.sub("", shown).rstrip().splitlines()[-1].startswith("created mc-backup-")
