"""`backup diff`, `backup restore NAME --table/--rows` and `backup undo` as the installed
`mission-control` runs them: answers, exit codes, one-line errors, never a traceback."""
import sqlite3

import pytest

from tests.support.cli_run import PASSWORD, run_cli

#: In the slow lane (one real `mission-control` process per step).
pytestmark = pytest.mark.slow


@pytest.fixture
def data(tmp_path):
    """A data folder with an admin, 5 tasks and a backup of them; then tasks 1 and 2 deleted
    and task 3 changed. Returns `(folder, backup name)`."""
    folder = tmp_path / "data"
    assert run_cli("user", "add", "ann", "--role", "admin", "--password-stdin", "--data-dir",
                   folder, stdin=PASSWORD + "\n").code == 0
    _sql(folder, "INSERT INTO tasks (id, title, created_at, updated_at) VALUES"
                 " (1, 'a', 0, 0), (2, 'b', 0, 0), (3, 'c', 0, 0), (4, 'd', 0, 0), (5, 'e', 0, 0)")
    made = run_cli("backup", "create", "--json", "--data-dir", folder)
    assert made.code == 0, made.err
    _sql(folder, "DELETE FROM tasks WHERE id IN (1, 2)",
         "UPDATE tasks SET title = 'changed' WHERE id = 3")
    return folder, made.json["backup"]["name"]


def _sql(folder, *statements):
    conn = sqlite3.connect(folder / "mission-control.db")
    with conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()


def _titles(folder):
    conn = sqlite3.connect(folder / "mission-control.db")
    try:
        return [r[0] for r in conn.execute("SELECT title FROM tasks ORDER BY id")]
    finally:
        conn.close()


def cli(folder, *args, **kwargs):
    return run_cli(*args, "--data-dir", folder, **kwargs)


def test_diff_restore_rows_and_undo(data):
    folder, name = data
    plain = cli(folder, "backup", "diff", name)
    assert plain.code == 0, plain.err
    assert "tasks: 0 inserted, 1 updated (3), 2 deleted (1, 2)" in plain.out
    as_json = cli(folder, "backup", "diff", name, "--json").json
    tasks = next(t for t in as_json["tables"] if t["table"] == "tasks")
    assert tasks["deleted"] == {"count": 2, "sample": [1, 2]}

    dry = cli(folder, "backup", "restore", name, "--rows", "tasks:1,2", "--dry-run")
    assert dry.code == 0 and "would insert 2 (1, 2)" in dry.out and "nothing was changed" in dry.out
    assert _titles(folder) == ["changed", "d", "e"]
    asked = cli(folder, "backup", "restore", name, "--rows", "tasks:1,2", stdin="n\n")
    assert asked.code == 1 and _titles(folder) == ["changed", "d", "e"]

    done = cli(folder, "backup", "restore", name, "--rows", "tasks:1,2", "--yes", "--json")
    assert done.code == 0, done.err
    assert _titles(folder) == ["a", "b", "changed", "d", "e"]
    undone = cli(folder, "backup", "undo", done.json["undo"])
    assert undone.code == 0 and "undid the partial restore" in undone.out, undone.err
    assert _titles(folder) == ["changed", "d", "e"]
    again = cli(folder, "backup", "undo", done.json["undo"])
    assert again.code == 3 and "No undo with that token" in again.err


def test_a_whole_table_and_the_refusals(data):
    folder, name = data
    assert cli(folder, "backup", "restore", name, "--table", "tasks", "--yes").code == 0
    assert _titles(folder) == ["a", "b", "c", "d", "e"]
    refused = cli(folder, "backup", "restore", name, "--table", "users", "--yes")
    assert refused.code == 2 and "users: accounts and passwords" in refused.err
    unknown = cli(folder, "backup", "restore", name, "--rows", "tasks:99", "--dry-run")
    assert unknown.code == 2 and "no row with id 99" in unknown.err
    assert cli(folder, "backup", "diff", "nope.db").code == 3
    assert cli(folder, "backup", "restore", "nope.db", "--table", "tasks", "--yes").code == 3
    bad = cli(folder, "backup", "restore", name, "--rows", "tasks", "--dry-run")
    assert bad.code == 2 and "TABLE:KEY" in bad.err
    both = cli(folder, "backup", "restore", name, "--rows", "tasks:1", "--table", "tasks")
    assert both.code == 2 and "not both" in both.err
    assert cli(folder, "backup", "undo", "../x").code == 2
    assert cli(folder, "backup", "restore", name, "--dry-run", "--yes").code == 2
    _sql(folder, "UPDATE tasks SET title = 'later', updated_at = 4102444800 WHERE id = 4")
    conflict = cli(folder, "backup", "restore", name, "--table", "tasks", "--yes")
    assert conflict.code == 4 and "force" in conflict.err
    assert cli(folder, "backup", "restore", name, "--table", "tasks", "--yes", "--force").code == 0
    assert _titles(folder) == ["a", "b", "c", "d", "e"]
