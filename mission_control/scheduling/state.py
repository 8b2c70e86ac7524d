"""SQL for the `scheduler_state` table: each task's last run and result, and the daily claim."""

_ENSURE_ROW = "INSERT OR IGNORE INTO scheduler_state (task_id, updated_at) VALUES (?, ?)"


class SchedulerState:
    """One row per task. `last_run`/`last_finished` are unix milliseconds (as the API shows them);
    `last_slot` is the ISO time of the last daily slot a process claimed, so it sorts as text.
    """

    def __init__(self, db):
        self._db = db

    def get(self, task_id):
        """The task's row as a dict, or None when it has never run nor been claimed."""
        return self._db.query_one(
            "SELECT task_id, last_run, last_ok, last_message, last_slot, last_finished, updated_at"
            " FROM scheduler_state WHERE task_id = ?", (task_id,))

    def claim_slot(self, task_id, slot, now):
        """Atomically mark `slot` as taken; True for exactly one caller across all processes.

        A slot older than (or equal to) the one already claimed is refused, so a clock that jumps
        back cannot run a day twice.
        """
        with self._db.transaction() as conn:
            conn.execute(_ENSURE_ROW, (task_id, int(now)))
            cur = conn.execute(
                "UPDATE scheduler_state SET last_slot = ?, updated_at = ?"
                " WHERE task_id = ? AND (last_slot IS NULL OR last_slot < ?)",
                (slot, int(now), task_id, slot))
            return cur.rowcount == 1

    def record(self, task_id, started_ms, finished_ms, ok, message):
        """Store a finished run (scheduled or manual) as the task's last run and result."""
        with self._db.transaction() as conn:
            conn.execute(_ENSURE_ROW, (task_id, finished_ms // 1000))
            conn.execute(
                "UPDATE scheduler_state SET last_run = ?, last_finished = ?, last_ok = ?,"
                " last_message = ?, updated_at = ? WHERE task_id = ?",
                (started_ms, finished_ms, 1 if ok else 0, message, finished_ms // 1000, task_id))
