"""`POST /api/backup/restore` with `tables` or `rows`: put back only some tables or rows of a
backup, after a dry run; `POST /api/backup/restore/undo`: revert one.

The steps, under the backup lock (no backup or other restore meanwhile):
1. check the backup as a whole restore does (`source.check_backup`: verification, schema
   allowlist, the off-site record of a fetched copy);
2. read both sides in one read transaction: refuse a table (`tables.refusal`, no primary key,
   a schema difference), then plan the change and find the conflicts (`plan`); a dry run ends
   here, with the plan;
3. refuse conflicts (409) unless `force`; the `pre_backup` plugins are asked, then the usual
   `pre-restore-*` safety copy is made;
4. apply the change in one write transaction (`changes.apply_plans`), its inverse change set
   written to an undo file first (`undo_files`); audit `backup_restore_partial` with the counts.
Every refusal and failure leaves the live database unchanged and is audited
(`backup_restore_failed`, `partial: true`).
"""
import logging
import os
import time

from ...actor import as_actor
from ...errors import Conflict, ValidationFailed, describe_error
from ..names import SAFETY_COPY, name_time
from ..pruning import keep_newest
from ..restore import BUSY, RestoreFailed, room_for_safety_copy, safety_backup
from . import undo_files
from .changes import apply_plans, apply_undo
from .compare import DELETED, INSERTED, UPDATED
from .plan import images, make_plan, refusals, requested
from .source import check_backup, open_pair

log = logging.getLogger(__name__)
KINDS = (INSERTED, UPDATED, DELETED)


def restore_partial(mc, name, actor, *, tables=None, rows=None, dry_run=False, force=False):
    """Restore only `tables` (names) or `rows` (`{table: [primary keys]}`) of backup `name`.

    :return: the answer (see docs/partial-restore.md): `dry_run`, `name`, `tables` (per table:
        inserted, updated, deleted, conflicts; counts and up to 20 keys), `totals`, and when
        applied, `safety_backup` and `undo` (the token of `undo`).
    :raises ValidationFailed: bad input, a refused table, an unknown row (400).
    :raises NotFound: no such backup (404). `FileRejected`: the backup failed its checks (400).
    :raises Conflict: the lock is held, there are conflicts and no `force`, a row changed while
        preparing, or a constraint would break (409).
    :raises RestoreFailed: anything else; nothing was changed (500).
    """
    actor = as_actor(actor)
    wanted = requested(tables, rows)
    mc.backups.readable_path(name)  # a bad name or no such file: 400 or 404 before the lock
    detail = {"name": name, "partial": True, "tables": sorted(wanted)}
    with mc.backups.exclusive(BUSY):
        path = check_backup(mc, name, actor)
        conn = open_pair(path, live=mc.config.db_path)
        try:
            conn.execute("BEGIN")
            problems, shapes = refusals(conn, wanted)
            if problems:
                if not dry_run:  # a dry run changes nothing, so it fails nothing either
                    _failed(mc, actor, name, detail, "; ".join(problems))
                raise ValidationFailed(problems, "Partial restore refused")
            plans = make_plan(conn, wanted, shapes, backup_time(name, path))
            rows = None if dry_run else {p.table: images(conn, p) for p in plans}
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()
        answer = {"dry_run": dry_run, "name": name, "tables": [p.to_json() for p in plans],
                  "totals": {kind: sum(len(p.keys[kind]) for p in plans) for kind in KINDS},
                  "conflicts": sum(len(p.conflicts) for p in plans)}
        if dry_run:
            return answer
        if answer["conflicts"] and not force:
            _failed(mc, actor, name, detail, f"{answer['conflicts']} conflicts")
            raise Conflict(f"Not restored: {answer['conflicts']} live rows it would overwrite or "
                           "delete were written after the backup was taken (see the dry run); "
                           "nothing was changed. Add force to restore over them.",
                           details=[f"{t['table']}: {t['conflicts']['sample']}"
                                    for t in answer["tables"] if t["conflicts"]["count"]])
        return _apply(mc, actor, plans, rows, answer, detail)


def _apply(mc, actor, plans, rows, answer, detail):
    started = time.perf_counter()
    room_for_safety_copy(mc, detail["name"], detail, actor)
    token = undo_files.new_token(mc.clock())
    try:
        safety = safety_backup(mc, actor)
        meta = {"token": token, **detail, "made_at": int(mc.clock()), "by": str(actor),
                "totals": answer["totals"]}
        apply_plans(mc.config.db_path, plans, rows,
                    lambda changes: undo_files.write(mc.backups.dir, token, meta, changes))
    except Conflict as exc:
        _failed(mc, actor, detail["name"], detail, exc.message)
        raise
    except Exception as exc:  # noqa: BLE001 - every failure ends the same safe way
        reason = describe_error(exc)
        log.exception("partial restore of %s failed: %s", detail["name"], reason)
        _failed(mc, actor, detail["name"], detail, reason)
        raise RestoreFailed("Partial restore failed; nothing was changed") from exc
    counts = {p.table: {kind: len(p.keys[kind]) for kind in KINDS} for p in plans}
    mc.audit.emit("backup_restore_partial", actor, target_type="backup", target_id=detail["name"],
                  detail={**detail, "safety_backup": safety.name, "undo": token,
                          "totals": answer["totals"], "counts": counts,
                          "forced_conflicts": answer["conflicts"],
                          "duration_seconds": round(time.perf_counter() - started, 3)})
    keep_newest(mc, SAFETY_COPY, safety.name, actor)
    undo_files.keep_newest(mc.backups.dir, mc.settings.get(undo_files.KEEP_SETTING))
    return {**answer, "safety_backup": safety.to_json(), "undo": token}


def undo_partial(mc, token, actor):
    """Revert the partial restore that answered `token`, unless rows it touches changed since.

    :return: `{"undone": token, "name", "tables": {table: counts}}`.
    :raises ValidationFailed: a bad token (400). :raises NotFound: no such undo (404).
    :raises Conflict: the lock is held, or rows changed since (409); nothing is changed.
    """
    actor = as_actor(actor)
    undo_files.path_of(mc.backups.dir, token)
    with mc.backups.exclusive(BUSY):
        meta, changes = undo_files.read(mc.backups.dir, token)
        detail = {"token": token, "name": meta.get("name"), "tables": meta.get("tables")}
        try:
            done = apply_undo(mc.config.db_path, changes)
        except Conflict as exc:
            mc.audit.emit("backup_restore_failed", actor, target_type="backup",
                          target_id=meta.get("name"), detail={**detail, "undo": True,
                                                              "reason": exc.message})
            raise
        undo_files.remove(mc.backups.dir, token)
    mc.audit.emit("backup_restore_undo", actor, target_type="backup", target_id=meta.get("name"),
                  detail={**detail, "counts": done})
    return {"undone": token, "name": meta.get("name"), "tables": done}


def backup_time(name, path):
    """Unix seconds the backup was taken: the UTC time in its name, else its file's mtime."""
    made = name_time(name)
    return made if made is not None else int(os.stat(path).st_mtime)


def _failed(mc, actor, name, detail, reason):
    mc.audit.emit("backup_restore_failed", actor, target_type="backup", target_id=name,
                  detail={**detail, "reason": reason})
