"""Which tables a partial restore may touch, and each table's shape (columns, primary key) as
two databases see it, compared."""
from dataclasses import dataclass

#: Tables a partial restore refuses, with the reason said to the user. Every other table of the
#: database (agents, tasks, activities and any domain table the dashboard adds) is Mission
#: Control data and may be restored partially.
REFUSED = {
    "users": "accounts and passwords are restored only with the whole database",
    "user_sessions": "sessions are restored only with the whole database",
    "settings": "settings are changed with the settings API, or restored with the whole database",
    "audit_log": "the audit trail is never rolled back",
    "scheduler_state": "the scheduler's own state is never restored partially",
    "backup_verifications": "the service's records of its checks are never restored partially",
}
#: Prefixes of the service's own tables, refused like `REFUSED`.
REFUSED_PREFIXES = {
    "offsite_": "the service's records of its off-site copies are never restored partially",
    "sqlite_": "SQLite's internal tables are not data",
}


def refusal(table):
    """Why `table` may not be restored partially, or None when it may."""
    name = table.lower()
    if name in REFUSED:
        return REFUSED[name]
    for prefix, reason in REFUSED_PREFIXES.items():
        if name.startswith(prefix):
            return reason
    return None


@dataclass(frozen=True)
class Shape:
    """A table as one database has it: its columns `(name, declared type)` in order, and its
    primary key's column names (empty: none, the table is compared by rowid)."""

    columns: tuple
    key: tuple

    @property
    def names(self):
        return tuple(name for name, _ in self.columns)


def quote(name):
    """`name` as an SQL identifier in double quotes (any text)."""
    return '"' + name.replace('"', '""') + '"'


def shapes(conn, schema="main"):
    """`{table: Shape}` of every ordinary table of `schema` on `conn` (no `sqlite_*` table)."""
    found = {}
    rows = conn.execute(f"SELECT name, sql FROM {schema}.sqlite_master WHERE type = 'table'"
                        " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'").fetchall()
    for name, sql in rows:
        if sql is None or " ".join(sql.split()[:2]).lower() != "create table":
            continue  # a virtual table: the allowlist refuses those in a backup anyway
        info = conn.execute(f"PRAGMA {schema}.table_info({quote(name)})").fetchall()
        columns = tuple((row[1], (row[2] or "").upper()) for row in info)
        key = tuple(row[1] for row in sorted((r for r in info if r[5]), key=lambda r: r[5]))
        found[name] = Shape(columns, key)
    return found


def schema_differences(table, old, new):
    """How `table`'s shape differs between two databases, as sentences (empty: the same).

    :param old: its `Shape` in the source (a backup), or None when it has no such table.
    :param new: its `Shape` in the other database, or None.
    """
    if old is None and new is None:
        return []
    if old is None:
        return [f"table {table} is not in the source"]
    if new is None:
        return [f"table {table} is not in the target"]
    out = []
    old_cols, new_cols = dict(old.columns), dict(new.columns)
    out += [f"column {c} is only in the source" for c in old_cols if c not in new_cols]
    out += [f"column {c} is only in the target" for c in new_cols if c not in old_cols]
    out += [f"column {c} is {old_cols[c] or 'untyped'} in the source, "
            f"{new_cols[c] or 'untyped'} in the target"
            for c in old_cols if c in new_cols and old_cols[c] != new_cols[c]]
    if old.key != new.key:
        out.append(f"the primary key is ({', '.join(old.key) or 'rowid'}) in the source, "
                   f"({', '.join(new.key) or 'rowid'}) in the target")
    if not out and old.names != new.names:
        out.append("the columns are in another order")
    return out


def key_columns(shape):
    """The columns rows are matched by: the primary key, or SQLite's rowid when there is none."""
    return shape.key or ("rowid",)
