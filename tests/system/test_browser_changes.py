"""The page's "What changed?" view in a real Chromium against a real waitress server and a real
database, at 1280×900 and 390×844: the diff's counts and keys, a refused table's reason, a table
restored behind a dry run and a typed confirmation (and the force choice for conflicts), the
database file checked after the restore and after its undo, errors in the dialog's own red box,
and hostile table names and keys drawn as text."""
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tests.support.browser import DESKTOP, PHONE, log_in, shot

expect = pytest.importorskip("playwright.sync_api",
                             reason="browser tests need playwright: pip install -e '.[test]'").expect

SIZES = pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x900", "390x844"])
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
HOSTILE_TABLE = '<img src=x onerror="window.__pwned=1">'
HOSTILE_KEY = "<script>window.__pwned=2</script>"


def seed(mc):
    """10 tasks, 3 agents, 5 activities, all written at time 0 (long before any backup)."""
    with mc.db.transaction() as conn:
        conn.executemany("INSERT INTO agents (id, name, created_at, updated_at) VALUES (?, ?, 0, 0)",
                         [(i, f"agent-{i}") for i in (1, 2, 3)])
        conn.executemany("INSERT INTO tasks (id, title, created_at, updated_at) VALUES (?, ?, 0, 0)",
                         [(i, f"task-{i}") for i in range(1, 11)])
        conn.executemany("INSERT INTO activities (id, type, entity_type, actor, description,"
                         " created_at) VALUES (?, 'x', 'task', 'a', 'd', 0)", [(i,) for i in range(1, 6)])


def change(mc, stamp=0):
    """After the backup, in two tables: tasks 2 and 3 deleted, 5 updated, 11 inserted; agent 1
    deleted, agent 2 updated. `stamp`: the written rows' updated_at (later than the backup: a
    conflict)."""
    with mc.db.transaction() as conn:
        conn.execute("DELETE FROM tasks WHERE id IN (2, 3)")
        conn.execute("UPDATE tasks SET title = 'changed', updated_at = ? WHERE id = 5", (stamp,))
        conn.execute("INSERT INTO tasks (id, title, created_at, updated_at) VALUES (11, 'new', ?, ?)",
                     (stamp, stamp))
        conn.execute("DELETE FROM agents WHERE id = 1")
        conn.execute("UPDATE agents SET status = 'online', updated_at = ? WHERE id = 2", (stamp,))


def q(name):
    """`name` as an SQL identifier (any text)."""
    return '"' + name.replace('"', '""') + '"'


def table_rows(path, table):
    """Every row of `table` in the database file at `path`, in key order (read by a fresh
    connection, not the service's)."""
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(f"SELECT * FROM {q(table)} ORDER BY 1").fetchall()


def in_viewport(page, locator):
    box = locator.bounding_box()
    size = page.viewport_size
    return (box is not None and box["y"] >= 0 and box["x"] >= 0
            and box["y"] + box["height"] <= size["height"] and box["x"] + box["width"] <= size["width"])


def open_changes(page, name):
    """Open the view from the backup's row (its More menu), as a person would."""
    page.get_by_role("button", name=f"More actions for {name}", exact=True).click()
    page.get_by_role("button", name=f"What changed since {name}?", exact=True).click()
    dialog = page.get_by_role("dialog", name="What changed since this backup?")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#changes-summary")).to_contain_text("differ")
    return dialog


def cell(dialog, table, kind):
    return dialog.locator(f'#changes-body tr[data-table="{table}"] td[data-kind="{kind}"]')


