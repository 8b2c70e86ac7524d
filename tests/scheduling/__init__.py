"""The scheduler: slots, cron schedules, the daily rules, concurrency and its API."""
