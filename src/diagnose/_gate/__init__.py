"""The firing gate: whether an instrument fires for an event (check_call, rate limit,
budget), with the counters its spec's status reports."""
