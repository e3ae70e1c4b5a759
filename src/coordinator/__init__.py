"""The ops command line and the async service of diagnose-fleet."""
