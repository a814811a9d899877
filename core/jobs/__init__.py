"""The scheduled jobs: stale-task reports, approval expiry and reminders, crash
recovery and housekeeping. bot/scheduler.py runs them on APScheduler."""
