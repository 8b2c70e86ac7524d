"""The CLI's help (descriptions, examples, every argument explained, global options and the exit
codes everywhere), how its log level is chosen, and its messages that say what to do (in-process:
the fast lane)."""
import io
import logging
import sys
from types import SimpleNamespace

import pytest

from mission_control.cli import GROUPS, log_level, main
from mission_control.cli.admin import TASKS
from mission_control.cli.output import EXIT_CODES, OFFSITE_FAILED
from mission_control.cli.parser import build, _sub_parsers
from mission_control.cli.reported import said_by_summary
from mission_control.logs import Handler, TextFormatter

from tests.support.backup_files import add_tasks
from tests.support.offsite import new_key


def parser_of(*words):
    """The parser of one command, e.g. `parser_of("offsite", "fetch")`."""
    [found] = [p for p in all_parsers() if p.prog.split()[1:] == list(words)]
    return found


def all_parsers():
    root = build(GROUPS)
    return [root, *_sub_parsers(root)]


def cli(mc, *argv, stdin=""):
    out, err = io.StringIO(), io.StringIO()
    code = main([*argv, "--data-dir", str(mc.config.data_dir)], out=out, err=err,
                stdin=io.StringIO(stdin))
    return code, out.getvalue(), err.getvalue()


def test_every_command_has_a_description_examples_and_the_exit_codes():
    parsers = all_parsers()
    assert len(parsers) > 25
    for parser in parsers:
        text = parser.format_help()
        assert parser.description, parser.prog
        assert "\nexamples:\n  mission-control " in text, parser.prog
        assert text.rstrip().endswith(EXIT_CODES.splitlines()[-1]), parser.prog
        for code in range(OFFSITE_FAILED + 1):
            assert f"\n  {code}  " in text, (parser.prog, code)


def test_every_argument_is_explained_and_the_global_options_are_shown():
    for parser in all_parsers():
        for action in parser._actions:
            assert action.help, (parser.prog, action.dest)
        text = parser.format_help()
        for option in ("--data-dir", "--config", "--json", "--quiet", "--verbose", "--debug"):
            assert option in text, (parser.prog, option)


def test_scheduler_run_lists_every_task(mc, capsys):
    assert set(TASKS) == set(mc.scheduler.tasks)
    assert main(["scheduler", "run", "--help"]) == 0
    text = capsys.readouterr().out
    for task in mc.scheduler.tasks:
        assert task in text


def test_the_exit_codes_are_in_the_top_help(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "exit codes:" in text and "\n  5  the backup was made, but a copy to an off-site" in text


def test_a_global_option_after_the_command_is_read_not_overwritten(mc):
    add_tasks(mc, "x")
    mc.backups.create("test")
    code, out, _ = cli(mc, "backup", "list", "-v", "--json")
    assert code == 0 and out.startswith("{")  # --json after the command still counts


@pytest.mark.parametrize("command, verbose, source, configured, expected", [
    ("backup", 0, "default", "INFO", "WARNING"),       # quiet by default
    ("backup", 1, "default", "INFO", "INFO"),          # -v
    ("backup", 2, "default", "INFO", "DEBUG"),         # -vv
    ("backup", 0, "env", "INFO", "INFO"),              # MC_LOG_LEVEL=INFO
    ("user", 0, "file", "ERROR", "ERROR"),             # log-level in --config
    ("serve", 0, "default", "INFO", "INFO"),           # the service logs as configured
])
def test_the_log_level(command, verbose, source, configured, expected):
    args = SimpleNamespace(quiet=False, verbose=verbose, command=command)
    assert log_level(args, {"log-level": source}, SimpleNamespace(log_level=configured)) == expected
    quiet = SimpleNamespace(quiet=True, verbose=verbose, command=command)
    assert log_level(quiet, {"log-level": source}, SimpleNamespace(log_level="DEBUG")) == "WARNING"


def test_a_record_goes_above_a_live_bar_through_its_console():
    from rich.console import Console
    from rich.progress import Progress
    stream, screen = io.StringIO(), io.StringIO()
    handler = Handler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "disk [red]low", (), None)
    console = Console(file=screen, force_terminal=True, width=80)
    with Progress(console=console, transient=True), handler.through(console):
        handler.emit(record)
    handler.emit(record)
    assert "WARNING disk [red]low" in screen.getvalue()  # printed by the console, as written
    assert stream.getvalue() == "WARNING disk [red]low\n"  # after the bar: the stream again


def test_a_traceback_is_logged_only_when_asked():
    try:
        raise RuntimeError("the robot arm is stuck")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "plugin failed", (),
                                   sys.exc_info())
    for tracebacks in (False, True):
        stream = io.StringIO()
        handler = Handler(stream, tracebacks)
        handler.setFormatter(TextFormatter("%(message)s"))
        handler.emit(record)
        assert stream.getvalue().startswith("plugin failed\n")
        assert ("Traceback" in stream.getvalue()) is tracebacks


def test_restore_says_what_is_missing(mc):
    code, _, err = cli(mc, "backup", "restore")
    assert code == 2 and "a backup name" in err and "--at TIMESTAMP" in err
    code, _, err = cli(mc, "backup", "restore", "x.db", "--at", "2026-01-01T00:00:00Z")
    assert code == 2 and "not both" in err


def test_a_restore_with_no_answer_names_yes(mc):
    add_tasks(mc, "old")
    name = mc.backups.create("test").name
    code, out, err = cli(mc, "backup", "restore", name)  # stdin at its end: no terminal
    assert code == 2 and "add --yes" in err and "not restored" not in out


