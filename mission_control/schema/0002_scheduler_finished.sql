-- Version 2: when a scheduler task's last run finished (unix milliseconds), shown as
-- `lastResult.timestamp`; `last_run` holds when it started (also milliseconds).
ALTER TABLE scheduler_state ADD COLUMN last_finished INTEGER;