@SIZES
def test_what_changed_then_restore_one_table_and_undo_it(open_page, mc, viewport):
    seed(mc)
    backup = mc.backups.create("alice").name
    change(mc)
    db = mc.config.db_path
    backed_up_tasks = [(i, f"task-{i}") for i in range(1, 11)]
    changed_tasks = table_rows(db, "tasks")
    agents = table_rows(db, "agents")
    page = open_page(viewport=viewport)
    log_in(page)
    dialog = open_changes(page, backup)

    # The counts and sample keys of both changed tables.
    for kind, count, keys in (("inserted", "1", "11"), ("updated", "1", "5"), ("deleted", "2", "2, 3")):
        expect(cell(dialog, "tasks", kind).locator(".count")).to_have_text(count)
        expect(cell(dialog, "tasks", kind).locator(".keys")).to_have_text(keys)
    for kind, count, keys in (("inserted", "0", ""), ("updated", "1", "2"), ("deleted", "1", "1")):
        expect(cell(dialog, "agents", kind).locator(".count")).to_have_text(count)
        expect(cell(dialog, "agents", kind).locator(".keys")).to_have_text(keys)
    expect(dialog.locator("#changes-same")).to_contain_text("activities")  # unchanged, folded
    # A refused table (the session of this login is newer than the backup) shows why, no button.
    sessions = dialog.locator('#changes-body tr[data-table="user_sessions"]')
    expect(sessions).to_contain_text("sessions are restored only with the whole database")
    expect(sessions.get_by_role("button")).to_have_count(0)
    expect(dialog.locator('#changes-body tr[data-table="audit_log"]')).to_contain_text(
        "the audit trail is never rolled back")
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    assert in_viewport(page, dialog.get_by_role("button", name="Close"))
    if os.environ.get("MC_SCREENSHOTS") == "1":
        size = "desktop" if viewport is DESKTOP else "phone"
        page.screenshot(path=str(SCREENSHOTS / f"what-changed-{size}.png"))

    # The dry run first: what the restore would do, and nothing written.
    dialog.get_by_role("button", name="Restore table tasks…").click()
    expect(dialog.locator("#changes-dry-intro")).to_have_text("Dry run, nothing written yet. Restoring tasks would:")
    dry = dialog.locator("#changes-dry-list")
    expect(dry.locator('[data-kind="inserted"]')).to_have_text("put back 2 rows deleted since the backup: 2, 3")
    expect(dry.locator('[data-kind="updated"]')).to_have_text("set back 1 row changed since the backup: 5")
    expect(dry.locator('[data-kind="deleted"]')).to_have_text("delete 1 row added since the backup: 11")
    expect(dialog.locator("#changes-conflicts")).to_be_hidden()
    assert table_rows(db, "tasks") == changed_tasks
    # The typed confirmation: the button waits for the table's exact name.
    typed = dialog.get_by_label("Type the table name, tasks, to confirm")
    apply = dialog.get_by_role("button", name="Restore tasks", exact=True)
    expect(typed).to_be_focused()
    expect(apply).to_be_disabled()
    typed.fill("task")
    expect(apply).to_be_disabled()
    typed.fill("agents")
    expect(apply).to_be_disabled()
    typed.fill("tasks")
    expect(apply).to_be_enabled()
    shot(page, f"changes-dry-run-{viewport['width']}")
    apply.click()

    result = dialog.locator("#changes-result")
    expect(result).to_contain_text(f"Restored table tasks from {backup}: 2 rows put back, 1 row set back, "
                                   "1 row deleted.")
    expect(result).to_contain_text("pre-restore-")
    expect(result).to_contain_text("KiB")  # the safety copy's size, in binary units
    expect(result).to_be_focused()
    assert in_viewport(page, result)
    assert table_rows(db, "tasks") == [(i, f"task-{i}", None, "inbox", "medium", None, None, 0, 0)
                                       for i, _ in backed_up_tasks]
    assert table_rows(db, "agents") == agents  # only the table chosen
    # The diff reloads: tasks is now as in the backup.
    expect(dialog.locator("#changes-same")).to_contain_text("tasks")
    expect(dialog.locator('#changes-body tr[data-table="tasks"]')).to_have_count(0)
    expect(cell(dialog, "agents", "deleted").locator(".count")).to_have_text("1")

    undo = dialog.get_by_role("button", name="Undo the restore of tasks")
    assert in_viewport(page, undo)
    shot(page, f"changes-restored-{viewport['width']}")
    # Closed and opened again, the view still offers the undo.
    dialog.get_by_role("button", name="Close").click()
    open_changes(page, backup)
    expect(result).to_have_text(f"Your restore of table tasks from {backup} can still be undone. "
                                "Undo the restore of tasks")
    undo.click()
    expect(result).to_contain_text("Undone: the tables are as they were before the restore "
                                   "(tasks: 1 row put back, 1 row set back, 2 rows deleted).")
    expect(undo).to_be_hidden()
    assert table_rows(db, "tasks") == changed_tasks
    expect(cell(dialog, "tasks", "deleted").locator(".count")).to_have_text("2")
    page.keyboard.press("Escape")  # closes it; the keyboard is back at the row it came from
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("button", name=f"More actions for {backup}", exact=True)).to_be_focused()


@SIZES
def test_a_conflict_needs_the_overwrite_choice(open_page, mc, viewport):
    seed(mc)
    backup = mc.backups.create("alice").name
    change(mc, stamp=int(mc.clock()) + 60)  # written after the backup: conflicts
    db = mc.config.db_path
    before = table_rows(db, "tasks")
    page = open_page(viewport=viewport)
    log_in(page)
    dialog = open_changes(page, backup)
    dialog.get_by_role("button", name="Restore table tasks…").click()
    conflicts = dialog.locator("#changes-conflicts")
    expect(conflicts).to_be_visible()
    # Task 5 (updated) and 11 (inserted) were written after the backup; 2 and 3 come back.
    expect(conflicts).to_contain_text("2 live rows it would overwrite or delete were written after "
                                      "the backup was taken (5, 11)")
    force = dialog.get_by_label("Overwrite my newer rows (2)")
    expect(force).not_to_be_checked()
    dialog.get_by_label("Type the table name, tasks, to confirm").fill("tasks")
    apply = dialog.get_by_role("button", name="Restore tasks", exact=True)
    expect(apply).to_be_disabled()  # typed, but the conflicts are not accepted yet
    force.check()
    expect(apply).to_be_enabled()
    force.uncheck()
    expect(apply).to_be_disabled()
    assert table_rows(db, "tasks") == before
    force.check()
    shot(page, f"changes-conflicts-{viewport['width']}")
    apply.click()
    expect(dialog.locator("#changes-result")).to_contain_text("Restored table tasks")
    assert [r[:2] for r in table_rows(db, "tasks")] == [(i, f"task-{i}") for i in range(1, 11)]
    event = mc.audit_store.query(action="backup_restore_partial")[0][0]
    assert event["detail"]["forced_conflicts"] == 2


