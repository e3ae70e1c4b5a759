"""What each `coordinator` command does: one module per command family, talking to Redis
through ``diagnose_redis.publisher`` and printing through ``coordinator.view``."""
