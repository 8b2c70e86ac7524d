"""When tasks run: cron expressions, the scheduler thread and its persisted state."""