def test_restore_speaks_of_users_only_when_they_changed(mc):
    mc.users.add("alice", "correct-horse-battery", role="admin")
    name = mc.backups.create("test").name
    code, out, _ = cli(mc, "backup", "restore", name, "--yes")
    assert code == 0 and "users changed" not in out and "Log in again" not in out
    mc.users.add("bob", "correct-horse-battery", role="admin")
    code, out, _ = cli(mc, "backup", "restore", name, "--yes")
    assert code == 0 and "users changed: admins now alice" in out and "Log in again" in out
    assert out.splitlines()[-1].startswith(f"restored {name} ")  # the summary comes last


def test_an_unknown_backup_is_named_with_those_there_are(mc):
    code, _, err = cli(mc, "backup", "delete", "nope.db")
    assert code == 3 and "no backup named 'nope.db'" in err and "backups folder is empty" in err
    made = [mc.backups.create("test").name for _ in range(2)]
    for args in (("delete", "nope.db"), ("verify", "nope.db"), ("restore", "nope.db", "--yes"),
                 ("download", "nope.db")):
        code, _, err = cli(mc, "backup", *args)
        assert code == 3 and "no backup named 'nope.db'" in err, args
        assert all(f"\n  {name}\n" in err for name in made), err


def test_a_download_into_a_missing_folder_names_it(mc, tmp_path):
    name = mc.backups.create("test").name
    for output in (tmp_path / "missing" / "x.db", f"{tmp_path / 'missing'}/"):
        code, _, err = cli(mc, "backup", "download", name, "-o", str(output))
        assert code == 2 and f"no such folder: {tmp_path / 'missing'}" in err, err
    assert not (tmp_path / "missing").exists()


def test_an_unknown_offsite_target_is_named_with_the_configured_ones(mc, tmp_path):
    code, _, err = cli(mc, "offsite", "list", "nope")
    assert code == 3 and "no off-site target named 'nope'" in err and "none is configured" in err
    (tmp_path / "nas").mkdir()
    mc.settings.update({"offsite.dir.path": str(tmp_path / "nas")}, "test")
    code, _, err = cli(mc, "offsite", "fetch", "nope", "mc-backup-2026-01-01_00-00-00.db")
    assert code == 3 and "no off-site target named 'nope'; configured: dir" in err


def test_an_encrypted_fetch_without_identity_names_the_option(mc, tmp_path):
    identity, recipient = new_key()
    (tmp_path / "nas").mkdir()
    mc.settings.update({"offsite.dir.path": str(tmp_path / "nas"),
                        "offsite.dir.age_recipients": recipient}, "test")
    add_tasks(mc, "x")
    mc.backups.create("test")
    code, out, err = cli(mc, "offsite", "list", "dir")
    [copy] = [line.split("\t")[0] for line in out.splitlines() if "\t" in line]
    code, _, err = cli(mc, "offsite", "fetch", "dir", copy)
    assert code == 2 and "--identity-file" in err and copy in err
    code, _, err = cli(mc, "offsite", "fetch", "dir", "mc-backup-2020-01-01_00-00-00.db")
    assert code == 3 and "holds no copy named 'mc-backup-2020-01-01_00-00-00.db'" in err
    assert f"\n  {copy}\n" in err
    (tmp_path / "id.txt").write_text(identity + "\n")
    code, out, err = cli(mc, "offsite", "fetch", "dir", copy, "--identity-file",
                         str(tmp_path / "id.txt"))
    assert code == 0 and out.startswith("fetched offsite-"), err
    [fetched] = [p.name for p in mc.backups.dir.glob("offsite-*")]
    help_text = " ".join(parser_of("offsite", "fetch").format_help().split())
    assert "back into the backups folder as offsite-<backup name> (e.g. " \
           "offsite-mc-backup-….db)" in help_text and fetched.startswith("offsite-mc-backup-")


def test_a_cron_nickname_gets_its_five_fields(mc):
    code, _, err = cli(mc, "settings", "set", "general.auto_backup_schedule=@daily")
    assert code == 2 and "for @daily write '0 0 * * *'" in err


def test_a_refused_scheduled_backup_exits_4_as_backup_create_does(mc):
    assert cli(mc, "settings", "set", "diskguard.min_free_mb=1000000000")[0] == 0
    created = cli(mc, "backup", "create")
    ran = cli(mc, "scheduler", "run", "auto_backup")
    assert created[0] == ran[0] == 4, (created, ran)
    assert "free disk space" in ran[2] and mc.backups.list() == []
    assert mc.scheduler.status()[0].last_ok is False  # the run is recorded all the same


def test_a_failed_copy_is_info_while_the_summary_says_it():
    stream = io.StringIO()
    handler = Handler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("tests.cli.reported")
    logger.addHandler(handler)
    logger.propagate, logger.level = False, logging.DEBUG

    def said(**kwargs):
        stream.seek(0)
        stream.truncate()
        with said_by_summary(handler, **kwargs):
            logger.error("copy failed", extra={"action": "offsite_failed"})
            logger.warning("copy failed (event)", extra={"action": "offsite_failed"})
            logger.error("backup failed", extra={"action": "backup_failed"})
        return stream.getvalue().splitlines()
    try:
        assert said(level=logging.WARNING) == ["ERROR backup failed"]
        assert said(level=logging.INFO) == ["INFO copy failed", "INFO copy failed (event)",
                                            "ERROR backup failed"]
        assert said(level=logging.WARNING, summarised=False) == [  # --quiet: no summary
            "ERROR copy failed", "WARNING copy failed (event)", "ERROR backup failed"]
        assert handler.filters == []
    finally:
        logger.removeHandler(handler)
