"""Modules the tests put probes on, by dotted path (``probe_targets.shop.price``)."""
