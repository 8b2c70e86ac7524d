"""Writing a partial restore into the live database in one short write transaction, recording
every row's image before and after (the inverse change set), and undoing it from that record.

The standard library's sqlite3 does it all. APSW's session extension would record change sets
too, but APSW ships its own SQLite library: two SQLite libraries in one process on the same
database file lose track of each other's POSIX locks (a close by one drops the other's), which
https://www.sqlite.org/howtocorrupt.html (2.2.1) names as a way to corrupt it; a trial here
ended in "disk I/O error" on the live database. So no second library touches the live file.
"""
import sqlite3
from urllib.request import pathname2url

from ...errors import Conflict
from .compare import DELETED, INSERTED, UPDATED
from .source import BUSY_TIMEOUT_MS
from .tables import quote


def connect_live(live_path):
    """A read-write connection to the live database (the service's own SQLite library)."""
    conn = sqlite3.connect(f"file:{pathname2url(str(live_path))}?mode=rw", uri=True,
                           isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA trusted_schema=OFF")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _where(columns):
    return " AND ".join(f"{quote(c)} = ?" for c in columns)


def _row(conn, schema, table, key_columns, key):
    found = conn.execute(f"SELECT * FROM {schema}.{quote(table)} WHERE {_where(key_columns)}",
                         key).fetchone()
    return None if found is None else tuple(found)


def apply_plans(live_path, plans, rows, keep_changes):
    """Apply `plans` (`plan.TablePlan`s) to the live database in one write transaction.

    :param rows: `{table: (before, after)}` as `plan.images` read them: inside the transaction
        the live rows the plans overwrite or delete are checked to be still `before`; then the
        deletes, updates and inserts write `after`. `keep_changes(changes)` is called before
        COMMIT with `{table: {"columns", "key", "rows": [(before, after), ...]}}` (None: no
        row): when it raises, nothing is changed.
    :raises Conflict: a row changed since planning, or a constraint (UNIQUE, foreign key) would
        break (409); nothing is changed.
    """
    conn = connect_live(live_path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            changes = {}
            for plan in plans:
                before, after = rows[plan.table]
                _check_unchanged(conn, plan, before)
                changes[plan.table] = _record(plan, before, after)
            for plan in plans:
                _write(conn, plan, rows[plan.table][1])
            keep_changes(changes)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except sqlite3.IntegrityError as exc:
        raise Conflict("Not restored: a restored row would break a constraint of the live "
                       f"database ({exc}); nothing was changed") from None
    finally:
        conn.close()


def _check_unchanged(conn, plan, before):
    for key, row in before.items():
        if _row(conn, "main", plan.table, plan.shape.key, key) != row:
            raise Conflict(f"Not restored: a row of {plan.table} changed while the restore "
                           "was prepared; nothing was changed. Try again (dry run first).")


def _record(plan, before, after):
    """The plan's rows before and after, as the undo file keeps them."""
    rows = [(before[k], None) for k in plan.keys[DELETED]]
    rows += [(before[k], after[k]) for k in plan.keys[UPDATED]]
    rows += [(None, after[k]) for k in plan.keys[INSERTED]]
    return {"columns": list(plan.shape.names), "key": list(plan.shape.key), "rows": rows}


def _write(conn, plan, after):
    """The plan's deletes, updates and inserts (rows `after`), on `conn` in its transaction."""
    t, key, cols = quote(plan.table), plan.shape.key, plan.shape.names
    where = _where(key)
    if plan.keys[DELETED]:
        conn.executemany(f"DELETE FROM main.{t} WHERE {where}", plan.keys[DELETED])
    if plan.keys[UPDATED]:
        assign = ", ".join(f"{quote(c)} = ?" for c in cols)
        conn.executemany(f"UPDATE main.{t} SET {assign} WHERE {where}",
                         [(*after[k], *k) for k in plan.keys[UPDATED]])
    if plan.keys[INSERTED]:
        conn.executemany(f"INSERT INTO main.{t} ({', '.join(quote(c) for c in cols)})"
                         f" VALUES ({', '.join('?' * len(cols))})",
                         [after[k] for k in plan.keys[INSERTED]])


def apply_undo(live_path, changes):
    """Put back every row's image from before the restore, in one write transaction, provided
    each live row still is what the restore wrote (every column; absent where it deleted one).

    :param changes: as `apply_plans` gave to `keep_changes`.
    :return: `{table: {"inserted", "updated", "deleted"}}`: what the undo did.
    :raises Conflict: a row it would touch changed since the restore, or the table's columns
        did (409, `details` name the first 20); nothing is changed.
    """
    conn = connect_live(live_path)
    done, conflicts = {}, []
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for table, change in changes.items():
                done[table] = _undo_table(conn, table, change, conflicts)
            if conflicts:
                raise Conflict("Not undone: rows it would touch changed since the partial "
                               "restore; nothing was changed", details=conflicts[:20])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except sqlite3.IntegrityError as exc:
        raise Conflict(f"Not undone: a constraint of the live database would break ({exc}); "
                       "nothing was changed") from None
    finally:
        conn.close()
    return done


def _undo_table(conn, table, change, conflicts):
    columns, key_cols = change["columns"], change["key"]
    now = [r[1] for r in conn.execute(f"PRAGMA main.table_info({quote(table)})")]
    if now != columns:
        conflicts.append(f"{table}: its columns changed since the restore")
        return {}
    at = [columns.index(c) for c in key_cols]
    t, where, listed = quote(table), _where(key_cols), ", ".join(quote(c) for c in columns)
    assign = ", ".join(f"{quote(c)} = ?" for c in columns)
    counts = {INSERTED: 0, UPDATED: 0, DELETED: 0}
    # Rows the restore inserted go first, those it deleted last: a row it put back may hold a
    # UNIQUE value that a row it deleted held before, so that one can return only after.
    ordered = sorted(change["rows"], key=lambda row: (row[0] is not None, row[1] is None))
    for old, new in ordered:
        key = tuple((old or new)[i] for i in at)
        if _row(conn, "main", table, key_cols, key) != new:
            conflicts.append(f"{table} {key[0] if len(key) == 1 else list(key)}: "
                             + ("added again since" if new is None else
                                "changed or deleted since"))
            continue
        if old is None:
            conn.execute(f"DELETE FROM main.{t} WHERE {where}", key)
            counts[DELETED] += 1
        elif new is None:
            conn.execute(f"INSERT INTO main.{t} ({listed}) VALUES ({', '.join('?' * len(old))})",
                         old)
            counts[INSERTED] += 1
        else:
            conn.execute(f"UPDATE main.{t} SET {assign} WHERE {where}", (*old, *key))
            counts[UPDATED] += 1
    return counts
