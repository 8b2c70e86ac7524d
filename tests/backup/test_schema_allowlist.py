"""The schema allowlist: odd `sqlite_master` rows, and generated schema variations restored."""
import itertools
import sqlite3

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mission_control import db as dbmod
from mission_control.errors import ValidationFailed
from mission_control.backup.restore import restore_backup
from mission_control.backup.schema_check import allowlist_problems
from mission_control.backup.schema_check import expected_schema
from mission_control.backup.schema_check import tokens

from tests.support.backup_files import mission_control_db, rewrite_schema, run_sql, schema_rows

NEWEST = dbmod.migrations()[-1][0]
OUR_TABLES = ("tasks", "agents", "activities", "users")


def newest_rows():
    conn = sqlite3.connect(":memory:", isolation_level=None)
    dbmod.migrate(conn)
    rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    conn.close()
    return rows


def test_the_migrations_own_schema_passes_at_every_level():
    for version, _ in dbmod.migrations():
        conn = sqlite3.connect(":memory:", isolation_level=None)
        dbmod.migrate(conn, target=version)
        rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
        conn.close()
        assert allowlist_problems(rows, version) == []
        assert (allowlist_problems(rows, NEWEST) == []) == (version == NEWEST)


def test_sql_is_compared_without_whitespace_comments_or_keyword_case_but_with_literals():
    assert tokens("CREATE  TABLE t(\n a TEXT -- note\n)") == tokens("create table T ( a text )")
    assert tokens("CHECK (role IN ('admin'))") != tokens("CHECK (role IN ('ADMIN'))")
    assert tokens('"Users"') == tokens("[users]") == tokens("`USERS`") != tokens("users")


@pytest.mark.parametrize("row, problem", [
    (("table", "evil", "users", "CREATE TRIGGER evil AFTER INSERT ON users BEGIN SELECT 1; END"),
     "schema entry 'evil' does not match its SQL"),
    (("index", "x", "tasks", "CREATE INDEX y ON tasks(title)"), "does not match its SQL"),
    (("table", "t", "t", b"CREATE TABLE t(a)"), "schema entry 't' is not text"),
    (("trigger", "t", "t", None), "trigger t has no SQL"),
    (("table", "t", "t", "CREATE TEMP TABLE t(a)"), "does not match its SQL"),
    (("VIRTUAL TABLE", "v", "v", "CREATE VIRTUAL TABLE v USING fts5(a)"), "does not match"),
    (("table", "v", "v", "CREATE VIRTUAL TABLE v USING fts5(a)"), "virtual table v is not allowed"),
    (("index", "p", "notes", "CREATE INDEX p ON notes(a) WHERE a > 0"), "not a plain index"),
    (("table", "notes", "notes", "CREATE TABLE notes (u INTEGER REFERENCES users(id))"),
     "table notes references Mission Control's table users"),
    (("table", "users", "users", "CREATE TABLE users (id INTEGER PRIMARY KEY)"),
     f"table users differs from what schema version {NEWEST} creates"),
])
def test_odd_rows_are_refused_by_name(row, problem):
    problems = allowlist_problems([*newest_rows(), row], NEWEST)
    assert any(problem in p for p in problems), problems


def test_plain_indexes_and_tables_of_the_dashboard_are_allowed():
    extra = [("table", "notes", "notes", "CREATE TABLE notes (a TEXT CHECK (a <> ''), b INT)"),
             ("INDEX", "notes_ab", "notes",
              'CREATE UNIQUE INDEX notes_ab ON notes ("a" COLLATE NOCASE DESC, b)'),
             ("index", "sqlite_autoindex_notes_1", "notes", None)]
    assert allowlist_problems([*newest_rows(), *extra], NEWEST) == []


# -- generated variations ------------------------------------------------------------------------
# Each variation is (statements, rewrite, allowed): SQL run on the file, an UPDATE of sqlite_master
# run with writable_schema (or None), and whether a restore may accept it.
_names = (f"x{i}" for i in itertools.count())


@st.composite
def variation(draw):
    n = next(_names)
    ours = draw(st.sampled_from(OUR_TABLES))
    check = draw(st.sampled_from(["", " CHECK (b <> 1)"]))
    foreign = f"CREATE TABLE {n}t (a INTEGER, b TEXT{check})"
    kind = draw(st.sampled_from([  # the allowed kinds twice: enough files get restored
        *["foreign table", "plain index", "type case"] * 2, "expression index", "partial index",
        "index on ours", "trigger", "view", "check on ours", "reference to ours"]))
    case = draw(st.sampled_from(["lower", "upper"]))
    if kind == "foreign table":
        return [foreign], None, True
    if kind == "plain index":
        return [foreign, f"CREATE INDEX {n}i ON {n}t (b COLLATE NOCASE, a DESC)"], None, True
    if kind == "expression index":
        return [foreign, f"CREATE INDEX {n}i ON {n}t (a + 1)"], None, False
    if kind == "partial index":
        return [foreign, f"CREATE INDEX {n}i ON {n}t (a) WHERE a > 1"], None, False
    if kind == "index on ours":
        return [f"CREATE INDEX {n}i ON {ours} (created_at)"], None, False
    if kind == "trigger":
        on = draw(st.sampled_from([ours, f"{n}t"]))
        return ([foreign, f"CREATE TRIGGER {n}g AFTER INSERT ON {on} BEGIN SELECT 1; END"],
                f"UPDATE sqlite_master SET type = {case}(type) WHERE name = '{n}g'", False)
    if kind == "view":
        return ([f"CREATE VIEW {n}v AS SELECT * FROM {ours}"],
                f"UPDATE sqlite_master SET type = {case}(type) WHERE name = '{n}v'", False)
    if kind == "check on ours":
        return ([], "UPDATE sqlite_master SET sql = substr(sql, 1, length(sql) - 1)"
                    f" || ', CHECK (created_at >= 0))' WHERE name = '{ours}'", False)
    if kind == "type case":
        return [], f"UPDATE sqlite_master SET type = {case}(type) WHERE tbl_name = '{ours}'", True
    return [f"CREATE TABLE {n}t (u INTEGER REFERENCES {ours}(id))"], None, False


@pytest.mark.slow
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(version=st.integers(1, NEWEST),
       encoding=st.sampled_from(["UTF-8"] * 4 + ["UTF-16le", "UTF-16be"]),
       variations=st.lists(variation(), max_size=3))
def test_a_generated_schema_is_refused_or_restored_with_the_allowlist_holding(
        mc, version, encoding, variations):
    name = f"{next(_names)}.db"
    path = mc.backups.dir / name
    mission_control_db(path, version=version, encoding=encoding)
    run_sql(path, "INSERT INTO tasks (title, created_at, updated_at) VALUES ('mark', 0, 0)",
            *(s for statements, _, _ in variations for s in statements))
    for _, rewrite, _ in variations:
        if rewrite:
            rewrite_schema(path, rewrite)
    allowed = encoding == "UTF-8" and all(ok for _, _, ok in variations)
    event("may be restored" if allowed else "must be refused")
    before = schema_rows(mc.config.db_path)
    try:
        restore_backup(mc, name, "property")
    except ValidationFailed as exc:
        assert not allowed, exc.details
        assert schema_rows(mc.config.db_path) == before
        return
    assert allowed, variations
    live = schema_rows(mc.config.db_path)
    assert allowlist_problems(live, NEWEST) == []
    assert not [r for r in live if r[0].lower() in ("trigger", "view")]
    assert set(expected_schema(NEWEST)) <= {r[1].lower() for r in live}
    assert [r["title"] for r in mc.db.query("SELECT title FROM tasks")] == ["mark"]