@SIZES
def test_errors_show_in_the_dialogs_red_box(open_page, mc, viewport):
    seed(mc)
    backup = mc.backups.create("alice").name
    change(mc)
    db = mc.config.db_path
    page = open_page(viewport=viewport)
    log_in(page)
    dialog = open_changes(page, backup)
    dialog.get_by_role("button", name="Restore table tasks…").click()
    dialog.get_by_label("Type the table name, tasks, to confirm").fill("tasks")
    # A row is written between the dry run and the restore: the service refuses it (409).
    with mc.db.transaction() as conn:
        conn.execute("UPDATE tasks SET title = 'later', updated_at = ? WHERE id = 4",
                     (int(mc.clock()) + 60,))
    before = table_rows(db, "tasks")
    dialog.get_by_role("button", name="Restore tasks", exact=True).click()
    error = dialog.locator("#changes-error")
    expect(error).to_contain_text("Not restored: 1 live rows it would overwrite or delete were written "
                                  "after the backup was taken")
    expect(error).to_contain_text("tasks: [4]")
    expect(error).to_be_focused()
    assert in_viewport(page, error)
    assert table_rows(db, "tasks") == before
    expect(dialog.locator("#changes-result")).to_be_hidden()
    # The dry run is run again: the row written meanwhile now needs the overwrite choice.
    expect(dialog.locator("#changes-conflicts")).to_contain_text("1 live row it would overwrite or delete "
                                                                 "was written after the backup was taken (4)")
    expect(dialog.get_by_label("Type the table name, tasks, to confirm")).to_have_value("")
    expect(error).to_be_focused()
    shot(page, f"changes-error-{viewport['width']}")

    # The backup is gone behind the page's back: the next dry run answers 404 in the box, and so
    # does the comparison when the view is opened again.
    (mc.backups.dir / backup).unlink()
    dialog.get_by_role("button", name="← Back to the changes").click()
    expect(error).to_be_hidden()
    dialog.get_by_role("button", name="Restore table agents…").click()
    expect(error).to_have_text("Backup not found.")
    expect(error).to_be_focused()
    assert in_viewport(page, error)
    dialog.get_by_role("button", name="Close").click()
    page.get_by_role("button", name=f"More actions for {backup}", exact=True).click()
    page.get_by_role("button", name=f"What changed since {backup}?", exact=True).click()
    expect(error).to_have_text("Backup not found.")
    expect(error).to_be_focused()
    assert in_viewport(page, error)
    expect(dialog.locator("#changes-summary")).to_have_text("Not compared.")


def test_hostile_names_and_keys_are_text_and_a_table_without_a_key_is_refused(open_page, mc):
    seed(mc)
    with mc.db.transaction() as conn:
        conn.execute(f"CREATE TABLE {q(HOSTILE_TABLE)} (k TEXT PRIMARY KEY, v TEXT)")
        conn.execute(f"INSERT INTO {q(HOSTILE_TABLE)} VALUES (?, 'a'), ('b', 'b')", (HOSTILE_KEY,))
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute("INSERT INTO notes VALUES ('one')")
    backup = mc.backups.create("alice").name
    with mc.db.transaction() as conn:
        conn.execute(f"DELETE FROM {q(HOSTILE_TABLE)} WHERE k = ?", (HOSTILE_KEY,))
        conn.execute("INSERT INTO notes VALUES ('two')")
    page = open_page()
    log_in(page)
    dialog = open_changes(page, backup)
    row = dialog.locator("#changes-body tr").filter(has_text=HOSTILE_TABLE)
    expect(row.locator("th .filename")).to_have_text(HOSTILE_TABLE)
    expect(row.locator('td[data-kind="deleted"] .keys')).to_have_text(f'"{HOSTILE_KEY}"')
    notes = dialog.locator('#changes-body tr[data-table="notes"]')
    expect(notes).to_contain_text("it has no primary key")
    expect(notes.get_by_role("button")).to_have_count(0)
    # Restored through its typed name, as any other table.
    row.get_by_role("button", name=f"Restore table {HOSTILE_TABLE}…").click()
    dialog.get_by_label(f"Type the table name, {HOSTILE_TABLE}, to confirm").fill(HOSTILE_TABLE)
    dialog.get_by_role("button", name=f"Restore {HOSTILE_TABLE}", exact=True).click()
    expect(dialog.locator("#changes-result")).to_contain_text("1 row put back")
    assert table_rows(mc.config.db_path, HOSTILE_TABLE) == [(HOSTILE_KEY, "a"), ("b", "b")]
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img[src=x], #changes-dialog script").count() == 0
