"""The schema allowlist: every `sqlite_master` row of a backup must be one our migrations create.

SQLite builds its schema from the `sql` text of each row; `type` is compared case-insensitively,
so a row saying `TRIGGER` is still a trigger. The check therefore reads the kind and name from the
SQL itself, compares Mission Control's own objects with what the shipped migrations create at the
file's schema version (SQL compared token by token: whitespace, comments and ASCII case of words
do not matter, string literals do), refuses every trigger, view and virtual table we do not create,
and allows other tables and plain indexes on them (the dashboard's data).
"""
import functools
import re
import sqlite3
from dataclasses import dataclass
from types import NoneType

from .. import db as dbmod

MAX_NAME = 60  # names in problems are cut here: a hostile file may hold any text

# SQLite's own lexical classes: only these five are space, and every byte >= 0x80 is part of a name.
_TOKEN = re.compile(r"""
    (?P<space>[ \t\n\f\r]+)
  | (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<string>'(?:[^']|'')*')
  | (?P<quoted>"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\])
  | (?P<word>[A-Za-z0-9_$\x80-\U0010ffff]+)
  | (?P<other>.)
""", re.S | re.X)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_KINDS = {"table", "index", "trigger", "view"}


def tokens(sql):
    """`sql` as a tuple of tokens: words ASCII-lowercased (SQLite folds only ASCII), quoted names
    as `"lowercased"` whatever their quotes, string literals as written; no space or comment."""
    out = []
    for match in _TOKEN.finditer(sql):
        kind, text = match.lastgroup, match.group()
        if kind in ("space", "comment"):
            continue
        if kind == "quoted":
            inner = text[1:-1]
            if text[0] in "\"`":
                inner = inner.replace(text[0] * 2, text[0])
            text = '"' + inner.translate(_ASCII_LOWER) + '"'
        elif kind == "word":
            text = text.translate(_ASCII_LOWER)
        out.append(text)
    return tuple(out)


def _name(token):
    return token[1:-1] if token.startswith('"') else token


@dataclass(frozen=True)
class Entry:
    """One `sqlite_master` row, as compared: kind (lowercase type), name, table and SQL tokens."""

    kind: str
    name: str
    table: str
    sql: tuple | None

    @classmethod
    def from_row(cls, type_, name, tbl_name, sql):
        return cls(type_.translate(_ASCII_LOWER), name.translate(_ASCII_LOWER),
                   tbl_name.translate(_ASCII_LOWER), None if sql is None else tokens(sql))


def parse_header(toks):
    """`(kind, name, rest)` read from `CREATE [UNIQUE] KIND [IF NOT EXISTS] [schema.]name ...`.

    `kind` is one of table, index, trigger, view, or "virtual table"; None when the SQL is not a
    CREATE statement SQLite would load into the main schema (TEMP objects included).
    """
    if len(toks) < 3 or toks[0] != "create":
        return None, None, ()
    i = 1
    if toks[i] == "unique":
        i += 1
    if toks[i] == "virtual" and toks[i + 1:i + 2] == ("table",):
        kind, i = "virtual table", i + 2
    elif toks[i] in _KINDS:
        kind, i = toks[i], i + 1
    else:
        return None, None, ()
    if toks[i:i + 3] == ("if", "not", "exists"):
        i += 3
    if toks[i + 1:i + 2] == (".",):
        i += 2  # a schema-qualified name
    if i >= len(toks):
        return None, None, ()
    return kind, _name(toks[i]), toks[i + 1:]


def plain_index_table(rest):
    """The table a plain index (`ON table(column [COLLATE x] [ASC|DESC], ...)`) is on, else None.

    Anything else (an expression, a string, a WHERE clause) makes it not plain: such an index
    evaluates SQL of the file's choosing for every row when checked or rebuilt.
    """
    if len(rest) < 4 or rest[0] != "on" or rest[2] != "(" or rest[-1] != ")":
        return None
    items, current = [], []
    for tok in rest[3:-1]:
        if tok == ",":
            items.append(current)
            current = []
        else:
            current.append(tok)
    items.append(current)
    for item in items:
        if not item or not _is_identifier(item[0]):
            return None
        tail = list(item[1:])
        if tail[:1] == ["collate"] and len(tail) >= 2 and _is_identifier(tail[1]):
            tail = tail[2:]
        if tail and tail not in (["asc"], ["desc"]):
            return None
    return _name(rest[1])


