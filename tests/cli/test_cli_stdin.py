"""Questions on standard input: a closed stdin, an open one nobody writes to (ssh without -t, CI)
and a piped answer, for `backup restore`'s confirmation; a refused `user add` makes nothing."""
import io
import os
import subprocess
import sys
import threading
import time

import pytest

from mission_control.cli import main
from mission_control.cli.answer import GRACE, answer_line

from tests.support.backup_files import add_tasks, titles
from tests.support.cli_run import COMMAND, PASSWORD, run_cli


def restore(mc, name, stdin):
    """Run `backup restore NAME` in a thread (so a hang fails the test instead of stopping it)."""
    out, err, result = io.StringIO(), io.StringIO(), []
    thread = threading.Thread(target=lambda: result.append(main(
        ["backup", "restore", name, "--data-dir", str(mc.config.data_dir)],
        out=out, err=err, stdin=stdin)), daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(timeout=20)
    return (result[0] if result else None), out.getvalue(), err.getvalue(), \
        time.monotonic() - started


@pytest.fixture
def backup(mc):
    """A backup holding the task "old", then the task "new" in the live database."""
    add_tasks(mc, "old")
    name = mc.backups.create("test").name
    add_tasks(mc, "new")
    return name


def test_a_closed_stdin_names_yes(mc, backup, monkeypatch):
    monkeypatch.setattr(sys, "stdin", None)  # what Python gives a process started with `<&-`
    code, out, err, _ = restore(mc, backup, None)
    assert code == 2 and "add --yes" in err and "unexpected" not in err
    assert titles(mc) == ["old", "new"]


def test_an_open_silent_stdin_is_not_waited_for(mc, backup):
    read_end, write_end = os.pipe()  # the writer stays open and says nothing
    stdin = os.fdopen(read_end)
    try:
        code, out, err, took = restore(mc, backup, stdin)
    finally:
        os.close(write_end)  # lets a hung reader go
    stdin.close()
    assert code == 2 and "add --yes" in err, (code, err)
    assert took < GRACE + 10
    assert titles(mc) == ["old", "new"] and len(mc.backups.scan()) == 1  # no safety backup


@pytest.mark.parametrize("answer, code, left", [("y\n", 0, ["old"]), ("n\n", 1, ["old", "new"])])
def test_a_piped_answer_is_read(mc, backup, answer, code, left):
    read_end, write_end = os.pipe()
    os.write(write_end, answer.encode())  # the writer stays open: only the line is there
    stdin = os.fdopen(read_end)
    try:
        got = restore(mc, backup, stdin)
    finally:
        os.close(write_end)
    stdin.close()
    assert got[0] == code, got
    assert titles(mc) == left


def test_answer_line_of_each_kind_of_stdin(tmp_path):
    assert answer_line(None) == ""
    assert answer_line(io.StringIO("y\n")) == "y\n"
    path = tmp_path / "answer"
    path.write_text("yes\n")
    with open(path) as f:
        assert answer_line(f) == "yes\n"
    with open(os.devnull) as f:
        assert answer_line(f) == ""
    closed = io.StringIO("y\n")
    closed.close()
    assert answer_line(closed) == ""


def test_a_refused_user_add_makes_no_database(tmp_path):
    data = tmp_path / "data"
    err = io.StringIO()
    code = main(["user", "add", "bob", "--password-stdin", "--data-dir", str(data)],
                out=io.StringIO(), err=err, stdin=io.StringIO("short\n"))
    assert code == 2 and "at least 12" in err.getvalue()
    assert not data.exists()
    code = main(["user", "add", "bob", "--password-stdin", "--data-dir", str(data)],
                out=io.StringIO(), err=err, stdin=io.StringIO(PASSWORD + "\n"))
    assert code == 0 and (data / "mission-control.db").is_file()


@pytest.mark.slow
def test_the_installed_command_without_an_answer(tmp_path):
    data = tmp_path / "data"
    assert run_cli("user", "add", "ann", "--password-stdin", "--data-dir", data,
                   stdin=PASSWORD + "\n").code == 0
    name = run_cli("backup", "create", "--json", "--data-dir", data).json["backup"]["name"]
    argv = ("backup", "restore", name, "--data-dir", data)
    closed = run_cli(*argv, prefix=("sh", "-c", 'exec "$0" "$@" <&-'))
    assert closed.code == 2 and "add --yes" in closed.err, closed.err
    read_end, write_end = os.pipe()  # stdin open, never written to
    silent = subprocess.Popen([COMMAND, *map(str, argv)], stdin=read_end,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.close(read_end)
    try:
        out, err = silent.communicate(timeout=60)
    finally:
        silent.kill()
        os.close(write_end)
    assert silent.returncode == 2 and "add --yes" in err and "Traceback" not in err, err
    piped = run_cli(*argv, stdin="y\n")
    assert piped.code == 0 and f"restored {name}" in piped.out, piped.err
