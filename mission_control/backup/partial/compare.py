"""Comparing one table between two attached databases: the rows inserted, updated and deleted,
matched by primary key, in one pass of SQL (a FULL JOIN on the key), streamed.

`src` is the source (a backup), `main` the target (the live database or another backup).
Inserted: in the target only; deleted: in the source only; updated: in both, some compared
column differs (`IS NOT`: NULLs compare equal, types count: 1 and '1' differ).
"""
from .tables import key_columns, quote

SAMPLES = 20
INSERTED, UPDATED, DELETED = "inserted", "updated", "deleted"
MISSING = "missing"  # a requested key neither side has (`rows_sql`)


def json_key(values):
    """A row's key as JSON: the value for a one-column key, else a list; bytes as hex text."""
    out = [v.hex() if isinstance(v, bytes) else v for v in values]
    return out[0] if len(out) == 1 else out


def changes_sql(table, source_shape, target_shape, newer_than=None):
    """The SELECT that yields `(kind, [newer,] key values...)` for each differing row of `table`.

    Only columns both sides have are compared; rows are matched on the source's key, which the
    caller has checked is the target's too.

    :param newer_than: a column of the target: each row also yields whether the target's row
        has a value in it greater than the (only) parameter; None yields no such flag.
    """
    keys = key_columns(source_shape)
    t = quote(table)
    on = " AND ".join(f"a.{quote(k)} = b.{quote(k)}" for k in keys)
    key_out = ", ".join(f"coalesce(a.{quote(k)}, b.{quote(k)})" for k in keys)
    return (f"SELECT {_kind(keys)}, {_flag(newer_than)}{key_out} FROM src.{t} AS a"
            f" FULL JOIN main.{t} AS b ON {on}"
            f" WHERE {_differs(keys, source_shape, target_shape)}")


def rows_sql(table, shape, count, newer_than=None):
    """As `changes_sql`, for the `count` rows whose one-column key is a parameter (the keys come
    first, then the `newer_than` time): each key is looked up on both sides by its index, and
    one that neither side has yields the kind `MISSING`."""
    key = shape.key[0]
    t, k = quote(table), quote(key)
    values = ", ".join(["(?)"] * count)
    kind = f"CASE WHEN a.{k} IS NULL AND b.{k} IS NULL THEN '{MISSING}' ELSE {_kind((key,))} END"
    return (f"WITH asked(k) AS (VALUES {values})"
            f" SELECT {kind}, {_flag(newer_than)}asked.k FROM asked"
            f" LEFT JOIN src.{t} AS a ON a.{k} = asked.k LEFT JOIN main.{t} AS b ON b.{k} = asked.k"
            f" WHERE {_differs((key,), shape, shape)}")


def _kind(keys):
    return (f"CASE WHEN a.{quote(keys[0])} IS NULL THEN '{INSERTED}'"
            f" WHEN b.{quote(keys[0])} IS NULL THEN '{DELETED}' ELSE '{UPDATED}' END")


def _flag(newer_than):
    return "" if newer_than is None else f"coalesce(b.{quote(newer_than)} > ?, 0), "


def _differs(keys, source_shape, target_shape):
    common = [c for c in source_shape.names if c in set(target_shape.names) and c not in keys]
    differs = " OR ".join(f"a.{quote(c)} IS NOT b.{quote(c)}" for c in common) or "0"
    return f"(a.{quote(keys[0])} IS NULL OR b.{quote(keys[0])} IS NULL OR {differs})"


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
