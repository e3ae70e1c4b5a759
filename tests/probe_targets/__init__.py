"""Target modules and helpers for the diagnose library's tests."""