def references(rest):
    """The set of table names a CREATE TABLE's tokens name after REFERENCES."""
    return {_name(rest[i + 1]) for i, tok in enumerate(rest[:-1]) if tok == "references"}


def _is_identifier(tok):
    return tok.startswith('"') or (tok[0].isalpha() or tok[0] == "_")


@functools.cache
def expected_schema(version):
    """`{name: Entry}` of what the shipped migrations create up to `version`.

    Worked out once per version and process from the shipped scripts, which do not change.
    """
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        dbmod.migrate(conn, target=version)
        return {e.name: e for e in (Entry.from_row(*row) for row in conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master"))}
    finally:
        conn.close()


@functools.cache
def owned_names():
    """`(names, tables)`: every object name, and every table name, any migration creates."""
    names, tables = set(), set()
    for version, _ in dbmod.migrations():
        for entry in expected_schema(version).values():
            names.add(entry.name)
            if entry.kind == "table":
                tables.add(entry.name)
    return frozenset(names), frozenset(tables)


def _label(name):
    name = str(name)
    return name if len(name) <= MAX_NAME else name[:MAX_NAME] + "..."


def allowlist_problems(rows, version):
    """Why the schema rows `rows` are not allowed at schema `version` (empty list: they are).

    :param rows: `(type, name, tbl_name, sql)` tuples, as `sqlite_master` holds them.
    :param version: a schema version the shipped migrations know (1 up to the newest).
    :return: problem sentences, each naming the object.
    """
    expected = expected_schema(version)
    names, tables = owned_names()
    problems, seen = [], set()
    for row in rows:
        if not all(isinstance(v, str) for v in row[:3]) or not isinstance(row[3], (str, NoneType)):
            # SQLite reads a BLOB `sql` as text and runs it: refuse rather than decode it.
            problems.append(f"schema entry {_label(row[1])!r} is not text")
            continue
        entry = Entry.from_row(*row)
        label = f"{entry.kind} {_label(row[1])}"
        if entry.sql is None:
            if entry.kind == "index" and entry.name.startswith("sqlite_autoindex_"):
                if entry.name in expected and expected[entry.name] != entry:
                    problems.append(f"{label} differs from what schema version {version} has")
                seen.add(entry.name)
                continue
            problems.append(f"{label} has no SQL")
            continue
        kind, name, rest = parse_header(entry.sql)
        if kind is None or kind.split()[-1] != entry.kind or name != entry.name:
            problems.append(f"schema entry {_label(row[1])!r} does not match its SQL")
            continue
        if entry.name in expected:
            seen.add(entry.name)
            if expected[entry.name] != entry:
                problems.append(f"{label} differs from what schema version {version} creates")
        elif entry.name in names:
            problems.append(f"{label} is not part of schema version {version}")
        elif kind in ("trigger", "view"):
            problems.append(f"{label} is not one Mission Control creates (it would run inside "
                            "the service)")
        elif kind == "virtual table":
            problems.append(f"virtual table {_label(row[1])} is not allowed")
        elif kind == "index":
            table = plain_index_table(rest)
            if table is None:
                problems.append(f"{label} is not a plain index: only plain indexes on tables "
                                "Mission Control does not own are allowed")
            elif table in tables or entry.table in tables:
                problems.append(f"{label} is on Mission Control's table {_label(table)}, which "
                                "gets only the indexes its migrations create")
        elif kind == "table":
            referenced = sorted(references(rest) & tables)
            if referenced:
                # A foreign key into our tables would block deleting their rows (users, sessions).
                problems.append(f"{label} references Mission Control's table {referenced[0]}")
    missing = [e for n, e in expected.items() if n not in seen]
    missing_tables = sorted(e.name for e in missing if e.kind == "table")
    if missing_tables:
        problems.append("not a Mission Control database: missing tables "
                        f"{', '.join(missing_tables)}")
    problems.extend(f"missing {e.kind} {e.name} of schema version {version}"
                    for e in sorted(missing, key=lambda e: e.name)
                    if e.kind != "table" and e.table not in missing_tables)
    return problems
