"""What a partial restore would change: per table, the keys of the rows to insert, update and
delete so that the chosen tables (or rows) read as in the backup, the conflicts, and the refusals.

A conflict is a live row the restore would overwrite or delete that was written after the backup
was taken: its `updated_at` (or, without one, `created_at`; unix seconds) is later than the
backup's time (the UTC time in its name, else the file's mtime). Restoring it would lose that
later work, so applying is refused (409) unless the caller says `force`. A row the restore puts
back (deleted since the backup) never conflicts. A table with neither column gets no conflict
check; its entry says so.
"""
from dataclasses import dataclass, field

from ...errors import ValidationFailed
from .compare import DELETED, INSERTED, MISSING, UPDATED, changes_sql, json_key, rows_sql
from .tables import quote, refusal, schema_differences, shapes

#: Columns that tell when a row was last written, in order of preference.
TIME_COLUMNS = ("updated_at", "created_at")
CHUNK = 500  # keys per statement: under SQLite's parameter limit
#: What the restore does to a row, by how the live database differs from the backup: a row
#: deleted since is inserted again, one inserted since is deleted, one updated is updated back.
RESTORE_ACTION = {DELETED: INSERTED, INSERTED: DELETED, UPDATED: UPDATED}


@dataclass
class TablePlan:
    """One table's change: the keys (tuples) by what the restore does to the live row
    (`inserted`, `updated`, `deleted`), and the conflicting keys."""

    table: str
    shape: object
    time_column: str | None
    keys: dict = field(default_factory=lambda: {INSERTED: [], UPDATED: [], DELETED: []})
    conflicts: list = field(default_factory=list)
    unchanged: int = 0

    @property
    def count(self):
        return sum(len(keys) for keys in self.keys.values())

    def to_json(self, samples=20):
        out = {"table": self.table, "key": list(self.shape.key),
               "conflict_check": self.time_column or "none: the table has no updated_at or "
                                                     "created_at column"}
        for kind, keys in self.keys.items():
            out[kind] = {"count": len(keys), "sample": [json_key(k) for k in keys[:samples]]}
        out["conflicts"] = {"count": len(self.conflicts),
                            "sample": [json_key(k) for k in self.conflicts[:samples]]}
        if self.unchanged:
            out["unchanged"] = self.unchanged
        return out


def requested(tables, rows):
    """`{table: None (the whole table) or [keys]}` from a request's `tables` or `rows`.

    :raises ValidationFailed: neither or both given, empty, or a key that is not a value.
    """
    if (tables is None) == (rows is None):
        raise ValidationFailed(["body: give tables (a list of names) or rows (table: keys), "
                                "not both"])
    if tables is not None:
        if not isinstance(tables, list) or not tables or \
                not all(isinstance(t, str) and t for t in tables):
            raise ValidationFailed(["tables: must be a list of table names"])
        return {t: None for t in tables}
    if not isinstance(rows, dict) or not rows:
        raise ValidationFailed(["rows: must map a table's name to a list of primary keys"])
    problems = []
    for table, keys in rows.items():
        if not isinstance(keys, list) or not keys or not all(
                isinstance(k, (int, str)) and not isinstance(k, bool) for k in keys):
            problems.append(f"rows.{table}: must be a list of primary keys (whole numbers or "
                            "text)")
    if problems:
        raise ValidationFailed(problems)
    return {t: list(dict.fromkeys(keys)) for t, keys in rows.items()}


def refusals(conn, wanted):
    """Why the tables of `wanted` may not be restored from `src` into `main` on `conn`, as
    `"table: reason"` sentences (empty: all may), and the source shapes."""
    old, new = shapes(conn, "src"), shapes(conn, "main")
    problems = []
    for table, keys in wanted.items():
        reason = refusal(table)
        if reason is None and table not in old and table not in new:
            reason = "no such table in the backup or the live database"
        elif reason is None:
            differs = schema_differences(table, old.get(table), new.get(table))
            if differs:
                reason = "its schema differs between the backup and the live database (" + \
                    "; ".join(differs) + "): restore the whole database instead"
            elif not old[table].key:
                reason = ("it has no primary key: its rows are matched only by rowid, which a "
                          "VACUUM may renumber, so only a whole restore brings it back")
            elif keys is not None and len(old[table].key) > 1:
                reason = "its primary key has several columns: restore the whole table"
        if reason is not None:
            problems.append(f"{table}: {reason}")
    return problems, old


def make_plan(conn, wanted, old, backup_time):
    """The `TablePlan`s of `wanted`, read on `conn` in the caller's read transaction.

    :raises ValidationFailed: a requested key is in neither database (400).
    """
    plans, problems = [], []
    for table, keys in wanted.items():
        shape = old[table]
        time_column = next((c for c in TIME_COLUMNS if c in shape.names), None)
        plan = TablePlan(table, shape, time_column)
        head = () if time_column is None else (backup_time,)
        if keys is None:
            _add(plan, conn.execute(changes_sql(table, shape, shape, time_column), head))
        else:
            missing = []
            for chunk in _chunks(keys):
                found = conn.execute(rows_sql(table, shape, len(chunk), time_column),
                                     (*chunk, *head))
                _add(plan, found, missing)
            plan.unchanged = len(keys) - plan.count - len(missing)
            problems += [f"rows.{table}: no row with {shape.key[0]} {k!r} in the backup or the "
                         "live database" for k in missing[:20]]
        plans.append(plan)
    if problems:
        raise ValidationFailed(problems, "Unknown rows")
    return plans


def _add(plan, found, missing=None):
    """Put each `(kind, [newer,] key...)` row of `found` in `plan` (or `missing`)."""
    timed = plan.time_column is not None
    for kind, *rest in found:
        newer, key = (rest[0], tuple(rest[1:])) if timed else (0, tuple(rest))
        if kind == MISSING:
            missing.append(key[0])
            continue
        plan.keys[RESTORE_ACTION[kind]].append(key)
        if newer:  # only a live row has the flag: one the restore overwrites or deletes
            plan.conflicts.append(key)


def _chunks(keys):
    for i in range(0, len(keys), CHUNK):
        yield keys[i:i + CHUNK]


def images(conn, plan):
    """`(before, after)`: the plan's rows as the live database and the backup hold them now,
    each `{key: row tuple}`. The live ones are checked again inside the write transaction, so a
    row changed meanwhile is never overwritten unseen; the backup's are what it writes (the file
    is immutable), read here so the write transaction reads nothing from it."""
    where = " AND ".join(f"{quote(c)} = ?" for c in plan.shape.key)
    out = []
    for schema, kinds in (("main", (UPDATED, DELETED)), ("src", (UPDATED, INSERTED))):
        sql = f"SELECT * FROM {schema}.{quote(plan.table)} WHERE {where}"
        rows = {}
        for kind in kinds:
            for key in plan.keys[kind]:
                rows[key] = tuple(conn.execute(sql, key).fetchone())
        out.append(rows)
    return tuple(out)
