"""The fleet subscriber of diagnose-fleet: specs over Redis pub/sub, status per process."""
