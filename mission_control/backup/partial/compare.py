"""Comparing one table between two attached databases: the rows inserted, updated and deleted,
matched by primary key, in one pass of SQL (a FULL JOIN on the key), streamed.

`src` is the source (a backup), `main` the target (the live database or another backup).
Inserted: in the target only; deleted: in the source only; updated: in both, some compared
column differs (`IS NOT`: NULLs compare equal, types count: 1 and '1' differ).
"""
from .tables import key_columns, quote

SAMPLES = 20
INSERTED, UPDATED, DELETED = "inserted", "updated", "deleted"


def json_key(values):
    """A row's key as JSON: the value for a one-column key, else a list; bytes as hex text."""
    out = [v.hex() if isinstance(v, bytes) else v for v in values]
    return out[0] if len(out) == 1 else out


def changes_sql(table, source_shape, target_shape, where_keys=None, newer_than=None):
    """The SELECT that yields `(kind, key values...)` for each differing row of `table`.

    Only columns both sides have are compared; rows are matched on the source's key, which the
    caller has checked is the target's too.

    :param where_keys: a number of key parameters: only the rows with one of those keys (a
        one-column key) are compared; None compares every row.
    :param newer_than: a column of the target: each row also yields whether the target's row
        has a value in it greater than a parameter (the first one); None yields no such flag.
    """
    keys = key_columns(source_shape)
    common = [c for c in source_shape.names if c in set(target_shape.names) and c not in keys]
    t = quote(table)
    on = " AND ".join(f"a.{quote(k)} = b.{quote(k)}" for k in keys)
    a_missing = f"a.{quote(keys[0])} IS NULL"
    b_missing = f"b.{quote(keys[0])} IS NULL"
    differs = " OR ".join(f"a.{quote(c)} IS NOT b.{quote(c)}" for c in common) or "0"
    kind = (f"CASE WHEN {a_missing} THEN '{INSERTED}' WHEN {b_missing} THEN '{DELETED}'"
            f" ELSE '{UPDATED}' END")
    key_out = ", ".join(f"coalesce(a.{quote(k)}, b.{quote(k)})" for k in keys)
    flag = "" if newer_than is None else f"coalesce(b.{quote(newer_than)} > ?, 0), "
    sql = (f"SELECT {kind}, {flag}{key_out} FROM src.{t} AS a FULL JOIN main.{t} AS b ON {on}"
           f" WHERE ({a_missing} OR {b_missing} OR {differs})")
    if where_keys is not None:
        marks = ", ".join("?" * where_keys)
        sql += f" AND coalesce(a.{quote(keys[0])}, b.{quote(keys[0])}) IN ({marks})"
    return sql


class Tally:
    """Counts per kind of change, with the first `SAMPLES` keys of each."""

    def __init__(self):
        self.counts = {INSERTED: 0, UPDATED: 0, DELETED: 0}
        self.samples = {INSERTED: [], UPDATED: [], DELETED: []}

    def add(self, kind, key):
        self.counts[kind] += 1
        if len(self.samples[kind]) < SAMPLES:
            self.samples[kind].append(json_key(key))

    def to_json(self):
        return {kind: {"count": self.counts[kind], "sample": self.samples[kind]}
                for kind in (INSERTED, UPDATED, DELETED)}


def tally(conn, table, source_shape, target_shape):
    """A `Tally` of how `table` differs, read on `conn` (in the caller's transaction)."""
    found = Tally()
    for kind, *key in conn.execute(changes_sql(table, source_shape, target_shape)):
        found.add(kind, key)
    return found
