"""The audit trail: `Auditor` sends events to the `audit` hook; `AuditStore` is the table's SQL."""
import json

from .actor import as_actor
from .errors import ValidationFailed

MAX_LIMIT = 10000
DEFAULT_LIMIT = 100


class Auditor:
    """Builds audit events and hands them to every sink (`Hooks.audit`: one failing sink never stops
    another)."""

    def __init__(self, hooks, clock):
        self._hooks = hooks
        self._clock = clock

    def emit(self, action, actor, *, target_type=None, target_id=None, detail=None):
        """Build the event and hand it to every sink (`Hooks.audit`); returns the event.

        :param actor: an `Actor` (or a plain name, for plugins and scripts).
        """
        event = {
            "action": action,
            **as_actor(actor).audit_fields(),
            "target_type": target_type,
            "target_id": None if target_id is None else str(target_id),
            "detail": detail,
            "created_at": int(self._clock()),
        }
        self._hooks.audit(event)
        return event


class AuditStore:
    """SQL for the `audit_log` table."""

    COLUMNS = ("id", "action", "actor", "actor_id", "target_type", "target_id", "detail",
               "ip_address", "user_agent", "created_at")

    def __init__(self, db):
        self._db = db

    def insert(self, event):
        detail = event.get("detail")
        with self._db.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO audit_log (action, actor, actor_id, target_type, target_id, detail,"
                " ip_address, user_agent, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (event["action"], event["actor"], event.get("actor_id"), event.get("target_type"),
                 event.get("target_id"), None if detail is None else json.dumps(detail, sort_keys=True),
                 event.get("ip_address"), event.get("user_agent"), event["created_at"]))
        return cur.lastrowid

    def by_target(self, action):
        """`{target_id: {"count": n, "last_at": unix seconds}}` of the events of `action`."""
        return {r["target_id"]: {"count": r["n"], "last_at": r["last_at"]} for r in self._db.query(
            "SELECT target_id, COUNT(*) AS n, MAX(created_at) AS last_at FROM audit_log"
            " WHERE action = ? GROUP BY target_id", (action,))}

    def query(self, action=None, actor=None, since=None, until=None, limit=DEFAULT_LIMIT, offset=0,
              exclude_action=()):
        """Events newest first, with the total that match the filters (before paging).

        :param exclude_action: actions left out (the page folds `login`/`logout` away this way).
        """
        where, params = [], []
        for column, op, value in (("action", "=", action), ("actor", "=", actor),
                                  ("created_at", ">=", since), ("created_at", "<=", until)):
            if value is not None:
                where.append(f"{column} {op} ?")
                params.append(value)
        if exclude_action:
            where.append(f"action NOT IN ({','.join('?' * len(exclude_action))})")
            params.extend(exclude_action)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        total = self._db.execute(f"SELECT COUNT(*) FROM audit_log{clause}", params).fetchone()[0]
        rows = self._db.query(
            f"SELECT {', '.join(self.COLUMNS)} FROM audit_log{clause}"
            " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?", [*params, limit, offset])
        for row in rows:
            if row["detail"] is not None:
                try:
                    row["detail"] = json.loads(row["detail"])
                except ValueError:
                    pass
        return rows, total


MAX_INT64 = 2**63 - 1
MAX_EXCLUDED = 50  # actions one query may leave out (the catalogue has fewer)


def parse_query(args):
    """Validate `GET /api/audit` query parameters into keyword arguments for `AuditStore.query`."""
    problems, out = [], {}
    for key in ("action", "actor"):
        value = args.get(key, "").strip()
        if value:
            out[key] = value
    excluded = sorted({a.strip() for raw in args.getlist("exclude_action") for a in raw.split(",")
                       if a.strip()})
    if len(excluded) > MAX_EXCLUDED:
        problems.append(f"exclude_action: at most {MAX_EXCLUDED} actions")
    elif excluded:
        out["exclude_action"] = tuple(excluded)
    for key, default, lo in (("since", None, 0), ("until", None, 0),
                             ("limit", DEFAULT_LIMIT, 1), ("offset", 0, 0)):
        raw = args.get(key, "").strip()
        if not raw:
            if default is not None:
                out[key] = default
            continue
        try:
            value = int(raw)
        except ValueError:
            problems.append(f"{key}: must be a whole number")
            continue
        if value < lo:
            problems.append(f"{key}: must be at least {lo}")
            continue
        if value > MAX_INT64:  # SQLite integers are 64-bit; a bigger one would fail the query
            problems.append(f"{key}: must be at most {MAX_INT64}")
            continue
        out[key] = value
    if problems:
        raise ValidationFailed(problems)
    out["limit"] = min(out["limit"], MAX_LIMIT)
    return out
